// Package trillianlog is the Trillian engine's log: undersigned as a
// Trillian personality (DESIGN.md §7). Entries go to trillian_log_server
// with QueueLeaf, their identity hash the SHA-256 of the record bytes, so
// that Trillian keeps one copy of each; trillian_log_signer integrates
// them; inclusion and consistency proofs come from Trillian. Anyone who
// reaches Trillian can queue a leaf too: it is handed to the ledger like
// any other, whatever its identity hash, and the ledger records it as a
// foreign leaf (ledger.ForeignLeaf); the log goes on.
//
// # The tile builder
//
// A [Log] follows the tree: it reads the integrated leaves in order with
// GetLeavesByRange, hashes them into a compact range, and so reproduces the
// root of every tree size Trillian reports. The nodes the compact range
// creates on its way are the rows of the C2SP tlog-tiles tiles: each full
// tile and full entry bundle is stored once in a [TileStore] (PostgreSQL,
// shared by the frontends), with the builder's state, so that a restarted
// builder continues where the last full bundle ended; the incomplete tile
// of each level is kept in memory. The tlog-tiles API serves only what a
// published checkpoint covers.
//
// # Checkpoints
//
// The personality signs checkpoints, not Trillian, and only for roots the
// builder reproduced: before it publishes a tree, the log hands its new
// entries to the ledger ([ledger.UnorderedLog.Follow]), then signs with a
// guard.Signer, which checks the tree against the last checkpoint signed
// (with a consistency proof from Trillian) and persists it. Several
// frontends share the guard's Persister, a row updated by compare-and-swap:
// a frontend that loses the race adopts the other's checkpoint after
// checking it, and, Ed25519 being deterministic and checkpoints carrying no
// extension lines, two frontends signing one tree produce the same bytes.
// Each checkpoint is recorded (Config.Record) before it is served. A tree
// that breaks a rule, or a signer that refuses it, stops the log for good
// ([Log.Stop]): nothing more is signed or served.
package trillianlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/tileproofs"
)

// Config configures a [Log].
type Config struct {
	// Client talks to trillian_log_server.
	Client trillian.TrillianLogClient
	// TreeID is the tree, a LOG tree, active.
	TreeID int64
	// Signer signs checkpoints; its Persister is shared by every frontend
	// of the tree.
	Signer *guard.Signer
	// Verifier verifies the log's checkpoints.
	Verifier note.Verifier
	// Tiles keeps the full tiles and the builder's state.
	Tiles TileStore
	// PollInterval is how often the tree's size is read; 0 means 50 ms.
	PollInterval time.Duration
	// ReadBatch is the most leaves read in one GetLeavesByRange; 0 means
	// 1,024.
	ReadBatch int
	// Logger receives the log's logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the log's metrics; nil means none.
	Registry prometheus.Registerer
	// Record, when set, durably records a signed checkpoint before the
	// log serves it, whether this frontend signed it or adopted another's:
	// the Trillian engine keeps the last one where a restore of the
	// databases cannot roll it back. An error keeps the checkpoint from
	// being served; the next step tries again.
	Record func(ctx context.Context, signed []byte, size uint64) error
}

// Log is a ledger.UnorderedLog on a Trillian tree.
type Log struct {
	cfg     Config
	origin  string
	log     *slog.Logger
	metrics *metrics

	// follow is the ledger's follower; stepMu serialises the builder's
	// steps.
	stepMu  sync.Mutex
	follow  ledger.FollowFunc
	builder *builder
	// advanced is set when the last step followed new leaves: the next
	// reads them first, with the root that comes with them (see step).
	advanced bool

	// published is the latest checkpoint served, with the view of the
	// tree at its size; changed is closed and replaced when it moves.
	mu        sync.Mutex
	published ledger.Checkpoint
	view      *view
	changed   chan struct{}
	// poke asks the follower to step at once (see CatchUp).
	poke chan struct{}
	// proofs answers inclusion proofs from the tiles the builder made.
	proofs *tileproofs.Nodes
	// signing is the builder's view of the tree being signed, with its
	// root, and signProofs the guard's consistency proofs from it (see
	// consistency).
	signing    *signingTree
	signProofs *tileproofs.Nodes
	// fatal is why the log stopped for good; failing since when steps
	// have failed, and stepErr the last failure.
	fatal   error
	failing time.Time
	stepErr error

	cancel context.CancelFunc
	done   chan struct{}
}

var _ ledger.UnorderedLog = (*Log)(nil)

// Open opens the log on a tree: it checks the tree answers, loads the
// builder's state from the tile store and sets the guard's prover. The
// builder starts following with [Log.Follow].
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.ReadBatch <= 0 {
		cfg.ReadBatch = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{cfg: cfg, origin: cfg.Signer.Name(), log: cfg.Logger, metrics: newMetrics(cfg.Registry),
		changed: make(chan struct{}), done: make(chan struct{}), poke: make(chan struct{}, 1)}
	l.proofs = tileproofs.New(l.ReadTile)
	l.signProofs = tileproofs.New(l.readSigningTile)
	if _, err := l.latestRoot(ctx); err != nil {
		return nil, fmt.Errorf("open the Trillian tree %d: %w", cfg.TreeID, err)
	}
	size, state, err := cfg.Tiles.TileState(ctx)
	if err != nil {
		return nil, fmt.Errorf("open the Trillian tree %d: load the tile builder's state: %w", cfg.TreeID, err)
	}
	if l.builder, err = restoreBuilder(size, state); err != nil {
		return nil, err
	}
	cfg.Signer.SetProver(l.consistency)
	close(l.done)
	return l, nil
}

// Close stops following the tree.
func (l *Log) Close(context.Context) error {
	if l.cancel != nil {
		l.cancel()
	}
	<-l.done
	return nil
}

// latestRoot returns Trillian's latest root.
func (l *Log) latestRoot(ctx context.Context) (*types.LogRootV1, error) {
	resp, err := l.cfg.Client.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: l.cfg.TreeID})
	if err != nil {
		return nil, fmt.Errorf("latest root: %w", err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return nil, fmt.Errorf("latest root: %w", err)
	}
	return &root, nil
}

// IdentityHash is the identity of an entry in the tree: the SHA-256 of its
// bytes, so that Trillian keeps one copy of each record.
func IdentityHash(data []byte) []byte {
	h := sha256.Sum256(data)
	return h[:]
}

// Queue queues data in Trillian. A copy already queued or integrated is
// not an error.
func (l *Log) Queue(ctx context.Context, data []byte) error {
	return QueueLeaf(ctx, l.cfg.Client, l.cfg.TreeID, data)
}

// Append is not how entries reach this log: the ledger queues them (see
// [Log.Queue]). The returned function always fails.
func (l *Log) Append(context.Context, []byte) func() (uint64, error) {
	return func() (uint64, error) {
		return 0, errors.New("trillianlog: the log orders entries itself; queue them")
	}
}

// Follow registers the ledger's follower, brings the builder up to the
// tree's current size, publishing its checkpoint, and keeps following in
// the background until Close. A log that stopped for good (see
// [Log.Stop]) does not follow, and Follow returns nil: the server runs, and
// tells why it does not write.
func (l *Log) Follow(ctx context.Context, fn ledger.FollowFunc) error {
	l.stepMu.Lock()
	l.follow = fn
	l.stepMu.Unlock()
	if err := l.step(ctx); err != nil && l.stopped() == nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	l.done = make(chan struct{})
	go l.run(runCtx)
	return nil
}

// failAfter is how long steps may fail before the log reports itself
// unhealthy.
const failAfter = 5 * time.Second

func (l *Log) run(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.poke:
		}
		err := l.step(ctx)
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		if err == nil {
			l.failing, l.stepErr = time.Time{}, nil
		} else {
			l.metrics.stepFailures.Inc()
			if l.failing.IsZero() {
				l.failing = time.Now()
				l.log.Warn("following the Trillian tree failed; retrying", slog.Any("error", err))
			}
			l.stepErr = err
		}
		l.mu.Unlock()
	}
}

// stopped returns why the log stopped for good, if it did: the signer
// refused to sign, or the tree broke a rule. The error wraps
// ledger.ErrStopped.
func (l *Log) stopped() error {
	if err := l.cfg.Signer.Err(); err != nil {
		return fmt.Errorf("%w: %w", ledger.ErrStopped, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal != nil {
		return fmt.Errorf("%w: %w", ledger.ErrStopped, l.fatal)
	}
	return nil
}

// Stop stops the log for good, err saying why: nothing more is signed,
// queued or served (see ledger.ErrStopped) until the server is started
// again. The Trillian engine stops a log at start when the tree, the
// database or its last signed checkpoint disagrees with what the key
// signed before.
func (l *Log) Stop(err error) {
	l.stop(err)
}

// stop records why the log stopped for good.
func (l *Log) stop(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatal == nil {
		l.fatal = err
		l.log.Error("the Trillian log stopped: writes are refused until an operator acts", slog.Any("error", err))
	}
	return l.fatal
}

// step follows the tree from the builder's size to Trillian's latest root,
// hands the new entries to the follower, stores the full tiles, checks the
// root and publishes a checkpoint.
func (l *Log) step(ctx context.Context) error {
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	// Only a stop for good ends the following: steps that failed for a
	// while (Trillian down, restarting) must not keep the next from trying,
	// or the log would never recover from an outage.
	if err := l.stopped(); err != nil {
		return err
	}
	began := time.Now()
	b := l.builder
	from := b.size()
	// While entries arrive, the leaves after the builder's size are read
	// first: Trillian answers them with the root they were read at, one
	// call where reading the root first takes two. When none came, or
	// none are there, the root is read first, as on an idle tree.
	var root *types.LogRootV1
	var first [][]byte
	if l.advanced {
		var err error
		if root, first, err = l.readAhead(ctx, from); err != nil {
			return err
		}
	}
	if root == nil {
		var err error
		if root, err = l.latestRoot(ctx); err != nil {
			return err
		}
		l.metrics.part(partRoot, began)
	}
	l.metrics.trillianSize.Set(float64(root.TreeSize))
	if root.TreeSize < b.size() {
		return l.stop(fmt.Errorf("Trillian's tree has %d entries, fewer than the %d already followed: Trillian lost entries (its database restored from an older copy?); nothing is queued or signed until `undersigned-server recover` queues them again", root.TreeSize, b.size()))
	}
	if err := l.catchUp(ctx, b, root.TreeSize, first); err != nil {
		return err
	}
	l.advanced = b.size() > from
	l.metrics.followedSize.Set(float64(b.size()))
	if got := b.root(); !bytes.Equal(got, root.RootHash) {
		return l.stop(fmt.Errorf("the tile builder's root at size %d is %x, Trillian's %x", root.TreeSize, got, root.RootHash))
	}
	if err := l.publish(ctx, b); err != nil {
		return err
	}
	if b.size() > from {
		l.metrics.stepLeaves.Observe(float64(b.size() - from))
		l.metrics.part(partStep, began)
	}
	return nil
}

// catchUp reads the leaves from the builder's size to size, hands them to
// the follower, builds their tiles and stores the full ones. first, when
// set, are the leaves from the builder's size already read.
func (l *Log) catchUp(ctx context.Context, b *builder, size uint64, first [][]byte) error {
	var read, follow, tiles time.Duration
	for b.size() < size {
		start := b.size()
		t := time.Now()
		leaves := first
		first = nil
		if len(leaves) == 0 {
			var err error
			if leaves, err = l.readTrillian(ctx, start, min(size, start+uint64(l.cfg.ReadBatch))); err != nil {
				return err
			}
		}
		read += time.Since(t)
		if l.follow != nil {
			t = time.Now()
			if err := l.follow(ctx, start, leaves); err != nil {
				return err
			}
			follow += time.Since(t)
		}
		for _, leaf := range leaves {
			if err := b.add(leaf); err != nil {
				return l.stop(err)
			}
			if b.atBoundary() {
				t = time.Now()
				if err := l.storeTiles(ctx, b); err != nil {
					l.rewind(ctx)
					return err
				}
				tiles += time.Since(t)
			}
		}
	}
	for part, d := range map[string]time.Duration{partRead: read, partFollow: follow, partTiles: tiles} {
		if d > 0 {
			l.metrics.step.WithLabelValues(part).Observe(d.Seconds())
		}
	}
	return nil
}

// storeTiles stores the full tiles and bundles made so far and the
// builder's state.
func (l *Log) storeTiles(ctx context.Context, b *builder) error {
	tiles, bundles := b.take()
	if err := l.cfg.Tiles.PutTiles(ctx, tiles, bundles, b.size(), b.state()); err != nil {
		if errors.Is(err, ErrTileMismatch) {
			return l.stop(err)
		}
		return fmt.Errorf("store tiles: %w", err)
	}
	l.metrics.tilesStored.Add(float64(len(tiles) + len(bundles)))
	return nil
}

// rewind puts the builder back at its stored state after a failure, so
// that no full tile is lost.
func (l *Log) rewind(ctx context.Context) {
	size, state, err := l.cfg.Tiles.TileState(ctx)
	if err == nil {
		var b *builder
		if b, err = restoreBuilder(size, state); err == nil {
			// The published view keeps the old builder's slices.
			l.builder = b
			return
		}
	}
	l.stop(fmt.Errorf("reload the tile builder's state: %w", err))
}

// readAhead reads the leaves from start with the root Trillian read them
// at. It returns a nil root, and no error, when Trillian holds no leaf at
// start (or gives no root): the caller reads the root.
func (l *Log) readAhead(ctx context.Context, start uint64) (*types.LogRootV1, [][]byte, error) {
	t := time.Now()
	resp, err := l.cfg.Client.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
		LogId: l.cfg.TreeID, StartIndex: int64(start), Count: int64(l.cfg.ReadBatch),
	})
	if status.Code(err) == codes.OutOfRange {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read leaves from %d: %w", start, err)
	}
	if resp.GetSignedLogRoot() == nil || len(resp.GetLeaves()) == 0 {
		return nil, nil, nil
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return nil, nil, fmt.Errorf("read leaves from %d: the root: %w", start, err)
	}
	if uint64(len(resp.GetLeaves())) > root.TreeSize-min(root.TreeSize, start) {
		return nil, nil, fmt.Errorf("read leaves from %d: %d leaves beyond Trillian's root of size %d", start, len(resp.GetLeaves()), root.TreeSize)
	}
	leaves := make([][]byte, len(resp.GetLeaves()))
	for i, leaf := range resp.GetLeaves() {
		if uint64(leaf.GetLeafIndex()) != start+uint64(i) {
			return nil, nil, fmt.Errorf("read leaves: got index %d, want %d", leaf.GetLeafIndex(), start+uint64(i))
		}
		leaves[i] = leaf.GetLeafValue()
	}
	l.metrics.part(partReadAhead, t)
	return &root, leaves, nil
}

// readTrillian reads the integrated leaves [start, end) from Trillian. A
// leaf whose identity hash is not the SHA-256 of its value was not queued
// by a frontend: the ledger's follower finds it admitted by none, and
// records it as foreign; the log goes on.
func (l *Log) readTrillian(ctx context.Context, start, end uint64) ([][]byte, error) {
	return ReadLeaves(ctx, l.cfg.Client, l.cfg.TreeID, start, end)
}

// publish signs, or adopts, the checkpoint of the builder's tree and
// serves it with the builder's view.
func (l *Log) publish(ctx context.Context, b *builder) error {
	size, root := b.size(), b.root()
	l.mu.Lock()
	same := l.published.Raw != nil && l.published.Size == size
	l.mu.Unlock()
	if same {
		return nil
	}
	g := l.cfg.Signer
	for attempt := 0; ; attempt++ {
		last, raw := g.LastCheckpoint()
		switch {
		case last != nil && last.Size > size && attempt > 0:
			// Another frontend signed a larger tree since this step read
			// Trillian's size: serve it once the builder reproduces it.
			return nil
		case last != nil && last.Size > size:
			// The builder is at the size Trillian gave this step, and a
			// checkpoint was signed for a larger tree before: Trillian lost
			// entries (its database restored from an older copy). Nothing
			// may be queued either: a new entry would take the place of a
			// lost one, and the tree could never again be the one the key
			// signed.
			return l.stop(fmt.Errorf("Trillian's tree has %d entries, the last checkpoint signed has %d: Trillian lost entries (its database restored from an older copy?); nothing is queued or signed until `undersigned-server recover` queues them again", size, last.Size))
		case last != nil && last.Size == size:
			if !bytes.Equal(last.Hash, root) {
				return l.stop(fmt.Errorf("%w: the checkpoint signed at size %d has root %x, the tree %x", guard.ErrInconsistent, size, last.Hash, root))
			}
			return l.serve(ctx, raw, size, root, b.view())
		}
		t := time.Now()
		l.mu.Lock()
		st := &signingTree{view: b.view(), root: root}
		if last != nil {
			st.from, st.fromRoot = last.Size, last.Hash
		}
		l.signing = st
		l.mu.Unlock()
		signed, err := g.SignTree(ctx, size, root)
		if err == nil {
			l.metrics.part(partSign, t)
			l.metrics.signed.Inc()
			return l.serve(ctx, signed, size, root, b.view())
		}
		if !errors.Is(err, guard.ErrConflict) || attempt > 10 {
			return err
		}
		if _, _, err := g.Reload(ctx); err != nil {
			return err
		}
	}
}

// serve records a signed checkpoint (Config.Record) and serves it with
// the builder's view.
func (l *Log) serve(ctx context.Context, raw []byte, size uint64, root []byte, v *view) error {
	if l.cfg.Record != nil {
		t := time.Now()
		if err := l.cfg.Record(ctx, raw, size); err != nil {
			return fmt.Errorf("record the checkpoint of size %d: %w", size, err)
		}
		l.metrics.part(partRecord, t)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.published = ledger.Checkpoint{Raw: raw, Size: size, Hash: root}
	l.metrics.publishedSize.Set(float64(size))
	l.view = v
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// CatchUp asks the follower to read the tree at once rather than at its
// next poll: a caller knows a larger tree size than this frontend
// published, which another frontend signed. Asks made while a step runs
// are served by the next one.
func (l *Log) CatchUp() {
	select {
	case l.poke <- struct{}{}:
	default:
	}
}

// AwaitCheckpoint waits for a published checkpoint that includes index.
func (l *Log) AwaitCheckpoint(ctx context.Context, index uint64) (ledger.Checkpoint, error) {
	for {
		l.mu.Lock()
		cp, ch := l.published, l.changed
		l.mu.Unlock()
		if cp.Raw != nil && cp.Size > index {
			return cp, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ledger.Checkpoint{}, ctx.Err()
		}
	}
}

// Checkpoint returns the latest published checkpoint.
func (l *Log) Checkpoint(context.Context) (ledger.Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.published.Raw == nil {
		return ledger.Checkpoint{}, errors.New("no checkpoint published yet")
	}
	return l.published, nil
}

// Healthy returns why the log cannot publish, or nil.
func (l *Log) Healthy() error {
	if err := l.stopped(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing.IsZero() && time.Since(l.failing) > failAfter {
		return fmt.Errorf("cannot follow the Trillian tree since %s: %w", l.failing.UTC().Format(time.RFC3339), l.stepErr)
	}
	return nil
}

// IntegratedSize returns the number of entries the builder has followed.
func (l *Log) IntegratedSize(context.Context) (uint64, error) {
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	return l.builder.size(), nil
}

// InclusionProof proves the entry at index in the tree of size: from the
// tiles the builder made, which hold every tree it published, or, for a
// tree they do not hold, with Trillian's proof. A receipt so costs
// Trillian nothing.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if p, err := l.proofs.Inclusion(ctx, index, size, size); err == nil {
		return p, nil
	}
	resp, err := l.cfg.Client.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{
		LogId: l.cfg.TreeID, LeafIndex: int64(index), TreeSize: int64(size),
	})
	if err != nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: %w", index, size, err)
	}
	if resp.GetProof() == nil {
		return nil, fmt.Errorf("inclusion proof of %d in %d: Trillian's tree is smaller", index, size)
	}
	return resp.GetProof().GetHashes(), nil
}

// ConsistencyProof proves that the tree of size to extends that of size
// from, with Trillian's proof.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return l.trillianConsistency(ctx, from, to)
}

// signingTree is a tree the builder reproduced and the guard is asked to
// sign.
type signingTree struct {
	view *view
	root []byte
	// from and fromRoot are the last checkpoint signed when the guard
	// was asked.
	from     uint64
	fromRoot []byte
}

// consistency is the guard's consistency prover. For the tree being
// signed, the proof comes from the builder's tiles, checked here against
// the last signed checkpoint's root and the tree's: a checkpoint costs
// Trillian no proof. Otherwise, or if that proof does not check (the
// guard then judges Trillian's), it is Trillian's.
func (l *Log) consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from == 0 || from == to {
		return nil, nil
	}
	// The guard calls this holding its lock: what it signed last is the
	// signingTree's, not asked of it.
	l.mu.Lock()
	st := l.signing
	l.mu.Unlock()
	if st != nil && st.view.size == to && st.from == from {
		p, err := l.signProofs.Consistency(ctx, from, to, to)
		if err == nil && proof.VerifyConsistency(rfc6962.DefaultHasher, from, to, p, st.fromRoot, st.root) == nil {
			return p, nil
		}
	}
	return l.trillianConsistency(ctx, from, to)
}

// readSigningTile reads a tile of the tree being signed: the incomplete
// tiles from the builder's view, the full ones from the tile store. It
// serves the guard's proofs, never readers (the tlog-tiles API serves
// only published trees: see ReadTile).
func (l *Log) readSigningTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	l.mu.Lock()
	st := l.signing
	l.mu.Unlock()
	if st != nil {
		if b, ok, err := st.view.tile(level, index, p); ok {
			return b, err
		}
	}
	t, err := l.cfg.Tiles.Tile(ctx, level, index)
	if err != nil {
		return nil, err
	}
	return tilePrefix(t, uint64(p))
}

func (l *Log) trillianConsistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	if from == 0 || from == to {
		return nil, nil
	}
	resp, err := l.cfg.Client.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{
		LogId: l.cfg.TreeID, FirstTreeSize: int64(from), SecondTreeSize: int64(to),
	})
	if err != nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: %w", from, to, err)
	}
	if resp.GetProof() == nil {
		return nil, fmt.Errorf("consistency proof from %d to %d: Trillian's tree is smaller", from, to)
	}
	return resp.GetProof().GetHashes(), nil
}

// ReadLeaves returns the entries [start, end): from the stored entry
// bundles and the published view where they hold them, from Trillian
// otherwise.
func (l *Log) ReadLeaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	out := make([][]byte, 0, end-start)
	for i := start; i < end; {
		k := i / layout.EntryBundleWidth
		entries, err := l.bundle(ctx, k)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			rest, err := l.readTrillian(ctx, i, end)
			if err != nil {
				return nil, err
			}
			return append(out, rest...), nil
		}
		first := i - k*layout.EntryBundleWidth
		if first >= uint64(len(entries)) {
			rest, err := l.readTrillian(ctx, i, end)
			if err != nil {
				return nil, err
			}
			return append(out, rest...), nil
		}
		n := min(uint64(len(entries))-first, end-i)
		out = append(out, entries[first:first+n]...)
		i += n
	}
	return out, nil
}

// bundle returns the entries of entry bundle k: a stored full one, or the
// incomplete one of the published view.
func (l *Log) bundle(ctx context.Context, k uint64) ([][]byte, error) {
	l.mu.Lock()
	v := l.view
	l.mu.Unlock()
	if v != nil && k == v.size/layout.EntryBundleWidth {
		return v.entries, nil
	}
	b, err := l.cfg.Tiles.EntryBundle(ctx, k)
	if err != nil {
		return nil, err
	}
	return bundleEntries(b)
}

// ReadTile returns a tile for the tlog-tiles API: a stored full tile, or a
// prefix of it, or a prefix of the incomplete tile of the published view.
// A tile not built yet is an error wrapping os.ErrNotExist.
func (l *Log) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	l.mu.Lock()
	v := l.view
	l.mu.Unlock()
	if v != nil {
		if b, ok, err := v.tile(level, index, p); ok {
			return b, err
		}
	}
	t, err := l.cfg.Tiles.Tile(ctx, level, index)
	if err != nil {
		return nil, err
	}
	return tilePrefix(t, uint64(p))
}

// ReadEntryBundle returns an entry bundle for the tlog-tiles API, like
// ReadTile.
func (l *Log) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	l.mu.Lock()
	v := l.view
	l.mu.Unlock()
	if v != nil && index == v.size/layout.EntryBundleWidth {
		if p == 0 || int(p) > len(v.entries) {
			return nil, fmt.Errorf("entry bundle %d.p/%d: %w", index, p, os.ErrNotExist)
		}
		var b []byte
		for _, e := range v.entries[:p] {
			b = appendBundleEntry(b, e)
		}
		return b, nil
	}
	b, err := l.cfg.Tiles.EntryBundle(ctx, index)
	if err != nil {
		return nil, err
	}
	return bundlePrefix(b, uint64(p))
}

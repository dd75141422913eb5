// Package migrate copies a stopped embedded log into a new Trillian tree
// (DESIGN.md §7): its entries, in order, into a PREORDERED_LOG tree with
// AddSequencedLeaves; its store (intents, disclosures, the dedup index,
// tokens) into undersigned's own PostgreSQL database; its keys and secrets
// into a new data folder. The tree is then frozen, turned into a LOG tree
// and activated, so that a Trillian-engine server continues the same log
// under the same origin and key, and the receipts and checkpoints the
// embedded server issued stay valid.
//
// The roots must be identical at every size: [Run] compares Trillian's
// root with the embedded log's at every power-of-two size and at the final
// size, and stops at the first difference.
//
// A migration that succeeds retires the embedded folder
// ([datadir.Retire]): no server serves it again, and it is not migrated
// twice, until an operator undoes that with [datadir.Unretire].
package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/undersigned/undersigned/internal/atomicfile"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// Config configures a migration.
type Config struct {
	// From is the embedded engine's data folder; its server must be
	// stopped.
	From string
	// To is the new data folder of the Trillian engine; it must not exist
	// or be empty.
	To string
	// Log and Admin are clients of trillian_log_server.
	Log   trillian.TrillianLogClient
	Admin trillian.TrillianAdminClient
	// PostgresURI is a new, empty database for undersigned's own tables.
	PostgresURI string
	// Logger receives the progress; nil discards it.
	Logger *slog.Logger
	// BatchSize is the most leaves per AddSequencedLeaves; 0 means 1,000.
	BatchSize int
	// WaitTimeout bounds each wait for Trillian to integrate; 0 means 10
	// minutes.
	WaitTimeout time.Duration
}

// Result describes a finished migration.
type Result struct {
	// Origin is the log's origin, TreeID the new tree.
	Origin string
	TreeID int64
	// Size and RootHash are the migrated tree's.
	Size     uint64
	RootHash []byte
	// Checked are the sizes at which Trillian's root was compared with the
	// embedded log's.
	Checked []uint64
	// Unassigned counts the admitted intents without an index, which the
	// Trillian-engine server queues when it starts.
	Unassigned int
}

// maxRequestBytes bounds the leaves of one AddSequencedLeaves request,
// below gRPC's default limit of 4 MiB.
const maxRequestBytes = 2 << 20

// Run migrates the log.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 10 * time.Minute
	}
	src, err := openSource(ctx, cfg.From)
	if err != nil {
		return nil, err
	}
	defer src.store.Close()
	if err := checkTarget(cfg.To); err != nil {
		return nil, err
	}
	pg, err := pgstore.Open(ctx, cfg.PostgresURI, cfg.Logger)
	if err != nil {
		return nil, err
	}
	defer pg.Close()
	if empty, err := pg.Empty(ctx); err != nil || !empty {
		return nil, errors.Join(err, errors.New("migrate: the PostgreSQL database is not empty: a migration needs a new database"))
	}
	res := &Result{Origin: src.origin, Size: src.size, Unassigned: src.unassigned}
	log := cfg.Logger.With(slog.String("origin", src.origin))
	log.Info("migrating", slog.Uint64("size", src.size), slog.Int("intents_without_index", src.unassigned))

	res.TreeID, err = trillianlog.CreateTree(ctx, cfg.Admin, cfg.Log, trillian.TreeType_PREORDERED_LOG, "undersigned")
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	log = log.With(slog.Int64("tree_id", res.TreeID))
	log.Info("created a PREORDERED_LOG tree")
	m := &migration{cfg: cfg, src: src, tree: res.TreeID, log: log}
	if res.Checked, err = m.copyLeaves(ctx); err != nil {
		return nil, fmt.Errorf("migrate into tree %d: %w", res.TreeID, err)
	}
	res.RootHash = src.checkpoint.Hash
	if err := m.activate(ctx); err != nil {
		return nil, fmt.Errorf("migrate into tree %d: %w", res.TreeID, err)
	}
	log.Info("the tree is a LOG tree, active")
	if err := m.copyStore(ctx, pg); err != nil {
		return nil, fmt.Errorf("migrate into tree %d: %w", res.TreeID, err)
	}
	if err := copyFolder(cfg.From, cfg.To); err != nil {
		return nil, fmt.Errorf("migrate into tree %d: %w", res.TreeID, err)
	}
	// The embedded folder must never sign again: one more entry there
	// and the two logs of one origin and key would fork.
	retired := datadir.Retirement{Engine: "trillian", TreeID: res.TreeID, Data: cfg.To, At: time.Now().UTC()}
	if err := datadir.Retire(cfg.From, retired); err != nil {
		return nil, fmt.Errorf("migrate into tree %d: the log was copied, but %w; do not serve %s again", res.TreeID, err, cfg.From)
	}
	log.Info("migrated; the embedded data folder is retired", slog.String("data", cfg.To), slog.String("retired", cfg.From))
	return res, nil
}

// source is the embedded log being migrated.
type source struct {
	dir        string
	origin     string
	store      *sqlitestore.Store
	size       uint64
	checkpoint *log.Checkpoint
	rawCP      []byte
	unassigned int
}

// openSource opens a stopped embedded log and checks that its store and
// log agree.
func openSource(ctx context.Context, dir string) (*source, error) {
	if err := datadir.CheckRetired(dir); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, datadir.StateFile+"-wal")); err == nil {
		return nil, fmt.Errorf("migrate: %s is in use, or its server did not stop cleanly: stop the server (or start it and stop it once) first", dir)
	}
	v, err := datadir.ReadVerifier(dir)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	published, err := os.ReadFile(filepath.Join(dir, datadir.LogDir, layout.CheckpointPath))
	if err != nil {
		return nil, fmt.Errorf("migrate: the embedded log's checkpoint: %w", err)
	}
	cp, _, _, err := log.ParseCheckpoint(published, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("migrate: the embedded log's checkpoint: %w", err)
	}
	if signed, err := os.ReadFile(filepath.Join(dir, datadir.LastCheckpointFile)); err != nil || !bytes.Equal(signed, published) {
		return nil, fmt.Errorf("migrate: the last checkpoint signed is not the one published (%v): start the embedded server and stop it once", err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.StateFile))
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s := &source{dir: dir, origin: v.Name(), store: st, size: cp.Size, checkpoint: cp, rawCP: published}
	w, err := st.Watermark(ctx)
	if err == nil && w != cp.Size {
		err = fmt.Errorf("the store has indexes for %d entries, the log %d: start the embedded server and stop it once", w, cp.Size)
	}
	var rest []ledger.Entry
	if err == nil {
		rest, err = st.Unassigned(ctx, cp.Size)
	}
	for _, e := range rest {
		if e.Index != ledger.NoIndex && err == nil {
			err = fmt.Errorf("the store holds entry %d beyond the log's %d: start the embedded server and stop it once", e.Index, cp.Size)
		}
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	s.unassigned = len(rest)
	return s, nil
}

// checkTarget checks that the new data folder is absent or empty.
func checkTarget(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("migrate: the new data folder %s is not empty", dir)
	}
	return nil
}

type migration struct {
	cfg  Config
	src  *source
	tree int64
	log  *slog.Logger
}

// checkSizes are the sizes at which the roots are compared: every power of
// two below size, and size.
func checkSizes(size uint64) []uint64 {
	var out []uint64
	for b := uint64(1); b < size; b <<= 1 {
		out = append(out, b)
	}
	if size > 0 {
		out = append(out, size)
	}
	return out
}

// copyLeaves adds the embedded log's entries to the tree in order, and at
// each check size waits for Trillian to integrate them and compares roots.
func (m *migration) copyLeaves(ctx context.Context) ([]uint64, error) {
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	size := m.src.size
	var bundle [][]byte
	bundleIndex := ^uint64(0)
	var checked []uint64
	next := uint64(0)
	for _, bound := range checkSizes(size) {
		for next < bound {
			var leaves []*trillian.LogLeaf
			bytes := 0
			for next < bound && len(leaves) < m.cfg.BatchSize && bytes < maxRequestBytes {
				if k := next / layout.EntryBundleWidth; k != bundleIndex {
					var err error
					if bundle, err = m.readBundle(k); err != nil {
						return nil, err
					}
					bundleIndex = k
				}
				data := bundle[next%layout.EntryBundleWidth]
				leaves = append(leaves, &trillian.LogLeaf{LeafValue: data, LeafIdentityHash: trillianlog.IdentityHash(data), LeafIndex: int64(next)})
				if err := rng.Append(rfc6962.DefaultHasher.HashLeaf(data), nil); err != nil {
					return nil, err
				}
				bytes += len(data)
				next++
			}
			if err := m.addLeaves(ctx, leaves); err != nil {
				return nil, err
			}
		}
		root, err := m.awaitSize(ctx, bound)
		if err != nil {
			return nil, err
		}
		want, err := rng.GetRootHash(nil)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(root, want) {
			return nil, fmt.Errorf("at size %d Trillian's root is %x, the embedded log's %x: stopping", bound, root, want)
		}
		checked = append(checked, bound)
		m.log.Info("the roots agree", slog.Uint64("size", bound))
	}
	if size > 0 {
		if root, _ := rng.GetRootHash(nil); !bytes.Equal(root, m.src.checkpoint.Hash) {
			return nil, fmt.Errorf("the embedded log's leaves give the root %x, its checkpoint %x", root, m.src.checkpoint.Hash)
		}
	}
	return checked, nil
}

// readBundle reads entry bundle k of the embedded log.
func (m *migration) readBundle(k uint64) ([][]byte, error) {
	p := layout.PartialTileSize(0, k, m.src.size)
	raw, err := os.ReadFile(filepath.Join(m.src.dir, datadir.LogDir, layout.EntriesPath(k, p)))
	if err != nil && p != 0 {
		// Tessera may have completed the bundle after the checkpoint.
		raw, err = os.ReadFile(filepath.Join(m.src.dir, datadir.LogDir, layout.EntriesPath(k, 0)))
	}
	if err != nil {
		return nil, fmt.Errorf("read entry bundle %d: %w", k, err)
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", k, err)
	}
	want := int(p)
	if want == 0 {
		want = layout.EntryBundleWidth
	}
	if len(b.Entries) < want {
		return nil, fmt.Errorf("entry bundle %d has %d entries, want %d", k, len(b.Entries), want)
	}
	return b.Entries, nil
}

func (m *migration) addLeaves(ctx context.Context, leaves []*trillian.LogLeaf) error {
	resp, err := m.cfg.Log.AddSequencedLeaves(ctx, &trillian.AddSequencedLeavesRequest{LogId: m.tree, Leaves: leaves})
	if err != nil {
		return fmt.Errorf("add leaves from %d: %w", leaves[0].GetLeafIndex(), err)
	}
	for i, r := range resp.GetResults() {
		if c := codes.Code(r.GetStatus().GetCode()); c != codes.OK && c != codes.AlreadyExists {
			return fmt.Errorf("add leaf %d: %v: %s", leaves[i].GetLeafIndex(), c, r.GetStatus().GetMessage())
		}
	}
	return nil
}

// awaitSize waits until Trillian has integrated size leaves and returns
// its root.
func (m *migration) awaitSize(ctx context.Context, size uint64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.WaitTimeout)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		resp, err := m.cfg.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: m.tree})
		if err != nil {
			return nil, fmt.Errorf("wait for size %d: %w", size, err)
		}
		var root types.LogRootV1
		if err := root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
			return nil, fmt.Errorf("wait for size %d: %w", size, err)
		}
		switch {
		case root.TreeSize == size:
			return root.RootHash, nil
		case root.TreeSize > size:
			return nil, fmt.Errorf("wait for size %d: Trillian integrated %d", size, root.TreeSize)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for Trillian to integrate %d leaves (it has %d): %w", size, root.TreeSize, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// activate freezes the tree, turns it into a LOG tree and activates it.
func (m *migration) activate(ctx context.Context) error {
	for _, step := range []struct {
		path  string
		state trillian.TreeState
		typ   trillian.TreeType
	}{
		{"tree_state", trillian.TreeState_FROZEN, trillian.TreeType_PREORDERED_LOG},
		{"tree_type", trillian.TreeState_FROZEN, trillian.TreeType_LOG},
		{"tree_state", trillian.TreeState_ACTIVE, trillian.TreeType_LOG},
	} {
		_, err := m.cfg.Admin.UpdateTree(ctx, &trillian.UpdateTreeRequest{
			Tree:       &trillian.Tree{TreeId: m.tree, TreeState: step.state, TreeType: step.typ},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{step.path}},
		})
		if err != nil {
			return fmt.Errorf("set %s to %v/%v: %w", step.path, step.state, step.typ, err)
		}
	}
	root, err := m.awaitSize(ctx, m.src.size)
	if err != nil {
		return err
	}
	if m.src.size > 0 && !bytes.Equal(root, m.src.checkpoint.Hash) {
		return fmt.Errorf("after activation Trillian's root is %x, the embedded log's %x", root, m.src.checkpoint.Hash)
	}
	return nil
}

// copyStore copies the embedded store into the database, with the
// watermark, the binding to the tree and the last signed checkpoint.
func (m *migration) copyStore(ctx context.Context, pg *pgstore.Store) error {
	return pg.Import(ctx, func(im *pgstore.Importer) error {
		err := m.src.store.Export(ctx, func(t sqlitestore.Table, rows [][]any) error {
			return im.Copy(ctx, t.Name, t.Columns, rows)
		})
		if err != nil {
			return err
		}
		return im.Finish(ctx, m.src.size, m.src.origin, m.tree, m.src.rawCP)
	})
}

// copyFolder copies the keys, the secrets and the first token into the new
// data folder.
func copyFolder(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name     string
		mode     os.FileMode
		optional bool
	}{
		{datadir.LogKeyFile, 0o600, false},
		{datadir.LogPubFile, 0o644, false},
		{datadir.DedupSecretFile, 0o600, false},
		{datadir.TokenFile, 0o600, true},
	} {
		b, err := os.ReadFile(filepath.Join(from, f.name))
		if errors.Is(err, os.ErrNotExist) && f.optional {
			continue
		}
		if err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(to, f.name), b, f.mode); err != nil {
			return err
		}
	}
	return nil
}

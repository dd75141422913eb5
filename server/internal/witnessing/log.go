package witnessing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Defaults of [LogConfig].
const (
	DefaultWait          = 30 * time.Second
	DefaultRoundTimeout  = 10 * time.Second
	DefaultRetryInterval = time.Second
)

// LogConfig configures a [Log].
type LogConfig struct {
	// Witnesses configures the cosigner: the policy, the requests'
	// timeouts and backoff, the logger and the registry of the metrics.
	Witnesses Config
	// Wait bounds how long [Log.AwaitCheckpoint] waits, once the log
	// published a checkpoint that covers an entry, for one cosigned by
	// the quorum; 0 means DefaultWait.
	Wait time.Duration
	// RoundTimeout bounds a round of cosigning; 0 means the least of Wait
	// and DefaultRoundTimeout.
	RoundTimeout time.Duration
	// RetryInterval is the pause after a round that failed; 0 means
	// DefaultRetryInterval.
	RetryInterval time.Duration
	// Store keeps the last cosigned checkpoint. Set by the engine.
	Store Store
	// VerifierKey is the log's verifier key (log.pub). Set by the engine.
	VerifierKey string
}

// Store keeps the last cosigned checkpoint a log published: a file of the
// data folder for one server ([File]), a row replaced by compare-and-swap
// for the servers of one Trillian tree, which then publish the same
// cosigned checkpoint for each size.
type Store interface {
	// Load returns the last cosigned checkpoint, or nil if none was stored.
	Load(ctx context.Context) ([]byte, error)
	// Store durably replaces prev (nil for the first) with next. A Store
	// shared by several servers stores only if prev is still current,
	// and otherwise fails with an error wrapping [ErrConflict].
	Store(ctx context.Context, prev, next []byte) error
}

// ErrConflict is wrapped by the error of a shared [Store] when another
// server stored a cosigned checkpoint first.
var ErrConflict = errors.New("another server stored a cosigned checkpoint first")

// Log is a ledger.Log whose published checkpoints are those of another
// log (the engine's, signed by the log's key after the guard checked
// them) once cosigned by a quorum of the policy's witnesses.
//
// A goroutine follows the inner log: each time it publishes a larger
// checkpoint, the Log takes the latest, gets it cosigned (one round at a
// time, each bounded by RoundTimeout, the witnesses asked in parallel
// with retries), stores it in the [Store], and only then publishes it,
// so that it is served, and put into receipts, with its cosignatures.
// Rounds that fail are retried after RetryInterval with the inner log's
// latest checkpoint: entries are never lost, only their publication
// waits. Before each round the Log reads the Store, and publishes what
// another server sharing it stored when that covers the inner log's
// checkpoint, rather than have it cosigned twice.
//
// A Log over an UnorderedLog is an [UnorderedLog].
type Log struct {
	inner    ledger.Log
	cfg      LogConfig
	cosigner *Cosigner
	verifier note.Verifier
	origin   string
	log      *slog.Logger
	metrics  *logMetrics

	mu        sync.Mutex
	published ledger.Checkpoint
	changed   chan struct{}
	// stored is the Store's checkpoint as this Log last knew it, the one
	// it replaces by compare-and-swap; failed is the outcome of the last
	// round, nil once a round succeeded.
	stored []byte
	failed *QuorumError

	cancel context.CancelFunc
	done   chan struct{}
}

var _ ledger.Log = (*Log)(nil)

// UnorderedLog is a [Log] over a ledger.UnorderedLog: entries are queued
// and followed through to the inner log.
type UnorderedLog struct {
	*Log
	unordered ledger.UnorderedLog
}

var _ ledger.UnorderedLog = (*UnorderedLog)(nil)

// Queue queues data in the inner log.
func (u *UnorderedLog) Queue(ctx context.Context, data []byte) error {
	return u.unordered.Queue(ctx, data)
}

// Follow registers fn with the inner log.
func (u *UnorderedLog) Follow(ctx context.Context, fn ledger.FollowFunc) error {
	return u.unordered.Follow(ctx, fn)
}

// NewUnorderedLog is [NewLog] for a log that orders its entries itself.
func NewUnorderedLog(ctx context.Context, inner ledger.UnorderedLog, cfg LogConfig) (*UnorderedLog, error) {
	l, err := NewLog(ctx, inner, cfg)
	if err != nil {
		return nil, err
	}
	return &UnorderedLog{Log: l, unordered: inner}, nil
}

// NewLog returns a Log over inner. It loads the last cosigned checkpoint
// from the Store and publishes it again if it verifies with the log's key
// and meets the policy; the witnesses' sizes are seeded with its size. It
// fails when the policy does not accept the log's key, or a witness has
// no URL, or the stored checkpoint is not signed by the log's key. Close
// stops it.
func NewLog(ctx context.Context, inner ledger.Log, cfg LogConfig) (*Log, error) {
	if cfg.Store == nil {
		return nil, errors.New("witnessing: a store is required")
	}
	verifier, err := note.NewVerifier(cfg.VerifierKey)
	if err != nil {
		return nil, fmt.Errorf("witnessing: the log's key: %w", err)
	}
	if cfg.Witnesses.Policy == nil {
		return nil, errors.New("witnessing: a policy is required")
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	if cfg.RoundTimeout <= 0 {
		cfg.RoundTimeout = min(cfg.Wait, DefaultRoundTimeout)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if err := cfg.Witnesses.Policy.AllowsLog(cfg.VerifierKey); err != nil {
		return nil, fmt.Errorf("witnessing: %w", err)
	}
	lg := cfg.Witnesses.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	c, err := New(cfg.Witnesses)
	if err != nil {
		return nil, err
	}
	m, err := newLogMetrics(cfg.Witnesses.Registerer)
	if err != nil {
		return nil, fmt.Errorf("witnessing: %w", err)
	}
	l := &Log{inner: inner, cfg: cfg, cosigner: c, verifier: verifier, origin: verifier.Name(), log: lg, metrics: m,
		changed: make(chan struct{}), done: make(chan struct{})}
	if err := l.loadStored(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.cancel = cancel
	go l.run(runCtx)
	return l, nil
}

// loadStored reads the Store at start: its checkpoint seeds the
// witnesses' sizes, and is published at once if it meets the policy and
// the inner log already published its tree (else the first round
// publishes it, or a larger one).
func (l *Log) loadStored(ctx context.Context) error {
	raw, err := l.cfg.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("witnessing: load the last cosigned checkpoint: %w", err)
	}
	if raw == nil {
		return nil
	}
	cp, _, _, err := log.ParseCheckpoint(raw, l.origin, l.verifier)
	if err != nil {
		return fmt.Errorf("witnessing: the last cosigned checkpoint does not verify with the log's key: %w", err)
	}
	l.stored = raw
	l.cosigner.Seed(cp.Size)
	if r, err := l.cfg.Witnesses.Policy.Check(raw); err != nil || !r.Met {
		l.log.WarnContext(ctx, "the last cosigned checkpoint does not meet the witness policy (was it changed?): a checkpoint is cosigned again before one is served",
			slog.Uint64("size", cp.Size), slog.Any("result", r))
		return nil
	}
	inner, err := l.inner.Checkpoint(ctx)
	if err == nil && (inner.Size > cp.Size || inner.Size == cp.Size && bytes.Equal(inner.Hash, cp.Hash)) {
		l.publish(ledger.Checkpoint{Raw: raw, Size: cp.Size, Hash: cp.Hash})
	}
	return nil
}

// Close stops cosigning and waits for the requests in flight.
func (l *Log) Close() {
	l.cancel()
	<-l.done
	l.cosigner.Close()
}

// Cosigner returns the cosigner, to read the witnesses' sizes.
func (l *Log) Cosigner() *Cosigner { return l.cosigner }

// publish serves cp, if it is larger than what is served.
func (l *Log) publish(cp ledger.Checkpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.published.Raw != nil && cp.Size <= l.published.Size {
		return
	}
	if l.failed != nil {
		l.log.Info("the witness quorum cosigns again", slog.Uint64("size", cp.Size))
	}
	l.published = cp
	l.failed = nil
	close(l.changed)
	l.changed = make(chan struct{})
	l.metrics.published(cp.Size)
}

// current returns the published checkpoint (Raw nil when none).
func (l *Log) current() ledger.Checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.published
}

// run cosigns the inner log's checkpoints until ctx ends.
func (l *Log) run(ctx context.Context) {
	defer close(l.done)
	after := int64(-1) // the size beyond which a checkpoint is to cosign
	if cp := l.current(); cp.Raw != nil {
		after = int64(cp.Size)
	}
	for ctx.Err() == nil {
		target, err := l.next(ctx, after)
		if err != nil {
			if ctx.Err() == nil {
				l.log.WarnContext(ctx, "following the log's checkpoints for the witnesses", slog.Any("error", err))
				l.pause(ctx)
			}
			continue
		}
		switch found, err := l.adoptStored(ctx, target); {
		case err != nil:
			l.log.WarnContext(ctx, "reading the last cosigned checkpoint", slog.Any("error", err))
		case found == adopted:
			after = int64(target.Size)
			continue
		case found == ahead:
			// Another server cosigned a larger tree: publish it once the
			// inner log covers it.
			after = int64(target.Size)
			continue
		}
		if l.round(ctx, target) {
			after = int64(target.Size)
		} else {
			l.pause(ctx)
		}
	}
}

// pause waits RetryInterval, or until ctx ends.
func (l *Log) pause(ctx context.Context) {
	t := time.NewTimer(l.cfg.RetryInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// innerPoll is how often the inner log is asked for its first checkpoint.
const innerPoll = 20 * time.Millisecond

// next waits until the inner log published a checkpoint larger than
// after (any, when after is -1), and returns its latest.
func (l *Log) next(ctx context.Context, after int64) (ledger.Checkpoint, error) {
	for {
		cp, err := l.inner.Checkpoint(ctx)
		if err == nil && int64(cp.Size) > after {
			return cp, nil
		}
		if err == nil {
			if _, err := l.inner.AwaitCheckpoint(ctx, uint64(after)); err != nil {
				return ledger.Checkpoint{}, err
			}
			continue
		}
		t := time.NewTimer(innerPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ledger.Checkpoint{}, ctx.Err()
		case <-t.C:
		}
	}
}

// round gets target cosigned, stores it and publishes it; it reports
// whether it did.
func (l *Log) round(ctx context.Context, target ledger.Checkpoint) bool {
	rctx, cancel := context.WithTimeout(ctx, l.cfg.RoundTimeout)
	cosigned, err := l.cosigner.Cosign(rctx, target.Raw, l.inner.ConsistencyProof)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		var qe *QuorumError
		if !errors.As(err, &qe) {
			l.log.ErrorContext(ctx, "cosigning a checkpoint", slog.Uint64("size", target.Size), slog.Any("error", err))
			qe = l.behind(target.Size)
		}
		l.mu.Lock()
		l.failed = qe
		l.mu.Unlock()
		return false
	}
	if err := l.store(ctx, cosigned, target); err != nil {
		if ctx.Err() == nil {
			l.log.ErrorContext(ctx, "storing the cosigned checkpoint", slog.Uint64("size", target.Size), slog.Any("error", err))
		}
		return false
	}
	return true
}

// store stores the cosigned checkpoint by compare-and-swap and publishes
// it; when another server stored one first that covers it, it publishes
// that one instead.
func (l *Log) store(ctx context.Context, cosigned []byte, target ledger.Checkpoint) error {
	for range 10 {
		l.mu.Lock()
		prev := l.stored
		l.mu.Unlock()
		if storedSize(prev) >= target.Size {
			// Another server stored this size, or a larger one, since this
			// one last looked: replacing it with this server's cosigned
			// copy would give one size two published checkpoints.
			if found, err := l.adoptStored(ctx, target); err != nil || found != none {
				return err
			}
		}
		err := l.cfg.Store.Store(ctx, prev, cosigned)
		if err == nil {
			l.mu.Lock()
			l.stored = cosigned
			l.mu.Unlock()
			l.publish(ledger.Checkpoint{Raw: cosigned, Size: target.Size, Hash: target.Hash})
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		if found, err := l.adoptStored(ctx, target); err != nil || found != none {
			// Published the other server's, or it is ahead: this one's
			// is not published, so that each size has one.
			return err
		}
	}
	return errors.New("the store kept changing under ten attempts to replace it")
}

// storedSize returns the tree size of a stored checkpoint, or 0 when there
// is none or it does not parse (its signature is checked when it is
// adopted).
func storedSize(raw []byte) uint64 {
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 3 {
		return 0
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// storeState is what the Store holds compared with a checkpoint to cosign.
type storeState int

const (
	// none: nothing that covers it (or nothing that meets the policy).
	none storeState = iota
	// adopted: a cosigned checkpoint of its size, now published.
	adopted
	// ahead: a cosigned checkpoint of a larger tree.
	ahead
)

// adoptStored reads the Store; when it holds a cosigned checkpoint of
// target's size that meets the policy, it publishes it.
func (l *Log) adoptStored(ctx context.Context, target ledger.Checkpoint) (storeState, error) {
	raw, err := l.cfg.Store.Load(ctx)
	if err != nil || raw == nil {
		return none, err
	}
	l.mu.Lock()
	l.stored = raw
	l.mu.Unlock()
	cp, _, _, err := log.ParseCheckpoint(raw, l.origin, l.verifier)
	if err != nil {
		return none, fmt.Errorf("the stored cosigned checkpoint does not verify with the log's key: %w", err)
	}
	if cp.Size < target.Size {
		return none, nil
	}
	if r, err := l.cfg.Witnesses.Policy.Check(raw); err != nil || !r.Met {
		return none, nil
	}
	if cp.Size > target.Size {
		return ahead, nil
	}
	if !bytes.Equal(cp.Hash, target.Hash) {
		return none, fmt.Errorf("the stored cosigned checkpoint of size %d has root %x, the log's %x", cp.Size, cp.Hash, target.Hash)
	}
	l.publish(ledger.Checkpoint{Raw: raw, Size: cp.Size, Hash: cp.Hash})
	return adopted, nil
}

// behind returns a QuorumError naming the witnesses that have not
// cosigned a checkpoint of size or more, as far as the cosigner knows.
func (l *Log) behind(size uint64) *QuorumError {
	qe := &QuorumError{Required: l.cfg.Witnesses.Policy.Describe()}
	for _, w := range l.cosigner.witnesses {
		if w.size.Load() >= size {
			qe.Cosigned = append(qe.Cosigned, w.Name)
		} else {
			qe.Failures = append(qe.Failures, Failure{Witness: w.Name, Kind: Unanswered})
		}
	}
	return qe
}

// PendingError is the error of [Log.AwaitCheckpoint] when no checkpoint
// that covers an entry was cosigned by the quorum in time. The entry is
// in the log: it is published once the witnesses cosign. Its message
// names the witnesses that did not cosign and holds no address or
// upstream text: it can be shown to the log's clients.
type PendingError struct {
	// Index is the entry's index, and Wait how long it waited.
	Index uint64
	Wait  time.Duration
	// Quorum says which witnesses did not cosign, and why.
	Quorum *QuorumError
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("entry %d is in the log, but no checkpoint that covers it was cosigned by the witnesses within %v: %v",
		e.Index, e.Wait, e.Quorum)
}

// Unwrap returns the QuorumError.
func (e *PendingError) Unwrap() error { return e.Quorum }

// AwaitCheckpoint waits until the inner log published a checkpoint that
// includes index, then for a cosigned one: up to Wait, after which it
// returns a [*PendingError] naming the witnesses that did not cosign.
func (l *Log) AwaitCheckpoint(ctx context.Context, index uint64) (ledger.Checkpoint, error) {
	if _, err := l.inner.AwaitCheckpoint(ctx, index); err != nil {
		return ledger.Checkpoint{}, err
	}
	deadline := time.NewTimer(l.cfg.Wait)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		cp, ch, failed := l.published, l.changed, l.failed
		l.mu.Unlock()
		if cp.Raw != nil && cp.Size > index {
			return cp, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ledger.Checkpoint{}, ctx.Err()
		case <-deadline.C:
			if failed == nil {
				failed = l.behind(index + 1)
			}
			l.metrics.timedOut()
			return ledger.Checkpoint{}, &PendingError{Index: index, Wait: l.cfg.Wait, Quorum: failed}
		}
	}
}

// Checkpoint returns the latest cosigned checkpoint published.
func (l *Log) Checkpoint(context.Context) (ledger.Checkpoint, error) {
	cp := l.current()
	if cp.Raw == nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: no checkpoint cosigned by the witnesses yet", ledger.ErrUnavailable)
	}
	return cp, nil
}

// AwaitPublished waits, up to Wait, until a cosigned checkpoint is
// published: an engine calls it before the server serves, so that a
// server whose witnesses answer serves a checkpoint from the start. The
// error names the witnesses that have not cosigned.
func (l *Log) AwaitPublished(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Wait)
	defer cancel()
	for {
		l.mu.Lock()
		cp, ch, failed := l.published, l.changed, l.failed
		l.mu.Unlock()
		if cp.Raw != nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if failed == nil {
				failed = l.behind(0)
			}
			return failed
		}
	}
}

// Append appends to the inner log.
func (l *Log) Append(ctx context.Context, data []byte) func() (uint64, error) {
	return l.inner.Append(ctx, data)
}

// InclusionProof proves an entry with the inner log.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return l.inner.InclusionProof(ctx, index, size)
}

// ConsistencyProof proves consistency with the inner log.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return l.inner.ConsistencyProof(ctx, from, to)
}

// ReadLeaves reads entries from the inner log.
func (l *Log) ReadLeaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	return l.inner.ReadLeaves(ctx, start, end)
}

// IntegratedSize returns the inner log's.
func (l *Log) IntegratedSize(ctx context.Context) (uint64, error) {
	return l.inner.IntegratedSize(ctx)
}

// Healthy returns the inner log's health: witnesses that do not answer
// delay publication, and do not stop writes.
func (l *Log) Healthy() error { return l.inner.Healthy() }

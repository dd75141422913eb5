// Package tesseralog is the embedded engine's log: Tessera's POSIX driver
// in a folder of the data folder, one process, one writer. A [Log]
// implements ledger.Log, serves the tlog-tiles resources the HTTP API
// exposes, and checks itself: [Log.Check] recomputes the tree from the
// entries and compares it with the tree state and the tiles Tessera keeps.
// [OpenReadOnly] opens a stopped log to check or copy it.
package tesseralog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/tileproofs"
)

// Config configures the log.
type Config struct {
	// Dir is the folder Tessera keeps the log in.
	Dir string
	// Signer signs checkpoints, each only if it extends the last one
	// signed; it gets its consistency prover from the log.
	Signer *guard.Signer
	// Verifier verifies them.
	Verifier note.Verifier
	// BatchMaxSize and BatchMaxAge bound Tessera's batches; 0 means 1,024
	// entries and 50 ms.
	BatchMaxSize uint
	BatchMaxAge  time.Duration
	// CheckpointInterval is how often a checkpoint is published while the
	// log grows; 0 means 100 ms, the least Tessera allows.
	CheckpointInterval time.Duration
	// Logger receives the log's logs.
	Logger *slog.Logger
}

// Log is a Tessera POSIX log.
type Log struct {
	cfg      Config
	origin   string
	appender *tessera.Appender
	shutdown func(context.Context) error
	reader   tessera.LogReader
	nodes    *tileproofs.Nodes

	cancel context.CancelFunc
	done   chan struct{}

	// latest is the latest published checkpoint; changed is closed and
	// replaced when it changes.
	mu      sync.Mutex
	latest  ledger.Checkpoint
	changed chan struct{}
	readErr error

	probeMu  sync.Mutex
	probedAt time.Time
	probeErr error
}

// probeInterval is how long a check that the folder can be written holds.
const probeInterval = 10 * time.Millisecond

// writable checks, at most once per probeInterval, that a file of the
// log's state folder can be opened for writing. (Not Tessera's lock file:
// closing any descriptor of it would release the process's lock.)
func (l *Log) writable() error {
	l.probeMu.Lock()
	defer l.probeMu.Unlock()
	if now := time.Now(); now.Sub(l.probedAt) >= probeInterval {
		f, err := os.OpenFile(filepath.Join(l.cfg.Dir, ".state", "writable"), os.O_RDWR|os.O_CREATE, 0o644)
		if err == nil {
			err = f.Close()
		}
		l.probedAt, l.probeErr = now, err
	}
	return l.probeErr
}

var _ ledger.Log = (*Log)(nil)

// Open opens or creates the log in cfg.Dir.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.BatchMaxSize == 0 {
		cfg.BatchMaxSize = 1024
	}
	if cfg.BatchMaxAge == 0 {
		cfg.BatchMaxAge = 50 * time.Millisecond
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	driver, err := posix.New(ctx, posix.Config{Path: cfg.Dir})
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	l := &Log{cfg: cfg, origin: cfg.Signer.Name(), changed: make(chan struct{}), done: make(chan struct{})}
	cfg.Signer.SetProver(l.proveConsistency)
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(cfg.Signer).
		WithBatching(cfg.BatchMaxSize, cfg.BatchMaxAge).
		WithCheckpointInterval(cfg.CheckpointInterval).
		WithPushback(4 * cfg.BatchMaxSize)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	appender, shutdown, reader, err := tessera.NewAppender(runCtx, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open log: %w", err)
	}
	l.appender, l.shutdown, l.reader, l.cancel = appender, shutdown, reader, cancel
	l.nodes = tileproofs.New(partialTiles(reader.ReadTile))
	if err := l.refresh(ctx); err != nil && !errors.Is(err, os.ErrNotExist) {
		cancel()
		return nil, fmt.Errorf("open log: %w", err)
	}
	go l.pollCheckpoint(runCtx)
	return l, nil
}

// Close waits for everything appended to be published, then stops.
func (l *Log) Close(ctx context.Context) error {
	err := l.shutdown(ctx)
	l.cancel()
	<-l.done
	return err
}

// Append queues data. On a data folder that cannot be written, it fails at
// once rather than hand the entry to Tessera, whose sequencer stops the
// process when it cannot open its lock file.
func (l *Log) Append(ctx context.Context, data []byte) func() (uint64, error) {
	if err := l.writable(); err != nil {
		return func() (uint64, error) { return 0, fmt.Errorf("the log's folder cannot be written: %w", err) }
	}
	f := l.appender.Add(ctx, tessera.NewEntry(data))
	return func() (uint64, error) {
		i, err := f()
		return i.Index, err
	}
}

// pollInterval is how often the published checkpoint is read.
const pollInterval = 5 * time.Millisecond

func (l *Log) pollCheckpoint(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.refresh(ctx); err != nil && !errors.Is(err, os.ErrNotExist) && ctx.Err() == nil {
			l.cfg.Logger.Warn("reading the published checkpoint", slog.Any("error", err))
		}
	}
}

// refresh reads the published checkpoint and wakes waiters when it moved.
func (l *Log) refresh(ctx context.Context) error {
	raw, err := l.reader.ReadCheckpoint(ctx)
	if err != nil {
		return err
	}
	l.mu.Lock()
	same := string(raw) == string(l.latest.Raw)
	l.mu.Unlock()
	if same {
		return nil
	}
	cp, _, _, err := log.ParseCheckpoint(raw, l.origin, l.cfg.Verifier)
	if err != nil {
		l.mu.Lock()
		l.readErr = fmt.Errorf("the published checkpoint does not verify: %w", err)
		l.mu.Unlock()
		return l.readErr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.readErr = nil
	if cp.Size < l.latest.Size {
		return fmt.Errorf("the published checkpoint went back from %d to %d", l.latest.Size, cp.Size)
	}
	l.latest = ledger.Checkpoint{Raw: raw, Size: cp.Size, Hash: cp.Hash}
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// AwaitCheckpoint waits for a published checkpoint that includes index.
func (l *Log) AwaitCheckpoint(ctx context.Context, index uint64) (ledger.Checkpoint, error) {
	for {
		l.mu.Lock()
		cp, ch := l.latest, l.changed
		l.mu.Unlock()
		if cp.Size > index {
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
func (l *Log) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.latest.Raw == nil {
		return ledger.Checkpoint{}, errors.New("no checkpoint published yet")
	}
	return l.latest, nil
}

// Healthy returns why the log cannot sign, or nil.
func (l *Log) Healthy() error {
	if l.cfg.Signer != nil { // nil on a read-only log
		if err := l.cfg.Signer.Err(); err != nil {
			return fmt.Errorf("%w: %w", ledger.ErrStopped, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readErr
}

// IntegratedSize returns the number of entries with an index.
func (l *Log) IntegratedSize(ctx context.Context) (uint64, error) {
	return l.reader.IntegratedSize(ctx)
}

// InclusionProof proves the entry at index in the tree of size, which is
// at most the published one.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return l.nodes.Inclusion(ctx, index, size, l.publishedSize())
}

// LeafHash returns the leaf hash of the entry at index, from the level-0
// tiles.
func (l *Log) LeafHash(ctx context.Context, index, size uint64) ([]byte, error) {
	return l.nodes.Node(ctx, 0, index, max(size, l.publishedSize()))
}

// ConsistencyProof proves that the tree of size to extends that of size
// from.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return l.nodes.Consistency(ctx, from, to, l.publishedSize())
}

// publishedSize is the size of the latest published checkpoint, whose
// tiles exist.
func (l *Log) publishedSize() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest.Size
}

// proveConsistency is the guard's prover. It reads the tiles afresh rather
// than from the cache: the guard checks what is on disk.
func (l *Log) proveConsistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	return tileproofs.New(partialTiles(l.reader.ReadTile)).Consistency(ctx, from, to, to)
}

// ReadLeaves returns the entries [start, end), which must be integrated.
func (l *Log) ReadLeaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return nil, err
	}
	if end > size {
		return nil, fmt.Errorf("read leaves [%d, %d): the log has %d", start, end, size)
	}
	out := make([][]byte, 0, end-start)
	for i := start; i < end; {
		b, err := tclient.GetEntryBundle(ctx, l.reader.ReadEntryBundle, i/layout.EntryBundleWidth, size)
		if err != nil {
			return nil, err
		}
		first := i % layout.EntryBundleWidth
		n := min(uint64(len(b.Entries))-first, end-i)
		out = append(out, b.Entries[first:first+n]...)
		i += n
		if n == 0 {
			return nil, fmt.Errorf("read leaves: entry bundle %d is short", i/layout.EntryBundleWidth)
		}
	}
	return out, nil
}

// ReadTile returns a tile for the tlog-tiles API; a partial tile that
// Tessera removed is cut from the full one.
func (l *Log) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return partialTiles(l.reader.ReadTile)(ctx, level, index, p)
}

// ReadEntryBundle returns an entry bundle for the tlog-tiles API; a
// partial bundle that Tessera removed is cut from the full one.
func (l *Log) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return partialBundles(l.reader.ReadEntryBundle)(ctx, index, p)
}

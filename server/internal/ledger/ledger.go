// Package ledger is the heart of the undersigned server: it admits letters,
// endorsements, withdrawals, redactions and status changes into the Merkle
// log and answers the reads.
//
// # Admission
//
// A write is admitted in two steps. Its record is checked (its fields and
// signatures with records.Check*, then the rules of the log's state with
// the one rules function, rules.Apply, over the store's transaction: an
// open letter, a live target, commitments and locks unique for good, the
// same person once and only as an exact repeat, tombstones left by
// redactions), and its intent (the keys the index keeps, the exact record
// bytes, the disclosure if public) is committed to the [Store]. Only then are exactly
// those bytes appended to the [Log]. A crash at any moment neither loses an
// admitted write nor appends one twice.
//
// # Two kinds of log
//
// On a [Log] that appends in the order it is given (the embedded engine),
// one goroutine admits batches in order and hands each batch to the log
// only once the previous one has its indexes, so the order of the log is
// the order of admission. At start, and after a failed append, the ledger
// reconciles the store with the log: it matches the log's entries to the
// admitted intents and appends again those that are missing, in order.
//
// An [UnorderedLog] (Trillian) decides the order itself, and several
// frontends may write to it through one shared [UnorderedStore]. The ledger
// then relies on no order: the log reports every integrated entry, in log
// order, before it publishes a checkpoint that covers it, and the ledger
// matches entries to intents by leaf hash. The meaning of the log is kept
// by ordering dependencies explicitly: an endorsement is queued only once
// its letter has an index, a status change only once every entry of its
// letter admitted before it has one, and an endorsement admitted after a
// letter was closed is refused, so that no auditor sees an endorsement
// before its letter or after the close that preceded it. Reconciling is
// queuing every intent without an index again, which the log deduplicates.
//
// A write returns once its record is in a published checkpoint, with a
// receipt.
package ledger

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/letters"
)

// Checkpoint is a signed checkpoint of the log.
type Checkpoint struct {
	// Raw is the signed note, verbatim.
	Raw []byte
	// Size and Hash are the tree size and root hash it commits to.
	Size uint64
	Hash []byte
}

// Log is the Merkle log underneath the ledger.
type Log interface {
	// Append queues data to be appended after everything appended before,
	// and returns a function that blocks until data has its index.
	Append(ctx context.Context, data []byte) func() (uint64, error)
	// AwaitCheckpoint blocks until a published checkpoint includes index.
	AwaitCheckpoint(ctx context.Context, index uint64) (Checkpoint, error)
	// Checkpoint returns the latest published checkpoint.
	Checkpoint(ctx context.Context) (Checkpoint, error)
	// InclusionProof proves the entry at index in the tree of size.
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	// ConsistencyProof proves that the tree of size to extends that of
	// size from.
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	// ReadLeaves returns the data of the entries [start, end), which must
	// be integrated.
	ReadLeaves(ctx context.Context, start, end uint64) ([][]byte, error)
	// IntegratedSize returns the number of entries with an index, which
	// may be more than the published size.
	IntegratedSize(ctx context.Context) (uint64, error)
	// Healthy returns why the log cannot sign, or nil.
	Healthy() error
}

// UnorderedLog is a [Log] that orders its entries itself, as Trillian does:
// the ledger queues entries with [UnorderedLog.Queue] instead of
// [Log.Append], and learns their indexes from [UnorderedLog.Follow].
type UnorderedLog interface {
	Log
	// Queue hands data to the log, which gives it an index of its own
	// choosing later. Queuing data the log already holds or has queued is
	// harmless: the log keeps one copy (its identity is the SHA-256 of
	// data).
	Queue(ctx context.Context, data []byte) error
	// Follow registers fn, which the log then calls with every run of
	// integrated entries, in log order, before it publishes a checkpoint
	// that covers them; a run may be given again after a restart. Follow
	// returns once fn has seen every entry integrated when it was called.
	// An error from fn stops the log from publishing further until fn
	// accepts the run.
	Follow(ctx context.Context, fn FollowFunc) error
}

// FollowFunc receives the entries [start, start+len(leaves)) of the log.
type FollowFunc func(ctx context.Context, start uint64, leaves [][]byte) error

// Config configures a [Ledger].
type Config struct {
	// Origin is the log's origin, which every signed statement names.
	Origin string
	// Verifier verifies the log's checkpoints, and VerifierKey is its
	// signed-note encoding.
	Verifier    note.Verifier
	VerifierKey string
	// Engine names the engine for GetLogInfo: "embedded" or "trillian".
	Engine string
	// Log and Store are the engine.
	Log   Log
	Store Store
	// DedupSecret keys the dedup index.
	DedupSecret []byte
	// Logger receives the ledger's logs; nil discards them.
	Logger *slog.Logger
	// Now returns the time; nil means time.Now.
	Now func() time.Time
	// MaxBatch is the most writes admitted in one transaction; 0 means
	// 4,096.
	MaxBatch int
	// MaxQueue is the most writes waiting for admission before new ones
	// are pushed back; 0 means 16,384.
	MaxQueue int
	// Metrics receives the ledger's measurements; nil means none.
	Metrics *Metrics
}

// Ledger admits writes and answers reads. Its methods are safe for
// concurrent use.
type Ledger struct {
	cfg    Config
	log    *slog.Logger
	origin string

	queue   chan *write
	batches chan *batch

	// dedup makes the keys of the dedup index.
	dedup *dedupKeys

	// letters caches admitted letters, which never change; their state
	// (closed, delivered) is read from the store.
	mu      sync.RWMutex
	letters map[string]*letterState

	// unordered is set when the log orders entries itself.
	unordered *unordered

	// pending holds the admitted entries whose index is not known yet.
	pendingMu sync.Mutex
	pending   map[int64]*pendingEntry

	// indexed is the watermark: every entry below it has its index in the
	// store. indexedCh is closed and replaced when it moves.
	indexedMu sync.Mutex
	indexed   uint64
	indexedCh chan struct{}

	// halted is why the ledger stopped appending, or nil.
	haltMu sync.Mutex
	halted error

	// inflight counts the batches handed to the log whose indexes are
	// not recorded yet.
	inflight atomic.Int64

	// view is the letters of the published log (see Ledger.View).
	view *letters.View

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type letterState struct {
	seq    int64
	letter *pb.Letter
}

type pendingEntry struct {
	done  chan struct{}
	index uint64
	err   error
	// queued is when an unordered log took the entry (Unix nanoseconds),
	// for the integrate stage's time; 0 until then.
	queued atomic.Int64
}

// New opens a ledger on an engine: it loads the letters, reconciles the
// store with the log, and starts admitting writes. Close stops it.
func New(ctx context.Context, cfg Config) (*Ledger, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 16384
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if len(cfg.DedupSecret) < 16 {
		return nil, errors.New("ledger: the dedup secret must be at least 16 bytes")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Ledger{
		cfg:       cfg,
		log:       cfg.Logger,
		origin:    cfg.Origin,
		dedup:     newDedupKeys(cfg.DedupSecret),
		queue:     make(chan *write, cfg.MaxQueue),
		batches:   make(chan *batch, 1),
		letters:   map[string]*letterState{},
		pending:   map[int64]*pendingEntry{},
		indexedCh: make(chan struct{}),
		view:      letters.New(cfg.Logger),
		ctx:       runCtx,
		cancel:    cancel,
	}
	if err := l.loadLetters(ctx); err != nil {
		cancel()
		return nil, err
	}
	if ul, ok := cfg.Log.(UnorderedLog); ok {
		us, ok := cfg.Store.(UnorderedStore)
		if !ok {
			cancel()
			return nil, errors.New("ledger: a log that orders entries itself needs a store that matches them by leaf hash")
		}
		l.unordered = newUnordered(l, ul, us)
		if err := l.unordered.start(ctx); err != nil {
			cancel()
			l.wg.Wait()
			return nil, err
		}
		l.wg.Add(1)
		go l.admitLoop()
		return l, nil
	}
	if err := l.reconcile(ctx); err != nil {
		cancel()
		return nil, err
	}
	l.wg.Add(2)
	go l.admitLoop()
	go l.appendLoop()
	return l, nil
}

// Close stops admitting writes and waits for the writes in flight to get
// their indexes.
func (l *Ledger) Close() error {
	l.cancel()
	l.wg.Wait()
	return nil
}

// Origin returns the log's origin.
func (l *Ledger) Origin() string { return l.origin }

func (l *Ledger) loadLetters(ctx context.Context) error {
	rows, err := l.cfg.Store.Letters(ctx)
	if err != nil {
		return fmt.Errorf("load letters: %w", err)
	}
	letters := make(map[string]*letterState, len(rows))
	for _, row := range rows {
		rec, err := records.Decode(row.Record)
		if err != nil {
			return fmt.Errorf("load letter at seq %d: %w", row.Seq, err)
		}
		lt := rec.GetLetter()
		letters[lt.GetId()] = &letterState{seq: row.Seq, letter: lt}
	}
	l.mu.Lock()
	l.letters = letters
	l.mu.Unlock()
	return nil
}

// letter returns an admitted letter, or nil. With a shared store, a letter
// another frontend admitted is loaded from the store on first use.
func (l *Ledger) letter(ctx context.Context, id string) (*letterState, error) {
	l.mu.RLock()
	ls := l.letters[id]
	l.mu.RUnlock()
	if ls != nil || l.unordered == nil || records.CheckLetterID("letter_id", id) != nil {
		return ls, nil
	}
	row, err := l.unordered.store.LetterByID(ctx, id)
	if err != nil || row == nil {
		return nil, err
	}
	rec, err := records.Decode(row.Record)
	if err != nil {
		return nil, fmt.Errorf("letter %q: %w", id, err)
	}
	ls = &letterState{seq: row.Seq, letter: rec.GetLetter()}
	l.addLetter(id, ls)
	return ls, nil
}

func (l *Ledger) addLetter(id string, ls *letterState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.letters[id] == nil {
		l.letters[id] = ls
	}
}

// halt stops writes; it reports whether they were running.
func (l *Ledger) halt(err error) bool {
	l.haltMu.Lock()
	defer l.haltMu.Unlock()
	if l.halted == nil {
		l.halted = err
		l.log.Error("writes stopped", slog.Any("error", err))
		return true
	}
	return false
}

// Healthy returns why the ledger cannot write now, or nil.
func (l *Ledger) Healthy() error {
	if err := l.cfg.Log.Healthy(); err != nil {
		return unavailable("%v", err)
	}
	l.haltMu.Lock()
	defer l.haltMu.Unlock()
	if l.halted != nil {
		return unavailable("%v", l.halted)
	}
	return nil
}

// setIndexed moves the watermark.
func (l *Ledger) setIndexed(n uint64) {
	l.indexedMu.Lock()
	defer l.indexedMu.Unlock()
	if n > l.indexed {
		l.indexed = n
		close(l.indexedCh)
		l.indexedCh = make(chan struct{})
	}
}

// waitIndexed blocks until every entry below n has its index in the store.
func (l *Ledger) waitIndexed(ctx context.Context, n uint64) error {
	for {
		l.indexedMu.Lock()
		done, ch := l.indexed >= n, l.indexedCh
		l.indexedMu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return unavailable("the index has not caught up with size %d: %v", n, ctx.Err())
		case <-time.After(5 * time.Second):
			return unavailable("the index has not caught up with size %d", n)
		}
	}
}

// reconcile matches the log's entries beyond the store's watermark to the
// admitted entries, records their indexes, and appends again, in admission
// order, the admitted entries the log does not have.
func (l *Ledger) reconcile(ctx context.Context) error {
	start := time.Now()
	watermark, size, err := l.reconcileBounds(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	unassigned, err := l.cfg.Store.Unassigned(ctx, watermark)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	found, matched, err := l.matchLog(ctx, unassigned, watermark, size)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	slices.SortFunc(found, func(a, b Assignment) int { return cmp.Compare(a.Seq, b.Seq) })
	if err := l.cfg.Store.Assign(ctx, found, size); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	l.setIndexed(size)
	b := &batch{}
	for i, e := range unassigned {
		if matched[i] {
			continue
		}
		if e.Index != NoIndex {
			return fmt.Errorf("reconcile: seq %d is recorded at index %d beyond the log's size %d", e.Seq, e.Index, size)
		}
		b.entries = append(b.entries, batchEntry{seq: e.Seq, record: e.Record})
	}
	if len(b.entries) > 0 {
		if err := l.appendBatch(ctx, b); err != nil {
			return fmt.Errorf("reconcile: append the %d admitted entries missing from the log: %w", len(b.entries), err)
		}
	}
	l.log.Info("reconciled the store with the log",
		slog.Uint64("size", size), slog.Int("matched", len(found)), slog.Int("appended_again", len(b.entries)),
		slog.Duration("took", time.Since(start)))
	return nil
}

// reconcileBounds returns the store's watermark and the log's size. When
// the log lost entries the store had indexed (a restored copy, a disk
// rolled back), it forgets their indexes: the store has their exact bytes,
// in the log's order, and they are appended again. The checkpoint signer
// then checks the result against the last checkpoint it signed.
func (l *Ledger) reconcileBounds(ctx context.Context) (watermark, size uint64, err error) {
	if watermark, err = l.cfg.Store.Watermark(ctx); err != nil {
		return 0, 0, err
	}
	if size, err = l.cfg.Log.IntegratedSize(ctx); err != nil {
		return 0, 0, err
	}
	if size < watermark {
		l.log.Warn("the log has fewer entries than the store indexed: appending the missing ones again from the store",
			slog.Uint64("log_size", size), slog.Uint64("indexed", watermark))
		if err := l.cfg.Store.Unassign(ctx, size); err != nil {
			return 0, 0, err
		}
		watermark = size
	}
	return watermark, size, nil
}

// matchLog matches the log's entries [from, size) to the admitted ones by
// their bytes, and returns their indexes and which of unassigned it
// matched. Batches are handed to the log without waiting for the one
// before, so after a failed append the log may hold a later batch and not
// an earlier one; every entry of such a batch depends only on entries with
// an index.
func (l *Ledger) matchLog(ctx context.Context, unassigned []Entry, from, size uint64) ([]Assignment, []bool, error) {
	bySeq := make(map[string][]int, len(unassigned))
	for i, e := range unassigned {
		bySeq[string(e.LeafHash)] = append(bySeq[string(e.LeafHash)], i)
	}
	matched := make([]bool, len(unassigned))
	var found []Assignment
	const chunk = 4096
	for ; from < size; from += chunk {
		leaves, err := l.cfg.Log.ReadLeaves(ctx, from, min(from+chunk, size))
		if err != nil {
			return nil, nil, err
		}
		for i, leaf := range leaves {
			index := from + uint64(i)
			candidates := bySeq[string(leafHash(leaf))]
			k := slices.IndexFunc(candidates, func(c int) bool {
				return !matched[c] && bytes.Equal(unassigned[c].Record, leaf)
			})
			if k < 0 {
				return nil, nil, fmt.Errorf("log entry %d was never admitted by this store", index)
			}
			j := candidates[k]
			e := unassigned[j]
			if e.Index != NoIndex && uint64(e.Index) != index {
				return nil, nil, fmt.Errorf("log entry %d is recorded at index %d", index, e.Index)
			}
			matched[j] = true
			found = append(found, Assignment{Seq: e.Seq, Index: index})
		}
	}
	return found, matched, nil
}

package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/undersigned/undersigned/client/records"
)

// The timings of an unordered log.
const (
	// recheckInterval is how often held entries are checked against the
	// store, in case their dependency got its index unseen.
	recheckInterval = 200 * time.Millisecond
	// sweepInterval is how often the store is searched for intents that
	// nobody queued (a frontend that crashed between admitting and
	// queuing), and staleAfter how long an intent this process queued may
	// wait for an index before it is queued again.
	sweepInterval = 10 * time.Second
	staleAfter    = 30 * time.Second
	// maxQueueCalls bounds the Queue calls in flight.
	maxQueueCalls = 256
)

// unordered admits into a log that orders entries itself (see the package
// comment): it queues entries once their dependencies have indexes, and
// learns the indexes from the log's follower.
type unordered struct {
	l     *Ledger
	log   UnorderedLog
	store UnorderedStore
	calls chan struct{}
	wake  chan struct{}

	mu sync.Mutex
	// held are admitted entries waiting for a dependency.
	held []batchEntry
	// heldSeqs and queued (with the time it was queued) are the entries
	// this process holds or queued and has not seen integrated.
	heldSeqs map[int64]bool
	queued   map[int64]time.Time
	// unseen are the intents without an index that the last sweep found
	// and this process neither held nor queued.
	unseen map[int64]bool
	// lastQueueWarn is when a failure to queue was last logged as a
	// warning, and queueFailures how many failed since.
	lastQueueWarn time.Time
	queueFailures int
}

func newUnordered(l *Ledger, log UnorderedLog, store UnorderedStore) *unordered {
	return &unordered{
		l: l, log: log, store: store,
		calls:    make(chan struct{}, maxQueueCalls),
		wake:     make(chan struct{}, 1),
		heldSeqs: map[int64]bool{},
		queued:   map[int64]time.Time{},
		unseen:   map[int64]bool{},
	}
}

// start follows the log up to its current size, queues again every intent
// that still has no index, and starts the background work. This is the
// reconciliation of an unordered log: queuing is idempotent.
func (u *unordered) start(ctx context.Context) error {
	begin := time.Now()
	w, err := u.store.Watermark(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	u.l.setIndexed(w)
	if err := u.log.Follow(ctx, u.onLeaves); err != nil {
		return fmt.Errorf("reconcile: follow the log: %w", err)
	}
	if err := u.l.Stopped(); err != nil {
		// Nothing is queued: an entry queued now could take the place of
		// one the log lost, and the tree could never again be the one the
		// key signed. The server serves, and says why it does not write.
		u.l.log.Error("the log stopped: nothing is queued or signed until an operator acts", slog.Any("error", err))
		u.l.wg.Add(1)
		go u.loop()
		return nil
	}
	pending, err := u.store.Unindexed(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if err := u.requeue(ctx, pending); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	u.l.wg.Add(1)
	go u.loop()
	u.l.log.Info("reconciled the store with the log", slog.Int("queued_again", len(pending)),
		slog.Duration("took", time.Since(begin)))
	return nil
}

// requeue dispatches entries admitted earlier, finding their dependencies
// in the store.
func (u *unordered) requeue(ctx context.Context, entries []Entry) error {
	var out []batchEntry
	for _, e := range entries {
		be := batchEntry{seq: e.Seq, record: e.Record}
		rec, err := records.Decode(e.Record)
		if err != nil {
			return fmt.Errorf("entry %d: %w", e.Seq, err)
		}
		switch e.Kind {
		case KindEndorsement, KindWithdrawal, KindRedaction:
			if be.afterSeq, err = u.unindexedLetter(ctx, e.LetterID); err != nil {
				return err
			}
		case KindLetter:
			if r := rec.GetLetter().GetRevises(); r != "" {
				if be.afterSeq, err = u.unindexedLetter(ctx, r); err != nil {
					return err
				}
			}
		case KindStatus, KindOrganiserChange:
			be.afterLetter = e.LetterID
		}
		out = append(out, be)
	}
	u.dispatch(out)
	return nil
}

// unindexedLetter returns the seq of what an entry of a letter follows
// while it has no index yet (see Ledger.dependsOn): the letter's last
// organiser change, or the letter; 0 when there is none.
func (u *unordered) unindexedLetter(ctx context.Context, id string) (int64, error) {
	row, err := u.store.LetterByID(ctx, id)
	if err != nil || row == nil {
		return 0, err
	}
	if row.KeysSeq != 0 {
		idx, err := u.store.IndexOfSeq(ctx, row.KeysSeq)
		if err != nil {
			return 0, err
		}
		if idx == NoIndex {
			return row.KeysSeq, nil
		}
	}
	if row.Index != NoIndex {
		return 0, nil
	}
	return row.Seq, nil
}

// dispatch queues the entries whose dependencies have indexes and holds
// the others.
func (u *unordered) dispatch(entries []batchEntry) {
	var ready []batchEntry
	held := false
	now := time.Now()
	u.mu.Lock()
	for _, e := range entries {
		if u.heldSeqs[e.seq] {
			continue
		}
		if e.afterSeq == 0 && e.afterLetter == "" {
			ready = append(ready, e)
			continue
		}
		e.heldAt = now
		u.held = append(u.held, e)
		u.heldSeqs[e.seq] = true
		held = true
	}
	u.mu.Unlock()
	for _, e := range ready {
		u.queue(e)
	}
	if held {
		// The dependency may have got its index before the entry was held.
		select {
		case u.wake <- struct{}{}:
		default:
		}
	}
}

// queue hands an entry to the log, retrying until the log takes it or the
// ledger closes.
func (u *unordered) queue(e batchEntry) {
	start := time.Now()
	u.mu.Lock()
	u.queued[e.seq] = start
	u.mu.Unlock()
	ctx := u.l.ctx
	u.l.wg.Add(1)
	go func() {
		defer u.l.wg.Done()
		select {
		case u.calls <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-u.calls }()
		for delay := 50 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
			if u.l.Stopped() != nil {
				return // queued again by the next start, once an operator acted
			}
			err := u.log.Queue(ctx, e.record)
			if err == nil && e.pending != nil {
				e.pending.queued.Store(u.l.cfg.Metrics.stage(stageQueue, start).UnixNano())
			}
			if err == nil || ctx.Err() != nil {
				return
			}
			u.queueFailed(e.seq, err)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
		}
	}()
}

// queueWarnEvery is the least time between two warnings that queuing
// failed: while Trillian is down every entry in flight fails at each retry.
const queueWarnEvery = 5 * time.Second

// queueFailed logs a failure to queue an entry: a warning at most every
// queueWarnEvery, counting the failures since the last one, and the rest
// at debug level.
func (u *unordered) queueFailed(seq int64, err error) {
	u.mu.Lock()
	now := time.Now()
	if now.Sub(u.lastQueueWarn) < queueWarnEvery {
		u.queueFailures++
		u.mu.Unlock()
		u.l.log.Debug("queuing an admitted entry failed; retrying", slog.Int64("seq", seq), slog.Any("error", err))
		return
	}
	n := u.queueFailures
	u.lastQueueWarn, u.queueFailures = now, 0
	u.mu.Unlock()
	u.l.log.Warn("queuing an admitted entry failed; retrying", slog.Int64("seq", seq), slog.Any("error", err),
		slog.Int("failures_since_last_warning", n))
}

// onLeaves is the log's follower: it matches integrated entries to
// intents by leaf hash, records their indexes and the watermark, and wakes
// the writers and the held entries waiting for them.
func (u *unordered) onLeaves(ctx context.Context, start uint64, leaves [][]byte) error {
	hashes := make([][]byte, len(leaves))
	for i, leaf := range leaves {
		hashes[i] = leafHash(leaf)
	}
	rows, err := u.store.LeafEntries(ctx, hashes)
	if err != nil {
		return fmt.Errorf("match log entries to intents: %w", err)
	}
	var as []Assignment
	var foreign []ForeignLeaf
	resolved := map[int64]uint64{}
	for k, r := range rows {
		index := start + uint64(k)
		if _, twice := resolved[r.Seq]; twice && r.Seq != 0 {
			foreign = append(foreign, ForeignLeaf{Index: index, LeafHash: hashes[k]})
			continue
		}
		switch {
		case r.Seq == 0:
			foreign = append(foreign, ForeignLeaf{Index: index, LeafHash: hashes[k]})
		case r.Index == NoIndex:
			as = append(as, Assignment{Seq: r.Seq, Index: index})
			resolved[r.Seq] = index
		case uint64(r.Index) == index:
			resolved[r.Seq] = index
		case uint64(r.Index) < index:
			foreign = append(foreign, ForeignLeaf{Index: index, LeafHash: hashes[k]})
		default:
			return fmt.Errorf("log entry %d is recorded at index %d", index, r.Index)
		}
	}
	if err := u.addForeign(ctx, foreign); err != nil {
		return err
	}
	end := start + uint64(len(leaves))
	if err := u.store.Assign(ctx, as, end); err != nil {
		return fmt.Errorf("record indexes: %w", err)
	}
	u.l.setIndexed(end)
	u.l.pendingMu.Lock()
	for seq, index := range resolved {
		if p := u.l.pending[seq]; p != nil {
			if q := p.queued.Load(); q != 0 {
				u.l.cfg.Metrics.stage(stageIntegrate, time.Unix(0, q))
			}
			p.index = index
			close(p.done)
			delete(u.l.pending, seq)
		}
	}
	u.l.pendingMu.Unlock()
	u.mu.Lock()
	for seq := range resolved {
		delete(u.queued, seq)
		delete(u.unseen, seq)
	}
	waiting := len(u.held) > 0
	u.mu.Unlock()
	u.l.cfg.Metrics.appended.Add(float64(len(as)))
	if waiting {
		select {
		case u.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// addForeign records the leaves of the log that no frontend admitted: a
// leaf queued on the log directly, or a second copy of an entry. They stay
// in the log as what they are: served, marked as foreign to readers,
// skipped by the rules (the store holds no state of theirs), counted and
// logged. The log goes on.
func (u *unordered) addForeign(ctx context.Context, foreign []ForeignLeaf) error {
	if len(foreign) == 0 {
		return nil
	}
	if err := u.store.AddForeign(ctx, foreign); err != nil {
		return fmt.Errorf("record leaves no frontend admitted: %w", err)
	}
	u.l.cfg.Metrics.foreign.Add(float64(len(foreign)))
	for _, f := range foreign {
		u.l.log.Warn("the log holds an entry no frontend admitted (queued on the log directly?): it is served as foreign, and the rules skip it",
			slog.Uint64("index", f.Index), slog.String("leaf_hash", fmt.Sprintf("%x", f.LeafHash)))
	}
	return nil
}

// loop rechecks held entries and sweeps for intents nobody queued.
func (u *unordered) loop() {
	defer u.l.wg.Done()
	ctx := u.l.ctx
	recheck := time.NewTicker(recheckInterval)
	defer recheck.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-u.wake:
		case <-recheck.C:
		case <-sweep.C:
			if err := u.sweep(ctx); err != nil && ctx.Err() == nil {
				u.l.log.Warn("searching for intents nobody queued", slog.Any("error", err))
			}
		}
		if err := u.recheck(ctx); err != nil && ctx.Err() == nil {
			u.l.log.Warn("checking the dependencies of held entries", slog.Any("error", err))
		}
	}
}

// recheck queues the held entries whose dependencies now have indexes.
func (u *unordered) recheck(ctx context.Context) error {
	u.mu.Lock()
	held := u.held
	u.held = nil
	u.mu.Unlock()
	if len(held) == 0 {
		return nil
	}
	var firstErr error
	indexed := map[int64]bool{}
	var ready, still []batchEntry
	for _, e := range held {
		ok := true
		if e.afterSeq != 0 {
			done, seen := indexed[e.afterSeq]
			if !seen && firstErr == nil {
				idx, err := u.store.IndexOfSeq(ctx, e.afterSeq)
				if err != nil {
					firstErr = err
				}
				done = err == nil && idx != NoIndex
				indexed[e.afterSeq] = done
			}
			ok = done
		}
		if ok && e.afterLetter != "" {
			if firstErr != nil {
				ok = false
			} else if busy, err := u.store.UnindexedBefore(ctx, e.afterLetter, e.seq); err != nil {
				firstErr, ok = err, false
			} else {
				ok = !busy
			}
		}
		if ok {
			ready = append(ready, e)
		} else {
			still = append(still, e)
		}
	}
	u.mu.Lock()
	u.held = append(still, u.held...)
	for _, e := range ready {
		delete(u.heldSeqs, e.seq)
	}
	u.mu.Unlock()
	for _, e := range ready {
		if e.pending != nil && !e.heldAt.IsZero() {
			u.l.cfg.Metrics.stage(stageHeld, e.heldAt)
		}
	}
	for _, e := range ready {
		u.queue(e)
	}
	return firstErr
}

// sweep queues again the intents without an index that nobody queued
// recently: those of a frontend that stopped between admitting and
// queuing, and those of this process that waited too long.
func (u *unordered) sweep(ctx context.Context) error {
	if u.l.Stopped() != nil {
		return nil
	}
	entries, err := u.store.Unindexed(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var again []Entry
	u.mu.Lock()
	unseen := map[int64]bool{}
	for _, e := range entries {
		if u.heldSeqs[e.Seq] {
			continue
		}
		if at, ok := u.queued[e.Seq]; ok {
			if now.Sub(at) > staleAfter {
				again = append(again, e)
			}
			continue
		}
		if u.unseen[e.Seq] {
			again = append(again, e)
			continue
		}
		unseen[e.Seq] = true
	}
	u.unseen = unseen
	u.mu.Unlock()
	if len(again) == 0 {
		return nil
	}
	u.l.log.Info("queuing again intents that got no index", slog.Int("entries", len(again)))
	return u.requeue(ctx, again)
}

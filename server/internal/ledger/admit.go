package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// write is one write on its way through admission.
type write struct {
	principal string
	kind      Kind
	letterID  string
	// rec holds the kind; admission sets the version and time.
	rec *pb.Record
	// keys are the dedup keys; the first is the one that must be unique
	// (the letter id, the target of an action), if unique is set.
	keys   [][]byte
	unique bool
	// lockKey, for an endorsement, is the key of its withdrawal lock: an
	// endorsement whose lock was revealed before is refused. revealedLock,
	// for an action authorised by the withdrawal secret, is the key of the
	// lock it reveals, kept for good.
	lockKey, revealedLock []byte

	disclosure *pb.Disclosure // kept when public
	folded     string

	// For endorsements: the target of supersedes. For actions: the target
	// and the authority.
	target    *uint64
	authority records.Authority

	admitted chan admission
}

// admission is the outcome of admitting a write.
type admission struct {
	err       error
	seq       int64
	record    []byte
	pending   *pendingEntry // nil when the index is already known
	index     uint64
	duplicate bool
}

// batch is admitted entries handed to the log in one go.
type batch struct {
	entries []batchEntry
	// barrier is set for a batch that holds a letter or a status change:
	// later entries may depend on it (see appendLoop).
	barrier bool
}

type batchEntry struct {
	seq     int64
	record  []byte
	pending *pendingEntry
	// On an unordered log, what the entry waits for before it is queued:
	// the entry afterSeq to have an index, and every entry of the letter
	// afterLetter admitted before it to have one.
	afterSeq    int64
	afterLetter string
}

// submit queues a write for admission and waits for the outcome.
func (l *Ledger) submit(ctx context.Context, w *write) (admission, error) {
	if err := l.Healthy(); err != nil {
		return admission{}, err
	}
	w.admitted = make(chan admission, 1)
	select {
	case l.queue <- w:
	default:
		l.cfg.Metrics.pushback.Inc()
		return admission{}, &OverloadedError{RetryAfter: time.Second, What: "too many writes waiting for admission"}
	}
	select {
	case a := <-w.admitted:
		return a, a.err
	case <-l.ctx.Done():
		return admission{}, unavailable("the ledger is shutting down")
	}
}

// admitLoop admits queued writes in batches, one transaction per batch, and
// hands each batch to the append loop.
func (l *Ledger) admitLoop() {
	defer l.wg.Done()
	defer close(l.batches)
	for {
		var ws []*write
		select {
		case w := <-l.queue:
			ws = append(ws, w)
		case <-l.ctx.Done():
			l.drainQueue()
			return
		}
	fill:
		for len(ws) < l.cfg.MaxBatch {
			select {
			case w := <-l.queue:
				ws = append(ws, w)
			default:
				break fill
			}
		}
		l.admitBatch(ws)
	}
}

func (l *Ledger) drainQueue() {
	for {
		select {
		case w := <-l.queue:
			w.admitted <- admission{err: unavailable("the ledger is shutting down")}
		default:
			return
		}
	}
}

func (l *Ledger) admitBatch(ws []*write) {
	start := time.Now()
	if err := l.Healthy(); err != nil {
		for _, w := range ws {
			w.admitted <- admission{err: err}
		}
		return
	}
	now := l.cfg.Now().UTC().Truncate(time.Minute).Unix()
	results := make([]admission, len(ws))
	b := &batch{}
	// Letters admitted by this batch, cached once it commits.
	var letters map[string]*letterState
	err := l.cfg.Store.Admit(l.ctx, func(tx AdmitTx) error {
		b.entries = b.entries[:0]
		letters = map[string]*letterState{}
		if p, ok := tx.(Prefetcher); ok {
			if err := p.Prefetch(l.ctx, prefetchOf(ws)); err != nil {
				return err
			}
		}
		for i, w := range ws {
			a, entry, err := l.admitOne(tx, w, now)
			if err != nil {
				if !isRejection(err) {
					return err
				}
				a = admission{err: err}
			}
			results[i] = a
			if entry != nil {
				b.entries = append(b.entries, *entry)
				b.barrier = b.barrier || w.kind == KindLetter || w.kind == KindStatus
				if w.kind == KindLetter {
					letters[w.letterID] = &letterState{seq: entry.seq, letter: w.rec.GetLetter()}
				}
			}
		}
		return nil
	})
	if err != nil {
		l.log.Error("admission failed", slog.Any("error", err), slog.Int("writes", len(ws)))
		for _, w := range ws {
			w.admitted <- admission{err: unavailable("could not store the write: %v", err)}
		}
		return
	}
	for id, ls := range letters {
		l.addLetter(id, ls)
	}
	l.pendingMu.Lock()
	for i := range b.entries {
		p := &pendingEntry{done: make(chan struct{})}
		b.entries[i].pending = p
		l.pending[b.entries[i].seq] = p
	}
	l.pendingMu.Unlock()
	j := 0
	for i, w := range ws {
		a := results[i]
		if a.err == nil && !a.duplicate {
			a.pending = b.entries[j].pending
			j++
		}
		if a.err == nil && a.duplicate && a.index == ^uint64(0) {
			l.pendingMu.Lock()
			a.pending = l.pending[a.seq]
			l.pendingMu.Unlock()
			if a.pending == nil {
				// Admitted earlier but its index is not known: ask the store
				// once it has one.
				a.pending = l.lookupLater(a.seq)
			}
		}
		w.admitted <- a
	}
	l.cfg.Metrics.admitBatch.Observe(time.Since(start).Seconds())
	if len(b.entries) == 0 {
		return
	}
	if l.unordered != nil {
		l.unordered.dispatch(b.entries)
		return
	}
	l.batches <- b
}

// prefetchOf lists what the writes of a batch will look up.
func prefetchOf(ws []*write) Prefetch {
	var p Prefetch
	seen := map[string]bool{}
	for _, w := range ws {
		p.DedupKeys = append(p.DedupKeys, w.keys...)
		if w.lockKey != nil {
			p.DedupKeys = append(p.DedupKeys, w.lockKey)
		}
		if !seen[w.letterID] {
			seen[w.letterID] = true
			p.Letters = append(p.Letters, w.letterID)
		}
		if lt := w.rec.GetLetter(); lt.GetRevises() != "" && !seen[lt.GetRevises()] {
			seen[lt.GetRevises()] = true
			p.Letters = append(p.Letters, lt.GetRevises())
		}
		if w.target != nil {
			p.Targets = append(p.Targets, *w.target)
		}
	}
	return p
}

// lookupLater returns a pending entry resolved from the store.
func (l *Ledger) lookupLater(seq int64) *pendingEntry {
	p := &pendingEntry{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for range 100 {
			idx, err := l.cfg.Store.IndexOfSeq(l.ctx, seq)
			if err != nil {
				p.err = err
				return
			}
			if idx != NoIndex {
				p.index = uint64(idx)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.err = unavailable("the first copy of this write has no index yet")
	}()
	return p
}

// rejection marks errors that reject one write but not its batch.
type rejection struct{ error }

func (r rejection) Unwrap() error { return r.error }

func reject(err error) error { return rejection{err} }

func isRejection(err error) bool {
	var r rejection
	return errors.As(err, &r)
}

// admitOne checks one write against the state and, if it passes, admits
// it. It returns a rejection for a write the state forbids.
func (l *Ledger) admitOne(tx AdmitTx, w *write, now int64) (admission, *batchEntry, error) {
	ctx := l.ctx
	for i, key := range w.keys {
		seq, found, err := tx.LookupDedup(ctx, key)
		if err != nil {
			return admission{}, nil, err
		}
		if !found {
			continue
		}
		first, err := tx.EntryBySeq(ctx, seq)
		if err != nil {
			return admission{}, nil, err
		}
		if w.kind == KindEndorsement && w.target != nil && first.Index == int64(*w.target) {
			// A correction shares a key (the signer key, or the fields)
			// with the endorsement it supersedes: it is not a duplicate,
			// and the key passes to it when it is inserted.
			continue
		}
		if first.Principal != w.principal || first.Kind != w.kind {
			if i == 0 && w.unique {
				return admission{}, nil, reject(uniqueError(w))
			}
			return admission{}, nil, reject(fmt.Errorf("%w: an equal record was written by someone else", ErrAlreadyExists))
		}
		a := admission{seq: seq, record: first.Record, duplicate: true, index: ^uint64(0)}
		if first.Index != NoIndex {
			a.index = uint64(first.Index)
		}
		return a, nil, nil
	}

	if w.lockKey != nil {
		seq, found, err := tx.LookupDedup(ctx, w.lockKey)
		if err != nil {
			return admission{}, nil, err
		}
		if found {
			first, err := tx.EntryBySeq(ctx, seq)
			if err != nil {
				return admission{}, nil, err
			}
			where := "an earlier record"
			if first.Index != NoIndex {
				where = fmt.Sprintf("the record at %d", first.Index)
			}
			return admission{}, nil, reject(&records.FieldError{Field: "endorsement.withdrawal_lock",
				Rule: "must not be a lock whose secret was revealed (by " + where + "): choose a new withdrawal secret"})
		}
	}

	ne := &NewEntry{Entry: Entry{Kind: w.kind, LetterID: w.letterID, Principal: w.principal}}
	out := &batchEntry{}
	var target *Endorsement
	switch w.kind {
	case KindLetter:
		if revises := w.rec.GetLetter().GetRevises(); revises != "" {
			row, err := tx.Letter(ctx, revises)
			if err != nil {
				return admission{}, nil, err
			}
			if row == nil {
				return admission{}, nil, reject(&records.FieldError{Field: "letter.revises", Rule: "must name a letter in the log"})
			}
			if row.Index == NoIndex {
				out.afterSeq = row.Seq
			}
		}
	case KindEndorsement:
		row, err := tx.Letter(ctx, w.letterID)
		if err != nil {
			return admission{}, nil, err
		}
		if row == nil {
			return admission{}, nil, reject(&records.FieldError{Field: "endorsement.letter_id", Rule: "must name a letter in the log"})
		}
		if row.ClosedSeq != 0 {
			return admission{}, nil, reject(precondition("letter %q is closed", w.letterID))
		}
		if row.Index == NoIndex {
			out.afterSeq = row.Seq
		}
		e := w.rec.GetEndorsement()
		ne.Visibility, ne.Verification = e.GetVisibility(), e.GetVerification()
		ne.SignerKey = e.GetSigner().GetPublicKey()
		if e.GetVisibility() == pb.Visibility_VISIBILITY_PUBLIC {
			ne.Disclosure, ne.FoldedName = w.disclosure, w.folded
		}
		if w.target != nil {
			t, err := tx.EndorsementByIndex(ctx, *w.target)
			if err != nil {
				return admission{}, nil, err
			}
			if err := checkSupersedes(t, e, *w.target); err != nil {
				return admission{}, nil, reject(err)
			}
			target = t
		}
	case KindWithdrawal, KindRedaction:
		t, err := tx.EndorsementByIndex(ctx, *w.target)
		if err != nil {
			return admission{}, nil, err
		}
		if t == nil {
			return admission{}, nil, reject(&records.FieldError{Field: fieldOfKind(w.kind) + ".target_index", Rule: "must be the index of an endorsement"})
		}
		switch {
		case t.WithdrawnBy != 0 && w.kind == KindWithdrawal:
			return admission{}, nil, reject(precondition("the endorsement at %d is already withdrawn", *w.target))
		case t.RedactedBy != 0 && w.kind == KindRedaction:
			return admission{}, nil, reject(precondition("the endorsement at %d is already redacted", *w.target))
		case t.SupersededBy != 0 && w.kind == KindWithdrawal:
			return admission{}, nil, reject(precondition("the endorsement at %d was superseded by a correction: withdraw the correction", *w.target))
		case w.authority == records.AuthoritySecret && t.SecretSpent:
			return admission{}, nil, reject(precondition("the withdrawal secret of the endorsement at %d was already revealed and is spent", *w.target))
		case w.kind == KindRedaction && t.Endorsement.GetVisibility() != pb.Visibility_VISIBILITY_PUBLIC:
			return admission{}, nil, reject(precondition("the endorsement at %d is private: there is no disclosure to redact", *w.target))
		}
		target = t
	case KindStatus:
		row, err := tx.Letter(ctx, w.letterID)
		if err != nil {
			return admission{}, nil, err
		}
		if row == nil {
			return admission{}, nil, reject(&records.FieldError{Field: "status.letter_id", Rule: "must name a letter in the log"})
		}
		if row.ClosedSeq != 0 && w.rec.GetLetterStatus().GetStatus() == pb.Status_STATUS_CLOSED {
			return admission{}, nil, reject(precondition("letter %q is already closed", w.letterID))
		}
		out.afterLetter = w.letterID
	}

	rec := w.rec
	rec.Version = records.Version
	rec.AcceptedAt = now
	data, err := records.Encode(rec)
	if err != nil {
		return admission{}, nil, fmt.Errorf("encode record: %w", err)
	}
	ne.Record = data
	ne.LeafHash = rfc6962.DefaultHasher.HashLeaf(data)
	ne.DedupKeys = w.keys
	if w.revealedLock != nil {
		ne.PermanentKeys = [][]byte{w.revealedLock}
	}
	seq, err := tx.Insert(ctx, ne)
	if err != nil {
		return admission{}, nil, err
	}
	switch w.kind {
	case KindEndorsement:
		if target != nil {
			if err := tx.Mark(ctx, target.Seq, TargetSuperseded, seq, false); err != nil {
				return admission{}, nil, err
			}
		}
	case KindWithdrawal:
		if err := tx.Mark(ctx, target.Seq, TargetWithdrawn, seq, w.authority == records.AuthoritySecret); err != nil {
			return admission{}, nil, err
		}
	case KindRedaction:
		if err := tx.Mark(ctx, target.Seq, TargetRedacted, seq, w.authority == records.AuthoritySecret); err != nil {
			return admission{}, nil, err
		}
	case KindStatus:
		st := rec.GetLetterStatus().GetStatus()
		if err := tx.SetLetterStatus(ctx, w.letterID, st, seq); err != nil {
			return admission{}, nil, err
		}
	}
	out.seq, out.record = seq, data
	return admission{seq: seq, record: data}, out, nil
}

func fieldOfKind(k Kind) string {
	if k == KindRedaction {
		return "redaction"
	}
	return "withdrawal"
}

func uniqueError(w *write) error {
	switch w.kind {
	case KindLetter:
		return &records.FieldError{Field: "letter.id", Rule: fmt.Sprintf("must be unique in the log; %q is taken", w.letterID)}
	case KindWithdrawal:
		return fmt.Errorf("%w: the endorsement at %d is already withdrawn", ErrAlreadyExists, *w.target)
	case KindRedaction:
		return fmt.Errorf("%w: the endorsement at %d is already redacted", ErrAlreadyExists, *w.target)
	}
	return ErrAlreadyExists
}

// checkSupersedes checks that the endorsement e may correct t, the
// endorsement at index.
func checkSupersedes(t *Endorsement, e *pb.Endorsement, index uint64) error {
	const field = "endorsement.supersedes"
	switch {
	case t == nil:
		return &records.FieldError{Field: field, Rule: "must be the index of an endorsement"}
	case t.LetterID != e.GetLetterId():
		return &records.FieldError{Field: field, Rule: "must be an endorsement of the same letter"}
	case t.WithdrawnBy != 0:
		return precondition("the endorsement at %d is withdrawn", index)
	case t.SupersededBy != 0:
		return precondition("the endorsement at %d was already superseded", index)
	case t.Endorsement.GetSigner() != nil && string(t.Endorsement.GetSigner().GetPublicKey()) != string(e.GetSigner().GetPublicKey()):
		return &records.FieldError{Field: "endorsement.signer", Rule: "must be signed by the signer key of the superseded endorsement"}
	}
	return nil
}

// maxInflightBatches is how many admitted batches may wait for their
// indexes at once.
const maxInflightBatches = 8

// inflightBatch is a batch handed to the log, waiting for its indexes.
type inflightBatch struct {
	b       *batch
	futures []func() (uint64, error)
	start   time.Time
	done    chan struct{}
}

// appendLoop hands admitted batches to the log in admission order, without
// waiting for the batch before to get its indexes: the log keeps the order
// of what it is handed. A batch holding a letter or a status change is a
// barrier: it is handed over alone, once every batch before it has its
// indexes, and the next waits for it. So if a batch fails, a later one
// that made it into the log holds only entries whose letter and targets
// have indexes, and the log's meaning does not depend on the failed one.
func (l *Ledger) appendLoop() {
	defer l.wg.Done()
	inflight := make(chan *inflightBatch, maxInflightBatches)
	completed := make(chan struct{})
	go func() {
		defer close(completed)
		for f := range inflight {
			l.completeInflight(f)
		}
	}()
	var last *inflightBatch
	for b := range l.batches {
		if err := l.Healthy(); err != nil {
			l.failBatch(b, err)
			continue
		}
		if b.barrier && last != nil {
			<-last.done
		}
		f := l.handToLog(l.ctx, b)
		inflight <- f
		last = f
		if b.barrier {
			<-f.done
		}
	}
	close(inflight)
	<-completed
}

// completeInflight waits for a batch's indexes and records them; on a
// failure it stops writes and starts the recovery.
func (l *Ledger) completeInflight(f *inflightBatch) {
	defer close(f.done)
	defer l.inflight.Add(-1)
	if err := l.complete(l.ctx, f); err != nil {
		l.failBatch(f.b, unavailable("the log could not append: %v; the write may still appear, and a retry returns it", err))
		if l.halt(fmt.Errorf("append to the log: %w", err)) {
			go l.recover()
		}
	}
}

func (l *Ledger) failBatch(b *batch, err error) {
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	for _, e := range b.entries {
		if e.pending != nil {
			select {
			case <-e.pending.done:
			default:
				e.pending.err = err
				close(e.pending.done)
			}
			delete(l.pending, e.seq)
		}
	}
}

// handToLog appends the entries of b in order and returns without waiting
// for their indexes.
func (l *Ledger) handToLog(ctx context.Context, b *batch) *inflightBatch {
	f := &inflightBatch{b: b, futures: make([]func() (uint64, error), len(b.entries)), start: time.Now(), done: make(chan struct{})}
	l.inflight.Add(1)
	for i, e := range b.entries {
		f.futures[i] = l.cfg.Log.Append(ctx, e.record)
	}
	return f
}

// complete waits for the indexes of a batch handed to the log and records
// them.
func (l *Ledger) complete(ctx context.Context, f *inflightBatch) error {
	b := f.b
	as := make([]Assignment, 0, len(b.entries))
	var last uint64
	for i, fut := range f.futures {
		idx, err := fut()
		if err != nil {
			return err
		}
		if i > 0 && idx != last+1 {
			return fmt.Errorf("the log put seq %d at %d after %d: entries out of order", b.entries[i].seq, idx, last)
		}
		last = idx
		as = append(as, Assignment{Seq: b.entries[i].seq, Index: idx})
	}
	if err := l.cfg.Store.Assign(ctx, as, last+1); err != nil {
		return err
	}
	l.setIndexed(last + 1)
	l.pendingMu.Lock()
	for i, e := range b.entries {
		if e.pending != nil {
			e.pending.index = as[i].Index
			close(e.pending.done)
		}
		delete(l.pending, e.seq)
	}
	l.pendingMu.Unlock()
	l.cfg.Metrics.appendBatch.Observe(time.Since(f.start).Seconds())
	l.cfg.Metrics.appended.Add(float64(len(b.entries)))
	return nil
}

// appendBatch appends the entries of b, waits for their indexes and
// records them.
func (l *Ledger) appendBatch(ctx context.Context, b *batch) error {
	f := l.handToLog(ctx, b)
	l.inflight.Add(-1)
	return l.complete(ctx, f)
}

// recover retries reconciliation until the log takes the admitted entries
// again, then lets writes in.
func (l *Ledger) recover() {
	for delay := time.Second; ; delay = min(2*delay, time.Minute) {
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(delay):
		}
		// The batches still in flight settle first.
		if n := l.inflight.Load(); n > 0 {
			continue
		}
		if err := l.reconcile(l.ctx); err != nil {
			l.log.Warn("recovery: reconcile failed", slog.Any("error", err))
			continue
		}
		l.haltMu.Lock()
		l.halted = nil
		l.haltMu.Unlock()
		l.log.Info("recovery: writes resumed")
		return
	}
}

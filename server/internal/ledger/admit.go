package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// write is one write on its way through admission.
type write struct {
	principal string
	kind      Kind
	letterID  string
	// input is what the rules apply: the record (admission sets its
	// version and time), the disclosure and what the writer asked for.
	input rules.Input
	// folded is the disclosure's name folded for search, kept with a
	// public disclosure.
	folded string
	// exact, when set, is the record's bytes as the log already holds them
	// (see Readmit): kept as they are, not stamped and encoded again.
	exact []byte

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
	// barrier is set for a batch that holds a letter, a status change or
	// an organiser change: later entries may depend on it (see
	// appendLoop).
	barrier bool
}

type batchEntry struct {
	seq     int64
	record  []byte
	pending *pendingEntry
	// On an unordered log, what the entry waits for before it is queued:
	// the entry afterSeq to have an index (its letter, or the letter's
	// last organiser change, which may have listed the key that signed
	// it), and every entry of the letter afterLetter admitted before it to
	// have one (a status or an organiser change: what a revoked key signed
	// before stays before the revocation).
	afterSeq    int64
	afterLetter string
	// heldAt is when the entry was held for its dependency.
	heldAt time.Time
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
			if err := p.Prefetch(l.ctx, l.prefetchOf(ws)); err != nil {
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
				b.barrier = b.barrier || w.kind == KindLetter || w.kind == KindStatus || w.kind == KindOrganiserChange
				if w.kind == KindLetter {
					letters[w.letterID] = &letterState{seq: entry.seq, letter: w.input.Record.GetLetter()}
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
	l.answer(ws, results, b)
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

// answer hands each write of a committed batch its outcome, with what it
// waits on for its index: its own new entry, or the earlier record it
// repeats.
func (l *Ledger) answer(ws []*write, results []admission, b *batch) {
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
}

// prefetchOf lists what the writes of a batch will look up.
func (l *Ledger) prefetchOf(ws []*write) Prefetch {
	var p Prefetch
	seen := map[string]bool{}
	for _, w := range ws {
		st := &txState{l: l, principal: w.principal}
		p.DedupKeys = append(p.DedupKeys, st.keysOf(w)...)
		if !seen[w.letterID] {
			seen[w.letterID] = true
			p.Letters = append(p.Letters, w.letterID)
		}
		if lt := w.input.Record.GetLetter(); lt.GetRevises() != "" && !seen[lt.GetRevises()] {
			seen[lt.GetRevises()] = true
			p.Letters = append(p.Letters, lt.GetRevises())
		}
		if t, ok := targetOf(w.input.Record); ok {
			p.Targets = append(p.Targets, t)
		}
	}
	return p
}

// targetOf returns the index of the endorsement a record acts on.
func targetOf(r *pb.Record) (uint64, bool) {
	switch k := r.GetKind().(type) {
	case *pb.Record_Withdrawal:
		return k.Withdrawal.GetTargetIndex(), true
	case *pb.Record_Redaction:
		return k.Redaction.GetTargetIndex(), true
	case *pb.Record_Endorsement:
		return k.Endorsement.GetSupersedes(), k.Endorsement.Supersedes != nil
	}
	return 0, false
}

// lookupLater returns a pending entry resolved from the store: it looks
// again each time the watermark moves (an index was recorded), for up to
// lookupTimeout.
func (l *Ledger) lookupLater(seq int64) *pendingEntry {
	p := &pendingEntry{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		deadline := time.NewTimer(lookupTimeout)
		defer deadline.Stop()
		for {
			// Take the channel before reading, so that no move is missed.
			l.indexedMu.Lock()
			moved := l.indexedCh
			l.indexedMu.Unlock()
			idx, err := l.cfg.Store.IndexOfSeq(l.ctx, seq)
			if err != nil {
				p.err = err
				return
			}
			if idx != NoIndex {
				p.index = uint64(idx)
				return
			}
			select {
			case <-moved:
			case <-deadline.C:
				p.err = unavailable("the first copy of this write has no index yet")
				return
			case <-l.ctx.Done():
				p.err = unavailable("the ledger is shutting down")
				return
			}
		}
	}()
	return p
}

// lookupTimeout bounds how long a duplicate waits for the index of the
// record it repeats.
const lookupTimeout = 5 * time.Second

// rejection marks errors that reject one write but not its batch.
type rejection struct{ error }

func (r rejection) Unwrap() error { return r.error }

func reject(err error) error { return rejection{err} }

func isRejection(err error) bool {
	var r rejection
	return errors.As(err, &r)
}

// admitOne applies the rules to one write against the state and, if it
// passes, admits it. It returns a rejection for a write the rules refuse,
// and the earlier record for an exact repeat by its writer.
func (l *Ledger) admitOne(tx AdmitTx, w *write, now int64) (admission, *batchEntry, error) {
	st := &txState{l: l, ctx: l.ctx, tx: tx, principal: w.principal}
	ch, err := rules.Apply(st, w.input)
	if err != nil {
		return l.refuse(st, w, err)
	}
	ne, out, err := l.entryOf(st, w, ch, now)
	if err != nil {
		return admission{}, nil, err
	}
	seq, err := tx.Insert(l.ctx, ne)
	if err != nil {
		return admission{}, nil, err
	}
	if err := applyChange(l.ctx, tx, w, ch, seq); err != nil {
		return admission{}, nil, err
	}
	out.seq, out.record = seq, ne.Record
	return admission{seq: seq, record: ne.Record}, out, nil
}

// entryOf builds the entry that admits a write: its record, the keys the
// index keeps for it, and what it waits for in an unordered log.
func (l *Ledger) entryOf(st *txState, w *write, ch *rules.Change, now int64) (*NewEntry, *batchEntry, error) {
	ne := &NewEntry{Entry: Entry{Kind: w.kind, LetterID: w.letterID, Principal: w.principal}}
	out := &batchEntry{}
	rec := w.input.Record
	if err := l.orderOf(st, w, out); err != nil {
		return nil, nil, err
	}
	switch w.kind {
	case KindEndorsement:
		e := rec.GetEndorsement()
		ne.Visibility, ne.Verification = e.GetVisibility(), e.GetVerification()
		ne.SignerKey = e.GetSigner().GetPublicKey()
		if e.GetVisibility() == pb.Visibility_VISIBILITY_PUBLIC {
			ne.Disclosure, ne.FoldedName = w.input.Disclosure, w.folded
		}
		for _, k := range ch.Endorsement.PersonKeys {
			ne.DedupKeys = append(ne.DedupKeys, st.personKey(keyPerson, w.letterID, k))
		}
		ne.PermanentKeys = [][]byte{l.dedup.key(keyCommitment, ch.Endorsement.Commitment), l.dedup.key(keyLock, ch.Endorsement.Lock)}
	case KindRedaction:
		for _, k := range ch.Tombstones {
			ne.PermanentKeys = append(ne.PermanentKeys, st.personKey(keyTombstone, w.letterID, k))
		}
	}
	data := w.exact
	if data == nil {
		rec.Version = records.Version
		rec.AcceptedAt = now
		var err error
		if data, err = records.Encode(rec); err != nil {
			return nil, nil, fmt.Errorf("encode record: %w", err)
		}
	}
	ne.Record = data
	ne.LeafHash = rfc6962.DefaultHasher.HashLeaf(data)
	return ne, out, nil
}

// orderOf sets what an entry waits for in an unordered log (see
// batchEntry).
func (l *Ledger) orderOf(st *txState, w *write, out *batchEntry) (err error) {
	switch w.kind {
	case KindLetter:
		if r := w.input.Record.GetLetter().GetRevises(); r != "" {
			out.afterSeq, err = l.dependsOn(st, r)
		}
	case KindEndorsement, KindWithdrawal, KindRedaction:
		out.afterSeq, err = l.dependsOn(st, w.letterID)
	case KindStatus, KindOrganiserChange:
		out.afterLetter = w.letterID
	}
	return err
}

// dependsOn returns the seq of the entry that an entry of letter id must
// follow in an unordered log, while that one has no index: the letter's
// last organiser change (it may have listed the key that signed the
// entry), or else the letter itself; 0 when there is none.
func (l *Ledger) dependsOn(st *txState, id string) (int64, error) {
	row := st.rows[id]
	if row == nil {
		return 0, nil
	}
	if row.KeysSeq != 0 && l.unordered != nil {
		e, err := st.tx.EntryBySeq(l.ctx, row.KeysSeq)
		if err != nil {
			return 0, err
		}
		if e.Index == NoIndex {
			return row.KeysSeq, nil
		}
	}
	if row.Index == NoIndex {
		return row.Seq, nil
	}
	return 0, nil
}

// applyChange records in the store what the admitted write (at seq) did.
func applyChange(ctx context.Context, tx AdmitTx, w *write, ch *rules.Change, seq int64) error {
	what := map[rules.Mark]Target{rules.MarkWithdrawn: TargetWithdrawn, rules.MarkRedacted: TargetRedacted, rules.MarkSuperseded: TargetSuperseded}
	if ch.Target != nil {
		if err := tx.Mark(ctx, ch.Target.Ref.Seq, what[ch.Mark], seq, ch.SecretSpent); err != nil {
			return err
		}
	}
	if ch.Status != pb.Status_STATUS_UNSPECIFIED {
		return tx.SetLetterStatus(ctx, w.letterID, ch.Status, seq)
	}
	if ch.KeyChange != pb.KeyChange_KEY_CHANGE_UNSPECIFIED {
		return tx.SetOrganiserKeys(ctx, w.letterID, ch.OrganiserKeys, ch.Revoked, seq)
	}
	return nil
}

// refuse turns what the rules said against a write into its answer: the
// earlier record for an exact repeat by its writer, a rejection otherwise.
// An answer about another principal's record says no more than the rule
// (no index, no content), and is counted and logged.
func (l *Ledger) refuse(st *txState, w *write, err error) (admission, *batchEntry, error) {
	var exists *rules.ExistsError
	if !errors.As(err, &exists) {
		if isRule(err) {
			return admission{}, nil, reject(ruleError(err))
		}
		return admission{}, nil, err
	}
	first, err := st.tx.EntryBySeq(l.ctx, exists.Of.Seq)
	if err != nil {
		return admission{}, nil, err
	}
	if first.Principal == w.principal && first.Kind == w.kind {
		if exists.Exact {
			a := admission{seq: first.Seq, record: first.Record, duplicate: true, index: ^uint64(0)}
			if first.Index != NoIndex {
				a.index = uint64(first.Index)
			}
			return a, nil, nil
		}
		of := exists.Of
		of.Index = first.Index
		return admission{}, nil, reject(withWhere(ruleError(exists.Rule), of))
	}
	l.cfg.Metrics.othersRecord.Inc()
	l.log.Info("a write is about a record of another principal",
		slog.String("principal", w.principal), slog.String("letter", w.letterID), slog.Time("time", l.cfg.Now()), slog.Bool("exact", exists.Exact))
	var se *rules.StateError
	switch {
	case exists.Refuse != nil:
		return admission{}, nil, reject(ruleError(exists.Refuse))
	case exists.Exact:
		return admission{}, nil, reject(fmt.Errorf("%w: an equal record was written by someone else", ErrAlreadyExists))
	case errors.As(exists.Rule, &se):
		// Already withdrawn, redacted or closed: public facts.
		return admission{}, nil, reject(fmt.Errorf("%w: %s", ErrAlreadyExists, se.Rule))
	}
	return admission{}, nil, reject(ruleError(exists.Rule))
}

// isRule reports whether err is a rule that the rules say a write breaks,
// rather than a failure to read the state.
func isRule(err error) bool {
	var se *rules.StateError
	_, field := records.AsFieldError(err)
	return field || errors.As(err, &se)
}

// ruleError maps a rule broken to the ledger's errors: a state rule is a
// failed precondition.
func ruleError(err error) error {
	var se *rules.StateError
	if errors.As(err, &se) {
		return precondition("%s", se.Rule)
	}
	return err
}

// withWhere adds where the earlier record is to a rule, for the principal
// that wrote it.
func withWhere(err error, of rules.Ref) error {
	if fe, ok := records.AsFieldError(err); ok {
		return &records.FieldError{Field: fe.Field, Rule: fmt.Sprintf("%s (%v)", fe.Rule, of)}
	}
	return fmt.Errorf("%w (%v)", err, of)
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

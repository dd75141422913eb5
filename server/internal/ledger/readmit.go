package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// RecoveredPrincipal is the principal of a record that [Readmit] admitted
// again: who wrote it is not known any more.
const RecoveredPrincipal = "recovered"

// Recovered is a record of the log found again at its index (in a receipt,
// or in the log itself) for a store that lost it.
type Recovered struct {
	// Index is the record's index in the log.
	Index uint64
	// Record is the record's bytes, exactly as the log holds them.
	Record []byte
	// Disclosure is an endorsement's disclosure when it is known (a
	// receipt holds it), or nil.
	Disclosure *pb.Disclosure
}

// Readmit admits into cfg.Store, at their indexes and in index order,
// records the log holds and the store lost (a restore of the store from a
// copy older than the log): each is applied to the store's state with the
// rules, as admission does, and kept with its exact bytes, a public
// disclosure when it is known, and [RecoveredPrincipal]. A record already
// in the store gets its index, if it had none. An entry that is no record,
// or that the rules refuse, was not admitted by any server: it is recorded
// as a foreign leaf (see [ForeignLeaf]), and counted in the result. Only
// cfg's Store (an [UnorderedStore]), DedupSecret and Logger are used.
//
// The writer's idempotency key of a record admitted again is lost: a
// rerun of that import finds the person by its fields or signer key.
func Readmit(ctx context.Context, cfg Config, entries []Recovered) (foreign int, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if len(cfg.DedupSecret) < 16 {
		return 0, errors.New("readmit: the dedup secret must be at least 16 bytes")
	}
	l := &Ledger{cfg: cfg, log: cfg.Logger, origin: cfg.Origin, ctx: ctx, dedup: newDedupKeys(cfg.DedupSecret),
		letters: map[string]*letterState{}}
	hashes := make([][]byte, len(entries))
	for i, e := range entries {
		hashes[i] = leafHash(e.Record)
	}
	us, ok := cfg.Store.(UnorderedStore)
	if !ok {
		return 0, errors.New("readmit: the store does not find entries by leaf hash")
	}
	found, err := us.LeafEntries(ctx, hashes)
	if err != nil {
		return 0, err
	}
	for i, e := range entries {
		if f := found[i]; f.Seq != 0 {
			switch {
			case f.Index == NoIndex:
				if err := cfg.Store.Assign(ctx, []Assignment{{Seq: f.Seq, Index: e.Index}}, 0); err != nil {
					return foreign, fmt.Errorf("readmit %d: %w", e.Index, err)
				}
			case uint64(f.Index) != e.Index:
				return foreign, fmt.Errorf("readmit %d: the store holds this record at index %d", e.Index, f.Index)
			}
			continue
		}
		err := l.readmitOne(ctx, e)
		if errors.Is(err, errNotAdmissible) {
			cfg.Logger.Warn("an entry of the log no server admitted: recorded as foreign", slog.Uint64("index", e.Index), slog.Any("why", err))
			if err := us.AddForeign(ctx, []ForeignLeaf{{Index: e.Index, LeafHash: hashes[i]}}); err != nil {
				return foreign, err
			}
			foreign++
			continue
		}
		if err != nil {
			return foreign, fmt.Errorf("readmit %d: %w", e.Index, err)
		}
	}
	return foreign, nil
}

// errNotAdmissible is wrapped by the error of readmitOne for an entry no
// server would have admitted: not a record, or one the rules refuse.
var errNotAdmissible = errors.New("no server would admit it")

// readmitOne admits one recovered record in a transaction of its own, and
// records its index: the next may act on it.
func (l *Ledger) readmitOne(ctx context.Context, e Recovered) error {
	rec, err := records.Decode(e.Record)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotAdmissible, err)
	}
	w := &write{principal: RecoveredPrincipal, kind: KindOf(rec), exact: e.Record,
		input: rules.Input{Record: rec, Disclosure: e.Disclosure}, folded: names.Fold(e.Disclosure.GetName())}
	var seq int64
	err = l.cfg.Store.Admit(ctx, func(tx AdmitTx) error {
		if w.letterID, err = letterOf(ctx, tx, rec); err != nil {
			return err
		}
		a, _, err := l.admitOne(tx, w, 0)
		if isRejection(err) {
			return fmt.Errorf("%w: %w", errNotAdmissible, err)
		}
		if err != nil {
			return err
		}
		if a.duplicate {
			return fmt.Errorf("the store holds an equal record at seq %d", a.seq)
		}
		seq = a.seq
		return nil
	})
	if err != nil {
		return err
	}
	return l.cfg.Store.Assign(ctx, []Assignment{{Seq: seq, Index: e.Index}}, 0)
}

// letterOf returns the letter a record is about: its own, or its target's
// for a withdrawal or a redaction.
func letterOf(ctx context.Context, tx AdmitTx, rec *pb.Record) (string, error) {
	switch k := rec.GetKind().(type) {
	case *pb.Record_Letter:
		return k.Letter.GetId(), nil
	case *pb.Record_Endorsement:
		return k.Endorsement.GetLetterId(), nil
	case *pb.Record_LetterStatus:
		return k.LetterStatus.GetLetterId(), nil
	}
	t, ok := targetOf(rec)
	if !ok {
		return "", fmt.Errorf("%w: not a record of this log", errNotAdmissible)
	}
	e, err := tx.EndorsementByIndex(ctx, t)
	if err != nil {
		return "", err
	}
	if e == nil {
		return "", fmt.Errorf("%w: its target %d is not an endorsement of the log", errNotAdmissible, t)
	}
	return e.LetterID, nil
}

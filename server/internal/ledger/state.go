package ledger

import (
	"context"
	"fmt"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// The dedup index holds, keyed with the dedup secret (see dedupKey):
//
//   - every commitment and every withdrawal lock, for good (permanent keys
//     of the endorsement);
//   - the person keys of each endorsement (rules.PersonKeysOf), freed when
//     it is withdrawn, redacted or superseded;
//   - the tombstones a redaction leaves (permanent keys of the redaction).
const (
	keyCommitment = "commitment"
	keyLock       = "lock"
	keyPerson     = "person"
	keyTombstone  = "tombstone"
)

// txState is the log before a write, as rules.Apply reads it: the store's
// admission transaction, with the writes admitted earlier in the batch.
type txState struct {
	l         *Ledger
	ctx       context.Context
	tx        AdmitTx
	principal string
	// rows caches the letter rows read, for the write's ordering.
	rows map[string]*LetterRow
}

// personKey turns a person key into the key the index holds: an
// idempotency key is scoped to the writer.
func (s *txState) personKey(kind, letterID string, k rules.PersonKey) []byte {
	value := k.Value
	if k.Kind == rules.PersonIdempotency {
		value = append([]byte(s.principal+"\x00"), value...)
	}
	return s.l.dedup.key(kind, []byte(letterID), []byte{byte(k.Kind)}, value)
}

func (s *txState) lookup(key []byte) (*rules.Ref, error) {
	seq, found, err := s.tx.LookupDedup(s.ctx, key)
	if err != nil || !found {
		return nil, err
	}
	return &rules.Ref{Index: -1, Seq: seq}, nil
}

func seqRef(seq int64) *rules.Ref {
	if seq == 0 {
		return nil
	}
	return &rules.Ref{Index: -1, Seq: seq}
}

func (s *txState) Letter(id string) (*rules.Letter, error) {
	row, err := s.tx.Letter(s.ctx, id)
	if err != nil || row == nil {
		return nil, err
	}
	if s.rows == nil {
		s.rows = map[string]*LetterRow{}
	}
	s.rows[id] = row
	var lt *pb.Letter
	if ls, err := s.l.letter(s.ctx, id); err != nil {
		return nil, err
	} else if ls != nil {
		lt = ls.letter
	} else {
		// Admitted earlier in this batch.
		rec, err := s.Record(rules.Ref{Seq: row.Seq})
		if err != nil {
			return nil, err
		}
		lt = rec.GetLetter()
	}
	out := &rules.Letter{
		Ref:           rules.Ref{Index: row.Index, Seq: row.Seq},
		Letter:        lt,
		OrganiserKeys: lt.GetOrganiserKeys(),
		Closed:        seqRef(row.ClosedSeq),
		Delivered:     seqRef(row.DeliveredSeq),
	}
	if row.KeysSeq != 0 {
		out.OrganiserKeys, out.Revoked, out.KeysChangedBy = row.OrganiserKeys, row.RevokedKeys, seqRef(row.KeysSeq)
	}
	return out, nil
}

func (s *txState) Endorsement(index uint64) (*rules.Endorsement, error) {
	e, err := s.tx.EndorsementByIndex(s.ctx, index)
	if err != nil || e == nil {
		return nil, err
	}
	return &rules.Endorsement{
		Ref:          rules.Ref{Index: e.Index, Seq: e.Seq},
		Endorsement:  e.Endorsement,
		LeafHash:     e.LeafHash,
		WithdrawnBy:  seqRef(e.WithdrawnBy),
		RedactedBy:   seqRef(e.RedactedBy),
		SupersededBy: seqRef(e.SupersededBy),
		SecretSpent:  e.SecretSpent,
	}, nil
}

// Commitment returns the endorsement accepted with a commitment, with its
// index when it has one (a replay of a withdrawn one is refused by it).
func (s *txState) Commitment(c []byte) (*rules.Ref, error) {
	ref, err := s.lookup(s.l.dedup.key(keyCommitment, c))
	if err != nil || ref == nil {
		return nil, err
	}
	e, err := s.tx.EntryBySeq(s.ctx, ref.Seq)
	if err != nil {
		return nil, err
	}
	ref.Index = e.Index
	return ref, nil
}

func (s *txState) Lock(l []byte) (*rules.Ref, error) {
	return s.lookup(s.l.dedup.key(keyLock, l))
}

func (s *txState) Person(letterID string, k rules.PersonKey) (*rules.Endorsement, error) {
	ref, err := s.lookup(s.personKey(keyPerson, letterID, k))
	if err != nil || ref == nil {
		return nil, err
	}
	e, err := s.tx.EntryBySeq(s.ctx, ref.Seq)
	if err != nil {
		return nil, err
	}
	rec, err := records.Decode(e.Record)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", ref.Seq, err)
	}
	return &rules.Endorsement{Ref: rules.Ref{Index: e.Index, Seq: e.Seq}, Endorsement: rec.GetEndorsement(), LeafHash: e.LeafHash}, nil
}

func (s *txState) Tombstone(letterID string, k rules.PersonKey) (*rules.Ref, error) {
	return s.lookup(s.personKey(keyTombstone, letterID, k))
}

// Disclosure reads the served disclosure of an endorsement with an index.
// A redaction in the same batch would have refused the write first, so
// the store's committed rows are the state before it.
func (s *txState) Disclosure(e *rules.Endorsement) (*pb.Disclosure, error) {
	if e.Ref.Index < 0 {
		return nil, nil
	}
	rows, err := s.l.cfg.Store.Disclosures(s.ctx, uint64(e.Ref.Index), uint64(e.Ref.Index)+1)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0].Disclosure, nil
}

func (s *txState) Record(ref rules.Ref) (*pb.Record, error) {
	e, err := s.tx.EntryBySeq(s.ctx, ref.Seq)
	if err != nil {
		return nil, err
	}
	rec, err := records.Decode(e.Record)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", ref.Seq, err)
	}
	return rec, nil
}

// keysOf returns the keys a write will look up, for a store's prefetch.
func (s *txState) keysOf(w *write) [][]byte {
	e := w.input.Record.GetEndorsement()
	if e == nil {
		return nil
	}
	keys := [][]byte{s.l.dedup.key(keyCommitment, e.GetCommitment()), s.l.dedup.key(keyLock, e.GetWithdrawalLock())}
	for _, k := range rules.PersonKeysOf(e, w.input.Disclosure, w.input.IdempotencyKey) {
		keys = append(keys, s.personKey(keyPerson, w.letterID, k), s.personKey(keyTombstone, w.letterID, k))
	}
	return keys
}

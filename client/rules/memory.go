package rules

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Memory is a [State] in memory that applies the records given to it in
// order: the reference the stores are checked against in tests, and the
// state of a verifier that holds a whole log. It keeps person keys as they
// are (names included): do not use it where they must be hashed.
type Memory struct {
	records      []*pb.Record
	disclosures  map[int64]*pb.Disclosure
	letters      map[string]*Letter
	endorsements map[int64]*Endorsement
	commitments  map[string]Ref
	locks        map[string]Ref
	persons      map[string]int64 // letter and person key → index
	tombstones   map[string]Ref
	heldBy       map[int64][]string // index → the person keys it holds
}

// NewMemory returns an empty log.
func NewMemory() *Memory {
	return &Memory{
		disclosures:  map[int64]*pb.Disclosure{},
		letters:      map[string]*Letter{},
		endorsements: map[int64]*Endorsement{},
		commitments:  map[string]Ref{},
		locks:        map[string]Ref{},
		persons:      map[string]int64{},
		tombstones:   map[string]Ref{},
		heldBy:       map[int64][]string{},
	}
}

// Size returns the number of records applied.
func (m *Memory) Size() uint64 { return uint64(len(m.records)) }

// Append applies the record in to the state and appends it, whose leaf
// hash is leafHash, at the next index. A record that breaks a rule is not
// appended, and the error says which.
func (m *Memory) Append(in Input, leafHash []byte) (*Change, error) {
	ch, err := Apply(m, in)
	if err != nil {
		return nil, err
	}
	ref := Ref{Index: int64(len(m.records))}
	m.records = append(m.records, in.Record)
	m.applyChange(ref, in, leafHash, ch)
	return ch, nil
}

func (m *Memory) applyChange(ref Ref, in Input, leafHash []byte, ch *Change) {
	switch {
	case ch.NewLetter != nil:
		m.letters[ch.NewLetter.GetId()] = &Letter{Ref: ref, Letter: ch.NewLetter, OrganiserKeys: ch.NewLetter.GetOrganiserKeys()}
	case ch.Endorsement != nil:
		e := in.Record.GetEndorsement()
		m.endorsements[ref.Index] = &Endorsement{Ref: ref, Endorsement: e, LeafHash: leafHash}
		m.commitments[string(ch.Endorsement.Commitment)] = ref
		m.locks[string(ch.Endorsement.Lock)] = ref
		if e.GetVisibility() == pb.Visibility_VISIBILITY_PUBLIC && in.Disclosure != nil {
			m.disclosures[ref.Index] = in.Disclosure
		}
		if ch.Target != nil {
			m.mark(ch.Target.Ref.Index, ref, ch.Mark)
		}
		for _, k := range ch.Endorsement.PersonKeys {
			key := personIndexKey(e.GetLetterId(), k)
			m.persons[key] = ref.Index
			m.heldBy[ref.Index] = append(m.heldBy[ref.Index], key)
		}
	case ch.Target != nil:
		t := m.endorsements[ch.Target.Ref.Index]
		m.mark(t.Ref.Index, ref, ch.Mark)
		t.SecretSpent = t.SecretSpent || ch.SecretSpent
		for _, k := range ch.Tombstones {
			m.tombstones[personIndexKey(t.Endorsement.GetLetterId(), k)] = ref
		}
	case ch.KeyChange != pb.KeyChange_KEY_CHANGE_UNSPECIFIED:
		l := m.letters[ch.Letter.Letter.GetId()]
		l.OrganiserKeys, l.Revoked, l.KeysChangedBy = ch.OrganiserKeys, ch.Revoked, &ref
	case ch.Status != pb.Status_STATUS_UNSPECIFIED:
		l := m.letters[ch.Letter.Letter.GetId()]
		if ch.Status == pb.Status_STATUS_CLOSED && l.Closed == nil {
			l.Closed = &ref
		}
		if ch.Status == pb.Status_STATUS_DELIVERED && l.Delivered == nil {
			l.Delivered = &ref
		}
	}
}

// mark records what the record at by did to the endorsement at index, and
// frees the person keys the endorsement held (a correction takes them
// over right after).
func (m *Memory) mark(index int64, by Ref, mark Mark) {
	t := m.endorsements[index]
	switch mark {
	case MarkWithdrawn:
		t.WithdrawnBy = &by
	case MarkRedacted:
		t.RedactedBy = &by
		delete(m.disclosures, index)
	case MarkSuperseded:
		t.SupersededBy = &by
	}
	for _, key := range m.heldBy[index] {
		if m.persons[key] == index {
			delete(m.persons, key)
		}
	}
	delete(m.heldBy, index)
}

func personIndexKey(letterID string, k PersonKey) string {
	return fmt.Sprintf("%s\x00%d\x00%s", letterID, k.Kind, k.Value)
}

// Letter implements [State].
func (m *Memory) Letter(id string) (*Letter, error) {
	if l := m.letters[id]; l != nil {
		c := *l
		return &c, nil
	}
	return nil, nil
}

// Endorsement implements [State].
func (m *Memory) Endorsement(index uint64) (*Endorsement, error) {
	if e := m.endorsements[int64(index)]; e != nil {
		c := *e
		return &c, nil
	}
	return nil, nil
}

// Commitment implements [State].
func (m *Memory) Commitment(c []byte) (*Ref, error) { return refOf(m.commitments, string(c)), nil }

// Lock implements [State].
func (m *Memory) Lock(l []byte) (*Ref, error) { return refOf(m.locks, string(l)), nil }

func refOf(m map[string]Ref, k string) *Ref {
	if r, ok := m[k]; ok {
		return &r
	}
	return nil
}

// Person implements [State].
func (m *Memory) Person(letterID string, k PersonKey) (*Endorsement, error) {
	if i, ok := m.persons[personIndexKey(letterID, k)]; ok {
		return m.Endorsement(uint64(i))
	}
	return nil, nil
}

// Tombstone implements [State].
func (m *Memory) Tombstone(letterID string, k PersonKey) (*Ref, error) {
	return refOf(m.tombstones, personIndexKey(letterID, k)), nil
}

// Disclosure implements [State].
func (m *Memory) Disclosure(e *Endorsement) (*pb.Disclosure, error) {
	return m.disclosures[e.Ref.Index], nil
}

// Record implements [State].
func (m *Memory) Record(ref Ref) (*pb.Record, error) {
	if ref.Index < 0 || ref.Index >= int64(len(m.records)) {
		return nil, nil
	}
	return proto.CloneOf(m.records[ref.Index]), nil
}

// Counts tallies the endorsements of a letter as a roster does: public and
// private ones that count, redacted ones that count, and withdrawn and
// superseded ones.
func (m *Memory) Counts(letterID string) (public, private, redacted, withdrawn, superseded uint64) {
	for _, e := range m.endorsements {
		if e.Endorsement.GetLetterId() != letterID {
			continue
		}
		switch {
		case e.WithdrawnBy != nil:
			withdrawn++
		case e.SupersededBy != nil:
			superseded++
		case e.RedactedBy != nil:
			redacted++
		case e.Endorsement.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE:
			private++
		default:
			public++
		}
	}
	return
}

// Disclosures returns the public disclosures that are served (not
// redacted), by index.
func (m *Memory) Disclosures() map[int64]*pb.Disclosure {
	out := make(map[int64]*pb.Disclosure, len(m.disclosures))
	for i, d := range m.disclosures {
		out[i] = d
	}
	return out
}

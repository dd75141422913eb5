package rules

import (
	"bytes"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Follower is a [State] for a reader that follows a whole log as anyone
// can read it, record by record: the browser's verifier and the server's
// pages. It applies each record with [Apply] and keeps, compactly, only
// what the rules read from the log itself: the letters with their keys and
// status, and of each endorsement its letter, lock, signer key,
// verification, visibility and what became of it, with every commitment
// and lock accepted. It keeps no record bytes, no disclosure and no person
// key but signer keys (like the audit, it checks "the same person" only
// where the log shows it), so it answers no tombstone and never finds a
// repeat exact: to a reader every repeat breaks a rule.
//
// A record that breaks a rule still takes its index, and has no effect:
// the rules say it does nothing.
type Follower struct {
	size    uint64
	letters map[string]*Letter
	// endorsements are in log order; at maps a log index to its
	// endorsement's position in endorsements, or -1.
	endorsements []followed
	at           []int32
	commitments  map[[32]byte]int64
	locks        map[[32]byte]int64
	signers      map[string]int64 // letter and signer key → live endorsement
}

// followed is an endorsement as a Follower keeps it.
type followed struct {
	index                                 int64
	letter                                *Letter
	visibility                            pb.Visibility
	verification                          pb.Verification
	supersedes                            int64 // or -1
	withdrawnBy, redactedBy, supersededBy int64 // or -1
	spent                                 bool
	lock, leaf                            [32]byte
	signer                                []byte
}

// NewFollower returns a Follower of an empty log.
func NewFollower() *Follower {
	return &Follower{letters: map[string]*Letter{}, commitments: map[[32]byte]int64{}, locks: map[[32]byte]int64{},
		signers: map[string]int64{}}
}

// Reserve makes room for a log of n records, before the first is
// followed: a reader that knows the size of the log it loads saves the
// growing.
func (f *Follower) Reserve(n int) {
	if f.size != 0 || n <= 0 {
		return
	}
	f.at = make([]int32, 0, n)
	f.endorsements = make([]followed, 0, n)
	f.commitments, f.locks = make(map[[32]byte]int64, n), make(map[[32]byte]int64, n)
}

// Size returns the number of records followed.
func (f *Follower) Size() uint64 { return f.size }

// Append applies the record at the next index, whose RFC 6962 leaf hash is
// leafHash, and returns what it did, or the rule it breaks (see [Apply]):
// such a record takes its index and does nothing else. The record's own
// fields and signatures are the caller's to check, or to trust.
func (f *Follower) Append(rec *pb.Record, leafHash []byte) (*Change, error) {
	ref := Ref{Index: int64(f.size)}
	f.size++
	f.at = append(f.at, -1)
	ch, err := Apply(f, Input{Record: rec})
	if err != nil {
		return nil, err
	}
	switch {
	case ch.NewLetter != nil:
		f.letters[ch.NewLetter.GetId()] = &Letter{Ref: ref, Letter: ch.NewLetter, OrganiserKeys: ch.NewLetter.GetOrganiserKeys()}
	case ch.Endorsement != nil:
		f.endorse(ref, rec.GetEndorsement(), leafHash, ch)
	case ch.Target != nil:
		t := &f.endorsements[f.at[ch.Target.Ref.Index]]
		f.mark(t, ref, ch.Mark)
		t.spent = t.spent || ch.SecretSpent
	case ch.KeyChange != pb.KeyChange_KEY_CHANGE_UNSPECIFIED:
		l := f.letters[ch.Letter.Letter.GetId()]
		l.OrganiserKeys, l.Revoked, l.KeysChangedBy = ch.OrganiserKeys, ch.Revoked, &ref
	case ch.Status != pb.Status_STATUS_UNSPECIFIED:
		l := f.letters[ch.Letter.Letter.GetId()]
		if ch.Status == pb.Status_STATUS_CLOSED && l.Closed == nil {
			l.Closed = &ref
		}
		if ch.Status == pb.Status_STATUS_DELIVERED && l.Delivered == nil {
			l.Delivered = &ref
		}
	}
	return ch, nil
}

func (f *Follower) endorse(ref Ref, e *pb.Endorsement, leafHash []byte, ch *Change) {
	en := followed{index: ref.Index, letter: f.letters[e.GetLetterId()], visibility: e.GetVisibility(), verification: e.GetVerification(),
		supersedes: -1, withdrawnBy: -1, redactedBy: -1, supersededBy: -1, signer: e.GetSigner().GetPublicKey()}
	copy(en.lock[:], ch.Endorsement.Lock)
	copy(en.leaf[:], leafHash)
	if e.Supersedes != nil {
		en.supersedes = int64(e.GetSupersedes())
	}
	f.at[ref.Index] = int32(len(f.endorsements))
	f.endorsements = append(f.endorsements, en)
	// Sizes are the records' own rules: a record of another size (which
	// the caller's checks refuse) is kept by its first 32 bytes.
	var c [32]byte
	copy(c[:], ch.Endorsement.Commitment)
	f.commitments[c] = ref.Index
	f.locks[en.lock] = ref.Index
	if ch.Target != nil {
		f.mark(&f.endorsements[f.at[ch.Target.Ref.Index]], ref, ch.Mark)
	}
	if en.signer != nil {
		f.signers[signerKey(e.GetLetterId(), en.signer)] = ref.Index
	}
}

// mark records what the record at by did to t, and frees t's signer key.
func (f *Follower) mark(t *followed, by Ref, mark Mark) {
	switch mark {
	case MarkWithdrawn:
		t.withdrawnBy = by.Index
	case MarkRedacted:
		t.redactedBy = by.Index
	case MarkSuperseded:
		t.supersededBy = by.Index
	}
	if t.signer != nil {
		k := signerKey(t.letter.Letter.GetId(), t.signer)
		if f.signers[k] == t.index {
			delete(f.signers, k)
		}
	}
}

func signerKey(letterID string, key []byte) string { return letterID + "\x00" + string(key) }

func refAt(i int64) *Ref {
	if i < 0 {
		return nil
	}
	return &Ref{Index: i}
}

// Letter implements [State].
func (f *Follower) Letter(id string) (*Letter, error) {
	if l := f.letters[id]; l != nil {
		c := *l
		return &c, nil
	}
	return nil, nil
}

// Endorsement implements [State]: the endorsement has the fields the
// Follower keeps (its letter, lock, signer key, verification, visibility
// and supersedes), not its commitment or signatures.
func (f *Follower) Endorsement(index uint64) (*Endorsement, error) {
	if index >= uint64(len(f.at)) || f.at[index] < 0 {
		return nil, nil
	}
	en := &f.endorsements[f.at[index]]
	e := &pb.Endorsement{LetterId: en.letter.Letter.GetId(), LetterDigest: en.letter.Letter.GetTextDigest(),
		WithdrawalLock: bytes.Clone(en.lock[:]), Verification: en.verification, Visibility: en.visibility}
	if en.signer != nil {
		e.Signer = &pb.Signature{PublicKey: en.signer}
	}
	if en.supersedes >= 0 {
		s := uint64(en.supersedes)
		e.Supersedes = &s
	}
	return &Endorsement{Ref: Ref{Index: en.index}, Endorsement: e, LeafHash: bytes.Clone(en.leaf[:]),
		WithdrawnBy: refAt(en.withdrawnBy), RedactedBy: refAt(en.redactedBy), SupersededBy: refAt(en.supersededBy), SecretSpent: en.spent}, nil
}

// Commitment implements [State].
func (f *Follower) Commitment(c []byte) (*Ref, error) { return lookup32(f.commitments, c), nil }

// Lock implements [State].
func (f *Follower) Lock(l []byte) (*Ref, error) { return lookup32(f.locks, l), nil }

func lookup32(m map[[32]byte]int64, b []byte) *Ref {
	if len(b) != 32 {
		return nil
	}
	if i, ok := m[[32]byte(b)]; ok {
		return &Ref{Index: i}
	}
	return nil
}

// Person implements [State] for signer keys, the person keys the log
// shows; it answers nil for the others.
func (f *Follower) Person(letterID string, k PersonKey) (*Endorsement, error) {
	if k.Kind != PersonSigner {
		return nil, nil
	}
	if i, ok := f.signers[signerKey(letterID, k.Value)]; ok {
		return f.Endorsement(uint64(i))
	}
	return nil, nil
}

// Tombstone implements [State]: a reader of the log sees none.
func (f *Follower) Tombstone(string, PersonKey) (*Ref, error) { return nil, nil }

// Disclosure implements [State]: the Follower keeps none.
func (f *Follower) Disclosure(*Endorsement) (*pb.Disclosure, error) { return nil, nil }

// Record implements [State]: the Follower keeps no records.
func (f *Follower) Record(Ref) (*pb.Record, error) { return nil, nil }

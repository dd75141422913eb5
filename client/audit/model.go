package audit

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Kinds of entry, as the model keeps them.
const (
	kindInvalid uint8 = iota
	kindLetter
	kindEndorsement
	kindWithdrawal
	kindRedaction
	kindStatus
	kindOrganiserChange
)

// discState is what is known of a public endorsement's disclosure.
type discState uint8

const (
	// discNone: private, or not an endorsement.
	discNone discState = iota
	// discServed: a disclosure that opens the commitment.
	discServed
	// discMissing: none served; withheld unless a redaction follows.
	discMissing
	// discPending: none served, and the source says it was redacted by a
	// record beyond the audited tree.
	discPending
	// discWithheld: none served and no redaction: a violation.
	discWithheld
	// discNotChecked: the source serves no disclosures.
	discNotChecked
	// discErased: redacted.
	discErased
	// discBad: the served disclosure does not open the commitment.
	discBad
)

// ref is one entry of the log as the model keeps it.
type ref struct {
	kind uint8
	// i indexes the slice of the entry's kind, or is -1.
	i  int32
	at int64 // accepted_at
}

type letterState struct {
	index        uint64
	letter       *pb.Letter
	closedBy     int64
	deliveredBy  int64
	statuses     []uint64
	endorsements []uint64
	// keys are the organiser keys valid at the model's size, revoked those
	// revoked, keyChanges the indexes of the organiser changes, and
	// keysChangedBy the last of them (or -1).
	keys, revoked [][]byte
	keyChanges    []uint64
	keysChangedBy int64
	// folded maps the hash of a folded name to the index of a named
	// endorsement; built when first needed.
	folded map[uint64]uint64
}

type endorsement struct {
	index        uint64
	letter       int32
	visibility   pb.Visibility
	verification pb.Verification
	signerKey    []byte
	lock         [32]byte
	leaf         [32]byte
	supersedes   int64
	withdrawnBy  int64
	redactedBy   int64
	supersededBy int64
	secretSpent  bool
	disc         discState
	disclosure   *pb.Disclosure
	foldHash     uint64
	offset       int64
	// redactReason and withdrawReason are the reasons of the records that
	// did so, withdrawAuth and redactAuth who authorised them.
	withdrawReason, redactReason pb.Reason
	withdrawAuth, redactAuth     string
}

type action struct {
	kind        uint8
	targetIndex uint64
	target      int32 // in endorsements, or -1
	reason      pb.Reason
}

type statusRecord struct {
	letter int32
	status pb.Status
	note   string
	by     []byte // the organiser key that signed it
}

// keyChange is an organiser change: the key added or revoked, and the key
// that signed it.
type keyChange struct {
	letter   int32
	change   pb.KeyChange
	key, by  []byte
	effected bool
}

// model is the state of the log as the audit rebuilt it.
type model struct {
	origin       string
	refs         []ref
	letters      []*letterState
	byID         map[string]int32
	endorsements []endorsement
	actions      []action
	statuses     []statusRecord
	keyChanges   []keyChange
	// commitments and locks are where each was first accepted; signers,
	// the live endorsement of each signer key in a letter (see
	// signerKeyOf): what the rules read (modelState).
	commitments map[[32]byte]uint64
	locks       map[[32]byte]uint64
	signers     map[string]uint64
}

func newModel(origin string) *model {
	return &model{origin: origin, byID: map[string]int32{},
		commitments: map[[32]byte]uint64{}, locks: map[[32]byte]uint64{}, signers: map[string]uint64{}}
}

func (m *model) size() uint64 { return uint64(len(m.refs)) }

// endorsementAt returns the endorsement at index, or nil.
func (m *model) endorsementAt(index uint64) *endorsement {
	if index >= uint64(len(m.refs)) || m.refs[index].kind != kindEndorsement {
		return nil
	}
	return &m.endorsements[m.refs[index].i]
}

func (m *model) letterOf(e *endorsement) *letterState {
	if e == nil || e.letter < 0 {
		return nil
	}
	return m.letters[e.letter]
}

// item is one entry on its way through an audit: decoded in parallel,
// applied in order, its signatures checked in parallel.
type item struct {
	entry     Entry
	rec       *pb.Record
	leaf      [32]byte
	decodeErr error
	// disclosure outcome, decided in parallel
	disc     discState
	discErr  error
	foldHash uint64
	// check runs the signature checks once the entry was applied.
	check func() *Violation
}

// decode decodes an entry and checks what needs no state: the leaf hash,
// the record's encoding and the served disclosure against the commitment.
func (it *item) decode() {
	it.leaf = leafHash(it.entry.Record)
	it.rec, it.decodeErr = records.Decode(it.entry.Record)
	if it.decodeErr != nil {
		return
	}
	e := it.rec.GetEndorsement()
	d := it.entry.Disclosure
	switch {
	case e == nil:
		it.disc = discNone
	case e.GetVisibility() != pb.Visibility_VISIBILITY_PUBLIC:
		it.disc = discNone
	case d != nil:
		if err := records.CheckDisclosure(e, d); err != nil {
			it.disc, it.discErr = discBad, err
		} else {
			it.disc = discServed
			it.foldHash = hashString(names.Skeleton(d.GetName()))
		}
	case it.entry.NoDisclosures:
		it.disc = discNotChecked
	case it.entry.Redacted:
		it.disc = discPending
	default:
		it.disc = discMissing
	}
}

// applier applies decoded entries to a model in index order: it enforces
// the rules that depend on the log's state, applies each record's effect,
// and prepares the signature checks. Effects never depend on signatures, so
// that replaying a mirror without checking them rebuilds the same model.
type applier struct {
	m          *model
	replay     bool
	roundStart uint64
	violations []Violation
	warnings   []Warning
	// refetch lists earlier endorsements redacted in this round, whose
	// disclosure must no longer be served.
	refetch []uint64
	// erase lists endorsements whose mirrored disclosure must be erased.
	erase []uint64
	// cur is the item being applied.
	cur *item
}

func (a *applier) violate(index uint64, rule Rule, format string, args ...any) {
	if a.replay {
		return
	}
	a.violations = append(a.violations, Violation{Index: index, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

func fieldViolation(index uint64, rule Rule, err error) *Violation {
	return &Violation{Index: index, Rule: rule, Message: err.Error()}
}

// apply applies the entry at the model's next index.
func (a *applier) apply(it *item, offset int64) {
	m := a.m
	index := uint64(len(m.refs))
	a.cur = it
	defer func() { a.cur = nil }()
	if it.decodeErr != nil {
		m.refs = append(m.refs, ref{kind: kindInvalid, i: -1})
		a.violate(index, RuleRecord, "not a valid record: %v", it.decodeErr)
		if it.entry.Disclosure != nil {
			a.violate(index, RulePrivateDisclosed, "a disclosure is served for an entry that is not an endorsement")
		}
		return
	}
	rec := it.rec
	a.checkRules(index, it)
	at := rec.GetAcceptedAt()
	if rec.GetEndorsement() == nil && it.entry.Disclosure != nil {
		a.violate(index, RulePrivateDisclosed, "a disclosure is served for a record that is not an endorsement")
	}
	switch k := rec.GetKind().(type) {
	case *pb.Record_Letter:
		m.refs = append(m.refs, ref{kind: kindLetter, i: -1, at: at})
		a.applyLetter(index, k.Letter)
	case *pb.Record_Endorsement:
		m.refs = append(m.refs, ref{kind: kindEndorsement, i: int32(len(m.endorsements)), at: at})
		a.applyEndorsement(index, k.Endorsement, it, offset)
	case *pb.Record_Withdrawal:
		m.refs = append(m.refs, ref{kind: kindWithdrawal, i: int32(len(m.actions)), at: at})
		w := k.Withdrawal
		a.applyAction(index, kindWithdrawal, w.GetTargetIndex(), w.GetReason(), w.GetAuthorisation(), it,
			func(t *pb.Endorsement, leaf []byte) error {
				_, err := records.CheckWithdrawal(m.origin, t, leaf, w)
				return err
			})
	case *pb.Record_Redaction:
		m.refs = append(m.refs, ref{kind: kindRedaction, i: int32(len(m.actions)), at: at})
		r := k.Redaction
		a.applyAction(index, kindRedaction, r.GetTargetIndex(), r.GetReason(), r.GetAuthorisation(), it,
			func(t *pb.Endorsement, leaf []byte) error {
				_, err := records.CheckRedaction(m.origin, t, leaf, r)
				return err
			})
	case *pb.Record_LetterStatus:
		m.refs = append(m.refs, ref{kind: kindStatus, i: int32(len(m.statuses)), at: at})
		a.applyStatus(index, k.LetterStatus, it)
	case *pb.Record_OrganiserChange:
		m.refs = append(m.refs, ref{kind: kindOrganiserChange, i: int32(len(m.keyChanges)), at: at})
		a.applyOrganiserChange(index, k.OrganiserChange)
	}
}

func (a *applier) applyLetter(index uint64, l *pb.Letter) {
	m := a.m
	if _, taken := m.byID[l.GetId()]; !taken {
		m.byID[l.GetId()] = int32(len(m.letters))
		m.refs[index].i = int32(len(m.letters))
		m.letters = append(m.letters, &letterState{index: index, letter: l, closedBy: -1, deliveredBy: -1,
			keys: l.GetOrganiserKeys(), keysChangedBy: -1})
	}
	if !a.replay {
		a.setCheck(index, func() *Violation {
			if err := records.CheckLetter(m.origin, l); err != nil {
				return fieldViolation(index, RuleLetter, err)
			}
			return nil
		})
	}
}

// setCheck sets the signature check of the item being applied.
func (a *applier) setCheck(index uint64, f func() *Violation) {
	if a.cur != nil {
		a.cur.check = f
	}
}

func (a *applier) applyEndorsement(index uint64, e *pb.Endorsement, it *item, offset int64) {
	m := a.m
	en := endorsement{
		index: index, letter: -1, visibility: e.GetVisibility(), verification: e.GetVerification(),
		supersedes: -1, withdrawnBy: -1, redactedBy: -1, supersededBy: -1, offset: offset,
		leaf: it.leaf, disc: it.disc, foldHash: it.foldHash,
	}
	copy(en.lock[:], e.GetWithdrawalLock())
	if s := e.GetSigner(); s != nil && len(s.GetPublicKey()) == ed25519.PublicKeySize {
		en.signerKey = bytes.Clone(s.GetPublicKey())
	}
	if it.disc == discServed {
		en.disclosure = it.entry.Disclosure
	}
	if it.disc == discBad {
		a.violate(index, RuleDisclosure, "the served disclosure is wrong: %v", it.discErr)
	}
	if e.GetVisibility() != pb.Visibility_VISIBILITY_PUBLIC && it.entry.Disclosure != nil {
		a.violate(index, RulePrivateDisclosed, "a disclosure is served for a private endorsement")
	}
	li, ok := m.byID[e.GetLetterId()]
	var ls *letterState
	if ok {
		ls = m.letters[li]
		en.letter = li
	}
	if e.Supersedes != nil {
		a.applySupersedes(index, e, &en, ls)
	}
	if _, seen := m.commitments[hash32(e.GetCommitment())]; !seen {
		m.commitments[hash32(e.GetCommitment())] = index
	}
	if _, seen := m.locks[en.lock]; !seen {
		m.locks[en.lock] = index
	}
	if en.signerKey != nil {
		m.signers[signerKeyOf(e.GetLetterId(), en.signerKey)] = index
	}
	m.endorsements = append(m.endorsements, en)
	if ls != nil {
		ls.endorsements = append(ls.endorsements, index)
		if !a.replay && en.disc == discServed {
			a.checkDuplicate(index, ls, &m.endorsements[len(m.endorsements)-1])
		}
	}
	if !a.replay && ls != nil {
		l := ls.letter
		a.setCheck(index, func() *Violation {
			if err := records.CheckEndorsement(m.origin, l, e); err != nil {
				return fieldViolation(index, RuleEndorsement, err)
			}
			return nil
		})
	}
}

// applySupersedes applies a correction to the model; the rules
// (checkRules) report one that breaks them.
func (a *applier) applySupersedes(index uint64, e *pb.Endorsement, en *endorsement, ls *letterState) {
	m := a.m
	ti := e.GetSupersedes()
	t := m.endorsementAt(ti)
	if ti >= index || t == nil || ls == nil || t.letter != en.letter || t.supersededBy >= 0 {
		return
	}
	en.supersedes = int64(ti)
	t.supersededBy = int64(index)
	a.freeSigner(t)
}

// freeSigner frees the signer key an endorsement held in its letter, once
// it is withdrawn, redacted or superseded.
func (a *applier) freeSigner(t *endorsement) {
	ls := a.m.letterOf(t)
	if t.signerKey == nil || ls == nil {
		return
	}
	k := signerKeyOf(ls.letter.GetId(), t.signerKey)
	if i, ok := a.m.signers[k]; ok && i == t.index {
		delete(a.m.signers, k)
	}
}

// checkDuplicate warns when a named endorsement repeats a name that still
// counts in its letter, after folding case, diacritics and spacing, or
// with look-alike characters (names.Skeleton).
func (a *applier) checkDuplicate(index uint64, ls *letterState, en *endorsement) {
	m := a.m
	if ls.folded == nil {
		ls.folded = map[uint64]uint64{}
		for _, i := range ls.endorsements[:len(ls.endorsements)-1] {
			o := m.endorsementAt(i)
			if o.disc == discServed && o.withdrawnBy < 0 && o.supersededBy < 0 {
				if _, seen := ls.folded[o.foldHash]; !seen {
					ls.folded[o.foldHash] = i
				}
			}
		}
	}
	if first, seen := ls.folded[en.foldHash]; seen && int64(first) != en.supersedes {
		o := m.endorsementAt(first)
		if o.disc == discServed && o.withdrawnBy < 0 && o.supersededBy < 0 && names.Skeleton(o.disclosure.GetName()) == names.Skeleton(en.disclosure.GetName()) {
			how := "looks like"
			if names.LookAlike(o.disclosure.GetName(), en.disclosure.GetName()) {
				how = "differs only by look-alike characters (such as letters of another script) from"
			}
			a.warnings = append(a.warnings, Warning{Index: index, Message: fmt.Sprintf(
				"probable duplicate in letter %q: %q %s %q at index %d", ls.letter.GetId(), en.disclosure.GetName(), how, o.disclosure.GetName(), first)})
			return
		}
	}
	ls.folded[en.foldHash] = index
}

// authority says who authorised a withdrawal or a redaction, for people:
// the signer (by key or by revealing the withdrawal secret) or an
// organiser key, by its fingerprint.
func authority(auth *pb.Authorisation, bySecret bool) string {
	switch by := auth.GetBy().(type) {
	case *pb.Authorisation_Signer:
		return "the signer's key"
	case *pb.Authorisation_WithdrawalSecret:
		if bySecret {
			return "the signer's withdrawal secret"
		}
		return "a withdrawal secret that does not open the lock"
	case *pb.Authorisation_Organiser:
		return "organiser key " + records.KeyFingerprint(by.Organiser.GetPublicKey())
	}
	return "nobody"
}

func (a *applier) applyAction(index uint64, kind uint8, ti uint64, reason pb.Reason, auth *pb.Authorisation, it *item,
	check func(t *pb.Endorsement, leaf []byte) error) {
	m := a.m
	rule := RuleWithdrawal
	if kind == kindRedaction {
		rule = RuleRedaction
	}
	act := action{kind: kind, targetIndex: ti, target: -1, reason: reason}
	t := m.endorsementAt(ti)
	if ti >= index || t == nil {
		m.actions = append(m.actions, act)
		return
	}
	act.target = m.refs[ti].i
	m.actions = append(m.actions, act)
	// The withdrawal secret needs no signature: whether it was revealed,
	// and so spent, is decided here.
	bySecret := false
	if s, ok := auth.GetBy().(*pb.Authorisation_WithdrawalSecret); ok && len(s.WithdrawalSecret) == records.SecretSize {
		bySecret = bytes.Equal(records.WithdrawalLock(s.WithdrawalSecret), t.lock[:])
	}
	if bySecret {
		t.secretSpent = true
	}
	a.freeSigner(t)
	switch kind {
	case kindWithdrawal:
		if t.withdrawnBy < 0 {
			t.withdrawnBy, t.withdrawReason, t.withdrawAuth = int64(index), reason, authority(auth, bySecret)
		}
	case kindRedaction:
		if t.redactedBy < 0 {
			t.redactedBy, t.redactReason, t.redactAuth = int64(index), reason, authority(auth, bySecret)
			if t.disc == discServed && ti >= a.roundStart && !a.replay {
				a.violate(ti, RuleRedactionIgnored, "its disclosure is still served, though it was redacted at index %d", index)
			}
			if t.disc == discServed || t.disc == discBad {
				a.erase = append(a.erase, ti)
			}
			if ti < a.roundStart && !a.replay {
				a.refetch = append(a.refetch, ti)
			}
			if t.visibility == pb.Visibility_VISIBILITY_PUBLIC {
				t.disc, t.disclosure = discErased, nil
			}
		}
	}
	if !a.replay {
		target := &pb.Endorsement{WithdrawalLock: t.lock[:]}
		if t.signerKey != nil {
			target.Signer = &pb.Signature{PublicKey: t.signerKey}
		}
		leaf := t.leaf[:]
		a.setCheck(index, func() *Violation {
			if err := check(target, leaf); err != nil {
				return fieldViolation(index, rule, err)
			}
			return nil
		})
	}
}

func (a *applier) applyStatus(index uint64, s *pb.LetterStatus, it *item) {
	m := a.m
	li, ok := m.byID[s.GetLetterId()]
	by := s.GetOrganiser().GetPublicKey()
	if !ok {
		m.statuses = append(m.statuses, statusRecord{letter: -1, status: s.GetStatus(), note: s.GetNote(), by: by})
		return
	}
	m.statuses = append(m.statuses, statusRecord{letter: li, status: s.GetStatus(), note: s.GetNote(), by: by})
	ls := m.letters[li]
	ls.statuses = append(ls.statuses, index)
	switch s.GetStatus() {
	case pb.Status_STATUS_CLOSED:
		if ls.closedBy < 0 {
			ls.closedBy = int64(index)
		}
	case pb.Status_STATUS_DELIVERED:
		if ls.deliveredBy < 0 {
			ls.deliveredBy = int64(index)
		}
	}
	if !a.replay {
		l := ls.letter
		a.setCheck(index, func() *Violation {
			if err := records.CheckStatus(m.origin, l, s); err != nil {
				return fieldViolation(index, RuleStatus, err)
			}
			return nil
		})
	}
}

// applyOrganiserChange applies an organiser change to its letter's keys
// when the change is possible: it names as its signer another key valid
// at that point, and adds a key neither valid nor revoked (up to the most
// a letter holds) or revokes a valid key other than the last. The rules
// (checkRules) report a change that is not; the signature check, one
// whose signature does not verify: the effect never depends on
// signatures, so that a replay without them rebuilds the same model.
func (a *applier) applyOrganiserChange(index uint64, c *pb.OrganiserChange) {
	m := a.m
	kc := keyChange{letter: -1, change: c.GetChange(), key: c.GetKey(), by: c.GetOrganiser().GetPublicKey()}
	li, ok := m.byID[c.GetLetterId()]
	if ok {
		kc.letter = li
		ls := m.letters[li]
		ls.keyChanges = append(ls.keyChanges, index)
		kc.effected = ls.changeKeys(c.GetChange(), c.GetKey(), kc.by)
		if kc.effected {
			ls.keysChangedBy = int64(index)
		}
	}
	m.keyChanges = append(m.keyChanges, kc)
	if !a.replay {
		a.setCheck(index, func() *Violation {
			if err := records.CheckOrganiserChange(m.origin, c); err != nil {
				return fieldViolation(index, RuleOrganiser, err)
			}
			return nil
		})
	}
}

// changeKeys adds or revokes key, in a change that names by as its
// signer, when the change is possible, and reports whether it was.
func (ls *letterState) changeKeys(change pb.KeyChange, key, by []byte) bool {
	holds := func(keys [][]byte, key []byte) bool {
		return slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) })
	}
	valid, revoked := holds(ls.keys, key), holds(ls.revoked, key)
	switch {
	case len(key) != ed25519.PublicKeySize || !holds(ls.keys, by) || bytes.Equal(by, key):
		return false
	case change == pb.KeyChange_KEY_CHANGE_ADD && !valid && !revoked && len(ls.keys) < records.MaxOrganiserKeys:
		ls.keys = append(slices.Clone(ls.keys), key)
	case change == pb.KeyChange_KEY_CHANGE_REVOKE && valid && len(ls.keys) > 1:
		ls.keys = slices.DeleteFunc(slices.Clone(ls.keys), func(k []byte) bool { return bytes.Equal(k, key) })
		ls.revoked = append(slices.Clone(ls.revoked), key)
	default:
		return false
	}
	return true
}

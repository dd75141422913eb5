package rules

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Ref points at a record of the log.
type Ref struct {
	// Index is the record's log index, or -1 when the state admitted the
	// record and the log has not given it an index yet (the server).
	Index int64
	// Seq is the state's own handle on the record (the server's admission
	// order); 0 where the state has none (the audit).
	Seq int64
}

// String returns "the record at N", or "an earlier record" while the index
// is not known.
func (r Ref) String() string {
	if r.Index < 0 {
		return "an earlier record"
	}
	return fmt.Sprintf("the record at %d", r.Index)
}

// Letter is a letter as the log before a record knows it.
type Letter struct {
	Ref    Ref
	Letter *pb.Letter
	// OrganiserKeys are the organiser keys valid at this point of the log:
	// those the letter lists, as organiser changes added and revoked them
	// since.
	OrganiserKeys [][]byte
	// Revoked are the keys organiser changes revoked: never valid again
	// for this letter.
	Revoked [][]byte
	// KeysChangedBy is the last organiser change of the letter, or nil.
	KeysChangedBy *Ref
	// Closed and Delivered are the status records that closed the letter
	// and first recorded its delivery, or nil.
	Closed, Delivered *Ref
}

// Endorsement is an endorsement as the log before a record knows it.
type Endorsement struct {
	Ref         Ref
	Endorsement *pb.Endorsement
	// LeafHash is the RFC 6962 leaf hash of its record.
	LeafHash []byte
	// WithdrawnBy, RedactedBy and SupersededBy are the records that did
	// so, or nil.
	WithdrawnBy, RedactedBy, SupersededBy *Ref
	// SecretSpent is true once its withdrawal secret was revealed.
	SecretSpent bool
}

// PersonKeyKind is a kind of [PersonKey].
type PersonKeyKind uint8

// The kinds of person key.
const (
	// PersonFields: the exact fields, lp(name) ‖ lp(affiliation) ‖
	// lp(country), canonical.
	PersonFields PersonKeyKind = iota + 1
	// PersonSigner: the signer's public key.
	PersonSigner
	// PersonIdempotency: the idempotency key the writer gave; a State
	// scopes it to the writer.
	PersonIdempotency
)

// PersonKey is one of the keys under which "the same person" is found in
// a letter. It may hold a name: a State that stores it stores a keyed hash
// of it, never the key itself.
type PersonKey struct {
	Kind  PersonKeyKind
	Value []byte
}

// State is the log before a record, as [Apply] reads it. Methods return
// nil (and no error) for what the log does not hold; an error means the
// state could not be read.
type State interface {
	// Letter returns the letter with this id.
	Letter(id string) (*Letter, error)
	// Endorsement returns the endorsement at a log index.
	Endorsement(index uint64) (*Endorsement, error)
	// Commitment and Lock return the record where this commitment or
	// withdrawal lock was accepted, withdrawn or not.
	Commitment(commitment []byte) (*Ref, error)
	Lock(lock []byte) (*Ref, error)
	// Person returns the endorsement of the letter that holds key and was
	// neither withdrawn, redacted nor superseded since. A state that does
	// not know keys of this kind returns nil.
	Person(letterID string, key PersonKey) (*Endorsement, error)
	// Tombstone returns the redaction that left a tombstone for key in
	// the letter. A state that keeps no tombstones returns nil.
	Tombstone(letterID string, key PersonKey) (*Ref, error)
	// Disclosure returns the disclosure of an endorsement when the state
	// keeps it (public and not redacted), or nil.
	Disclosure(e *Endorsement) (*pb.Disclosure, error)
	// Record returns the record at ref, or nil when the state does not
	// keep records (an earlier record then never counts as repeated
	// exactly).
	Record(ref Ref) (*pb.Record, error)
}

// Input is a record to apply, with what its writer said beside it.
type Input struct {
	// Record is the decoded record; its fields and signatures are checked
	// (see the package documentation).
	Record *pb.Record
	// Disclosure is an endorsement's disclosure, when known: the server
	// always has it, the audit has the public ones it was served.
	Disclosure *pb.Disclosure
	// IdempotencyKey is the writer's idempotency key, or empty.
	IdempotencyKey string
	// ReaddAfterRedaction is the writer's explicit request to add a person
	// whom a redaction removed from the letter.
	ReaddAfterRedaction bool
}

// Mark is what a record does to an earlier endorsement.
type Mark int

// The marks.
const (
	MarkNone Mark = iota
	MarkWithdrawn
	MarkRedacted
	MarkSuperseded
)

// NewEndorsement is what an endorsement adds to the state.
type NewEndorsement struct {
	// Commitment and Lock are accepted for good.
	Commitment, Lock []byte
	// PersonKeys are the keys it holds until it is withdrawn, redacted or
	// superseded.
	PersonKeys []PersonKey
}

// Change is what a record does to the state. The caller applies it.
type Change struct {
	// Letter is the letter a record names, or publishes.
	Letter *Letter
	// NewLetter is set for a letter record.
	NewLetter *pb.Letter
	// Endorsement is set for an endorsement record.
	Endorsement *NewEndorsement
	// Target is the endorsement a withdrawal, a redaction or a correction
	// acts on, and Mark what it does to it.
	Target *Endorsement
	Mark   Mark
	// SecretSpent is true when the record reveals Target's withdrawal
	// secret.
	SecretSpent bool
	// Tombstones, for a redaction, are the keys under which the same
	// person is refused in Letter from now on, unless a writer asks for
	// them explicitly.
	Tombstones []PersonKey
	// Status is set for a status record.
	Status pb.Status
	// KeyChange is set for an organiser change, with the Key it adds or
	// revokes, and the letter's OrganiserKeys and Revoked keys after it.
	KeyChange     pb.KeyChange
	Key           []byte
	OrganiserKeys [][]byte
	Revoked       [][]byte
}

// StateError is a rule of the log's state that a record breaks, such as
// an endorsement of a closed letter. The server answers it with
// FailedPrecondition.
type StateError struct {
	// Field is the dotted path of the field the rule is about, such as
	// "endorsement.letter_id".
	Field string
	// Rule says what the log's state forbids, such as "letter "x" is
	// closed".
	Rule string
}

func (e *StateError) Error() string { return e.Rule }

func stateError(field, format string, args ...any) *StateError {
	return &StateError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// FieldOf returns the field a rule broken is about: a
// [*records.FieldError]'s or a [*StateError]'s field, or that of an
// [*ExistsError]'s rule; "" for any other error.
func FieldOf(err error) string {
	var se *StateError
	if errors.As(err, &se) {
		return se.Field
	}
	if fe, ok := records.AsFieldError(err); ok {
		return fe.Field
	}
	return ""
}

// ExistsError reports a record about what the earlier record Of already
// settled: the same letter id, the same commitment or lock, the same
// target, the same person.
type ExistsError struct {
	// Of is the earlier record.
	Of Ref
	// Exact is true when the record repeats Of in every signed field but
	// the secrets-derived ones (commitment, lock) and those the server
	// sets (accepted_at): to the principal that wrote Of, the answer is
	// Of itself.
	Exact bool
	// Rule is the rule the record breaks unless it is an exact repeat by
	// the writer of Of. It names neither a person nor Of's index: the
	// server adds the index for the writer of Of only.
	Rule error
	// Refuse, when set, is what anyone but the writer of Of is told,
	// whatever Exact says: the letter is closed, and the lookup must tell
	// them nothing more.
	Refuse error
}

func (e *ExistsError) Error() string {
	if e.Exact {
		return "repeats " + e.Of.String()
	}
	return fmt.Sprintf("%v (conflicts with %v)", e.Rule, e.Of)
}

// Unwrap returns the rule broken.
func (e *ExistsError) Unwrap() error { return e.Rule }

// Apply applies one record to the state of the log before it. It returns
// what the record does, or the rule it breaks: a [*records.FieldError], a
// [*StateError] or an [*ExistsError]. Any other error is the State's.
func Apply(st State, in Input) (*Change, error) {
	switch k := in.Record.GetKind().(type) {
	case *pb.Record_Letter:
		return applyLetter(st, k.Letter)
	case *pb.Record_Endorsement:
		return applyEndorsement(st, in, k.Endorsement)
	case *pb.Record_Withdrawal:
		w := k.Withdrawal
		return applyAction(st, in.Record, MarkWithdrawn, w.GetTargetIndex(), w.GetAuthorisation())
	case *pb.Record_Redaction:
		r := k.Redaction
		return applyAction(st, in.Record, MarkRedacted, r.GetTargetIndex(), r.GetAuthorisation())
	case *pb.Record_LetterStatus:
		return applyStatus(st, in.Record, k.LetterStatus)
	case *pb.Record_OrganiserChange:
		return applyOrganiserChange(st, in.Record, k.OrganiserChange)
	}
	return nil, &records.FieldError{Field: "record", Rule: "must hold a letter, an endorsement, a withdrawal, a redaction, a status or an organiser change"}
}

// containsKey reports whether keys holds key.
func containsKey(keys [][]byte, key []byte) bool {
	for _, k := range keys {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}

// checkOrganiserKey checks that key, which made the organiser signature at
// field (such as "endorsement.organiser"), is an organiser key of the
// letter at this point of the log.
func checkOrganiserKey(lt *Letter, field string, key []byte) error {
	if containsKey(lt.OrganiserKeys, key) {
		return nil
	}
	if containsKey(lt.Revoked, key) {
		return &records.FieldError{Field: field + ".public_key", Rule: fmt.Sprintf(
			"the organiser key %s was revoked from letter %q: it signs nothing for the letter from then on", records.KeyFingerprint(key), lt.Letter.GetId())}
	}
	return records.NotOrganiserKey(field, lt.Letter.GetId())
}

func applyLetter(st State, l *pb.Letter) (*Change, error) {
	earlier, err := st.Letter(l.GetId())
	if err != nil {
		return nil, err
	}
	if earlier != nil {
		return nil, &ExistsError{
			Of:    earlier.Ref,
			Exact: proto.Equal(earlier.Letter, l),
			Rule:  &records.FieldError{Field: "letter.id", Rule: fmt.Sprintf("must be unique in the log; %q is taken by a letter with other content", l.GetId())},
		}
	}
	if r := l.GetRevises(); r != "" {
		revised, err := st.Letter(r)
		if err != nil {
			return nil, err
		}
		if revised == nil {
			return nil, &records.FieldError{Field: "letter.revises", Rule: "must name a letter in the log"}
		}
		if key := l.GetOrganiser().GetPublicKey(); !containsKey(revised.OrganiserKeys, key) {
			return nil, &records.FieldError{Field: "letter.organiser.public_key",
				Rule: fmt.Sprintf("must also be an organiser key of the revised letter %q, valid at this point", r)}
		}
	}
	return &Change{NewLetter: l, Letter: &Letter{Letter: l, OrganiserKeys: l.GetOrganiserKeys()}}, nil
}

func applyStatus(st State, rec *pb.Record, s *pb.LetterStatus) (*Change, error) {
	lt, err := st.Letter(s.GetLetterId())
	if err != nil {
		return nil, err
	}
	if lt == nil {
		return nil, &records.FieldError{Field: "status.letter_id", Rule: "must name a letter in the log"}
	}
	if err := checkOrganiserKey(lt, "status.organiser", s.GetOrganiser().GetPublicKey()); err != nil {
		return nil, err
	}
	var earlier *Ref
	switch s.GetStatus() {
	case pb.Status_STATUS_CLOSED:
		earlier = lt.Closed
	case pb.Status_STATUS_DELIVERED:
		earlier = lt.Delivered
	}
	if earlier != nil {
		exact, err := sameRecord(st, *earlier, rec)
		if err != nil {
			return nil, err
		}
		if exact || s.GetStatus() == pb.Status_STATUS_CLOSED {
			what := map[pb.Status]string{pb.Status_STATUS_CLOSED: "closed", pb.Status_STATUS_DELIVERED: "delivered"}[s.GetStatus()]
			return nil, &ExistsError{Of: *earlier, Exact: exact, Rule: stateError("status.status", "letter %q is already %s", s.GetLetterId(), what)}
		}
	}
	return &Change{Letter: lt, Status: s.GetStatus()}, nil
}

// sameRecord reports whether rec repeats the record at ref but for the
// time the server accepted it.
func sameRecord(st State, ref Ref, rec *pb.Record) (bool, error) {
	earlier, err := st.Record(ref)
	if err != nil || earlier == nil {
		return false, err
	}
	a, b := proto.CloneOf(earlier), proto.CloneOf(rec)
	a.AcceptedAt, b.AcceptedAt = 0, 0
	a.Version, b.Version = 0, 0
	return proto.Equal(a, b), nil
}

func applyEndorsement(st State, in Input, e *pb.Endorsement) (*Change, error) {
	lt, err := st.Letter(e.GetLetterId())
	if err != nil {
		return nil, err
	}
	if lt == nil {
		return nil, &records.FieldError{Field: "endorsement.letter_id", Rule: "must name a letter in the log"}
	}
	if o := e.GetOrganiser(); o != nil {
		if err := checkOrganiserKey(lt, "endorsement.organiser", o.GetPublicKey()); err != nil {
			return nil, err
		}
	}
	// The letter's state first: a closed letter tells nobody but the
	// writer of an exact repeat whether the record exists.
	if lt.Closed != nil {
		closed := stateError("endorsement.letter_id", "letter %q is closed", e.GetLetterId())
		ref, exact, _, err := repeatOf(st, e)
		if err != nil || ref == nil || !exact {
			return nil, firstError(err, closed)
		}
		return nil, &ExistsError{Of: *ref, Exact: true, Rule: closed, Refuse: closed}
	}
	if err := checkUnique(st, e); err != nil {
		return nil, err
	}
	ch := &Change{Letter: lt, Endorsement: &NewEndorsement{Commitment: e.GetCommitment(), Lock: e.GetWithdrawalLock()}}
	if e.Supersedes != nil {
		if ch.Target, err = st.Endorsement(e.GetSupersedes()); err != nil {
			return nil, err
		}
		ch.Mark = MarkSuperseded
	}
	ch.Endorsement.PersonKeys = PersonKeysOf(e, in.Disclosure, in.IdempotencyKey)
	// The same person before the correction's own rules: the exact repeat
	// of a correction is answered, not refused as correcting twice.
	if err := checkPerson(st, e, ch); err != nil {
		return nil, err
	}
	if e.Supersedes != nil {
		if err := checkSupersedes(ch.Target, e); err != nil {
			return nil, err
		}
	}
	if !in.ReaddAfterRedaction {
		for _, k := range tombstoneKeys(e, in.Disclosure, in.IdempotencyKey) {
			ref, err := st.Tombstone(e.GetLetterId(), k)
			if err != nil {
				return nil, err
			}
			if ref != nil {
				return nil, &records.FieldError{Field: "endorsement", Rule: "the same person (the same " + k.Kind.String() +
					") was redacted from this letter: adding them again needs an explicit readd_after_redaction"}
			}
		}
	}
	return ch, nil
}

// checkPerson refuses an endorsement of a person who already has a live
// endorsement in the letter, but for the one it corrects.
func checkPerson(st State, e *pb.Endorsement, ch *Change) error {
	for _, k := range ch.Endorsement.PersonKeys {
		earlier, err := st.Person(e.GetLetterId(), k)
		if err != nil {
			return err
		}
		if earlier == nil || ch.Target != nil && earlier.Ref == ch.Target.Ref {
			// A correction holds the keys of the endorsement it corrects.
			continue
		}
		return &ExistsError{
			Of:    earlier.Ref,
			Exact: SameEndorsement(earlier.Endorsement, e),
			Rule: &records.FieldError{Field: "endorsement", Rule: "the same person (the same " + k.Kind.String() +
				") already endorsed this letter with other fields: a repeat must be exact (visibility, verification, signer key, supersedes), or withdraw the earlier endorsement first"},
		}
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkUnique checks that an endorsement's commitment and lock were never
// accepted before.
func checkUnique(st State, e *pb.Endorsement) error {
	ref, exact, withdrawn, err := repeatOf(st, e)
	if err != nil {
		return err
	}
	if ref != nil {
		var rule error = &records.FieldError{Field: "endorsement.commitment",
			Rule: "must be unique in the log: a commitment is accepted once, withdrawn or not (a new endorsement needs a fresh salt)"}
		if withdrawn {
			rule = stateError("endorsement.commitment", "an endorsement with this commitment was withdrawn: endorsing again needs fresh secrets")
		}
		return &ExistsError{Of: *ref, Exact: exact, Rule: rule}
	}
	ref, err = st.Lock(e.GetWithdrawalLock())
	if err != nil {
		return err
	}
	if ref != nil {
		return &ExistsError{Of: *ref, Rule: &records.FieldError{Field: "endorsement.withdrawal_lock",
			Rule: "must be unique in the log: a withdrawal lock is accepted once, withdrawn or not (choose a new withdrawal secret)"}}
	}
	return nil
}

// repeatOf returns the endorsement accepted with e's commitment, if any,
// whether e repeats it exactly, and whether it was withdrawn. A withdrawn
// endorsement is never repeated exactly: whoever sends it again (a replay
// of the bytes anyone can read) is refused, and nothing is appended.
func repeatOf(st State, e *pb.Endorsement) (ref *Ref, exact, withdrawn bool, err error) {
	ref, err = st.Commitment(e.GetCommitment())
	if err != nil || ref == nil {
		return nil, false, false, err
	}
	if exact, err = sameRecord(st, *ref, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e}}); err != nil {
		return nil, false, false, err
	}
	if ref.Index >= 0 {
		t, err := st.Endorsement(uint64(ref.Index))
		if err != nil {
			return nil, false, false, err
		}
		withdrawn = t != nil && t.WithdrawnBy != nil
	}
	return ref, exact && !withdrawn, withdrawn, nil
}

// checkSupersedes checks that the correction e may supersede t.
func checkSupersedes(t *Endorsement, e *pb.Endorsement) error {
	const field = "endorsement.supersedes"
	index := e.GetSupersedes()
	switch {
	case t == nil:
		return &records.FieldError{Field: field, Rule: "must be the index of an earlier endorsement"}
	case t.Endorsement.GetLetterId() != e.GetLetterId():
		return &records.FieldError{Field: field, Rule: "must be an endorsement of the same letter"}
	case t.WithdrawnBy != nil:
		return stateError(field, "the endorsement at %d is withdrawn", index)
	case t.SupersededBy != nil:
		return stateError(field, "the endorsement at %d was already superseded", index)
	case t.Endorsement.GetSigner() != nil && !bytes.Equal(t.Endorsement.GetSigner().GetPublicKey(), e.GetSigner().GetPublicKey()):
		return &records.FieldError{Field: "endorsement.signer", Rule: "must be signed by the signer key of the superseded endorsement"}
	}
	return nil
}

// applyAction applies a withdrawal or a redaction (mark) of the
// endorsement at index.
func applyAction(st State, rec *pb.Record, mark Mark, index uint64, auth *pb.Authorisation) (*Change, error) {
	name := "withdrawal"
	if mark == MarkRedacted {
		name = "redaction"
	}
	t, err := st.Endorsement(index)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, &records.FieldError{Field: name + ".target_index", Rule: "must be the index of an earlier endorsement"}
	}
	lt, err := st.Letter(t.Endorsement.GetLetterId())
	if err != nil {
		return nil, err
	}
	if lt == nil {
		return nil, fmt.Errorf("rules: the endorsement at %d names letter %q, which the state does not hold", index, t.Endorsement.GetLetterId())
	}
	if o, ok := auth.GetBy().(*pb.Authorisation_Organiser); ok {
		if err := checkOrganiserKey(lt, name+".authorisation.organiser", o.Organiser.GetPublicKey()); err != nil {
			return nil, err
		}
	}
	bySecret := false
	if s, ok := auth.GetBy().(*pb.Authorisation_WithdrawalSecret); ok && len(s.WithdrawalSecret) == records.SecretSize {
		bySecret = bytes.Equal(records.WithdrawalLock(s.WithdrawalSecret), t.Endorsement.GetWithdrawalLock())
	}
	var done *Ref
	switch mark {
	case MarkWithdrawn:
		done = t.WithdrawnBy
	case MarkRedacted:
		done = t.RedactedBy
	}
	if done != nil {
		exact, err := sameRecord(st, *done, rec)
		if err != nil {
			return nil, err
		}
		return nil, &ExistsError{Of: *done, Exact: exact, Rule: stateError(name+".target_index", "the endorsement at %d is already %s", index, map[Mark]string{MarkWithdrawn: "withdrawn", MarkRedacted: "redacted"}[mark])}
	}
	switch {
	case mark == MarkWithdrawn && t.SupersededBy != nil:
		return nil, stateError(name+".target_index", "the endorsement at %d was superseded by a correction: withdraw the correction", index)
	case mark == MarkWithdrawn && bySecret && t.SecretSpent:
		return nil, stateError(name+".authorisation.withdrawal_secret", "the withdrawal secret of the endorsement at %d was already revealed and is spent", index)
	case mark == MarkRedacted && t.Endorsement.GetVisibility() != pb.Visibility_VISIBILITY_PUBLIC:
		return nil, stateError(name+".target_index", "the endorsement at %d is private: there is no disclosure to redact", index)
	}
	ch := &Change{Letter: lt, Target: t, Mark: mark, SecretSpent: bySecret}
	if mark == MarkRedacted {
		d, err := st.Disclosure(t)
		if err != nil {
			return nil, err
		}
		ch.Tombstones = tombstoneKeys(t.Endorsement, d, "")
	}
	return ch, nil
}

// PersonKeysOf returns the keys an endorsement holds in its letter
// (DESIGN.md §6): the idempotency key when the writer gave one; otherwise
// the signer key of a signer-signed endorsement; otherwise the exact fields
// of the disclosure, when known. A signer key is always one of them.
func PersonKeysOf(e *pb.Endorsement, d *pb.Disclosure, idempotencyKey string) []PersonKey {
	var keys []PersonKey
	signer := e.GetSigner()
	switch {
	case idempotencyKey != "":
		keys = append(keys, PersonKey{Kind: PersonIdempotency, Value: []byte(idempotencyKey)})
	case signer == nil && d != nil:
		keys = append(keys, fieldsKey(d))
	}
	if signer != nil {
		keys = append(keys, PersonKey{Kind: PersonSigner, Value: signer.GetPublicKey()})
	}
	return keys
}

// tombstoneKeys are the keys under which a redaction refuses the same
// person again: the exact fields (whatever idempotency key comes with them:
// a namesake needs the explicit request too), the signer key and the
// idempotency key.
func tombstoneKeys(e *pb.Endorsement, d *pb.Disclosure, idempotencyKey string) []PersonKey {
	var keys []PersonKey
	if d != nil {
		keys = append(keys, fieldsKey(d))
	}
	if s := e.GetSigner(); s != nil {
		keys = append(keys, PersonKey{Kind: PersonSigner, Value: s.GetPublicKey()})
	}
	if idempotencyKey != "" {
		keys = append(keys, PersonKey{Kind: PersonIdempotency, Value: []byte(idempotencyKey)})
	}
	return keys
}

func fieldsKey(d *pb.Disclosure) PersonKey {
	var b []byte
	for _, s := range []string{d.GetName(), d.GetAffiliation(), d.GetCountry()} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return PersonKey{Kind: PersonFields, Value: b}
}

// String names the kind for an error: "fields", "signer key",
// "idempotency key".
func (k PersonKeyKind) String() string {
	switch k {
	case PersonFields:
		return "name, affiliation and country"
	case PersonSigner:
		return "signer key"
	case PersonIdempotency:
		return "idempotency key"
	}
	return "person key"
}

// SameEndorsement reports whether two endorsements are equal in every
// field but the secrets-derived ones (commitment and withdrawal lock) and
// the signatures over them: the letter and its digest, verification,
// visibility, supersedes, whether a signer signed and with which key, and
// whether an organiser signed.
func SameEndorsement(a, b *pb.Endorsement) bool {
	return EndorsementDifference(a, b) == ""
}

// EndorsementDifference names the first field, other than the
// secrets-derived ones, in which two endorsements differ (see
// [SameEndorsement]), or returns "" when there is none.
func EndorsementDifference(a, b *pb.Endorsement) string {
	switch {
	case a.GetLetterId() != b.GetLetterId():
		return "endorsement.letter_id"
	case !bytes.Equal(a.GetLetterDigest(), b.GetLetterDigest()):
		return "endorsement.letter_digest"
	case a.GetVerification() != b.GetVerification():
		return "endorsement.verification"
	case a.GetVisibility() != b.GetVisibility():
		return "endorsement.visibility"
	case (a.Supersedes == nil) != (b.Supersedes == nil) || a.GetSupersedes() != b.GetSupersedes():
		return "endorsement.supersedes"
	case (a.GetSigner() == nil) != (b.GetSigner() == nil) || !bytes.Equal(a.GetSigner().GetPublicKey(), b.GetSigner().GetPublicKey()):
		return "endorsement.signer"
	case (a.GetOrganiser() == nil) != (b.GetOrganiser() == nil):
		return "endorsement.organiser"
	}
	return ""
}

// applyOrganiserChange applies an organiser change: signed by a key valid
// for the letter at this point, it adds a key that is neither valid nor
// revoked (up to records.MaxOrganiserKeys at once), or revokes a valid key
// that is not the letter's last. The letter may be closed: its organisers
// still act for it.
func applyOrganiserChange(st State, rec *pb.Record, c *pb.OrganiserChange) (*Change, error) {
	lt, err := st.Letter(c.GetLetterId())
	if err != nil {
		return nil, err
	}
	if lt == nil {
		return nil, &records.FieldError{Field: "organiser_change.letter_id", Rule: "must name a letter in the log"}
	}
	if err := checkOrganiserKey(lt, "organiser_change.organiser", c.GetOrganiser().GetPublicKey()); err != nil {
		return nil, err
	}
	id, key := c.GetLetterId(), c.GetKey()
	valid, revoked := containsKey(lt.OrganiserKeys, key), containsKey(lt.Revoked, key)
	ch := &Change{Letter: lt, KeyChange: c.GetChange(), Key: key}
	var rule error
	switch c.GetChange() {
	case pb.KeyChange_KEY_CHANGE_ADD:
		switch {
		case valid:
			rule = stateError("organiser_change.key", "the key %s is already an organiser key of letter %q", records.KeyFingerprint(key), id)
		case revoked:
			rule = &records.FieldError{Field: "organiser_change.key", Rule: fmt.Sprintf(
				"the key %s was revoked from letter %q and is never valid for it again: add a new key", records.KeyFingerprint(key), id)}
		case len(lt.OrganiserKeys) >= records.MaxOrganiserKeys:
			return nil, stateError("organiser_change.key", "letter %q has %d organiser keys, the most it may hold at once: revoke one first", id, len(lt.OrganiserKeys))
		}
		ch.OrganiserKeys = append(slices.Clone(lt.OrganiserKeys), key)
		ch.Revoked = lt.Revoked
	case pb.KeyChange_KEY_CHANGE_REVOKE:
		switch {
		case revoked:
			rule = stateError("organiser_change.key", "the key %s is already revoked from letter %q", records.KeyFingerprint(key), id)
		case !valid:
			rule = &records.FieldError{Field: "organiser_change.key", Rule: fmt.Sprintf("must be an organiser key of letter %q", id)}
		case len(lt.OrganiserKeys) == 1:
			return nil, stateError("organiser_change.key", "the key %s is the last organiser key of letter %q: a letter always keeps one; add another first", records.KeyFingerprint(key), id)
		}
		ch.OrganiserKeys = slices.DeleteFunc(slices.Clone(lt.OrganiserKeys), func(k []byte) bool { return bytes.Equal(k, key) })
		ch.Revoked = append(slices.Clone(lt.Revoked), key)
	default:
		return nil, &records.FieldError{Field: "organiser_change.change", Rule: "must be add or revoke"}
	}
	if rule == nil {
		return ch, nil
	}
	// The writer's retry of the last change is answered with it.
	if lt.KeysChangedBy != nil {
		exact, err := sameRecord(st, *lt.KeysChangedBy, rec)
		if err != nil {
			return nil, err
		}
		if exact {
			return nil, &ExistsError{Of: *lt.KeysChangedBy, Exact: true, Rule: rule}
		}
	}
	return nil, rule
}

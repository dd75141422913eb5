package records

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Version is the record format version this package reads and writes.
const Version = 1

// ErrNotCanonical is wrapped by [Decode] when a record's bytes are not the
// deterministic encoding of the record they hold.
var ErrNotCanonical = errors.New("record is not canonically encoded")

// Encode returns the deterministic protobuf encoding of r: the bytes the
// server stores in the log.
func Encode(r *pb.Record) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(r)
}

// Decode parses the bytes of one leaf. It fails if they are not a version 1
// record holding exactly one kind, if they carry unknown fields, or if they
// are not the deterministic encoding of the record ([ErrNotCanonical]): a
// leaf has exactly one meaning.
func Decode(b []byte) (*pb.Record, error) {
	r := new(pb.Record)
	if err := proto.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if r.GetVersion() != Version {
		return nil, fmt.Errorf("decode record: version %d, want %d", r.GetVersion(), Version)
	}
	if r.GetKind() == nil {
		return nil, errors.New("decode record: no kind set")
	}
	if HasUnknownFields(r) {
		return nil, errors.New("decode record: unknown fields")
	}
	again, err := Encode(r)
	if err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if !bytes.Equal(again, b) {
		return nil, ErrNotCanonical
	}
	return r, nil
}

// HasUnknownFields reports whether m or any message inside it holds fields
// this version of the format does not know. The server refuses them rather
// than store what it cannot check.
func HasUnknownFields(m proto.Message) bool {
	return hasUnknown(m.ProtoReflect())
}

func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	// Only message fields can hold more unknown fields: the others are
	// skipped without reading their values.
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Message() == nil || fd.IsMap() || !m.Has(fd) {
			continue
		}
		if !fd.IsList() {
			if hasUnknown(m.Get(fd).Message()) {
				return true
			}
			continue
		}
		l := m.Get(fd).List()
		for j := range l.Len() {
			if hasUnknown(l.Get(j).Message()) {
				return true
			}
		}
	}
	return false
}

func checkHash(field string, b []byte) error {
	if len(b) != HashSize {
		return fieldError(field, fmt.Sprintf("must be %d bytes, has %d", HashSize, len(b)))
	}
	return nil
}

// IsOrganiserKey reports whether key is one of l's organiser keys.
func IsOrganiserKey(l *pb.Letter, key []byte) bool {
	for _, k := range l.GetOrganiserKeys() {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}

// NotOrganiserKey returns the error of an organiser signature (field, such
// as "endorsement.organiser") by a key that is not an organiser key of
// letter id.
func NotOrganiserKey(field, id string) *FieldError {
	return fieldError(field+".public_key", fmt.Sprintf("must be one of the organiser keys of letter %q", id))
}

// CheckLetter checks a letter against the rules of §3: its fields, its
// digest, its keys and its organiser's signature, by one of the keys it
// lists. That a revised letter exists, and that the signing key is valid
// for it too, are rules of the log's state (rules.Apply).
func CheckLetter(origin string, l *pb.Letter) error {
	if l == nil {
		return fieldError("letter", "is required")
	}
	if err := CheckLetterID("letter.id", l.GetId()); err != nil {
		return err
	}
	if err := CheckField("letter.title", l.GetTitle(), true, MaxTitleLength); err != nil {
		return err
	}
	if err := CheckText("letter.text", l.GetText()); err != nil {
		return err
	}
	if err := checkHash("letter.text_digest", l.GetTextDigest()); err != nil {
		return err
	}
	if !bytes.Equal(l.GetTextDigest(), TextDigest(l.GetText())) {
		return fieldError("letter.text_digest", "must be the SHA-256 of letter.text")
	}
	if err := CheckField("letter.language", l.GetLanguage(), false, MaxLanguageLength); err != nil {
		return err
	}
	if p := l.GetPolicy(); p != pb.Policy_POLICY_CURATED && p != pb.Policy_POLICY_OPEN {
		return fieldError("letter.policy", "must be curated or open")
	}
	keys := l.GetOrganiserKeys()
	if len(keys) == 0 || len(keys) > MaxOrganiserKeys {
		return fieldError("letter.organiser_keys", fmt.Sprintf("must list 1 to %d keys", MaxOrganiserKeys))
	}
	for i, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return fieldError(fmt.Sprintf("letter.organiser_keys[%d]", i), "must be a 32-byte Ed25519 public key")
		}
		for _, j := range keys[:i] {
			if bytes.Equal(j, k) {
				return fieldError(fmt.Sprintf("letter.organiser_keys[%d]", i), "must not repeat a key")
			}
		}
	}
	if l.GetRevises() != "" {
		if err := CheckLetterID("letter.revises", l.GetRevises()); err != nil {
			return err
		}
		if l.GetRevises() == l.GetId() {
			return fieldError("letter.revises", "must name another letter")
		}
	}
	if err := VerifySignature("letter.organiser", l.GetOrganiser(), TagLetter, LetterStatement(origin, l)); err != nil {
		return err
	}
	if !IsOrganiserKey(l, l.GetOrganiser().GetPublicKey()) {
		return NotOrganiserKey("letter.organiser", l.GetId())
	}
	return nil
}

// CheckEndorsement checks an endorsement of letter l: the digest, the sizes
// of the commitment and lock, the enumerations, and the signatures the
// letter's policy requires. The state-dependent rules (an open letter,
// supersedes, an organiser key valid for the letter at that point) are the
// caller's (rules.Apply).
func CheckEndorsement(origin string, l *pb.Letter, e *pb.Endorsement) error {
	if e == nil {
		return fieldError("endorsement", "is required")
	}
	if err := CheckLetterID("endorsement.letter_id", e.GetLetterId()); err != nil {
		return err
	}
	if e.GetLetterId() != l.GetId() {
		return fieldError("endorsement.letter_id", "must name the endorsed letter")
	}
	if err := checkHash("endorsement.letter_digest", e.GetLetterDigest()); err != nil {
		return err
	}
	if !bytes.Equal(e.GetLetterDigest(), l.GetTextDigest()) {
		return fieldError("endorsement.letter_digest", fmt.Sprintf("must equal the text digest of letter %q", l.GetId()))
	}
	if err := checkHash("endorsement.commitment", e.GetCommitment()); err != nil {
		return err
	}
	if err := checkHash("endorsement.withdrawal_lock", e.GetWithdrawalLock()); err != nil {
		return err
	}
	if v := e.GetVerification(); v < pb.Verification_VERIFICATION_NONE || v > pb.Verification_VERIFICATION_SIGNER_KEY {
		return fieldError("endorsement.verification", "must be none, email, phone, in_person, document or signer_key")
	}
	if v := e.GetVisibility(); v != pb.Visibility_VISIBILITY_PUBLIC && v != pb.Visibility_VISIBILITY_PRIVATE {
		return fieldError("endorsement.visibility", "must be public or private")
	}
	if e.Supersedes != nil && e.GetSupersedes() == ^uint64(0) {
		return fieldError("endorsement.supersedes", "must be the index of an earlier endorsement")
	}
	statement := EndorsementStatement(origin, e)
	switch {
	case l.GetPolicy() == pb.Policy_POLICY_CURATED && e.GetOrganiser() == nil:
		return fieldError("endorsement.organiser", "is required in a curated letter")
	case l.GetPolicy() == pb.Policy_POLICY_OPEN && e.GetSigner() == nil:
		return fieldError("endorsement.signer", "is required in an open letter")
	case e.GetVerification() == pb.Verification_VERIFICATION_SIGNER_KEY && e.GetSigner() == nil:
		return fieldError("endorsement.signer", "is required when verification is signer_key")
	}
	if e.GetSigner() != nil {
		if err := VerifySignature("endorsement.signer", e.GetSigner(), TagSigner, statement); err != nil {
			return err
		}
	}
	if e.GetOrganiser() != nil {
		if err := VerifySignature("endorsement.organiser", e.GetOrganiser(), TagOrganiser, statement); err != nil {
			return err
		}
	}
	return nil
}

// CheckDisclosure checks that d obeys the rules on names and opens e's
// commitment.
func CheckDisclosure(e *pb.Endorsement, d *pb.Disclosure) error {
	if d == nil {
		return fieldError("disclosure", "is required")
	}
	if len(d.GetSalt()) != SaltSize {
		return fieldError("disclosure.salt", fmt.Sprintf("must be %d bytes, has %d", SaltSize, len(d.GetSalt())))
	}
	f := FieldsOf(d)
	if err := CheckFields("disclosure", f); err != nil {
		return err
	}
	if !bytes.Equal(Commitment(d.GetSalt(), f), e.GetCommitment()) {
		return fieldError("disclosure", "must open endorsement.commitment")
	}
	return nil
}

// Authority says who authorised a withdrawal or a redaction.
type Authority int

// The authorities of an action.
const (
	AuthorityNone Authority = iota
	// AuthoritySigner is a signature by the target's signer key.
	AuthoritySigner
	// AuthoritySecret is the target's revealed withdrawal secret.
	AuthoritySecret
	// AuthorityOrganiser is a signature by one of the letter's organiser
	// keys.
	AuthorityOrganiser
)

// String names the authority.
func (a Authority) String() string {
	switch a {
	case AuthoritySigner:
		return "signer"
	case AuthoritySecret:
		return "withdrawal secret"
	case AuthorityOrganiser:
		return "organiser"
	}
	return "none"
}

// CheckWithdrawal checks a withdrawal of target, an endorsement whose
// record has targetLeafHash, and returns who authorised it. An organiser's
// signature is verified against the key it names; that the key was valid
// for the target's letter at that point is a rule of the log's state
// (rules.Apply).
func CheckWithdrawal(origin string, target *pb.Endorsement, targetLeafHash []byte, w *pb.Withdrawal) (Authority, error) {
	if w == nil {
		return AuthorityNone, fieldError("withdrawal", "is required")
	}
	switch w.GetReason() {
	case pb.Reason_REASON_SIGNER_REQUEST, pb.Reason_REASON_NOT_SIGNED, pb.Reason_REASON_DUPLICATE, pb.Reason_REASON_ORGANISER_ERROR:
	default:
		return AuthorityNone, fieldError("withdrawal.reason", "must be signer_request, not_signed, duplicate or organiser_error")
	}
	return checkAction(origin, "withdrawal", target, targetLeafHash, w.GetTargetLeafHash(), w.GetAuthorisation(), TagWithdraw, WithdrawalStatement(origin, w))
}

// CheckRedaction checks a redaction of target, an endorsement whose record
// has targetLeafHash, and returns who authorised it, as [CheckWithdrawal]
// does.
func CheckRedaction(origin string, target *pb.Endorsement, targetLeafHash []byte, r *pb.Redaction) (Authority, error) {
	if r == nil {
		return AuthorityNone, fieldError("redaction", "is required")
	}
	switch r.GetReason() {
	case pb.Reason_REASON_SIGNER_REQUEST, pb.Reason_REASON_SAFETY, pb.Reason_REASON_LEGAL:
	default:
		return AuthorityNone, fieldError("redaction.reason", "must be signer_request, safety or legal")
	}
	return checkAction(origin, "redaction", target, targetLeafHash, r.GetTargetLeafHash(), r.GetAuthorisation(), TagRedact, RedactionStatement(origin, r))
}

func checkAction(origin, name string, target *pb.Endorsement, targetLeafHash, claimedLeafHash []byte, a *pb.Authorisation, tag string, statement []byte) (Authority, error) {
	if err := checkHash(name+".target_leaf_hash", claimedLeafHash); err != nil {
		return AuthorityNone, err
	}
	if !bytes.Equal(claimedLeafHash, targetLeafHash) {
		return AuthorityNone, fieldError(name+".target_leaf_hash", "must be the leaf hash of the endorsement at target_index")
	}
	field := name + ".authorisation"
	switch by := a.GetBy().(type) {
	case *pb.Authorisation_Signer:
		if target.GetSigner() == nil {
			return AuthorityNone, fieldError(field+".signer", "is only possible for an endorsement signed by its signer")
		}
		if !bytes.Equal(by.Signer.GetPublicKey(), target.GetSigner().GetPublicKey()) {
			return AuthorityNone, fieldError(field+".signer.public_key", "must be the signer key of the target endorsement")
		}
		if err := VerifySignature(field+".signer", by.Signer, tag, statement); err != nil {
			return AuthorityNone, err
		}
		return AuthoritySigner, nil
	case *pb.Authorisation_WithdrawalSecret:
		if len(by.WithdrawalSecret) != SecretSize {
			return AuthorityNone, fieldError(field+".withdrawal_secret", fmt.Sprintf("must be %d bytes", SecretSize))
		}
		if !bytes.Equal(WithdrawalLock(by.WithdrawalSecret), target.GetWithdrawalLock()) {
			return AuthorityNone, fieldError(field+".withdrawal_secret", "must open the withdrawal lock of the target endorsement")
		}
		return AuthoritySecret, nil
	case *pb.Authorisation_Organiser:
		if err := VerifySignature(field+".organiser", by.Organiser, tag, statement); err != nil {
			return AuthorityNone, err
		}
		return AuthorityOrganiser, nil
	}
	return AuthorityNone, fieldError(field, "must hold a signer signature, a withdrawal secret or an organiser signature")
}

// CheckStatus checks a status change of letter l. The organiser's
// signature is verified against the key it names; that the key was valid
// for the letter at that point is a rule of the log's state (rules.Apply).
func CheckStatus(origin string, l *pb.Letter, s *pb.LetterStatus) error {
	if s == nil {
		return fieldError("status", "is required")
	}
	if err := CheckLetterID("status.letter_id", s.GetLetterId()); err != nil {
		return err
	}
	if s.GetLetterId() != l.GetId() {
		return fieldError("status.letter_id", "must name the letter")
	}
	if st := s.GetStatus(); st != pb.Status_STATUS_CLOSED && st != pb.Status_STATUS_DELIVERED {
		return fieldError("status.status", "must be closed or delivered")
	}
	if err := CheckField("status.note", s.GetNote(), false, MaxNoteLength); err != nil {
		return err
	}
	return VerifySignature("status.organiser", s.GetOrganiser(), TagStatus, StatusStatement(origin, s))
}

// CheckOrganiserChange checks an organiser change on its own: the letter
// id, the change, the key, and the signature, by another key than the one
// changed. Whether the letter exists, whether the signing key is valid for
// it at that point, and whether the change is possible (a key added once,
// revoked once, never the last one) are rules of the log's state
// (rules.Apply).
func CheckOrganiserChange(origin string, c *pb.OrganiserChange) error {
	if c == nil {
		return fieldError("organiser_change", "is required")
	}
	if err := CheckLetterID("organiser_change.letter_id", c.GetLetterId()); err != nil {
		return err
	}
	if ch := c.GetChange(); ch != pb.KeyChange_KEY_CHANGE_ADD && ch != pb.KeyChange_KEY_CHANGE_REVOKE {
		return fieldError("organiser_change.change", "must be add or revoke")
	}
	if len(c.GetKey()) != ed25519.PublicKeySize {
		return fieldError("organiser_change.key", "must be a 32-byte Ed25519 public key")
	}
	if err := VerifySignature("organiser_change.organiser", c.GetOrganiser(), TagOrganiserChange, OrganiserChangeStatement(origin, c)); err != nil {
		return err
	}
	if bytes.Equal(c.GetOrganiser().GetPublicKey(), c.GetKey()) {
		return fieldError("organiser_change.organiser.public_key", "must be another organiser key than the one added or revoked")
	}
	return nil
}

package records

import (
	"crypto/sha256"
	"encoding/binary"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Domain separation tags. Each hash and signature of the format starts with
// one of them, so that no byte string means two things.
const (
	TagCommitment      = "undersigned/v1/commitment\n"
	TagWithdrawalLock  = "undersigned/v1/withdrawal-lock\n"
	TagSigner          = "undersigned/v1/signer\n"
	TagOrganiser       = "undersigned/v1/organiser\n"
	TagWithdraw        = "undersigned/v1/withdraw\n"
	TagRedact          = "undersigned/v1/redact\n"
	TagLetter          = "undersigned/v1/letter\n"
	TagStatus          = "undersigned/v1/status\n"
	TagOrganiserChange = "undersigned/v1/organiser-change\n"
)

// Sizes of the fixed-length values of the format.
const (
	// SaltSize is the size of a disclosure's salt.
	SaltSize = 32
	// SecretSize is the size of a withdrawal secret.
	SecretSize = 32
	// HashSize is the size of a SHA-256 digest, a commitment, a lock or a
	// leaf hash.
	HashSize = sha256.Size
)

// The kinds of an action statement W.
const (
	// ActionWithdraw is u8(kind) of a withdrawal.
	ActionWithdraw = 1
	// ActionRedact is u8(kind) of a redaction.
	ActionRedact = 2
)

// appendLP appends lp(x): the 4-byte big-endian length of x, then x.
func appendLP(b []byte, x []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
	return append(b, x...)
}

func appendLPString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Fields are the clear-text fields of a disclosure, in canonical form (see
// [CanonicalField]).
type Fields struct {
	Name        string
	Affiliation string
	Country     string
}

// FieldsOf returns the fields of a disclosure.
func FieldsOf(d *pb.Disclosure) Fields {
	return Fields{Name: d.GetName(), Affiliation: d.GetAffiliation(), Country: d.GetCountry()}
}

// Commitment returns H(TagCommitment ‖ salt ‖ lp(name) ‖ lp(affiliation) ‖
// lp(country)).
func Commitment(salt []byte, f Fields) []byte {
	b := make([]byte, 0, len(TagCommitment)+len(salt)+12+len(f.Name)+len(f.Affiliation)+len(f.Country))
	b = append(b, TagCommitment...)
	b = append(b, salt...)
	b = appendLPString(b, f.Name)
	b = appendLPString(b, f.Affiliation)
	b = appendLPString(b, f.Country)
	h := sha256.Sum256(b)
	return h[:]
}

// WithdrawalLock returns H(TagWithdrawalLock ‖ secret).
func WithdrawalLock(secret []byte) []byte {
	h := sha256.New()
	h.Write([]byte(TagWithdrawalLock))
	h.Write(secret)
	return h.Sum(nil)
}

// TextDigest returns the SHA-256 of a letter's text.
func TextDigest(text string) []byte {
	h := sha256.Sum256([]byte(text))
	return h[:]
}

// EndorsementStatement returns the statement S that signers and organisers
// sign for an endorsement. It ends with lp(signer public key), empty when
// the endorsement carries no signer: an organiser vouches for whether a
// signer key is attached, and which, so that nobody who relays the
// endorsement can attach a key of their own.
func EndorsementStatement(origin string, e *pb.Endorsement) []byte {
	b := make([]byte, 0, 12+len(origin)+len(e.GetLetterId())+3*HashSize+10+len(e.GetSigner().GetPublicKey()))
	b = appendLPString(b, origin)
	b = appendLPString(b, e.GetLetterId())
	b = append(b, e.GetLetterDigest()...)
	b = append(b, e.GetCommitment()...)
	b = append(b, e.GetWithdrawalLock()...)
	var supersedes uint64
	if e.Supersedes != nil {
		supersedes = e.GetSupersedes() + 1
	}
	b = binary.BigEndian.AppendUint64(b, supersedes)
	b = append(b, byte(e.GetVerification()), byte(e.GetVisibility()))
	return appendLP(b, e.GetSigner().GetPublicKey())
}

// ActionStatement returns the statement W of a withdrawal (kind
// [ActionWithdraw]) or a redaction (kind [ActionRedact]).
func ActionStatement(origin string, kind byte, targetIndex uint64, targetLeafHash []byte, reason pb.Reason) []byte {
	b := make([]byte, 0, 4+len(origin)+1+8+len(targetLeafHash)+1)
	b = appendLPString(b, origin)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, targetIndex)
	b = append(b, targetLeafHash...)
	b = append(b, byte(reason))
	return b
}

// WithdrawalStatement returns the statement W of a withdrawal.
func WithdrawalStatement(origin string, w *pb.Withdrawal) []byte {
	return ActionStatement(origin, ActionWithdraw, w.GetTargetIndex(), w.GetTargetLeafHash(), w.GetReason())
}

// RedactionStatement returns the statement W of a redaction.
func RedactionStatement(origin string, r *pb.Redaction) []byte {
	return ActionStatement(origin, ActionRedact, r.GetTargetIndex(), r.GetTargetLeafHash(), r.GetReason())
}

// LetterStatement returns the statement an organiser signs to publish a
// letter.
func LetterStatement(origin string, l *pb.Letter) []byte {
	b := make([]byte, 0, 64+len(origin)+len(l.GetId())+len(l.GetTitle())+len(l.GetLanguage())+36*len(l.GetOrganiserKeys()))
	b = appendLPString(b, origin)
	b = appendLPString(b, l.GetId())
	b = appendLPString(b, l.GetTitle())
	b = append(b, l.GetTextDigest()...)
	b = appendLPString(b, l.GetLanguage())
	b = append(b, byte(l.GetPolicy()))
	b = append(b, byte(len(l.GetOrganiserKeys())))
	for _, k := range l.GetOrganiserKeys() {
		b = appendLP(b, k)
	}
	b = appendLPString(b, l.GetRevises())
	return b
}

// StatusStatement returns the statement an organiser signs to change a
// letter's status.
func StatusStatement(origin string, s *pb.LetterStatus) []byte {
	b := make([]byte, 0, 13+len(origin)+len(s.GetLetterId())+len(s.GetNote()))
	b = appendLPString(b, origin)
	b = appendLPString(b, s.GetLetterId())
	b = append(b, byte(s.GetStatus()))
	b = appendLPString(b, s.GetNote())
	return b
}

// OrganiserChangeStatement returns the statement an organiser signs to add
// or revoke an organiser key of a letter: lp(origin) ‖ lp(letter id) ‖
// u8(change) ‖ lp(key).
func OrganiserChangeStatement(origin string, c *pb.OrganiserChange) []byte {
	b := make([]byte, 0, 13+len(origin)+len(c.GetLetterId())+len(c.GetKey()))
	b = appendLPString(b, origin)
	b = appendLPString(b, c.GetLetterId())
	b = append(b, byte(c.GetChange()))
	return appendLP(b, c.GetKey())
}

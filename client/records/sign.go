package records

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// ErrBadSignature is wrapped by every error about a signature that does not
// verify.
var ErrBadSignature = errors.New("signature does not verify")

// Sign signs tag ‖ statement with key.
func Sign(key ed25519.PrivateKey, tag string, statement []byte) *pb.Signature {
	msg := make([]byte, 0, len(tag)+len(statement))
	msg = append(msg, tag...)
	msg = append(msg, statement...)
	return &pb.Signature{
		PublicKey: key.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(key, msg),
	}
}

// VerifySignature checks that sig is a valid Ed25519 signature of tag ‖
// statement by sig.PublicKey. It returns a [*FieldError] for field, wrapping
// [ErrBadSignature] when the signature is wrong.
func VerifySignature(field string, sig *pb.Signature, tag string, statement []byte) error {
	if sig == nil {
		return fieldError(field, "is required")
	}
	if len(sig.GetPublicKey()) != ed25519.PublicKeySize {
		return fieldError(field+".public_key", "must be a 32-byte Ed25519 public key")
	}
	if len(sig.GetSignature()) != ed25519.SignatureSize {
		return fieldError(field+".signature", "must be a 64-byte Ed25519 signature")
	}
	msg := make([]byte, 0, len(tag)+len(statement))
	msg = append(msg, tag...)
	msg = append(msg, statement...)
	if !ed25519.Verify(sig.GetPublicKey(), msg, sig.GetSignature()) {
		return &FieldError{Field: field, Rule: "must be a valid signature over the statement", err: ErrBadSignature}
	}
	return nil
}

// SignLetter sets l.Organiser to key's signature over the letter statement.
func SignLetter(key ed25519.PrivateKey, origin string, l *pb.Letter) {
	l.Organiser = Sign(key, TagLetter, LetterStatement(origin, l))
}

// SignStatus sets s.Organiser to key's signature over the status statement.
func SignStatus(key ed25519.PrivateKey, origin string, s *pb.LetterStatus) {
	s.Organiser = Sign(key, TagStatus, StatusStatement(origin, s))
}

// SignOrganiserChange sets c.Organiser to key's signature over the
// organiser-change statement.
func SignOrganiserChange(key ed25519.PrivateKey, origin string, c *pb.OrganiserChange) {
	c.Organiser = Sign(key, TagOrganiserChange, OrganiserChangeStatement(origin, c))
}

// SignEndorsementAsOrganiser sets e.Organiser to key's signature over the
// endorsement statement. The statement names the signer key, so a signer
// must sign (or e.Signer hold the signer's public key) first.
func SignEndorsementAsOrganiser(key ed25519.PrivateKey, origin string, e *pb.Endorsement) {
	e.Organiser = Sign(key, TagOrganiser, EndorsementStatement(origin, e))
}

// SignEndorsementAsSigner sets e.Signer to key's signature over the
// endorsement statement, which names key's public key.
func SignEndorsementAsSigner(key ed25519.PrivateKey, origin string, e *pb.Endorsement) {
	e.Signer = &pb.Signature{PublicKey: key.Public().(ed25519.PublicKey)}
	e.Signer = Sign(key, TagSigner, EndorsementStatement(origin, e))
}

// SignWithdrawal returns the signature of key over a withdrawal's statement,
// for its Authorisation.
func SignWithdrawal(key ed25519.PrivateKey, origin string, w *pb.Withdrawal) *pb.Signature {
	return Sign(key, TagWithdraw, WithdrawalStatement(origin, w))
}

// SignRedaction returns the signature of key over a redaction's statement,
// for its Authorisation.
func SignRedaction(key ed25519.PrivateKey, origin string, r *pb.Redaction) *pb.Signature {
	return Sign(key, TagRedact, RedactionStatement(origin, r))
}

// SignerKeyForLetter derives the signer's key for one letter from the seed
// of a signer key file, so that one person's endorsements of different
// letters cannot be linked by their keys. The key is the Ed25519 key whose
// seed is HMAC-SHA256(seed, "undersigned/v1/signer-key\n" ‖ lp(origin) ‖
// lp(letter id)).
func SignerKeyForLetter(seed []byte, origin, letterID string) ed25519.PrivateKey {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("undersigned/v1/signer-key\n"))
	m.Write(appendLPString(nil, origin))
	m.Write(appendLPString(nil, letterID))
	return ed25519.NewKeyFromSeed(m.Sum(nil))
}

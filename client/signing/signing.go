// Package signing builds and signs endorsements, and reads and writes
// signer key files: the code that the command line (through package client)
// and the web page's WebAssembly share, so that an endorsement signed in a
// browser is built exactly as one signed by `undersigned endorse`.
//
// It needs no network and links no gRPC.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// PEMSignerSeed is the PEM block type of a signer key file: one 32-byte
// seed from which a key per letter is derived (see
// [records.SignerKeyForLetter]).
const PEMSignerSeed = "UNDERSIGNED SIGNER SEED"

// SeedSize is the size of a signer seed.
const SeedSize = 32

// ErrNotSignerKey is returned by [ParseSignerSeed] for data that is not a
// signer key file.
var ErrNotSignerKey = errors.New("not an undersigned signer key (run undersigned keygen)")

// NewSignerSeed returns a new random signer seed.
func NewSignerSeed() []byte {
	seed := make([]byte, SeedSize)
	rand.Read(seed)
	return seed
}

// EncodeSignerSeed returns the signer key file holding seed.
func EncodeSignerSeed(seed []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: PEMSignerSeed, Bytes: seed})
}

// ParseSignerSeed returns the seed of a signer key file. It fails with
// [ErrNotSignerKey] when b is not one.
func ParseSignerSeed(b []byte) ([]byte, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != PEMSignerSeed || len(blk.Bytes) != SeedSize {
		return nil, ErrNotSignerKey
	}
	return blk.Bytes, nil
}

// Signer is a person endorsing a letter.
type Signer struct {
	// Fields are the name, affiliation and country; they are put in
	// canonical form.
	Fields records.Fields
	// Visibility defaults to public.
	Visibility pb.Visibility
	// Verification defaults to none, or signer_key when SignerKey is set.
	Verification pb.Verification
	// Supersedes is the index of an endorsement this one corrects.
	Supersedes *uint64
	// SignerKey, when set, signs as the signer (see
	// [records.SignerKeyForLetter]).
	SignerKey ed25519.PrivateKey
	// OrganiserKey, when set, signs as an organiser.
	OrganiserKey ed25519.PrivateKey
}

// Endorsement is a signed endorsement with what only the client knows.
type Endorsement struct {
	Endorsement      *pb.Endorsement
	Disclosure       *pb.Disclosure
	WithdrawalSecret []byte
	// ReaddAfterRedaction asks the server, explicitly, to add a person
	// whom a redaction removed from the letter (an organiser only).
	ReaddAfterRedaction bool
}

// NewSecrets returns a random salt and withdrawal secret for a new
// endorsement. Every endorsement needs its own: the log accepts a
// commitment and a lock once.
func NewSecrets() (salt, withdrawalSecret []byte) {
	salt, withdrawalSecret = make([]byte, records.SaltSize), make([]byte, records.SecretSize)
	rand.Read(salt)
	rand.Read(withdrawalSecret)
	return salt, withdrawalSecret
}

// NewEndorsement builds and signs an endorsement of letter l with fresh
// random secrets (see [NewSecrets]): only the letter's id and text digest
// are read.
func NewEndorsement(origin string, l *pb.Letter, s Signer) *Endorsement {
	salt, secret := NewSecrets()
	return NewEndorsementWithSecrets(origin, l, s, salt, secret)
}

// NewEndorsementWithSecrets builds and signs an endorsement of letter l
// with the given salt and withdrawal secret: a rerun of an interrupted
// import sends the secrets its journal kept, and gets its receipts back.
func NewEndorsementWithSecrets(origin string, l *pb.Letter, s Signer, salt, secret []byte) *Endorsement {
	f := records.CanonicalFields(s.Fields)
	vis := s.Visibility
	if vis == pb.Visibility_VISIBILITY_UNSPECIFIED {
		vis = pb.Visibility_VISIBILITY_PUBLIC
	}
	ver := s.Verification
	if ver == pb.Verification_VERIFICATION_UNSPECIFIED {
		ver = pb.Verification_VERIFICATION_NONE
		if s.SignerKey != nil {
			ver = pb.Verification_VERIFICATION_SIGNER_KEY
		}
	}
	e := &pb.Endorsement{
		LetterId:       l.GetId(),
		LetterDigest:   l.GetTextDigest(),
		Commitment:     records.Commitment(salt, f),
		WithdrawalLock: records.WithdrawalLock(secret),
		Verification:   ver,
		Visibility:     vis,
		Supersedes:     s.Supersedes,
	}
	if s.SignerKey != nil {
		records.SignEndorsementAsSigner(s.SignerKey, origin, e)
	}
	if s.OrganiserKey != nil {
		records.SignEndorsementAsOrganiser(s.OrganiserKey, origin, e)
	}
	d := &pb.Disclosure{Salt: salt, Name: f.Name, Affiliation: f.Affiliation, Country: f.Country}
	return &Endorsement{Endorsement: e, Disclosure: d, WithdrawalSecret: secret}
}

// Package signing builds and signs endorsements, and reads and writes
// signer key files: the code that the command line (through package client)
// and the web page's WebAssembly share, so that an endorsement signed in a
// browser is built exactly as one signed by `undersigned endorse`.
//
// It needs no network and links no gRPC.
package signing

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
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

// DeriveSecrets returns the salt and withdrawal secret of an endorsement
// from a client secret: the same secret, log, letter and fields always give
// the same values, so that a rerun rebuilds the same receipt. Anyone with
// the client secret can test guesses of a name against a commitment: keep
// it as safe as the organiser key it comes from.
func DeriveSecrets(clientSecret []byte, origin, letterID string, f records.Fields) (salt, withdrawalSecret []byte) {
	mac := func(label string) []byte {
		m := hmac.New(sha256.New, clientSecret)
		m.Write([]byte("undersigned/v1/" + label + "\n"))
		for _, s := range []string{origin, letterID, f.Name, f.Affiliation, f.Country} {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(len(s)))
			m.Write(n[:])
			m.Write([]byte(s))
		}
		return m.Sum(nil)
	}
	return mac("salt"), mac("withdrawal-secret")
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
	// ClientSecret, when set, derives the salt and the withdrawal secret
	// (see [DeriveSecrets]); otherwise they are random.
	ClientSecret []byte
}

// Endorsement is a signed endorsement with what only the client knows.
type Endorsement struct {
	Endorsement      *pb.Endorsement
	Disclosure       *pb.Disclosure
	WithdrawalSecret []byte
}

// NewEndorsement builds and signs an endorsement of letter l: only its id
// and text digest are read.
func NewEndorsement(origin string, l *pb.Letter, s Signer) *Endorsement {
	f := records.CanonicalFields(s.Fields)
	var salt, secret []byte
	if s.ClientSecret != nil {
		salt, secret = DeriveSecrets(s.ClientSecret, origin, l.GetId(), f)
	} else {
		salt, secret = make([]byte, records.SaltSize), make([]byte, records.SecretSize)
		rand.Read(salt)
		rand.Read(secret)
	}
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

package webcheck

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/signing"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// SignRequest is what the page's signing form holds.
type SignRequest struct {
	// Origin is the log's origin, LetterID and LetterDigest the letter's id
	// and text digest.
	Origin       string
	LetterID     string
	LetterDigest []byte
	// Name, Affiliation and Country are the signer's fields, as typed.
	Name, Affiliation, Country string
	// Private asks to be counted but never named.
	Private bool
}

// Signed is an endorsement signed in the browser, waiting for its receipt.
type Signed struct {
	// Request is the protobuf EndorseRequest to send to the server.
	Request []byte
	// KeyFile is the signer key file (a new seed) that signed it; the
	// signer keeps it to withdraw or correct the endorsement later.
	KeyFile []byte

	endorsement *signing.Endorsement
}

// Sign makes a new signer key and builds and signs an endorsement of the
// letter with it, as `undersigned endorse --key` does. Fields that break
// the rules of names fail with a [*records.FieldError] naming the field.
func Sign(req SignRequest) (*Signed, error) {
	f := records.CanonicalFields(records.Fields{Name: req.Name, Affiliation: req.Affiliation, Country: req.Country})
	if err := records.CheckFields("disclosure", f); err != nil {
		return nil, err
	}
	if err := records.CheckLetterID("letter_id", req.LetterID); err != nil {
		return nil, err
	}
	seed := signing.NewSignerSeed()
	vis := pb.Visibility_VISIBILITY_PUBLIC
	if req.Private {
		vis = pb.Visibility_VISIBILITY_PRIVATE
	}
	l := &pb.Letter{Id: req.LetterID, TextDigest: req.LetterDigest}
	e := signing.NewEndorsement(req.Origin, l, signing.Signer{
		Fields:     f,
		Visibility: vis,
		SignerKey:  records.SignerKeyForLetter(seed, req.Origin, req.LetterID),
	})
	b, err := proto.Marshal(&pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
	if err != nil {
		return nil, fmt.Errorf("marshal the endorsement: %w", err)
	}
	return &Signed{Request: b, KeyFile: signing.EncodeSignerSeed(seed), endorsement: e}, nil
}

// Complete adds to the server's receipt the disclosure and the withdrawal
// secret that only the browser knows, and verifies it with the log key v:
// the result is the receipt to keep.
func (s *Signed) Complete(v note.Verifier, serverReceipt []byte) ([]byte, error) {
	r, err := receipt.Parse(serverReceipt)
	if err != nil {
		return nil, fmt.Errorf("the server's receipt: %w", err)
	}
	if r.Extra == nil {
		return nil, errors.New("the server's receipt carries no record")
	}
	rec, err := records.Decode(r.Extra.GetRecord())
	if err != nil {
		return nil, fmt.Errorf("the server's receipt: %w", err)
	}
	if !proto.Equal(rec.GetEndorsement(), s.endorsement.Endorsement) {
		return nil, errors.New("the server's receipt is for another endorsement")
	}
	r.Extra.Disclosure = s.endorsement.Disclosure
	r.Extra.WithdrawalSecret = s.endorsement.WithdrawalSecret
	if _, err := r.Verify(v); err != nil {
		return nil, fmt.Errorf("the server's receipt: %w", err)
	}
	return r.Marshal()
}

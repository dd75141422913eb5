package signing_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/signing"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func TestSignerSeedFile(t *testing.T) {
	seed := signing.NewSignerSeed()
	got, err := signing.ParseSignerSeed(signing.EncodeSignerSeed(seed))
	if err != nil || !bytes.Equal(got, seed) {
		t.Fatalf("ParseSignerSeed(EncodeSignerSeed(seed)) = %x, %v; want %x", got, err, seed)
	}
	for _, bad := range [][]byte{nil, []byte("seed"), bytes.Replace(signing.EncodeSignerSeed(seed), []byte("SIGNER SEED"), []byte("PRIVATE KEY"), 2)} {
		if _, err := signing.ParseSignerSeed(bad); !errors.Is(err, signing.ErrNotSignerKey) {
			t.Errorf("ParseSignerSeed(%q) = %v, want ErrNotSignerKey", bad, err)
		}
	}
}

// TestNewEndorsementOpenLetter builds what the web page sends for an open
// letter and checks it with the rules the server applies.
func TestNewEndorsementOpenLetter(t *testing.T) {
	const origin = "example.org/log"
	text := "We ask for the library to stay open.\n"
	l := &pb.Letter{Id: "library", Title: "Library", Text: text, TextDigest: records.TextDigest(text), Policy: pb.Policy_POLICY_OPEN,
		OrganiserKeys: [][]byte{make([]byte, 32)}}
	key := records.SignerKeyForLetter(signing.NewSignerSeed(), origin, l.GetId())
	e := signing.NewEndorsement(origin, l, signing.Signer{Fields: records.Fields{Name: " Łapińska Hanna "}, SignerKey: key,
		Visibility: pb.Visibility_VISIBILITY_PRIVATE})
	if err := records.CheckEndorsement(origin, l, e.Endorsement); err != nil {
		t.Fatalf("CheckEndorsement: %v", err)
	}
	if err := records.CheckDisclosure(e.Endorsement, e.Disclosure); err != nil {
		t.Fatalf("CheckDisclosure: %v", err)
	}
	if e.Disclosure.GetName() != "Łapińska Hanna" || e.Endorsement.GetVerification() != pb.Verification_VERIFICATION_SIGNER_KEY ||
		e.Endorsement.GetVisibility() != pb.Visibility_VISIBILITY_PRIVATE {
		t.Errorf("endorsement %v, disclosure %v", e.Endorsement, e.Disclosure)
	}
	if !bytes.Equal(records.WithdrawalLock(e.WithdrawalSecret), e.Endorsement.GetWithdrawalLock()) {
		t.Error("the withdrawal secret does not open the lock")
	}
}

package receipt_test

import (
	"bytes"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/receipt/receipttest"
)

// cosign adds the cosignature of a witness named name to a signed
// checkpoint, and returns the witness's policy line.
func cosign(t *testing.T, cp []byte, name string) ([]byte, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(fixedReader("witness "+name), "witness.example/"+name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp, unknown{})
	if n == nil {
		n = err.(*note.UnverifiedNoteError).Note
	}
	sig, err := s.Sign([]byte(n.Text))
	if err != nil {
		t.Fatal(err)
	}
	line, err := note.Sign(&note.Note{Text: n.Text}, sigOnly{s, sig})
	if err != nil {
		t.Fatal(err)
	}
	_, sigLine, _ := bytes.Cut(line, []byte("\n\n"))
	return append(bytes.Clone(cp), sigLine...), "witness " + name + " " + cv
}

type unknown struct{}

func (unknown) Verifier(name string, hash uint32) (note.Verifier, error) {
	return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
}

// sigOnly is a signer that returns a signature made before.
type sigOnly struct {
	note.Signer
	sig []byte
}

func (s sigOnly) Sign([]byte) ([]byte, error) { return s.sig, nil }

// TestCosignedReceipt: a receipt whose checkpoint carries witness
// cosignatures parses, keeps them byte for byte, verifies with the log's
// key (here and in the independent verifier), and the policy finds them.
func TestCosignedReceipt(t *testing.T) {
	lg := sampleLog(t)
	cp := lg.checkpoint(t, sampleSize)
	cp, lineA := cosign(t, cp, "a")
	cp, lineB := cosign(t, cp, "b")
	b := receiptText(marshalExtra(t, lg.extras[idxPrivate]), idxPrivate, lg.proof(t, idxPrivate, sampleSize), cp)

	r, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Checkpoint, cp) {
		t.Fatalf("Parse changed the checkpoint:\n%s\nwant:\n%s", r.Checkpoint, cp)
	}
	again, err := r.Marshal()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("Marshal did not give back the receipt (%v)", err)
	}
	if _, err := r.Verify(lg.verifier); err != nil {
		t.Fatalf("Verify of a cosigned receipt: %v", err)
	}
	if _, _, err := receipttest.VerifyIndependently(b, lg.verifierKey); err != nil {
		t.Fatalf("the independent verifier: %v", err)
	}

	_, lineC := cosign(t, lg.checkpoint(t, sampleSize), "c")
	p, err := policy.Parse([]byte(strings.Join([]string{"log " + lg.verifierKey, lineA, lineB, lineC, "group two 2 a b c", "quorum two", ""}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Check(r.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Met || len(res.Cosigned) != 2 || strings.Join(res.Missing, ",") != "c" {
		t.Fatalf("policy check of the receipt: %s", res)
	}
	// The cosignature of a witness does not survive another checkpoint.
	other := lg.checkpoint(t, sampleSize-1)
	moved := append(bytes.Clone(other), cp[bytes.Index(cp, []byte("\n— witness.example/a"))+1:]...)
	res, err = p.Check(moved)
	if err != nil {
		t.Fatal(err)
	}
	if res.Met || len(res.Invalid) != 2 {
		t.Fatalf("cosignatures moved to another checkpoint: %s", res)
	}
}

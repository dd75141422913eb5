package receipt_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/receipt/receipttest"
)

// TestIndependentVerifier checks the receipts of every leaf in trees of
// every size with receipttest.VerifyIndependently, which shares no code
// with package receipt, and checks that both verifiers agree.
func TestIndependentVerifier(t *testing.T) {
	lg := sampleLog(t)
	for size := uint64(1); size <= sampleSize; size++ {
		for index := uint64(0); index < size; index++ {
			t.Run(fmt.Sprintf("size %d index %d", size, index), func(t *testing.T) {
				b := lg.receipt(t, index, size)
				gotIndex, record, err := receipttest.VerifyIndependently(b, lg.verifierKey)
				if err != nil {
					t.Fatalf("VerifyIndependently: %v", err)
				}
				if gotIndex != index || !bytes.Equal(record, lg.leaves[index]) {
					t.Errorf("VerifyIndependently = %d, %x; want %d, %x", gotIndex, record, index, lg.leaves[index])
				}
				if err := verifyBytes(b, lg.verifier); err != nil {
					t.Errorf("package receipt disagrees: %v", err)
				}
			})
		}
	}
}

// TestIndependentVerifierRejects checks that the independent verifier is
// strict enough for tamper tests: it refuses every single-byte change of a
// real receipt (see fullSweep), and what package receipt
// refuses.
func TestIndependentVerifierRejects(t *testing.T) {
	lg := sampleLog(t)
	good := lg.receipt(t, idxPrivate, 7)
	if _, _, err := receipttest.VerifyIndependently(good, lg.verifierKey); err != nil {
		t.Fatal(err)
	}
	other := newTestLog(t, testOrigin, "another key with the same origin")

	t.Run("another key", func(t *testing.T) {
		if _, _, err := receipttest.VerifyIndependently(good, other.verifierKey); err == nil {
			t.Error("accepted with the verifier key of another log")
		}
	})
	t.Run("malformed key", func(t *testing.T) {
		if _, _, err := receipttest.VerifyIndependently(good, "not a key"); err == nil {
			t.Error("accepted with a malformed key")
		}
	})
	t.Run("every byte", func(t *testing.T) {
		var accepted []string
		for i := range good {
			for bit := range 8 {
				b := bytes.Clone(good)
				b[i] ^= 1 << bit
				if _, _, err := receipttest.VerifyIndependently(b, lg.verifierKey); err == nil {
					accepted = append(accepted, fmt.Sprintf("byte %d (%s) bit %d", i, tamperRegion(good, i), bit))
				}
			}
			if !fullSweep() || strings.IndexByte(base64Alphabet, good[i]) < 0 {
				continue
			}
			for _, c := range []byte(base64Alphabet + "=") {
				if c == good[i] {
					continue
				}
				b := bytes.Clone(good)
				b[i] = c
				if _, _, err := receipttest.VerifyIndependently(b, lg.verifierKey); err == nil {
					accepted = append(accepted, fmt.Sprintf("byte %d (%s) replaced by %q", i, tamperRegion(good, i), c))
				}
			}
		}
		if len(accepted) > 0 {
			t.Errorf("%d changes accepted, the first: %s", len(accepted), strings.Join(accepted[:min(10, len(accepted))], "; "))
		}
	})
	t.Run("what package receipt refuses", func(t *testing.T) {
		r, err := receipt.Parse(good)
		if err != nil {
			t.Fatal(err)
		}
		r.Extra.Disclosure.Name += "x"
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := receipttest.VerifyIndependently(b, lg.verifierKey); err == nil {
			t.Error("accepted a disclosure that does not open the commitment")
		}
		r.Extra.Disclosure = nil
		r.Extra.WithdrawalSecret = bytes.Repeat([]byte{1}, 32)
		if b, err = r.Marshal(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := receipttest.VerifyIndependently(b, lg.verifierKey); err == nil {
			t.Error("accepted a secret that does not open the lock")
		}
		r.Extra.WithdrawalSecret = nil
		if b, err = r.Marshal(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := receipttest.VerifyIndependently(b, lg.verifierKey); err != nil {
			t.Errorf("refused a receipt with the record alone: %v", err)
		}
	})
}

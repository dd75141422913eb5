package client

import (
	"crypto/rand"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// countingVerifier counts the signatures its verifier checks.
type countingVerifier struct {
	note.Verifier
	calls int
}

func (c *countingVerifier) Verify(msg, sig []byte) bool {
	c.calls++
	return c.Verifier.Verify(msg, sig)
}

func TestCachingVerifierAnswersAsTheVerifier(t *testing.T) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "cache.example/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	counted := &countingVerifier{Verifier: v}
	cv := newCachingVerifier(counted)
	msg := []byte("cache.example/log\n1\nAAAA\n")
	sig, err := signer.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if !cv.Verify(msg, sig) {
			t.Fatal("a valid signature refused")
		}
	}
	if counted.calls != 1 {
		t.Errorf("the verifier checked %d times, want once", counted.calls)
	}
	bad := append([]byte(nil), sig...)
	bad[0] ^= 1
	other := []byte("cache.example/log\n2\nAAAA\n")
	for range 2 {
		if cv.Verify(msg, bad) {
			t.Error("a changed signature accepted")
		}
		if cv.Verify(other, sig) {
			t.Error("a signature accepted over another message")
		}
	}
	if counted.calls != 5 {
		t.Errorf("the verifier checked %d times, want 5 (refusals are never remembered)", counted.calls)
	}
	// Old signatures are forgotten, never wrongly kept.
	for i := range verifiedSignatures + 10 {
		m := []byte(fmt.Sprintf("cache.example/log\n%d\nAAAA\n", i+10))
		s, _ := signer.Sign(m)
		if !cv.Verify(m, s) {
			t.Fatal("a valid signature refused")
		}
	}
	if len(cv.valid) != verifiedSignatures || len(cv.order) != verifiedSignatures {
		t.Errorf("%d signatures kept, want %d", len(cv.valid), verifiedSignatures)
	}
}

package webcheck_test

import (
	"crypto/rand"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/webcheck"
)

// cosigner returns a witness's cosignature signer and its policy line.
func cosigner(t *testing.T, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "witness.example/"+name)
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
	return s, "witness " + name + " " + cv
}

// TestVerifyWitnessed: with a policy, a receipt whose checkpoint the
// quorum cosigned verifies offline and online, saying by whom; one whose
// checkpoint it did not is invalid offline, naming the witnesses missing,
// and accepted online when the log's latest checkpoint, which meets the
// policy, contains its tree; a log whose latest checkpoint does not meet
// the policy is refused, naming the witness missing.
func TestVerifyWitnessed(t *testing.T) {
	l := newTestLog(t)
	a, aLine := cosigner(t, "a")
	b, bLine := cosigner(t, "b")
	_, thirdLine := cosigner(t, "third")
	p, err := policy.Parse([]byte(strings.Join([]string{aLine, bLine, "group both all a b", "quorum both", ""}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	p3, err := policy.Parse([]byte(strings.Join([]string{aLine, bLine, thirdLine, "group all3 all a b third", "quorum all3", ""}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	i, extra := l.endorse("Before the witnesses", nil)
	unwitnessed := l.receipt(i, uint64(len(l.entries)), extra)
	l.cosigners = []note.Signer{a, b}
	j, extra := l.endorse("Witnessed", nil)
	witnessed := l.receipt(j, uint64(len(l.entries)), extra)
	l.endorse("Later", nil)

	if got := webcheck.VerifyWitnessed(l.v, p, witnessed, nil); got.State != webcheck.Included || !strings.Contains(got.Witnesses, "met: cosigned by a, b") {
		t.Errorf("a cosigned receipt offline: %+v", got)
	}
	got := webcheck.VerifyWitnessed(l.v, p, unwitnessed, nil)
	if got.State != webcheck.Invalid || !strings.Contains(got.Reason, "missing: a, b") || !strings.Contains(got.Reason, "valid receipt of the log") {
		t.Errorf("a receipt without cosignatures offline: %+v", got)
	}
	if got := webcheck.VerifyWitnessed(l.v, nil, unwitnessed, nil); got.State != webcheck.Included || got.Witnesses != "" {
		t.Errorf("without a policy: %+v", got)
	}

	wl := l.load(t)
	if err := wl.CheckPolicy(p); err != nil {
		t.Fatal(err)
	}
	if got := webcheck.VerifyWitnessed(l.v, p, witnessed, wl); got.State != webcheck.Counted || !strings.Contains(got.Witnesses, "met: cosigned by a, b") {
		t.Errorf("a cosigned receipt online: %+v", got)
	}
	got = webcheck.VerifyWitnessed(l.v, p, unwitnessed, wl)
	if got.State != webcheck.Counted || !strings.Contains(got.Witnesses, "NOT met") || !strings.Contains(got.Witnesses, "latest checkpoint") {
		t.Errorf("a receipt without cosignatures, online in a witnessed log: %+v", got)
	}

	other := l.load(t)
	if err := other.CheckPolicy(p3); err == nil || !strings.Contains(err.Error(), "missing: third") {
		t.Errorf("a policy requiring a third witness: the latest checkpoint passed: %v", err)
	}
	if got := webcheck.VerifyWitnessed(l.v, p3, witnessed, other); got.State != webcheck.Invalid || !strings.Contains(got.Reason, "missing: third") {
		t.Errorf("a policy requiring a third witness: %+v", got)
	}
}

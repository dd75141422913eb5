package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/receipt"
)

// localWitness is a cosigner made up by a test: it cosigns whatever it is
// given, as a witness that checked it would.
type localWitness struct {
	name   string
	signer note.Signer
	vkey   string
}

func newLocalWitness(t *testing.T, name string) localWitness {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "witness.test/"+name)
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
	return localWitness{name, s, cv}
}

func (w localWitness) line() string { return "witness " + w.name + " " + w.vkey }

// cosignReceipt adds the witnesses' cosignatures to the checkpoint of the
// receipt in path.
func cosignReceipt(t *testing.T, path string, ws ...localWitness) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	text, _, _ := bytes.Cut(r.Checkpoint, []byte("\n\n"))
	cp := bytes.Clone(r.Checkpoint)
	for _, w := range ws {
		sig, err := w.signer.Sign(append(text, '\n'))
		if err != nil {
			t.Fatal(err)
		}
		signed, err := note.Sign(&note.Note{Text: string(text) + "\n"}, fixedSig{w.signer, sig})
		if err != nil {
			t.Fatal(err)
		}
		_, line, _ := bytes.Cut(signed, []byte("\n\n"))
		cp = append(cp, line...)
	}
	r.Checkpoint = cp
	out, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

type fixedSig struct {
	note.Signer
	sig []byte
}

func (s fixedSig) Sign([]byte) ([]byte, error) { return s.sig, nil }

func writePolicy(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyPolicy: verify --policy passes for a receipt whose checkpoint
// carries the quorum's cosignatures, offline and online; fails (exit 1)
// naming the witness that did not cosign; a receipt without cosignatures
// is still said to verify with the log's key; and the policy given is
// pinned for the log and used when none is given.
func TestVerifyPolicy(t *testing.T) {
	c, _, dataDir := newAuditCLI(t)
	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	if code, out, errs := c.run("letter", "publish", "--id", "witnessed", "--title", "Witnessed", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := c.run("endorse", "--letter", "witnessed", "--name", "Ада Лавлейс", "--receipt", "r.tlog-proof"); code != 0 {
		t.Fatalf("endorse: exit %d\n%s%s", code, out, errs)
	}
	copyFile(t, filepath.Join(c.dir, "r.tlog-proof"), filepath.Join(c.dir, "bare.tlog-proof"))
	logPub := filepath.Join(dataDir, "log.pub")
	pub, err := os.ReadFile(logPub)
	if err != nil {
		t.Fatal(err)
	}
	a, b, third := newLocalWitness(t, "a"), newLocalWitness(t, "b"), newLocalWitness(t, "third")
	cosignReceipt(t, filepath.Join(c.dir, "r.tlog-proof"), a, b)
	logLine := "log " + strings.TrimSpace(string(pub))
	writePolicy(t, filepath.Join(c.dir, "two.policy"), logLine, a.line(), b.line(), "group both 2 a b", "quorum both")
	writePolicy(t, filepath.Join(c.dir, "three.policy"), logLine, a.line(), b.line(), third.line(), "group all3 all a b third", "quorum all3")

	code, out, errs := c.run("verify", "--offline", "--log-key", logPub, "--policy", "two.policy", "r.tlog-proof")
	if code != 0 || !strings.Contains(out, `witness quorum "both" (all of (a, b)) met: cosigned by a, b`) {
		t.Fatalf("verify --offline --policy two.policy: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "pinned the witness policy of log cli.test/audit") {
		t.Errorf("the policy was not said to be pinned:\n%s", errs)
	}
	code, out, errs = c.run("verify", "--policy", "two.policy", "r.tlog-proof")
	if code != 0 || !strings.Contains(out, "counted") || !strings.Contains(out, "met: cosigned by a, b") {
		t.Fatalf("verify --policy online: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = c.run("verify", "--offline", "--log-key", logPub, "--policy", "three.policy", "r.tlog-proof")
	if code != exitFailed || !strings.Contains(out, "NOT met") || !strings.Contains(out, "missing: third") || strings.Contains(out, "missing: a") {
		t.Fatalf("verify with a policy that requires a third witness: exit %d\n%s%s", code, out, errs)
	}
	// The receipt without cosignatures is still a receipt of the log.
	code, out, _ = c.run("verify", "--offline", "--log-key", logPub, "--policy", "two.policy", "bare.tlog-proof")
	if code != exitFailed || !strings.Contains(out, "verified offline: endorsement of witnessed") || !strings.Contains(out, "missing: a, b") {
		t.Fatalf("verify of a receipt without cosignatures: exit %d\n%s", code, out)
	}
	// Without --policy, the pinned one (the last given) applies.
	code, out, errs = c.run("verify", "--offline", "--log-key", logPub, "r.tlog-proof")
	if code != 0 || !strings.Contains(out, `quorum "both"`) {
		t.Fatalf("verify with the pinned policy: exit %d\n%s%s", code, out, errs)
	}
	// A policy for another log is refused.
	writePolicy(t, filepath.Join(c.dir, "other.policy"), "log "+otherLogKey(t), a.line(), "quorum a")
	code, out, _ = c.run("verify", "--offline", "--log-key", logPub, "--policy", "other.policy", "r.tlog-proof")
	if code != exitFailed || !strings.Contains(out, "does not list the log cli.test/audit") {
		t.Fatalf("verify with a policy for another log: exit %d\n%s", code, out)
	}
}

func otherLogKey(t *testing.T) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, "other.test/log")
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

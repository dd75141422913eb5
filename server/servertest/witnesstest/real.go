package witnesstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/server/internal/witnessing"
)

// Real is the pair of witnesses deploy/witness/up.sh starts: omniwitness
// and litewitness, configured for one log.
type Real struct {
	// Dir is up.sh's WORKDIR.
	Dir string
	// Policy is the path of the policy up.sh wrote: the log, both
	// witnesses with their URLs, quorum 2.
	Policy string
	// PolicyText is its content.
	PolicyText string
	// OmniwitnessURL and LitewitnessURL are their submission prefixes.
	OmniwitnessURL, LitewitnessURL string
	// Bin is the folder of the binaries, verifyproof (torchwood's
	// tlog-proof verifier) among them.
	Bin string

	mu       sync.Mutex
	cosigner *witnessing.Cosigner
}

// TryCosign gets a checkpoint of the log cosigned by both witnesses, as
// the log will (package witnessing, one cosigner for the test, so that it
// remembers what each witness cosigned). prove gives consistency proofs.
func (r *Real) TryCosign(ctx context.Context, checkpoint []byte, prove witnessing.Prover) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cosigner == nil {
		p, err := policy.Parse([]byte(r.PolicyText))
		if err != nil {
			return nil, err
		}
		if r.cosigner, err = witnessing.New(witnessing.Config{Policy: p}); err != nil {
			return nil, err
		}
	}
	return r.cosigner.Cosign(ctx, checkpoint, prove)
}

// Cosign is TryCosign that fails the test on an error.
func (r *Real) Cosign(t testing.TB, checkpoint []byte, prove witnessing.Prover) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cp, err := r.TryCosign(ctx, checkpoint, prove)
	if err != nil {
		t.Fatalf("cosigning with the real witnesses: %v", err)
	}
	return cp
}

// upTimeout bounds up.sh: a cold build of the witnesses takes about two
// minutes on this project's machines.
const upTimeout = 10 * time.Minute

// StartReal starts the real witnesses for the log whose verifier key is in
// the file logPub, with deploy/witness/up.sh, and stops them with down.sh
// when the test ends. When they cannot be built or started the test is
// skipped, saying why, except under CI=true, where it fails: CI must run
// it.
func StartReal(t testing.TB, logPub string) *Real {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), upTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(root, "deploy", "witness", "up.sh"), filepath.Join(dir, "w"), logPub)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	r := &Real{Dir: filepath.Join(dir, "w")}
	t.Cleanup(func() {
		r.mu.Lock()
		if r.cosigner != nil {
			r.cosigner.Close()
		}
		r.mu.Unlock()
		down := exec.Command(filepath.Join(root, "deploy", "witness", "down.sh"), filepath.Join(dir, "w"))
		if b, err := down.CombinedOutput(); err != nil {
			t.Errorf("deploy/witness/down.sh: %v\n%s", err, b)
		}
	})
	if err != nil {
		msg := "deploy/witness/up.sh could not start the real witnesses: " + err.Error() + "\n" + stderr.String()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg + "\n(skipped outside CI; under CI=true this test fails)")
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "POLICY":
			r.Policy = v
		case "OMNIWITNESS_URL":
			r.OmniwitnessURL = v
		case "LITEWITNESS_URL":
			r.LitewitnessURL = v
		case "WITNESS_BIN":
			r.Bin = v
		}
	}
	b, err := os.ReadFile(r.Policy)
	if err != nil {
		t.Fatalf("up.sh printed no readable POLICY (%v):\n%s", err, out)
	}
	r.PolicyText = string(b)
	return r
}

// repoRoot finds the repository's root from the working folder.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "deploy", "witness", "up.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("deploy/witness/up.sh not found above the working folder")
		}
		dir = parent
	}
}

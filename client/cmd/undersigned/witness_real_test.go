package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

// mirror serves the log at target (a server's HTTP address) with its
// checkpoint replaced by checkpoint(); it stops when the test ends.
func mirror(t *testing.T, target string, checkpoint func() []byte) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/log/checkpoint" {
			w.Write(checkpoint())
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/log/"
}

// replaceCheckpoint writes the receipt in path again with cp as its
// checkpoint.
func replaceCheckpoint(t *testing.T, path string, cp []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
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

func receiptCheckpoint(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receipt.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r.Checkpoint
}

// TestRealWitnessesCLI: receipts of a real server, their checkpoints
// cosigned by the two real witnesses of deploy/witness, verify with
// "verify --offline --log-key --policy" and with torchwood's own tlog-proof
// verifier and the policy; a policy that requires a third witness fails
// both, naming it; "audit --policy" passes on a mirror that serves the
// cosigned checkpoint and fails, naming both witnesses, on the server's
// own uncosigned one; a fork signed with the log's key is refused by both
// witnesses, and "monitor --compare" writes the evidence when a mirror
// shows it.
func TestRealWitnessesCLI(t *testing.T) {
	c, httpURL, dataDir := newAuditCLI(t)
	logPub := filepath.Join(dataDir, "log.pub")
	real := witnesstest.StartReal(t, logPub)
	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	if code, out, errs := c.run("letter", "publish", "--id", "witnessed", "--title", "Witnessed", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	src, err := audit.NewHTTPSource(httpURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var receipts []string
	for i, name := range []string{"Ада Лавлейс", "Grace Hopper", "Mary Somerville"} {
		r := fmt.Sprintf("r%d.tlog-proof", i)
		if code, out, errs := c.run("endorse", "--letter", "witnessed", "--name", name, "--receipt", r); code != 0 {
			t.Fatalf("endorse: exit %d\n%s%s", code, out, errs)
		}
		path := filepath.Join(c.dir, r)
		replaceCheckpoint(t, path, real.Cosign(t, receiptCheckpoint(t, path), src.ConsistencyProof))
		receipts = append(receipts, r)
	}

	args := append([]string{"verify", "--offline", "--log-key", logPub, "--policy", real.Policy}, receipts...)
	code, out, errs := c.run(args...)
	if code != 0 || strings.Count(out, "met: cosigned by omniwitness, litewitness") != len(receipts) {
		t.Fatalf("verify --offline --policy with the real witnesses' cosignatures: exit %d\n%s%s", code, out, errs)
	}
	verifyproof := exec.Command(filepath.Join(real.Bin, "verifyproof"), append([]string{"-policy", real.Policy}, receipts...)...)
	verifyproof.Dir = c.dir
	if b, err := verifyproof.CombinedOutput(); err != nil {
		t.Fatalf("torchwood's verifier: %v\n%s", err, b)
	}

	third := newLocalWitness(t, "third")
	thirdPolicy := filepath.Join(c.dir, "third.policy")
	writePolicy(t, thirdPolicy, strings.Replace(real.PolicyText, "group local 2 omniwitness litewitness", third.line()+"\ngroup local all omniwitness litewitness third", 1))
	code, out, _ = c.run("verify", "--offline", "--log-key", logPub, "--policy", thirdPolicy, receipts[0])
	if code != exitFailed || !strings.Contains(out, "missing: third") {
		t.Fatalf("verify with a policy requiring a third witness: exit %d\n%s", code, out)
	}
	verifyproof = exec.Command(filepath.Join(real.Bin, "verifyproof"), "-policy", thirdPolicy, receipts[0])
	verifyproof.Dir = c.dir
	if b, err := verifyproof.CombinedOutput(); err == nil {
		t.Fatalf("torchwood's verifier accepted a receipt without the third witness:\n%s", b)
	}

	// The audit, with the policy: the server's own checkpoint is not
	// cosigned yet (the server does not witness yet); a mirror serving it
	// cosigned passes.
	latest, err := src.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cosigned := real.Cosign(t, latest, src.ConsistencyProof)
	good := mirror(t, httpURL, func() []byte { return cosigned })
	code, out, errs = c.run("audit", "--tiles", good, "--log-key", logPub, "--policy", real.Policy, "--state", "mirror-state")
	if code != 0 || !strings.Contains(out, "verified entries 0 to") {
		t.Fatalf("audit --policy of a mirror serving the cosigned checkpoint: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = c.run("audit", "--policy", real.Policy, "--state", "server-state")
	if code != exitFailed || !strings.Contains(out, "VIOLATION") || !strings.Contains(out, "witnesses") || !strings.Contains(out, "missing: omniwitness, litewitness") {
		t.Fatalf("audit --policy of the uncosigned checkpoint: exit %d\n%s", code, out)
	}

	// A fork: another root at the latest size, signed with the log's key.
	fork := signFork(t, dataDir, latest)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = real.TryCosign(ctx, fork, src.ConsistencyProof)
	if err == nil || !strings.Contains(err.Error(), "omniwitness refused") || !strings.Contains(err.Error(), "litewitness refused") {
		t.Fatalf("the fork was not refused by both witnesses: %v", err)
	}
	forked := mirror(t, httpURL, func() []byte { return fork })
	// The monitor reads the mirror with the cosigned checkpoint (the policy
	// pinned above applies), agrees with itself, and finds the fork.
	code, out, errs = c.run("monitor", "--rounds", "1", "--tiles", good, "--state", "monitor-state", "--compare", good, "--compare", forked)
	if code != exitFailed || !strings.Contains(out, "VIOLATION") || !strings.Contains(out, "different roots") || !strings.Contains(out, forked) {
		t.Fatalf("monitor --compare with a mirror showing a fork: exit %d\n%s%s", code, out, errs)
	}
	evidence, _ := filepath.Glob(filepath.Join(c.dir, "monitor-state", "fork-*.txt"))
	if len(evidence) != 1 {
		t.Fatalf("evidence files: %v", evidence)
	}
	b, err := os.ReadFile(evidence[0])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, latest[:bytes.Index(latest, []byte("\n\n"))]) || !bytes.Contains(b, fork) || !strings.Contains(string(b), forked) {
		t.Fatalf("the evidence does not hold both checkpoints and the mirror's URL:\n%s", b)
	}
}

// signFork signs, with the log's key in dataDir, a checkpoint of the size
// of cp with another root.
func signFork(t *testing.T, dataDir string, cp []byte) []byte {
	t.Helper()
	skey, err := os.ReadFile(filepath.Join(dataDir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	var parsed log.Checkpoint
	if _, err := parsed.Unmarshal(cp); err != nil {
		t.Fatal(err)
	}
	other := sha256.Sum256([]byte("another history"))
	body := fmt.Sprintf("%s\n%d\n%s\n", parsed.Origin, parsed.Size, base64.StdEncoding.EncodeToString(other[:]))
	b, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
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
	"github.com/undersigned/undersigned/server/servertest"
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

// TestWitnessedEmbedded runs the witnessed server's acceptance on the
// embedded engine (see testWitnessed).
func TestWitnessedEmbedded(t *testing.T) { testWitnessed(t, servertest.Embedded, 1) }

// TestWitnessedTrillianPostgres runs it on Trillian and PostgreSQL, with
// two frontends.
func TestWitnessedTrillianPostgres(t *testing.T) { testWitnessed(t, servertest.TrillianPostgres, 2) }

// testWitnessed is the acceptance of issue 13 through the server and the
// command line, with the two real witnesses of deploy/witness and a
// server (or two frontends) started with their policy: the sample import
// gives receipts whose checkpoints carry both cosignatures, which verify
// with "verify --offline --log-key --policy" and with torchwood's own
// tlog-proof verifier; a policy requiring a third witness fails both,
// naming it; with one witness stopped a write fails with Unavailable
// naming it, and once it is back the waiting write and the retried one
// complete and the audit with the policy is clean; the frontends serve
// one cosigned checkpoint; a fork signed with the log's key is refused by
// both witnesses, and "monitor --compare" writes the evidence when a
// mirror shows it; a mirror that serves the checkpoint without its
// cosignatures fails "audit --policy", naming both witnesses.
func testWitnessed(t *testing.T, engine servertest.Engine, frontends int) {
	dataDir, _ := servertest.NewFolder(t, "cli-witnessed.test/undersigned")
	logPub := filepath.Join(dataDir, "log.pub")
	real := witnesstest.StartReal(t, logPub)
	lg := servertest.NewLog(t, servertest.Options{Engine: engine, Dir: dataDir, WitnessPolicy: real.Policy, WitnessWait: 3 * time.Second})
	var servers []*servertest.Server
	for range frontends {
		servers = append(servers, lg.Start(t))
	}
	first, last := servers[0], servers[len(servers)-1]
	c := &cli{t: t, server: first.Addr, token: first.Srv.TokenPath, config: t.TempDir(), dir: t.TempDir()}
	// The other frontend, for the import.
	other := &cli{t: t, server: last.Addr, token: last.Srv.TokenPath, config: c.config, dir: c.dir}

	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	sample, _ := filepath.Abs("../../testdata/sample-signatories.csv")
	copyFile(t, sample, filepath.Join(c.dir, "signatories.csv"))
	if code, out, errs := c.run("letter", "publish", "--id", "witnessed", "--title", "Witnessed", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := other.run("import", "--letter", "witnessed", "--csv", "signatories.csv", "--receipts", "receipts", "--ignore", "note")
	if code != exitFailed || !strings.Contains(out, "5 rejected") {
		t.Fatalf("import: exit %d, want %d with the 5 invalid rows rejected\n%s%s", code, exitFailed, out, errs)
	}
	receipts, _ := filepath.Glob(filepath.Join(c.dir, "receipts", "*.tlog-proof"))
	if len(receipts) != 194 {
		t.Fatalf("%d receipts, want 194", len(receipts))
	}
	verifyWitnessed(t, c, logPub, real, receipts...)
	checkThirdWitness(t, c, logPub, real, receipts[0])

	// One witness stopped: a write fails within the bound naming it; a
	// write sent meanwhile waits, and completes once it is back, as does
	// the failed one, sent again.
	real.Stop(t, witnesstest.Litewitness)
	start := time.Now()
	code, out, errs = c.run("endorse", "--letter", "witnessed", "--name", "Written while a witness is down", "--receipt", "down.tlog-proof")
	if code == 0 || !strings.Contains(errs, "litewitness did not answer") || strings.Contains(errs, "omniwitness did not") || strings.Contains(errs, "127.0.0.1") {
		t.Fatalf("endorse with litewitness stopped: exit %d after %v\n%s%s", code, time.Since(start), out, errs)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the write failed after %v, for a bound of 3 s", took)
	}
	waiting := make(chan string, 1)
	go func() {
		code, out, errs := other.run("endorse", "--letter", "witnessed", "--name", "Waiting for the witness", "--receipt", "waiting.tlog-proof")
		if code != 0 {
			waiting <- fmt.Sprintf("exit %d\n%s%s", code, out, errs)
		}
		close(waiting)
	}()
	time.Sleep(time.Second) // the write is admitted and waits
	real.Start(t, witnesstest.Litewitness)
	if msg, failed := <-waiting; failed {
		t.Fatalf("the write waiting when the witness came back: %s", msg)
	}
	if code, out, errs := c.run("endorse", "--letter", "witnessed", "--name", "Written while a witness is down", "--receipt", "down.tlog-proof"); code != 0 {
		t.Fatalf("the failed write, sent again once the witness is back: exit %d\n%s%s", code, out, errs)
	}
	verifyWitnessed(t, c, logPub, real, "down.tlog-proof", "waiting.tlog-proof")
	if code, out, errs := c.run("audit", "--policy", real.Policy, "--log-key", logPub, "--state", "audit-state"); code != 0 || !strings.Contains(out, "verified entries 0 to") {
		t.Fatalf("audit --policy: exit %d\n%s%s", code, out, errs)
	}
	latest := sameCheckpoint(t, servers)
	checkFork(t, c, dataDir, real, first.HTTP, latest)
}

// verifyWitnessed checks receipts with "verify --offline --log-key
// --policy" and with torchwood's verifier.
func verifyWitnessed(t *testing.T, c *cli, logPub string, real *witnesstest.Real, receipts ...string) {
	t.Helper()
	args := append([]string{"verify", "--offline", "--log-key", logPub, "--policy", real.Policy}, receipts...)
	code, out, errs := c.run(args...)
	if code != 0 || strings.Count(out, "met: cosigned by omniwitness, litewitness") != len(receipts) {
		t.Fatalf("verify --offline --policy: exit %d, %d of %d met by both\n%s%s", code, strings.Count(out, "met: cosigned by omniwitness, litewitness"), len(receipts), out, errs)
	}
	verifyproof := exec.Command(filepath.Join(real.Bin, "verifyproof"), append([]string{"-policy", real.Policy}, receipts...)...)
	verifyproof.Dir = c.dir
	if b, err := verifyproof.CombinedOutput(); err != nil {
		t.Fatalf("torchwood's verifier: %v\n%s", err, b)
	}
}

// checkThirdWitness checks that a policy requiring a third witness, which
// never cosigned, fails verify, naming it, and torchwood's verifier.
func checkThirdWitness(t *testing.T, c *cli, logPub string, real *witnesstest.Real, receipt string) {
	t.Helper()
	third := newLocalWitness(t, "third")
	thirdPolicy := filepath.Join(c.dir, "third.policy")
	writePolicy(t, thirdPolicy, strings.Replace(real.PolicyText, "group local 2 omniwitness litewitness", third.line()+"\ngroup local all omniwitness litewitness third", 1))
	code, out, _ := c.run("verify", "--offline", "--log-key", logPub, "--policy", thirdPolicy, receipt)
	if code != exitFailed || !strings.Contains(out, "missing: third") {
		t.Fatalf("verify with a policy requiring a third witness: exit %d\n%s", code, out)
	}
	verifyproof := exec.Command(filepath.Join(real.Bin, "verifyproof"), "-policy", thirdPolicy, receipt)
	verifyproof.Dir = c.dir
	if b, err := verifyproof.CombinedOutput(); err == nil {
		t.Fatalf("torchwood's verifier accepted a receipt without the third witness:\n%s", b)
	}
}

// sameCheckpoint waits until every server serves the same cosigned
// checkpoint, and returns it.
func sameCheckpoint(t *testing.T, servers []*servertest.Server) []byte {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var cps [][]byte
		for _, s := range servers {
			resp, err := http.Get(s.HTTP + "/log/checkpoint")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cps = append(cps, b)
		}
		if bytes.Equal(cps[0], cps[len(cps)-1]) {
			return cps[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the frontends serve different checkpoints a minute after the last write:\n%s\n%s", cps[0], cps[len(cps)-1])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkFork signs a fork of latest with the log's key: both witnesses
// refuse it, "monitor --compare" writes the evidence when a mirror shows
// it, and "audit --policy" fails on a mirror that serves latest without
// its cosignatures, naming both witnesses.
func checkFork(t *testing.T, c *cli, dataDir string, real *witnesstest.Real, httpURL string, latest []byte) {
	t.Helper()
	src, err := audit.NewHTTPSource(httpURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	fork := signFork(t, dataDir, latest)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = real.TryCosign(ctx, fork, src.ConsistencyProof)
	if err == nil || !strings.Contains(err.Error(), "omniwitness refused") || !strings.Contains(err.Error(), "litewitness refused") {
		t.Fatalf("the fork was not refused by both witnesses: %v", err)
	}
	good := httpURL + "/log/"
	forked := mirror(t, httpURL, func() []byte { return fork })
	code, out, errs := c.run("monitor", "--rounds", "1", "--tiles", good, "--state", "monitor-state", "--policy", real.Policy, "--compare", good, "--compare", forked)
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
	uncosigned := mirror(t, httpURL, func() []byte { return logSignatureOnly(t, latest) })
	code, out, _ = c.run("audit", "--tiles", uncosigned, "--policy", real.Policy, "--state", "uncosigned-state")
	if code != exitFailed || !strings.Contains(out, "VIOLATION") || !strings.Contains(out, "missing: omniwitness, litewitness") {
		t.Fatalf("audit --policy of a mirror serving the checkpoint without cosignatures: exit %d\n%s", code, out)
	}
}

// logSignatureOnly returns a signed checkpoint with its first signature
// line, the log's, alone.
func logSignatureOnly(t *testing.T, cp []byte) []byte {
	t.Helper()
	i := bytes.Index(cp, []byte("\n\n"))
	if i < 0 {
		t.Fatalf("not a signed note:\n%s", cp)
	}
	end := bytes.IndexByte(cp[i+2:], '\n')
	return cp[:i+2+end+1]
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

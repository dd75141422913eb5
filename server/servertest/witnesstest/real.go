package witnesstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	// argv is the command line of each witness Stop stopped.
	argv map[string][]string
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

// The witnesses of a Real, by their names in its policy.
const (
	Omniwitness = "omniwitness"
	Litewitness = "litewitness"
)

// pidFile returns the file where up.sh keeps a witness's process id.
func (r *Real) pidFile(name string) string { return filepath.Join(r.Dir, "run", name+".pid") }

// pid returns the process id of a witness, which must be running.
func (r *Real) pid(t testing.TB, name string) int {
	t.Helper()
	b, err := os.ReadFile(r.pidFile(name))
	if err != nil {
		t.Fatalf("witness %s: %v", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("witness %s: pid file: %v", name, err)
	}
	return pid
}

// Pause stops a witness's process (SIGSTOP) without ending it: it keeps
// its port and answers nothing, as a witness that hangs, until [Real.Resume].
func (r *Real) Pause(t testing.TB, name string) {
	t.Helper()
	if err := syscall.Kill(r.pid(t, name), syscall.SIGSTOP); err != nil {
		t.Fatalf("pause witness %s: %v", name, err)
	}
	t.Cleanup(func() { syscall.Kill(r.pid(t, name), syscall.SIGCONT) })
}

// Resume lets a paused witness go on (SIGCONT).
func (r *Real) Resume(t testing.TB, name string) {
	t.Helper()
	if err := syscall.Kill(r.pid(t, name), syscall.SIGCONT); err != nil {
		t.Fatalf("resume witness %s: %v", name, err)
	}
}

// Stop stops a witness (SIGTERM) and waits for it to exit; [Real.Start]
// starts it again, on the same port, with the same key and database.
func (r *Real) Stop(t testing.TB, name string) {
	t.Helper()
	pid := r.pid(t, name)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatalf("stop witness %s: %v", name, err)
	}
	r.mu.Lock()
	if r.argv == nil {
		r.argv = map[string][]string{}
	}
	r.argv[name] = strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	r.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop witness %s: %v", name, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("witness %s did not stop within 30 s of SIGTERM", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Start starts a witness that [Real.Stop] stopped, as up.sh did, and waits
// until it answers on its port.
func (r *Real) Start(t testing.TB, name string) {
	t.Helper()
	r.mu.Lock()
	argv := r.argv[name]
	r.mu.Unlock()
	if argv == nil {
		t.Fatalf("witness %s was not stopped", name)
	}
	logf, err := os.OpenFile(filepath.Join(r.Dir, "logs", name+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start witness %s: %v", name, err)
	}
	go cmd.Wait()
	if err := os.WriteFile(r.pidFile(name), fmt.Appendf(nil, "%d\n", cmd.Process.Pid), 0o644); err != nil {
		t.Fatal(err)
	}
	u := r.OmniwitnessURL
	if name == Litewitness {
		u = r.LitewitnessURL
	}
	addr := strings.TrimPrefix(u, "http://")
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("witness %s does not answer on %s 30 s after its start: %v", name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running reports whether the process pid runs (and is not a zombie).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndex(s, ") ")
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

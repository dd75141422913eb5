package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/trillian"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// TestTrillianKilled kills Trillian itself under a bulk import: the log
// server, the signer, both, or PostgreSQL (every process of it, as a crash
// of the database server would), with SIGKILL at random moments, restarted
// after a random pause. The frontend is not restarted: it must ride out
// their absence. Afterwards every receipt it handed out verifies, the
// log passes an audit, and each name is in the roster once and in the log
// once.
//
// It starts a Trillian and PostgreSQL of its own with deploy/trillian/up.sh,
// so that killing them disturbs no other test; it runs where the shared
// ones do (trilliantest.Need).
func TestTrillianKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills Trillian")
	}
	trilliantest.Need(t)
	kills := 8
	if v := os.Getenv("UNDERSIGNED_TRILLIAN_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("UNDERSIGNED_TRILLIAN_KILLS=%q", v)
		}
		kills = n
	}
	tr := startTrillian(t)
	env := trilliantest.Connect(t, tr.settings["TRILLIAN_ADDR"], tr.settings["POSTGRES_URI"])
	tree, db := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)

	logf, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 100_000 {
				b = b[len(b)-100_000:]
			}
			t.Logf("server log (end):\n%s", b)
		}
		logf.Close()
	}()
	dir, knownLogs := t.TempDir(), filepath.Join(t.TempDir(), "known_logs")
	f := startFrontend(t, env, dir, "trillian-killed.test/undersigned", tree, db, 0, logf)
	cl, _ := f.DialOrganiser(t, knownLogs)
	defer cl.Close()
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	secrets := &rowSecrets{}
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "killed", Title: "Trillian killed", Text: "Sign here.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}

	// The import goes on, a chunk of new rows at a time, for as long as the
	// killer kills, then until every row has its receipt; a failed chunk
	// is rerun.
	const chunk = 20
	var names []string
	got := &receipts{byID: map[int][]byte{}}
	killing := make(chan struct{})
	imported := make(chan error, 1)
	var retries int
	go func() {
		deadline := time.Now().Add(3 * time.Minute)
		more := true
		for time.Now().Before(deadline) {
			ictx, cancel := context.WithTimeout(ctx, time.Minute)
			_, err := importRows(ictx, cl, l, key, secrets, names, got)
			cancel()
			if err != nil {
				retries++
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if len(got.all()) < len(names) {
				continue
			}
			if !more {
				imported <- nil
				return
			}
			select {
			case <-killing:
				more = false
			default:
				for range chunk {
					names = append(names, fmt.Sprintf("Killed Signer %05d Łacinka", len(names)))
				}
			}
		}
		imported <- fmt.Errorf("after 3 minutes, %d of %d rows have receipts", len(got.all()), len(names))
	}()
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 2))
	victims := map[string]int{}
	for range kills {
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		var which []string
		switch rng.IntN(4) {
		case 0:
			which = []string{"trillian_log_server"}
		case 1:
			which = []string{"trillian_log_signer"}
		case 2:
			which = []string{"trillian_log_server", "trillian_log_signer"}
		default:
			which = []string{"postgres"}
		}
		victims[strings.Join(which, " and ")]++
		var argvs [][]string
		for _, n := range which {
			if n == "postgres" {
				argvs = append(argvs, tr.killPostgres(t))
			} else {
				argvs = append(argvs, tr.kill(t, n))
			}
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		for i, n := range which {
			if n == "postgres" {
				tr.restartPostgres(t, argvs[i])
			} else {
				tr.restart(t, n, argvs[i])
			}
		}
	}
	close(killing)
	if err := <-imported; err != nil {
		t.Fatal(err)
	}

	checkAll(t, ctx, cl, got)
	auditOnce(t, ctx, cl, t.TempDir())
	_, size := checkOnceEach(t, ctx, cl, "killed", names)
	t.Logf("Trillian killed: %d times (%v) under an import of %d rows (%d chunks failed and were rerun); %d receipts, all verify; log size %d",
		kills, victims, len(names), retries, len(got.all()), size)
}

// privateTrillian is a Trillian and PostgreSQL that deploy/trillian/up.sh
// started for one test.
type privateTrillian struct {
	dir      string
	settings map[string]string
}

func startTrillian(t *testing.T) *privateTrillian {
	t.Helper()
	scripts, err := filepath.Abs("../../../deploy/trillian")
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: PostgreSQL runs as its own user, who must be able to
	// enter the folder.
	dir, err := os.MkdirTemp("", "undersigned-trillian-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("UNDERSIGNED_KEEP_TRILLIAN") == "1" {
			t.Logf("UNDERSIGNED_KEEP_TRILLIAN=1: Trillian and PostgreSQL left running in %s", dir)
			return
		}
		if out, err := exec.Command(filepath.Join(scripts, "down.sh"), dir).CombinedOutput(); err != nil {
			t.Errorf("down.sh: %v\n%s", err, out)
			return
		}
		os.RemoveAll(dir)
	})
	var stderr bytes.Buffer
	up := exec.Command(filepath.Join(scripts, "up.sh"), dir)
	up.Stderr = &stderr
	out, err := up.Output()
	if err != nil {
		t.Fatalf("up.sh: %v\n%s", err, stderr.Bytes())
	}
	tr := &privateTrillian{dir: dir, settings: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			tr.settings[k] = v
		}
	}
	if tr.settings["TRILLIAN_ADDR"] == "" || tr.settings["POSTGRES_URI"] == "" {
		t.Fatalf("up.sh printed no TRILLIAN_ADDR or POSTGRES_URI:\n%s", out)
	}
	return tr
}

// kill kills the named process with SIGKILL, waits until it is gone, and
// returns its command line.
func (tr *privateTrillian) kill(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.dir, "run", name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s.pid: %v", name, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatalf("%s (pid %d) is not running: %v", name, pid, err)
	}
	argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if filepath.Base(argv[0]) != name {
		t.Fatalf("pid %d runs %q, not %s", pid, argv[0], name)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", name, err)
	}
	waitGone(t, name, pid)
	return argv
}

// restart starts the named process again with its command line, as up.sh
// did, and records its pid where down.sh looks for it.
func (tr *privateTrillian) restart(t *testing.T, name string, argv []string) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(tr.dir, "logs", name+".log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart %s: %v", name, err)
	}
	go cmd.Wait()
	if err := os.WriteFile(filepath.Join(tr.dir, "run", name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if name != "trillian_log_server" {
		return
	}
	addr := tr.settings["TRILLIAN_ADDR"]
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s 30 s after its restart", name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killPostgres kills every process of the PostgreSQL cluster with SIGKILL
// and returns the postmaster's command line.
func (tr *privateTrillian) killPostgres(t *testing.T) []string {
	t.Helper()
	data := filepath.Join(tr.dir, "pg", "data")
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	opts, err := os.ReadFile(filepath.Join(data, "postmaster.opts"))
	if err != nil {
		t.Fatal(err)
	}
	// The binary, then each argument in double quotes.
	fields := strings.Split(strings.TrimSpace(string(opts)), " \"")
	argv := []string{fields[0]}
	for _, f := range fields[1:] {
		argv = append(argv, strings.TrimSuffix(f, "\""))
	}
	pids := append([]int{pid}, childrenOf(pid)...)
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGKILL)
	}
	for _, p := range pids {
		waitGone(t, "postgres", p)
	}
	// A new postmaster refuses to start while the old one's pid answers,
	// and a zombie's does until init reaps it. Once every process is dead
	// the lock file may go, as an operator would remove it.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			if err := os.Remove(filepath.Join(data, "postmaster.pid")); err != nil {
				t.Fatal(err)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return argv
}

// restartPostgres starts the postmaster again as the cluster's owner; it
// recovers from its write-ahead log.
func (tr *privateTrillian) restartPostgres(t *testing.T, argv []string) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(tr.dir, "pg", "postgres.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("restart postgres: %v", err)
	}
	go cmd.Wait()
	port := ""
	for i, a := range argv {
		if a == "-p" && i+1 < len(argv) {
			port = argv[i+1]
		}
	}
	if port == "" {
		t.Fatalf("no -p in the postmaster's command line %q", argv)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		if out, err := exec.Command(filepath.Join(filepath.Dir(argv[0]), "pg_isready"), "-q", "-h", "127.0.0.1", "-p", port, "-U", "postgres").CombinedOutput(); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("postgres is not ready 60 s after its restart: %v %s", err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childrenOf returns the pids of the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		_, rest, ok := strings.Cut(string(stat), ") ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// waitGone waits until pid has exited (or is a zombie nobody reaped yet).
func waitGone(t *testing.T, name string, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still runs 10 s after SIGKILL", name, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

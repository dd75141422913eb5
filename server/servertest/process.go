package servertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
)

// childEnv, set in a child's environment, makes the test binary run the
// server's main instead of the tests (see [RunChild]).
const childEnv = "UNDERSIGNED_SERVERTEST_CHILD"

// RunChild runs main in place of the tests when this test binary was
// started by [StartProcess] or [Command], and reports whether it did. The
// test binary of cmd/undersigned-server doubles as the server this way, so
// that process tests need no separate build; its TestMain calls RunChild
// first. main gets the engine wrapper the child's options asked for (nil
// for none), a test seam it hands to the server.
func RunChild(main func(wrap func(server.Engine) server.Engine)) bool {
	if os.Getenv(childEnv) != "1" {
		return false
	}
	main(killHook())
	return true
}

// Command returns the command that runs undersigned-server (this test
// binary, whose TestMain calls [RunChild]) with args.
func Command(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	return cmd
}

// ProcessOptions configure a server process.
type ProcessOptions struct {
	// Dir is the data folder and Origin the log's origin.
	Dir, Origin string
	// Args are more flags of `undersigned-server serve`: --trillian, say.
	Args []string
	// KillAfterAdmit > 0 makes the server kill itself with SIGKILL after
	// that many admitted batches, between their intents and their append.
	KillAfterAdmit int
	// Env is added to the process's environment.
	Env []string
	// Log receives what the process writes; nil discards it.
	Log io.Writer
	// Binary, when set, is the executable to run instead of this test
	// binary: a build of undersigned-server (see [BuildServer]), for a test
	// that measures the server as it ships (without the race detector, say).
	Binary string
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// BuildServer builds undersigned-server with `go build` (no race detector,
// whatever the tests were built with) once per test binary, and returns
// its path.
func BuildServer(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "undersigned-server-build")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "undersigned-server")
		out, err := exec.Command("go", "build", "-o", buildPath, "github.com/undersigned/undersigned/server/cmd/undersigned-server").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build undersigned-server: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Process is an undersigned-server serving in a child process.
type Process struct {
	// Addr and HTTPAddr are its gRPC and HTTP addresses, host:port.
	Addr, HTTPAddr string
	// Dir is its data folder.
	Dir string

	cmd  *exec.Cmd
	done chan error
	// out is what the process wrote, kept to tell why it exited.
	out *syncBuffer
}

// StartProcess starts `undersigned-server serve` (this test binary, whose
// TestMain calls [RunChild]) on two free ports of loopback, with a short
// batch age and checkpoint interval. It is killed at the end of the test.
func StartProcess(t testing.TB, o ProcessOptions) *Process {
	t.Helper()
	if o.Log == nil {
		o.Log = io.Discard
	}
	p := &Process{Addr: freePort(t), HTTPAddr: freePort(t), Dir: o.Dir, done: make(chan error, 1), out: &syncBuffer{}}
	args := []string{"serve", "--grpc", p.Addr, "--http", p.HTTPAddr, "--data", o.Dir,
		"--batch-age", "10ms", "--checkpoint-interval", "100ms"}
	if o.Origin != "" {
		args = append(args, "--origin", o.Origin)
	}
	p.cmd = Command(append(args, o.Args...)...)
	if o.Binary != "" {
		p.cmd.Path, p.cmd.Args[0] = o.Binary, o.Binary
	}
	p.cmd.Env = append(p.cmd.Env, o.Env...)
	if o.KillAfterAdmit > 0 {
		p.cmd.Env = append(p.cmd.Env, killAfterAdmitEnv+"="+strconv.Itoa(o.KillAfterAdmit))
	}
	p.cmd.Stdout = io.MultiWriter(o.Log, p.out)
	p.cmd.Stderr = p.cmd.Stdout
	p.start(t)
	t.Cleanup(p.Kill)
	return p
}

func (p *Process) start(t testing.TB) {
	t.Helper()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
}

// startAgainOnNewPorts starts a process that exited because one of its
// free ports was taken between freePort and its bind (another process's
// outgoing connection may take it), on two new ones. It reports whether
// that was why.
func (p *Process) startAgainOnNewPorts(t testing.TB) bool {
	t.Helper()
	if !strings.Contains(p.out.String(), "address already in use") {
		return false
	}
	oldAddr, oldHTTP := p.Addr, p.HTTPAddr
	p.Addr, p.HTTPAddr = freePort(t), freePort(t)
	t.Logf("a port of the server was taken before it could listen; starting it again on %s and %s", p.Addr, p.HTTPAddr)
	args := slices.Clone(p.cmd.Args[1:])
	for i, a := range args {
		switch a {
		case oldAddr:
			args[i] = p.Addr
		case oldHTTP:
			args[i] = p.HTTPAddr
		}
	}
	cmd := exec.Command(p.cmd.Path, args...)
	cmd.Env, cmd.Stdout = p.cmd.Env, p.cmd.Stdout
	p.cmd, p.out = cmd, &syncBuffer{}
	cmd.Stdout = io.MultiWriter(cmd.Stdout, p.out)
	cmd.Stderr = cmd.Stdout
	p.start(t)
	return true
}

// Kill kills the process with SIGKILL and waits for it; it may be called
// more than once.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil // later kills return at once
}

// Stop stops the process with SIGINT and waits for it to exit.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		p.done <- nil
	case <-time.After(time.Minute):
		t.Error("the server did not stop within a minute of SIGINT")
		p.Kill()
	}
}

// Pid returns the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Dial waits for the server to answer, or for it to die, and returns a
// client that sends token with its writes, pinning the log's key in
// knownLogs (none when empty). The caller closes it.
func (p *Process) Dial(t testing.TB, token, knownLogs string) *client.Client {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		cl, err := client.Dial(ctx, client.Config{Addr: p.Addr, Token: token, KnownLogs: knownLogs})
		cancel()
		if err == nil {
			return cl
		}
		select {
		case err := <-p.done:
			if p.startAgainOnNewPorts(t) {
				continue
			}
			p.done <- err
			t.Fatalf("the server exited before answering: %v\n%s", err, p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DialOrganiser waits for the server to answer, which on a first start
// means it made the first organiser token, and dials with that token. It
// returns the client and the token.
func (p *Process) DialOrganiser(t testing.TB, knownLogs string) (*client.Client, string) {
	t.Helper()
	p.Dial(t, "", knownLogs).Close()
	token := readFile(t, filepath.Join(p.Dir, datadir.TokenFile))
	return p.Dial(t, token, knownLogs), token
}

// Checkpoint returns the checkpoint the server serves at /log/checkpoint.
func (p *Process) Checkpoint(t testing.TB) []byte {
	t.Helper()
	resp, err := http.Get("http://" + p.HTTPAddr + "/log/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /log/checkpoint: %d %s", resp.StatusCode, b)
	}
	return b
}

// CopyFolder copies the files a second frontend of the same log needs
// from one data folder to another: the keys, the secrets and the token
// file.
func CopyFolder(t testing.TB, from, to string) {
	t.Helper()
	for _, f := range []string{datadir.LogKeyFile, datadir.LogPubFile, datadir.DedupSecretFile, datadir.TokenFile} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// ReadToken returns the first organiser token of a data folder.
func ReadToken(t testing.TB, dir string) string {
	t.Helper()
	return readFile(t, filepath.Join(dir, datadir.TokenFile))
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

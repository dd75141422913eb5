package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
)

// builtCLI is the undersigned binary, built once for the tests that drive
// it as a user would.
var builtCLI struct {
	once sync.Once
	path string
	err  error
}

func buildCLI(t *testing.T) string {
	t.Helper()
	builtCLI.once.Do(func() {
		dir, err := os.MkdirTemp("", "undersigned-cli")
		if err != nil {
			builtCLI.err = err
			return
		}
		builtCLI.path = filepath.Join(dir, "undersigned")
		out, err := exec.Command("go", "build", "-o", builtCLI.path, ".").CombinedOutput()
		if err != nil {
			builtCLI.err = errors.New(string(out))
		}
	})
	if builtCLI.err != nil {
		t.Fatalf("go build: %v", builtCLI.err)
	}
	return builtCLI.path
}

// user is a person at a terminal: the built command line against a fresh
// server, in a folder of their own.
type user struct {
	t                  *testing.T
	bin, dir, config   string
	grpc, http, token  string
	lastOut, lastError string
}

func newUser(t *testing.T) *user {
	t.Helper()
	bin := buildCLI(t)
	s := servertest.Start(t, servertest.Options{Origin: "promises.test/undersigned"})
	return &user{t: t, bin: bin, dir: t.TempDir(), config: t.TempDir(), grpc: s.Addr, http: s.HTTP, token: s.Srv.TokenPath}
}

// run runs the command line and returns its exit code.
func (u *user) run(args ...string) int {
	u.t.Helper()
	cmd := exec.Command(u.bin, args...)
	cmd.Dir = u.dir
	cmd.Env = append(os.Environ(), "UNDERSIGNED_SERVER="+u.grpc, "UNDERSIGNED_TOKEN_FILE="+u.token, "UNDERSIGNED_CONFIG_DIR="+u.config)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	u.lastOut, u.lastError = out.String(), errb.String()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		u.t.Fatalf("undersigned %v: %v", args, err)
	}
	return 0
}

func (u *user) must(args ...string) string {
	u.t.Helper()
	if code := u.run(args...); code != 0 {
		u.t.Fatalf("undersigned %s: exit %d\n%s%s", strings.Join(args, " "), code, u.lastOut, u.lastError)
	}
	return u.lastOut
}

func (u *user) write(name, content string) string {
	u.t.Helper()
	if err := os.WriteFile(filepath.Join(u.dir, name), []byte(content), 0o644); err != nil {
		u.t.Fatal(err)
	}
	return name
}

func (u *user) publish(id string) {
	u.t.Helper()
	text := u.write(id+".txt", "We ask for "+id+".\n")
	u.must("letter", "publish", "--id", id, "--title", "On "+id, "--text", text)
}

// names reports whether the roster, GetEntries or the disclosure bundles
// name someone.
func (u *user) names(letter, name string) bool {
	u.t.Helper()
	if strings.Contains(u.must("roster", "--letter", letter), name) {
		return true
	}
	c := u.dial("")
	stream, err := c.API().GetEntries(context.Background(), &pb.GetEntriesRequest{})
	if err != nil {
		u.t.Fatal(err)
	}
	size := uint64(0)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			u.t.Fatal(err)
		}
		for _, e := range resp.GetEntries() {
			size = e.GetIndex() + 1
			if strings.Contains(e.GetDisclosure().GetName(), name) {
				return true
			}
		}
	}
	resp, err := http.Get(u.http + "/log/disclosures/000.p/" + strconv.FormatUint(size, 10))
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		u.t.Fatalf("disclosures: %d %s", resp.StatusCode, body)
	}
	return bytes.Contains(body, []byte(name))
}

func (u *user) dial(token string) *client.Client {
	u.t.Helper()
	c, err := client.Dial(context.Background(), client.Config{Addr: u.grpc, Token: token, KnownLogs: filepath.Join(u.config, "known_logs")})
	if err != nil {
		u.t.Fatal(err)
	}
	u.t.Cleanup(func() { c.Close() })
	return c
}

// TestPromisesFromTheCommandLine is the acceptance of issue 10 as a user
// would check it: the built command line against a fresh server.
func TestPromisesFromTheCommandLine(t *testing.T) {
	t.Run("a withdrawn endorsement replayed without a token is refused", func(t *testing.T) {
		u := newUser(t)
		text := u.write("replayed.txt", "We ask for an open letter.\n")
		u.must("letter", "publish", "--id", "replayed", "--title", "Open", "--text", text, "--policy", "open")
		u.must("keygen", "--out", "signer.key")
		u.must("endorse", "--letter", "replayed", "--name", "Withdrawn Once", "--key", "signer.key", "--receipt", "r.tlog-proof")
		u.must("withdraw", "--receipt", "r.tlog-proof")
		// Another signer, withdrawn by the organiser: no secret revealed.
		u.must("keygen", "--out", "other.key")
		u.must("endorse", "--letter", "replayed", "--name", "Withdrawn Twice", "--key", "other.key", "--receipt", "o.tlog-proof")
		u.must("withdraw", "--index", receiptIndex(t, filepath.Join(u.dir, "o.tlog-proof")), "--reason", "not_signed")
		anon := u.dial("")
		stream, err := anon.API().GetEntries(context.Background(), &pb.GetEntriesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var endorsements []*pb.Entry
		for {
			resp, err := stream.Recv()
			if err != nil {
				break
			}
			for _, e := range resp.GetEntries() {
				if rec, _ := records.Decode(e.GetRecord()); rec.GetEndorsement() != nil {
					endorsements = append(endorsements, e)
				}
			}
		}
		for _, en := range endorsements {
			rec, _ := records.Decode(en.GetRecord())
			_, err = anon.API().Endorse(context.Background(), &pb.EndorseRequest{Endorsement: rec.GetEndorsement(), Disclosure: en.GetDisclosure()})
			if err == nil {
				t.Errorf("the withdrawn endorsement at %d replayed was accepted", en.GetIndex())
			}
		}
		u.must("roster", "--letter", "replayed")
		if !strings.Contains(u.lastError, "0 public") || !strings.Contains(u.lastError, "2 withdrawn") {
			t.Errorf("the roster counts %q, want 0 public and 2 withdrawn", u.lastError)
		}
	})

	t.Run("one person private and public in one import: both rejected", func(t *testing.T) {
		u := newUser(t)
		u.publish("private")
		csv := u.write("both.csv", "name,visibility\nXanthe Both,private\nXanthe Both,public\n")
		if code := u.run("import", "--letter", "private", "--csv", csv, "--receipts", "r1"); code != 1 {
			t.Errorf("import: exit %d, want 1\n%s%s", code, u.lastOut, u.lastError)
		}
		rejects, _ := os.ReadFile(filepath.Join(u.dir, "both.csv.rejects.csv"))
		if strings.Count(string(rejects), "Xanthe Both") != 2 {
			t.Errorf("rejects file:\n%s\nwant both rows", rejects)
		}
		if u.names("private", "Xanthe") {
			t.Error("the person is named")
		}
		// Already public, imported as private: rejected.
		u.must("endorse", "--letter", "private", "--name", "Yorick Public")
		csv = u.write("private.csv", "name,visibility\nYorick Public,private\n")
		if code := u.run("import", "--letter", "private", "--csv", csv, "--receipts", "r2"); code != 1 {
			t.Errorf("import as private of a public signer: exit %d, want 1\n%s%s", code, u.lastOut, u.lastError)
		}
	})

	t.Run("a redaction sticks against a re-import", func(t *testing.T) {
		u := newUser(t)
		u.publish("redacted")
		csv := u.write("list.csv", "name\nZofia Redacted\nKept Signer\n")
		u.must("import", "--letter", "redacted", "--csv", csv, "--receipts", "first")
		// Zofia is on the file's row 2 (the header is row 1).
		receipts, _ := filepath.Glob(filepath.Join(u.dir, "first", "*-row2.tlog-proof"))
		if len(receipts) != 1 {
			t.Fatalf("receipts of the first import: %v", receipts)
		}
		index := receiptIndex(t, receipts[0])
		u.must("redact", "--index", index)
		if code := u.run("import", "--letter", "redacted", "--csv", csv, "--receipts", "second"); code != 1 {
			t.Errorf("the re-import: exit %d, want 1\n%s%s", code, u.lastOut, u.lastError)
		}
		rejects, _ := os.ReadFile(filepath.Join(u.dir, "list.csv.rejects.csv"))
		if !strings.Contains(string(rejects), "readd_after_redaction") {
			t.Errorf("the rejects file does not name the rule:\n%s", rejects)
		}
		if u.names("redacted", "Zofia") {
			t.Error("the redacted person is named")
		}
	})

	t.Run("withdraw and redact with one receipt", func(t *testing.T) {
		u := newUser(t)
		u.publish("gone")
		u.must("endorse", "--letter", "gone", "--name", "Wanda Gone", "--receipt", "w.tlog-proof")
		out := u.must("withdraw", "--receipt", "w.tlog-proof", "--redact", "--out", "withdrawal.tlog-proof")
		for _, f := range []string{"withdrawal.tlog-proof", "withdrawal.redact.tlog-proof"} {
			if _, err := os.Stat(filepath.Join(u.dir, f)); err != nil {
				t.Errorf("%s: %v (output %q)", f, err, out)
			}
		}
		if u.names("gone", "Wanda") {
			t.Error("the name is still served")
		}
	})
}

// receiptIndex returns the index a receipt proves, as a string.
func receiptIndex(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The first line of a tlog-proof file after its header names the index.
	m := regexp.MustCompile(`(?m)^index (\d+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no index line", path)
	}
	return string(m[1])
}

package main

import (
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/server/servertest"
)

// TestVerifyDisclosure: problem 4 of issue 15. A name kept apart with
// endorse --disclosure-out is proved with verify --disclosure; a changed
// name is not.
func TestVerifyDisclosure(t *testing.T) {
	c, _ := newServerCLI(t)
	publishSample(t, c)
	if code, out, errs := c.run("endorse", "--letter", "library-hours", "--name", "Ціхая Асоба", "--receipt", "me.tlog-proof", "--disclosure-out", "me.json"); code != 0 {
		t.Fatalf("endorse: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := c.run("verify", "me.tlog-proof"); code != 0 || !strings.Contains(out, "no disclosure in the receipt") {
		t.Fatalf("verify without the disclosure: exit %d\n%s", code, out)
	}
	for _, offline := range [][]string{nil, {"--offline"}} {
		args := append(append([]string{"verify"}, offline...), "me.tlog-proof", "--disclosure", "me.json")
		if code, out, errs := c.run(args...); code != 0 || !strings.Contains(out, `by "Ціхая Асоба"`) {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, "me.json"))
	os.WriteFile(filepath.Join(c.dir, "other.json"), []byte(strings.Replace(string(b), "Ціхая", "Іншая", 1)), 0o600)
	if code, out, _ := c.run("verify", "--offline", "me.tlog-proof", "--disclosure", "other.json"); code != exitFailed || !strings.Contains(out, "FAILED") {
		t.Fatalf("a changed name: exit %d, want %d\n%s", code, exitFailed, out)
	}
}

// TestMessagesThatHelp: problem 6 of issue 15.
func TestMessagesThatHelp(t *testing.T) {
	c, _ := newServerCLI(t)
	publishSample(t, c)
	if code, out, errs := c.run("endorse", "--letter", "library-hours", "--name", "Anna Test", "--receipt", "me.tlog-proof"); code != 0 {
		t.Fatalf("endorse: exit %d\n%s%s", code, out, errs)
	}
	// Another log's key: a server of its own.
	wrongKey := servertest.Start(t, servertest.Options{Origin: "cli.test/other"}).VerifierKeyFile

	// Offline with another log's key: not "note has no verifiable signatures".
	code, out, _ := c.run("verify", "--offline", "--log-key", wrongKey, "me.tlog-proof")
	if code != exitFailed || !strings.Contains(out, "log key given is for log") || strings.Contains(out, "no verifiable signatures") {
		t.Errorf("offline, another log's key: exit %d\n%s", code, out)
	}
	// Offline with another key of the same log's name: not signed by it.
	_, vk, _ := note.GenerateKey(rand.Reader, "cli.test/issue15")
	sameName := filepath.Join(c.dir, "same-name.pub")
	os.WriteFile(sameName, []byte(vk+"\n"), 0o644)
	code, out, _ = c.run("verify", "--offline", "--log-key", sameName, "me.tlog-proof")
	if code != exitFailed || !strings.Contains(out, "not signed by the log key given") {
		t.Errorf("offline, another key of the same name: exit %d\n%s", code, out)
	}
	// Online with a wrong --log-key: not "the log's key changed".
	code, _, errs := c.run("verify", "--log-key", wrongKey, "me.tlog-proof")
	if code != exitFailed || strings.Contains(errs, "key changed") || !strings.Contains(errs, "not the one given") || !strings.Contains(errs, "log.pub") {
		t.Errorf("online, a wrong --log-key: exit %d\n%s", code, errs)
	}
	// A server that is down: say so, and point at --offline.
	down := *c
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	down.server = l.Addr().String()
	l.Close()
	code, _, errs = down.run("verify", "me.tlog-proof")
	if code != exitUsage || !strings.Contains(errs, "cannot reach the server") || !strings.Contains(errs, "--offline") {
		t.Errorf("server down: exit %d\n%s", code, errs)
	}
	// Offline, --require-counted cannot be confirmed: exit 1.
	code, out, _ = c.run("verify", "--offline", "--require-counted", "me.tlog-proof")
	if code != exitFailed || !strings.Contains(out, "state unknown offline: cannot confirm it still counts") {
		t.Errorf("offline --require-counted: exit %d\n%s", code, out)
	}
	// An open letter without a signer key: say to run keygen.
	text := filepath.Join(c.dir, "open.txt")
	os.WriteFile(text, []byte("Anyone may sign.\n"), 0o644)
	if code, _, errs := c.run("letter", "publish", "--id", "open-one", "--title", "Open", "--text", text, "--policy", "open"); code != 0 {
		t.Fatal(errs)
	}
	stranger := *c
	stranger.config, stranger.token = t.TempDir(), ""
	code, _, errs = stranger.run("endorse", "--letter", "open-one", "--name", "A Stranger")
	if code != exitUsage || !strings.Contains(errs, "keygen") {
		t.Errorf("an open letter without a key: exit %d\n%s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(stranger.config, "organiser.key")); err == nil {
		t.Error("an organiser key was created for the stranger")
	}
}

// TestVolunteerKey: problem 5 of issue 15 (the part that is not
// OrganiserChange). A volunteer with a token scoped to a letter and no key
// of the letter's is told what to do, and no key is created.
func TestVolunteerKey(t *testing.T) {
	c, srv := newServerCLI(t)
	publishSample(t, c)
	tok := srv.NewToken(t, "volunteer", "library-hours")
	v := *c
	v.config = t.TempDir()
	v.token = filepath.Join(t.TempDir(), "volunteer.token")
	os.WriteFile(v.token, []byte(tok+"\n"), 0o600)
	for _, args := range [][]string{
		{"endorse", "--letter", "library-hours", "--name", "Someone"},
		{"letter", "close", "library-hours"},
	} {
		code, out, errs := v.run(args...)
		if code != exitUsage || !strings.Contains(errs, "no organiser key") || !strings.Contains(errs, "--organiser-key") || strings.Contains(errs, "created") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errs)
		}
	}
	if _, err := os.Stat(filepath.Join(v.config, "organiser.key")); err == nil {
		t.Error("an organiser key was created for the volunteer")
	}
	os.WriteFile(filepath.Join(c.dir, "v.csv"), []byte("name\nSomeone Else\n"), 0o644)
	if code, _, errs := v.run("import", "--letter", "library-hours", "--csv", "v.csv"); code != exitUsage || !strings.Contains(errs, "no organiser key") {
		t.Errorf("import: exit %d\n%s", code, errs)
	}
	// A key of their own that the letter does not list: named, refused
	// before anything is sent.
	code, _, _ := v.run("letter", "publish", "--id", "vol-own", "--title", "Own", "--text", filepath.Join(c.dir, "v.csv"))
	if code != exitRefused { // the token is scoped to library-hours
		t.Errorf("publish with a scoped token: exit %d, want %d", code, exitRefused)
	}
	code, _, errs := v.run("endorse", "--letter", "library-hours", "--name", "Someone")
	if code != exitUsage || !strings.Contains(errs, "is not one of the 1 organiser keys valid for letter library-hours") {
		t.Errorf("a key the letter does not list: exit %d\n%s", code, errs)
	}
}

// TestExitCodes: problem 8 of issue 15. The server refusing (closed, not
// found, invalid) exits 3.
func TestExitCodes(t *testing.T) {
	c, _ := newServerCLI(t)
	publishSample(t, c)
	if code, _, errs := c.run("endorse", "--letter", "no-such-letter", "--name", "A B"); code != exitRefused {
		t.Errorf("not found: exit %d, want %d\n%s", code, exitRefused, errs)
	}
	if code, _, errs := c.run("withdraw", "--index", "999"); code != exitRefused {
		t.Errorf("no such index: exit %d, want %d\n%s", code, exitRefused, errs)
	}
	if code, _, errs := c.run("letter", "close", "library-hours"); code != 0 {
		t.Fatalf("close: exit %d\n%s", code, errs)
	}
	if code, _, errs := c.run("endorse", "--letter", "library-hours", "--name", "Too Late"); code != exitRefused {
		t.Errorf("a closed letter: exit %d, want %d\n%s", code, exitRefused, errs)
	}
	if code, _, errs := c.run("withdraw", "--index", "0", "--reason", "bogus"); code != exitUsage || !strings.Contains(errs, "signer_request, not_signed, duplicate, organiser_error") {
		t.Errorf("a bad reason: exit %d\n%s", code, errs)
	}
}

// TestSafeOutputs: problem 9 of issue 15. Files are written only as
// regular files, formula cells are neutralised, and blank-looking names
// are refused.
func TestSafeOutputs(t *testing.T) {
	c, _ := newServerCLI(t)
	publishSample(t, c)
	os.Symlink(filepath.Join(c.dir, "elsewhere"), filepath.Join(c.dir, "link.tlog-proof"))
	for _, path := range []string{os.DevNull, filepath.Join(c.dir, "link.tlog-proof"), c.dir} {
		before, _ := os.Lstat(path)
		code, _, errs := c.run("endorse", "--letter", "library-hours", "--name", "Safe Writer", "--receipt", path)
		if code != exitUsage || !strings.Contains(errs, "refusing to write") {
			t.Errorf("--receipt %s: exit %d\n%s", path, code, errs)
		}
		if after, _ := os.Lstat(path); after.Mode() != before.Mode() {
			t.Errorf("%s changed from %v to %v", path, before.Mode(), after.Mode())
		}
	}
	if _, err := os.Stat(filepath.Join(c.dir, "elsewhere")); err == nil {
		t.Error("written through the symlink")
	}
	os.WriteFile(filepath.Join(c.dir, "f.csv"), []byte("name,affiliation\n\"=HYPERLINK(\"\"http://x\"\")\",@SUM(A1)\n+Plus Name,-minus\nㅤ,\n\u2800\u2800,\n\u0301\u0301,\n"), 0o644)
	code, out, errs := c.run("import", "--letter", "library-hours", "--csv", "f.csv")
	if code != exitFailed || !strings.Contains(out, "3 rejected") {
		t.Fatalf("import: exit %d, want %d with 3 blank-looking names rejected\n%s%s", code, exitFailed, out, errs)
	}
	code, out, errs = c.run("roster", "--letter", "library-hours")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{`"'=HYPERLINK(""http://x"")",'@SUM(A1)`, `'+Plus Name,'-minus`} {
		if !strings.Contains(out, want) {
			t.Errorf("the roster lacks %s:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(out, "index,name,affiliation,country,") {
		t.Errorf("roster columns: %s", strings.SplitN(out, "\n", 2)[0])
	}
}

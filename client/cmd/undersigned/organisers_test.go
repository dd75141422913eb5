package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/server/servertest"
)

// TestSeveralOrganisers: problem 5 of issue 15, from the built binary as
// people use it. A volunteer with a token scoped to one letter gets a key
// of their own, an organiser lists it, the volunteer imports with it; once
// an organiser revokes it, the volunteer is refused with a clear message,
// what they signed before still counts, and the audit shows both changes.
func TestSeveralOrganisers(t *testing.T) {
	bin := buildCLI(t)
	s := servertest.Start(t, servertest.Options{Origin: "organisers.test/undersigned"})
	org := &user{t: t, bin: bin, dir: t.TempDir(), config: t.TempDir(), grpc: s.Addr, http: s.HTTP, token: s.Srv.TokenPath}
	vol := &user{t: t, bin: bin, dir: t.TempDir(), config: t.TempDir(), grpc: s.Addr, http: s.HTTP,
		token: filepath.Join(t.TempDir(), "volunteer.token")}
	if err := os.WriteFile(vol.token, []byte(s.NewToken(t, "volunteer", "library-hours")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	org.publish("library-hours")
	vol.write("first.csv", "name,affiliation\nAda Lovelace,Analytical Society\nТацяна Уладзіміраўна,Readers\n")
	vol.write("later.csv", "name\nToo Late\n")

	// Without a key of their own: told how to get one; none is created.
	if code := vol.run("import", "--letter", "library-hours", "--csv", "first.csv"); code != exitUsage ||
		!strings.Contains(vol.lastError, "letter organiser key") {
		t.Fatalf("import without a key: exit %d\n%s", code, vol.lastError)
	}
	if _, err := os.Stat(filepath.Join(vol.config, "organiser.key")); err == nil {
		t.Fatal("an organiser key was created for the volunteer without asking")
	}
	// Their own key, made on purpose.
	out := vol.must("letter", "organiser", "key", "--out", "volunteer.pub")
	fp := regexp.MustCompile(`fingerprint ([0-9a-f]{16})`).FindStringSubmatch(out)
	if fp == nil || !strings.Contains(vol.lastError, "created a new organiser key") {
		t.Fatalf("letter organiser key: %s%s", out, vol.lastError)
	}
	if code := vol.run("import", "--letter", "library-hours", "--csv", "first.csv"); code != exitUsage ||
		!strings.Contains(vol.lastError, fp[1]) || !strings.Contains(vol.lastError, "letter organiser add") {
		t.Fatalf("import with a key the letter does not list: exit %d\n%s", code, vol.lastError)
	}

	// An organiser lists it: the volunteer imports with it.
	pub := filepath.Join(vol.dir, "volunteer.pub")
	org.must("letter", "organiser", "add", "--letter", "library-hours", "--key", pub)
	if list := org.must("letter", "organiser", "list", "--letter", "library-hours"); !strings.Contains(list, "2 organiser key(s) valid") ||
		!regexp.MustCompile(`valid\s+`+fp[1]).MatchString(list) {
		t.Errorf("letter organiser list after the addition:\n%s", list)
	}
	vol.must("import", "--letter", "library-hours", "--csv", "first.csv", "--receipts", "receipts")
	receipts, _ := filepath.Glob(filepath.Join(vol.dir, "receipts", "*.tlog-proof"))
	if len(receipts) != 2 {
		t.Fatalf("the volunteer's import wrote %d receipts, want 2", len(receipts))
	}

	// Revoked by the organiser (by fingerprint): refused from then on.
	org.must("letter", "organiser", "revoke", "--letter", "library-hours", "--fingerprint", fp[1])
	for _, args := range [][]string{
		{"import", "--letter", "library-hours", "--csv", "later.csv"},
		{"endorse", "--letter", "library-hours", "--name", "Too Late"},
		{"letter", "close", "library-hours"},
	} {
		code := vol.run(args...)
		said := regexp.MustCompile(`(?m)^undersigned: .*was revoked from letter library-hours.*letter organiser key --organiser-key new.key.*$`)
		if code != exitUsage || !said.MatchString(vol.lastError) {
			t.Errorf("%s after the revocation: exit %d, want %d and one line saying the key was revoked and what to do:\n%s", strings.Join(args, " "), code, exitUsage, vol.lastError)
		}
	}
	// The server says so too, when asked without the command line's
	// check first (a withdrawal by index names no letter beforehand).
	if code := vol.run("withdraw", "--index", "2", "--reason", "organiser_error"); code != exitRefused || !strings.Contains(vol.lastError, "was revoked") {
		t.Errorf("a withdrawal by the revoked key: exit %d\n%s", code, vol.lastError)
	}
	// What the volunteer signed before still counts.
	for _, r := range receipts {
		if out := vol.must("verify", r); !strings.Contains(out, "counted") {
			t.Errorf("verify %s after the revocation:\n%s", r, out)
		}
	}
	// The revoked key is never listed again.
	if code := org.run("letter", "organiser", "add", "--letter", "library-hours", "--key", pub); code != exitUsage || !strings.Contains(org.lastError, "never valid") {
		t.Errorf("the revoked key added again: exit %d\n%s", code, org.lastError)
	}

	// The audit passes and its history shows both changes.
	org.must("audit", "--log-key", filepath.Join(s.Dir, "log.pub"))
	changes := org.must("changes", "--letter", "library-hours", "--from", "0")
	for _, want := range []string{"organiser-added", "organiser-revoked", "organiser key " + fp[1]} {
		if !strings.Contains(changes, want) {
			t.Errorf("changes does not show %q:\n%s", want, changes)
		}
	}
	history := org.must("roster", "--letter", "library-hours", "--history", "--offline")
	if !strings.Contains(history, "organiser-revoked") || !strings.Contains(history, fp[1]) {
		t.Errorf("roster --history does not show the revocation:\n%s", history)
	}

	// Co-organisers listed from the start.
	other := &user{t: t, bin: bin, dir: t.TempDir(), config: t.TempDir(), grpc: s.Addr, http: s.HTTP, token: s.Srv.TokenPath}
	other.must("letter", "organiser", "key", "--out", "other.pub")
	text := org.write("second.txt", "A second letter.\n")
	org.must("letter", "publish", "--id", "second", "--title", "Second", "--text", text, "--organiser", filepath.Join(other.dir, "other.pub"))
	if list := org.must("letter", "organiser", "list", "--letter", "second"); !strings.Contains(list, "2 organiser key(s) valid") {
		t.Errorf("letter publish --organiser:\n%s", list)
	}
	other.must("letter", "close", "second")
	// A private key is never taken for a public one.
	if code := org.run("letter", "organiser", "add", "--letter", "second", "--key", filepath.Join(other.config, "organiser.key")); code != exitUsage ||
		!strings.Contains(org.lastError, "private key") {
		t.Errorf("a private key given as --key: exit %d\n%s", code, org.lastError)
	}
}

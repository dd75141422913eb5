package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/server/servertest"
)

// newAuditCLI serves a new log on the embedded engine and returns a CLI
// for it, its HTTP address and its data folder. The tests may alter the
// log's files.
func newAuditCLI(t *testing.T) (*cli, string, string) {
	t.Helper()
	s := servertest.Start(t, servertest.Options{Origin: "cli.test/audit", Tampered: true})
	return &cli{t: t, server: s.Addr, token: s.Srv.TokenPath, config: t.TempDir(), dir: t.TempDir()}, s.HTTP, s.Dir
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAuditCommands runs the auditor's commands on the sample signatories:
// audit over gRPC and over HTTP, the roster from the audit state, diff with
// deliberate omissions, additions and respellings, changes, deliver and
// monitor.
func TestAuditCommands(t *testing.T) {
	c, httpURL, dataDir := newAuditCLI(t)
	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	sample, _ := filepath.Abs("../../testdata/sample-signatories.csv")
	copyFile(t, sample, filepath.Join(c.dir, "s.csv"))
	if code, out, errs := c.run("letter", "publish", "--id", "library-hours", "--title", "Library hours", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := c.run("import", "--letter", "library-hours", "--csv", "s.csv", "--ignore", "note"); code != exitFailed {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs := c.run("audit")
	if code != 0 || !strings.Contains(out, "verified entries 0 to") || !strings.Contains(out, "letter library-hours:") {
		t.Fatalf("audit: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, "probable duplicate") {
		t.Errorf("audit: no probable duplicate reported (Natallia, twice):\n%s", out)
	}
	// Over HTTP alone, into another state, with the key pinned by the
	// first audit.
	code, out, errs = c.run("audit", "--tiles", httpURL, "--state", "tiles-state")
	if code != 0 || !strings.Contains(out, "verified entries 0 to") {
		t.Fatalf("audit --tiles: exit %d\n%s%s", code, out, errs)
	}
	// Nothing new: exit 0.
	if code, out, errs = c.run("audit"); code != 0 || !strings.Contains(out, "no new entries") {
		t.Fatalf("second audit: exit %d\n%s%s", code, out, errs)
	}

	// The roster from the audit state has the server's names and counts.
	_, serverCSV, serverErr := c.run("roster", "--letter", "library-hours")
	code, offlineCSV, offlineErr := c.run("roster", "--letter", "library-hours", "--offline")
	if code != 0 {
		t.Fatalf("roster --offline: exit %d\n%s", code, offlineErr)
	}
	names := func(s string) []string {
		recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs[1:] {
			out = append(out, r[1])
		}
		return out
	}
	ledger := names(offlineCSV)
	if !slices.Equal(ledger, names(serverCSV)) || len(ledger) == 0 {
		t.Errorf("the audited roster differs from the server's:\n%s\n%s", offlineCSV, serverCSV)
	}
	count := func(s string) string { _, after, _ := strings.Cut(s, "):"); return strings.TrimSpace(after) }
	if count(serverErr) != count(offlineErr) {
		t.Errorf("counts differ: server %q, audit %q", serverErr, offlineErr)
	}

	// diff: the ledger's own list matches exactly, as lines and as CSV.
	writeLines(t, filepath.Join(c.dir, "same.txt"), ledger)
	if code, out, errs := c.run("diff", "--letter", "library-hours", "--published", "same.txt", "--offline"); code != 0 || !strings.Contains(out, "every name matches exactly") {
		t.Fatalf("diff of the same list: exit %d\n%s%s", code, out, errs)
	}
	os.WriteFile(filepath.Join(c.dir, "same.csv"), []byte(offlineCSV), 0o644)
	if code, out, errs := c.run("diff", "--letter", "library-hours", "--published", "same.csv"); code != 0 {
		t.Fatalf("diff of the roster CSV: exit %d\n%s%s", code, out, errs)
	}
	// Omissions, additions, respellings.
	edits := map[string]string{
		"Łapińska Hanna":        "lapinska  hanna",        // case, diacritics, spacing
		"Müller Marek":          "Muller Marek",           // diacritics
		"Тацяна Уладзіміраўна":  "Tatsiana Uladzimirauna", // Cyrillic to Latin
		"Bialiatskaya Tatsiana": "Тацяна Бяляцкая",        // Latin to Cyrillic, other order
	}
	omit := map[string]bool{"Novik Iryna": true, "Straŭs Ksenia": true}
	var published []string
	for _, n := range ledger {
		switch {
		case omit[n]:
		case edits[n] != "":
			published = append(published, edits[n])
		default:
			published = append(published, n)
		}
	}
	for n := range omit {
		if !slices.Contains(ledger, n) {
			t.Fatalf("%q is not in the roster", n)
		}
	}
	published = append(published, "Invented Person", "Another Invention")
	writeLines(t, filepath.Join(c.dir, "published.txt"), published)
	code, out, errs = c.run("diff", "--letter", "library-hours", "--published", "published.txt", "--offline")
	if code != exitFailed {
		t.Fatalf("diff with differences: exit %d, want %d\n%s%s", code, exitFailed, out, errs)
	}
	section := func(title string) string {
		_, rest, ok := strings.Cut(out, "\n"+title)
		if !ok {
			t.Fatalf("no section %q in:\n%s", title, out)
		}
		body, _, _ := strings.Cut(rest, "\n\n")
		return body
	}
	for _, check := range []struct {
		title string
		want  []string
	}{
		{"names that differ only in case", []string{`"lapinska  hanna"`, `"Muller Marek"`}},
		{"probable matches across scripts", []string{`"Tatsiana Uladzimirauna"  ~  ledger "Тацяна Уладзіміраўна"`, `"Тацяна Бяляцкая"  ~  ledger "Bialiatskaya Tatsiana"`}},
		{"published but not in the ledger", []string{`"Invented Person"`, `"Another Invention"`}},
		{"in the ledger but not published", []string{`"Novik Iryna"`, `"Straŭs Ksenia"`}},
	} {
		body := section(check.title)
		if n := strings.Count(body, "\n  "); n != len(check.want) {
			t.Errorf("section %q lists %d names, want %d:\n%s", check.title, n, len(check.want), body)
		}
		for _, w := range check.want {
			if !strings.Contains(body, w) {
				t.Errorf("section %q lacks %s:\n%s", check.title, w, body)
			}
		}
	}

	// changes and deliver, from the audit state.
	code, out, errs = c.run("changes", "--letter", "library-hours", "--from", "0")
	if code != 0 || !strings.Contains(out, "published") || strings.Count(out, "added") < len(ledger) {
		t.Fatalf("changes: exit %d\n%s%s", code, out, errs)
	}
	code, after, errs := c.run("changes", "--letter", "library-hours", "--after", "2000-01-01T00:00:00Z")
	if code != 0 || after != out {
		t.Fatalf("changes --after: exit %d, want the same as --from 0\n%s%s", code, after, errs)
	}
	code, out, errs = c.run("deliver", "--letter", "library-hours", "--out", "bundle")
	if code != 0 {
		t.Fatalf("deliver: exit %d\n%s%s", code, out, errs)
	}
	for _, f := range []string{"letter.txt", "roster.csv", "roster.html", "checkpoint.txt", "log.pub", "README.txt",
		"verify.html", "verify.be.html", "verify.ru.html", "undersigned.js", "wasm_exec.js", "verifier.wasm.js", "style.css"} {
		if _, err := os.Stat(filepath.Join(c.dir, "bundle", f)); err != nil {
			t.Errorf("the delivery bundle lacks %s", f)
		}
	}
	text, _ := os.ReadFile(filepath.Join(c.dir, "bundle", "letter.txt"))
	orig, _ := os.ReadFile(letter)
	if strings.TrimSpace(string(text)) != strings.TrimSpace(strings.ReplaceAll(string(orig), "\r\n", "\n")) {
		t.Error("the bundle's letter.txt is not the letter's text")
	}
	if code, out, errs := c.run("diff", "--letter", "library-hours", "--published", "bundle/roster.csv", "--offline"); code != 0 {
		t.Fatalf("diff of the delivered roster: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := c.run("audit", "--log-key", "bundle/log.pub", "--checkpoint", "bundle/checkpoint.txt"); code != 0 || !strings.Contains(out, "still holds the tree") {
		t.Fatalf("audit --checkpoint: exit %d\n%s%s", code, out, errs)
	}

	// monitor: one line per new checkpoint.
	if code, _, errs := c.run("endorse", "--letter", "library-hours", "--name", "After Delivery Test"); code != 0 {
		t.Fatal(errs)
	}
	code, out, errs = c.run("monitor", "--interval", "10ms", "--rounds", "2")
	if code != 0 || strings.Count(out, " ok") != 1 || !strings.Contains(out, "library-hours +1") {
		t.Fatalf("monitor: exit %d\n%s%s", code, out, errs)
	}

	// A stored entry altered after it was signed: a new audit exits 1 and
	// names it.
	partials, _ := filepath.Glob(filepath.Join(dataDir, "log", "tile", "entries", "000.p", "*"))
	width := func(p string) int { w, _ := strconv.Atoi(filepath.Base(p)); return w }
	slices.SortFunc(partials, func(a, b string) int { return width(a) - width(b) })
	if len(partials) == 0 {
		t.Fatal("no partial entry bundle")
	}
	bundle := partials[len(partials)-1]
	b, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 1 // in the last entry's signature
	if err := os.WriteFile(bundle, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = c.run("audit", "--state", "fresh")
	if code != exitFailed || !strings.Contains(out, fmt.Sprintf("VIOLATION index %d: tree:", width(bundle)-1)) || !strings.Contains(out, "NOT advanced") {
		t.Fatalf("audit of an altered log: exit %d\n%s%s", code, out, errs)
	}
}

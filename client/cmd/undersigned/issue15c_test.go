package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/audit"
)

// TestJournalistsTools: problem 7 of issue 15. diff reads numbered lists
// and CSV in any delimiter, reports ambiguous matches as such, flags
// withdrawn names and look-alike characters; changes says who authorised
// a withdrawal and takes dates; audit remembers its source and writes a
// report; its duplicate warnings see look-alike characters.
func TestJournalistsTools(t *testing.T) {
	c, httpURL, _ := newAuditCLI(t)
	publishSample(t, c)
	os.WriteFile(filepath.Join(c.dir, "l.csv"), []byte("name,affiliation\n"+
		"Novik Iryna,Programmer\nŁapińska Hanna,\nMüller Sören,Driver\nBialiatskaya Tatsiana,Mother of three\n"+
		"Ivan Ivanov,Plumber\nIvan Ivanov,Baker\nPetr Petrov,A\nPetr Petrov,B\nOlga Sidorova,\n\u041elga Sidorova,Twin\n"+
		"Withdrawn Person,\n"), 0o644)
	if code, out, errs := c.run("import", "--letter", "library-hours", "--csv", "l.csv"); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	idx := regexp.MustCompile(`^(\d+)-row12\.`).FindStringSubmatch(filepath.Base(receiptOfRow(t, filepath.Join(c.dir, "receipts"), 12)))
	if code, out, errs := c.run("withdraw", "--index", strings.TrimLeft(idx[1], "0"), "--reason", "not_signed"); code != 0 {
		t.Fatalf("withdraw: exit %d\n%s%s", code, out, errs)
	}

	// The audit reads over HTTP into a state folder of its own; run again
	// with only --state, it reads the same place (no --server given).
	code, out, errs := c.run("audit", "--tiles", httpURL, "--state", "st")
	if code != 0 {
		t.Fatalf("audit: exit %d\n%s%s", code, out, errs)
	}
	// Rows are sent in random order: either may come first.
	if !regexp.MustCompile(`"(Оlga|Olga) Sidorova" differs only by look-alike characters \(such as letters of another script\) from "(Olga|Оlga) Sidorova"`).MatchString(out) {
		t.Errorf("no look-alike warning:\n%s", out)
	}
	var b strings.Builder
	err := run(t.Context(), []string{"--config-dir", c.config, "audit", "--state", filepath.Join(c.dir, "st"), "--report", filepath.Join(c.dir, "report.json")}, &b, &b)
	if err != nil || !strings.Contains(b.String(), "no new entries") {
		t.Fatalf("audit with the remembered source: %v\n%s", err, b.String())
	}
	var rep struct {
		Source     string `json:"source"`
		TreeSize   uint64 `json:"tree_size"`
		RootHash   string `json:"root_hash"`
		Checkpoint string `json:"checkpoint"`
		OK         bool   `json:"ok"`
		Letters    []struct {
			Letter string       `json:"letter"`
			Counts audit.Counts `json:"counts"`
		} `json:"letters"`
		ToolVersion string `json:"tool_version"`
	}
	if err := json.Unmarshal(must(os.ReadFile(filepath.Join(c.dir, "report.json"))), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Source != httpURL || rep.TreeSize != 13 || len(rep.RootHash) != 64 || !rep.OK || len(rep.Letters) != 1 ||
		rep.Letters[0].Counts.Public != 10 || rep.Letters[0].Counts.Withdrawn != 1 || rep.ToolVersion == "" || !strings.HasPrefix(rep.Checkpoint, "cli.test/audit\n13\n") {
		t.Errorf("report %+v", rep)
	}

	// changes: who authorised, and a date.
	code, out, errs = c.run("changes", "--letter", "library-hours", "--after", "2000-01-01", "--state", "st")
	if code != 0 || !strings.Contains(out, "authorised by organiser key ") || !strings.Contains(out, "not_signed") {
		t.Errorf("changes: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = c.run("roster", "--letter", "library-hours", "--history", "--state", "st")
	if code != 0 || !strings.Contains(out, "withdrawn") || !strings.Contains(out, "organiser key ") {
		t.Errorf("roster --history: exit %d\n%s", code, out)
	}

	// diff of a numbered list: the numbers and the affiliations go.
	fixture(t, c, "published-numbered.txt")
	code, out, errs = c.run("diff", "--offline", "--state", "st", "--letter", "library-hours", "--published", "published-numbered.txt", "--format", "json")
	var cmp audit.Comparison
	if err := json.Unmarshal([]byte(out), &cmp); err != nil {
		t.Fatalf("diff: exit %d\n%s%s", code, out, errs)
	}
	if len(cmp.Exact) != 3 || len(cmp.Folded) != 1 || len(cmp.NotInLedger) != 0 {
		t.Errorf("numbered list: %+v", cmp)
	}
	for _, key := range []string{`"exact"`, `"folded"`, `"transliterated"`, `"not_in_ledger"`, `"not_published"`} {
		if !strings.Contains(out, key) {
			t.Errorf("diff --format json lacks %s", key)
		}
	}
	// A CSV with semicolons: the header is no name.
	fixture(t, c, "published-semicolon.csv")
	_, out, _ = c.run("diff", "--letter", "library-hours", "--published", "published-semicolon.csv", "--format", "json")
	if strings.Contains(out, "Name;Affiliation") || !strings.Contains(out, `"Novik Iryna"`) {
		t.Errorf("semicolon CSV:\n%s", out)
	}

	// Ambiguity, equal counts, withdrawn, look-alikes.
	os.WriteFile(filepath.Join(c.dir, "p.txt"), []byte("Ivan Ivanov\nPetr Petrov\nPetr Petrov\nWithdrawn Person\nOlga Sidorova\n\u041elga Sidorova\n"), 0o644)
	code, out, _ = c.run("diff", "--offline", "--state", "st", "--letter", "library-hours", "--published", "p.txt", "--format", "json")
	cmp = audit.Comparison{}
	json.Unmarshal([]byte(out), &cmp)
	if code != exitFailed || len(cmp.Ambiguous) != 1 || len(cmp.Ambiguous[0].Ledger) != 2 || cmp.Ambiguous[0].Published[0] != "Ivan Ivanov" {
		t.Errorf("ambiguous: exit %d %+v", code, cmp.Ambiguous)
	}
	exact := map[string]int{}
	for _, m := range cmp.Exact {
		exact[m.Published]++
	}
	if exact["Petr Petrov"] != 2 || exact["Olga Sidorova"] != 1 || exact["\u041elga Sidorova"] != 1 {
		t.Errorf("names that each side lists as often are exact matches: %v", exact)
	}
	if len(cmp.Withdrawn) != 1 || cmp.Withdrawn[0].Published != "Withdrawn Person" || len(cmp.NotInLedger) != 0 {
		t.Errorf("withdrawn: %+v, not in ledger %v", cmp.Withdrawn, cmp.NotInLedger)
	}
	os.WriteFile(filepath.Join(c.dir, "q.txt"), []byte("Olga Sidorova\n\u041elga Sid\u043erova\n"), 0o644)
	_, out, _ = c.run("diff", "--offline", "--state", "st", "--letter", "library-hours", "--published", "q.txt")
	if !strings.Contains(out, "look-alike characters") || !strings.Contains(out, `"Оlga Sidоrova"  ~  ledger "Оlga Sidorova"`) {
		t.Errorf("look-alikes:\n%s", out)
	}
	// --after with a bad date says what it wants.
	if code, _, errs := c.run("changes", "--letter", "library-hours", "--after", "29.11.2026", "--state", "st"); code != exitUsage || !strings.Contains(errs, "2026-11-29") {
		t.Errorf("a bad date: exit %d\n%s", code, errs)
	}
}

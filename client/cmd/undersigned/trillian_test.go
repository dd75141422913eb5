package main

import (
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/undersigned/undersigned/server/servertest"
)

// TestSampleOnTrillianPostgres runs the sample of the quickstart through
// the command line against a server on the Trillian engine, with Trillian
// and undersigned's store on PostgreSQL: the letter is published, the
// signatories imported, every receipt verifies online and offline, and the
// roster has every public name.
func TestSampleOnTrillianPostgres(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Engine: servertest.TrillianPostgres, Origin: "cli-trillian.test/undersigned"})
	c := &cli{t: t, server: s.Addr, token: s.Srv.TokenPath, config: t.TempDir(), dir: t.TempDir()}

	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	sample, _ := filepath.Abs("../../testdata/sample-signatories.csv")
	copyFile(t, sample, filepath.Join(c.dir, "signatories.csv"))
	if code, out, errs := c.run("log"); code != 0 || !strings.Contains(out, "trillian") {
		t.Fatalf("log: exit %d, want the trillian engine\n%s%s", code, out, errs)
	}
	if code, out, errs := c.run("letter", "publish", "--id", "library-hours", "--title", "An open letter", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	start := time.Now()
	code, out, errs := c.run("import", "--letter", "library-hours", "--csv", "signatories.csv", "--receipts", "receipts", "--ignore", "note")
	if code != exitFailed || !strings.Contains(out, "5 rejected") {
		t.Fatalf("import: exit %d, want %d with the 5 invalid rows rejected\n%s%s", code, exitFailed, out, errs)
	}
	t.Logf("imported the sample in %v", time.Since(start))
	receipts, _ := filepath.Glob(filepath.Join(c.dir, "receipts", "*.tlog-proof"))
	if len(receipts) != 194 {
		t.Fatalf("%d receipts, want 194", len(receipts))
	}
	code, out, errs = c.run(append([]string{"verify"}, receipts...)...)
	if code != 0 || strings.Count(out, "counted") != len(receipts) {
		t.Fatalf("verify every receipt online: exit %d, %d counted of %d\n%s%s", code, strings.Count(out, "counted"), len(receipts), out, errs)
	}
	pub := s.VerifierKeyFile
	code, out, errs = c.run(append([]string{"verify", "--offline", "--log-key", pub}, receipts...)...)
	if code != 0 || strings.Count(out, "verified offline") != len(receipts) {
		t.Fatalf("verify every receipt offline: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = c.run("roster", "--letter", "library-hours")
	if code != 0 {
		t.Fatalf("roster: exit %d\n%s", code, errs)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows)-1 != 172 || !strings.Contains(errs, "172 public, 17 private") {
		t.Errorf("roster: %d public names, counts %q; want 172 public, 17 private", len(rows)-1, errs)
	}
}

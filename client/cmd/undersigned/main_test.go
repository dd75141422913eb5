package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/server/servertest"
)

// testServer serves a new log and returns its address and token file.
func testServer(t *testing.T) (addr, tokenFile, dataDir string) {
	t.Helper()
	s := servertest.Start(t, servertest.Options{Origin: "cli.test/undersigned"})
	return s.Addr, s.Srv.TokenPath, s.Dir
}

// cli runs the command line in-process and returns its exit code and
// output.
type cli struct {
	t      *testing.T
	server string
	token  string
	config string
	dir    string
}

func (c *cli) run(args ...string) (int, string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"--server", c.server, "--config-dir", c.config}, args...)
	if c.token != "" {
		all = append([]string{"--token-file", c.token}, all...)
	}
	wd, _ := os.Getwd()
	os.Chdir(c.dir)
	defer os.Chdir(wd)
	err := run(context.Background(), all, &out, &errb)
	code := 0
	if err != nil {
		code = exitCode(err)
		errb.WriteString(message(err) + "\n")
	}
	return code, out.String(), errb.String()
}

func newCLI(t *testing.T) *cli {
	addr, token, _ := testServer(t)
	return &cli{t: t, server: addr, token: token, config: t.TempDir(), dir: t.TempDir()}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestImportSample imports the sample signatories: every valid row gets a
// receipt, the invalid rows go to the rejects file with the field and the
// rule, duplicates get the first receipt, a rerun sends nothing new, and the
// roster lists every public name exactly as given (after NFC).
func TestImportSample(t *testing.T) {
	c := newCLI(t)
	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	sample, _ := filepath.Abs("../../testdata/sample-signatories.csv")
	copyFile(t, sample, filepath.Join(c.dir, "s.csv"))

	if code, out, errs := c.run("letter", "publish", "--id", "library-hours", "--title", "Library hours", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
	// The sample's note column is not an input: the import stops, sending
	// nothing, until it is ignored explicitly.
	code, out, errs := c.run("import", "--letter", "library-hours", "--csv", "s.csv", "--receipts", "r")
	if code != exitUsage || !strings.Contains(errs, `"note"`) || !strings.Contains(errs, "--ignore") {
		t.Fatalf("import with an unknown column: exit %d, want %d naming the column and --ignore\n%s%s", code, exitUsage, out, errs)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "r")); err == nil {
		t.Error("the refused import made the receipts folder")
	}
	code, out, errs = c.run("import", "--letter", "library-hours", "--csv", "s.csv", "--receipts", "r", "--ignore", "note")
	if code != exitFailed {
		t.Fatalf("import: exit %d, want %d (rows rejected)\n%s%s", code, exitFailed, out, errs)
	}
	if !strings.Contains(errs, `"note" ignored`) {
		t.Errorf("import does not say it ignored the column:\n%s", errs)
	}

	f, _ := os.Open(sample)
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rows = rows[1:]
	var invalid, valid int
	public := map[string]int{}
	private := map[string]bool{}
	for _, r := range rows {
		if strings.HasPrefix(r[3], "invalid:") {
			invalid++
			continue
		}
		valid++
		key := strings.TrimSpace(norm.NFC.String(r[0])) + "\x00" + strings.TrimSpace(norm.NFC.String(r[1]))
		if r[2] == "private" {
			private[key] = true
		} else {
			public[key]++
		}
	}
	receipts, _ := filepath.Glob(filepath.Join(c.dir, "r", "*.tlog-proof"))
	if len(receipts) != valid {
		t.Errorf("%d receipts, want one per valid row: %d", len(receipts), valid)
	}
	rej, err := os.ReadFile(filepath.Join(c.dir, "s.csv.rejects.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rejRows, err := csv.NewReader(bytes.NewReader(rej)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rejRows)-1 != invalid {
		t.Errorf("%d rejected rows, want %d", len(rejRows)-1, invalid)
	}
	for _, r := range rejRows[1:] {
		reason := r[len(r)-1]
		if !strings.HasPrefix(reason, "disclosure.name: must") {
			t.Errorf("row %s: reason %q does not name the field and the rule", r[0], reason)
		}
	}

	// Exact duplicates get the first record at its index (the checkpoint
	// they are proved in may be a later one).
	a, _ := os.ReadFile(receiptOfRow(t, filepath.Join(c.dir, "r"), 5))
	b, _ := os.ReadFile(receiptOfRow(t, filepath.Join(c.dir, "r"), 18))
	ra, erra := receipt.Parse(a)
	rb, errb := receipt.Parse(b)
	if erra != nil || errb != nil || ra.Index != rb.Index || !bytes.Equal(ra.Extra.GetRecord(), rb.Extra.GetRecord()) ||
		!bytes.Equal(ra.Extra.GetWithdrawalSecret(), rb.Extra.GetWithdrawalSecret()) {
		t.Error("the duplicate row did not get the first row's record")
	}

	// A rerun sends nothing and keeps every receipt.
	code, out, errs = c.run("import", "--letter", "library-hours", "--csv", "s.csv", "--receipts", "r", "--ignore", "note")
	if code != exitFailed || !strings.Contains(out, "0 accepted now") || !strings.Contains(out, "already had receipts") {
		t.Fatalf("rerun: exit %d\n%s%s", code, out, errs)
	}

	// The roster: every public name and affiliation exactly as given after
	// NFC, once; no private name.
	code, out, errs = c.run("roster", "--letter", "library-hours")
	if code != 0 {
		t.Fatalf("roster: exit %d\n%s", code, errs)
	}
	got, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got[0][:4], ",") != "index,name,affiliation,country" {
		t.Errorf("roster header %v", got[0])
	}
	seen := map[string]int{}
	for _, r := range got[1:] {
		key := r[1] + "\x00" + r[2]
		if private[key] {
			t.Errorf("the roster names the private signer %q (%q)", r[1], r[2])
		}
		seen[key]++
	}
	for k := range public {
		if seen[k] != 1 {
			t.Errorf("%q is in the roster %d times, want once", strings.ReplaceAll(k, "\x00", " / "), seen[k])
		}
	}
	if len(seen) != len(public) {
		t.Errorf("the roster has %d distinct names, want %d", len(seen), len(public))
	}
	if !strings.Contains(errs, "17 private") {
		t.Errorf("the counts do not report the private endorsements: %s", errs)
	}
}

// receiptOfRow returns the one receipt in dir of a spreadsheet row.
func receiptOfRow(t *testing.T, dir string, row int) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("*-row%d%s", row, receipt.Extension)))
	named, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("*-row%d-*%s", row, receipt.Extension)))
	m = append(m, named...)
	if len(m) != 1 {
		t.Fatalf("receipts of row %d: %v, want one", row, m)
	}
	return m[0]
}

// TestVerifyExitCodes checks verify online and offline, and that a changed
// receipt fails with exit 1.
func TestVerifyExitCodes(t *testing.T) {
	c := newCLI(t)
	text := filepath.Join(c.dir, "letter.txt")
	os.WriteFile(text, []byte("Sign this.\r\n"), 0o644)
	if code, _, errs := c.run("letter", "publish", "--id", "l", "--title", "T", "--text", text); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := c.run("endorse", "--letter", "l", "--name", "Тацяна Уладзіміраўна", "--receipt", "me.tlog-proof"); code != 0 {
		t.Fatal(errs)
	}
	if code, out, errs := c.run("verify", "me.tlog-proof"); code != 0 || !strings.Contains(out, "counted") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	// Offline, with the key pinned on first contact.
	if code, out, errs := c.run("verify", "--offline", "me.tlog-proof"); code != 0 || !strings.Contains(out, "verified offline") {
		t.Fatalf("verify --offline: exit %d\n%s%s", code, out, errs)
	}
	// A changed receipt fails.
	b, _ := os.ReadFile(filepath.Join(c.dir, "me.tlog-proof"))
	bad := bytes.Replace(b, []byte("index 1"), []byte("index 0"), 1)
	os.WriteFile(filepath.Join(c.dir, "bad.tlog-proof"), bad, 0o644)
	if code, out, _ := c.run("verify", "--offline", "bad.tlog-proof"); code != exitFailed || !strings.Contains(out, "FAILED") {
		t.Fatalf("a changed receipt: exit %d, want %d\n%s", code, exitFailed, out)
	}
	// Withdraw with the receipt, without a token; then --require-counted
	// fails.
	noToken := *c
	noToken.token = ""
	if code, out, errs := noToken.run("withdraw", "--receipt", "me.tlog-proof"); code != 0 {
		t.Fatalf("withdraw: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := c.run("verify", "me.tlog-proof"); code != 0 || !strings.Contains(out, "withdrawn") {
		t.Fatalf("verify after withdrawal: exit %d\n%s", code, out)
	}
	if code, _, _ := c.run("verify", "--require-counted", "me.tlog-proof"); code != exitFailed {
		t.Fatalf("verify --require-counted of a withdrawn endorsement: exit %d, want %d", code, exitFailed)
	}
	// A write without a token is refused: exit 3.
	if code, _, errs := noToken.run("endorse", "--letter", "l", "--name", "Someone"); code != exitRefused {
		t.Fatalf("endorse without a token: exit %d, want %d\n%s", code, exitRefused, errs)
	}
	// Usage errors: exit 2.
	if code, _, _ := c.run("endorse", "--letter", "l"); code != exitUsage {
		t.Fatalf("endorse without --name: exit %d, want %d", code, exitUsage)
	}
}

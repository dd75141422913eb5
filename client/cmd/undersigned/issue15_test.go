package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/server/servertest"
)

// newServerCLI serves a new log and returns a CLI for it and the server.
func newServerCLI(t *testing.T) (*cli, *servertest.Server) {
	t.Helper()
	s := servertest.Start(t, servertest.Options{Origin: "cli.test/issue15"})
	return &cli{t: t, server: s.Addr, token: s.Srv.TokenPath, config: t.TempDir(), dir: t.TempDir()}, s
}

// publishSample publishes the sample letter as library-hours.
func publishSample(t *testing.T, c *cli) {
	t.Helper()
	letter, _ := filepath.Abs("../../testdata/sample-letter.txt")
	if code, out, errs := c.run("letter", "publish", "--id", "library-hours", "--title", "Library hours", "--text", letter); code != 0 {
		t.Fatalf("publish: exit %d\n%s%s", code, out, errs)
	}
}

// logSize returns the size of the log, from undersigned log.
func logSize(t *testing.T, c *cli) string {
	t.Helper()
	code, out, errs := c.run("log")
	if code != 0 {
		t.Fatalf("log: exit %d\n%s", code, errs)
	}
	m := regexp.MustCompile(`size:\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("log printed no size:\n%s", out)
	}
	return m[1]
}

func fixture(t *testing.T, c *cli, name string) string {
	t.Helper()
	from, _ := filepath.Abs(filepath.Join("../../testdata/realworld", name))
	copyFile(t, from, filepath.Join(c.dir, name))
	return name
}

// TestImportNeverLosesAField: problem 1 of issue 15. An unknown column and
// an unquoted comma used to lose data silently, exit 0; now they stop the
// import before anything is sent, and --dry-run appends nothing and writes
// the rejects file the real import writes.
func TestImportNeverLosesAField(t *testing.T) {
	c, _ := newServerCLI(t)
	publishSample(t, c)
	size := logSize(t, c)

	code, out, errs := c.run("import", "--letter", "library-hours", "--csv", fixture(t, c, "unknown-column.csv"))
	if code != exitUsage || !strings.Contains(errs, `"note"`) || !strings.Contains(errs, "--ignore") {
		t.Errorf("unknown column: exit %d, want %d naming the column\n%s%s", code, exitUsage, out, errs)
	}
	code, out, errs = c.run("import", "--letter", "library-hours", "--csv", fixture(t, c, "unquoted-comma.csv"))
	if code != exitUsage || !strings.Contains(errs, "3") || !strings.Contains(errs, "more fields than the header") {
		t.Errorf("unquoted comma: exit %d, want %d naming row 3\n%s%s", code, exitUsage, out, errs)
	}
	if got := logSize(t, c); got != size {
		t.Fatalf("the refused imports appended: size %s, was %s", got, size)
	}

	// --dry-run on the sample: nothing appended, the rejects file of the
	// real import, exit 1 as the real import.
	sample, _ := filepath.Abs("../../testdata/sample-signatories.csv")
	copyFile(t, sample, filepath.Join(c.dir, "s.csv"))
	code, out, errs = c.run("import", "--letter", "library-hours", "--csv", "s.csv", "--ignore", "note", "--dry-run")
	if code != exitFailed || !strings.Contains(out, "194 would be appended") || !strings.Contains(out, "5 rejected") ||
		!strings.Contains(out, `row 2: name "Bialiatskaya Tatsiana", affiliation "Mother of three", country "", public`) {
		t.Fatalf("dry run: exit %d, want %d with 194 rows to append and 5 rejected\n%s%s", code, exitFailed, out, errs)
	}
	if got := logSize(t, c); got != size {
		t.Fatalf("--dry-run appended: size %s, was %s", got, size)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "receipts")); err == nil {
		t.Error("--dry-run made the receipts folder")
	}
	dry, err := os.ReadFile(filepath.Join(c.dir, "s.csv.rejects.csv"))
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = c.run("import", "--letter", "library-hours", "--csv", "s.csv", "--ignore", "note")
	if code != exitFailed {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	real, _ := os.ReadFile(filepath.Join(c.dir, "s.csv.rejects.csv"))
	if !bytes.Equal(dry, real) {
		t.Errorf("the dry run's rejects file differs from the import's:\n%s\n---\n%s", dry, real)
	}
	// Rejected rows are numbered as the spreadsheet shows them: the header
	// is row 1, and the cell spanning two lines ("Line\nBreak") is one row,
	// so the empty name on line 192 of the file is row 191.
	rej, _ := csv.NewReader(bytes.NewReader(real)).ReadAll()
	recs, _ := csv.NewReader(bytes.NewReader(must(os.ReadFile(sample)))).ReadAll()
	var rows []string
	for _, r := range rej[1:] {
		var n int
		fmt.Sscan(r[0], &n)
		rows = append(rows, r[0])
		if n < 2 || n > len(recs) || !strings.HasPrefix(recs[n-1][3], "invalid:") {
			t.Errorf("rejected row %d is not an invalid row of the file", n)
		}
	}
	if !slices.Contains(rows, "191") {
		t.Errorf("rejected rows %v, want the empty name as row 191", rows)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestRealWorldImports: problem 2 of issue 15, through the CLI, over the
// fixture folder client/testdata/realworld.
func TestRealWorldImports(t *testing.T) {
	c, _ := newServerCLI(t)
	publishSample(t, c)
	for _, tc := range []struct {
		file     string
		refused  []string // flags that are missing: exit 2 without them
		flags    []string
		accepted int
		names    []string
	}{
		{"excel-utf16-semicolon.csv", nil, nil, 3, []string{"Łapińska Hanna", "Kowalczyk Paweł"}},
		{"cyrillic-windows-1251.csv", []string{"--encoding"}, []string{"--encoding", "windows-1251"}, 3, []string{"Бяляцкая Таццяна"}},
		{"form-first-last.csv", []string{"--name-order"}, []string{"--name-order", "last-first"}, 3, []string{"Müller Sören", "Bialiatskaya Tatsiana"}},
		{"western-windows-1252.csv", []string{"--encoding"}, []string{"--encoding", "windows-1252"}, 3, []string{"José Núñez"}},
		{"russian-tabs.tsv", nil, nil, 2, []string{"Лапинская Анна"}},
		{"ukrainian-name-only.csv", nil, nil, 2, []string{"Олена Шевчук"}},
		{"unknown-column.csv", []string{"--ignore"}, []string{"--ignore", "note"}, 2, []string{"Smith John"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			name := fixture(t, c, tc.file)
			dir := "r-" + tc.file
			if tc.refused != nil {
				code, _, errs := c.run("import", "--letter", "library-hours", "--csv", name, "--receipts", dir)
				if code != exitUsage || !strings.Contains(errs, tc.refused[0]) {
					t.Fatalf("without %s: exit %d, want %d naming it\n%s", tc.refused[0], code, exitUsage, errs)
				}
			}
			args := append([]string{"import", "--letter", "library-hours", "--csv", name, "--receipts", dir}, tc.flags...)
			code, out, errs := c.run(args...)
			if code != 0 || !strings.Contains(out, fmt.Sprintf("%d accepted now", tc.accepted)) || !strings.Contains(out, " 0 rejected") {
				t.Fatalf("import: exit %d, want 0 with %d accepted\n%s%s", code, tc.accepted, out, errs)
			}
			if got, _ := filepath.Glob(filepath.Join(c.dir, dir, "*-row*.tlog-proof")); len(got) != tc.accepted {
				t.Errorf("%d receipts, want %d", len(got), tc.accepted)
			}
		})
	}
	code, out, errs := c.run("roster", "--letter", "library-hours")
	if code != 0 {
		t.Fatalf("roster: exit %d\n%s", code, errs)
	}
	for _, n := range []string{"Łapińska Hanna", "Kowalczyk Paweł", "Бяляцкая Таццяна", "Müller Sören", "Bialiatskaya Tatsiana", "José Núñez", "Лапинская Анна", "Олена Шевчук", "Smith John"} {
		if !strings.Contains(out, n) {
			t.Errorf("the roster lacks %q", n)
		}
	}
	if !strings.Contains(out, `"Stowarzyszenie ""Wolne Ręce""; Kraków"`) {
		t.Errorf("the quoted affiliation with a semicolon did not survive:\n%s", out)
	}
}

// TestReceiptNames: problem 3 of issue 15. Receipts are named by log index
// and spreadsheet row, never by a private signer's name.
func TestReceiptNames(t *testing.T) {
	c, _ := newServerCLI(t)
	publishSample(t, c)
	os.WriteFile(filepath.Join(c.dir, "l.csv"), []byte("name,visibility\nAnna Public,\nHidden Person,private\nAnna Public,\n"), 0o644)
	if code, out, errs := c.run("import", "--letter", "library-hours", "--csv", "l.csv", "--receipt-names", "name"); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	ents, _ := os.ReadDir(filepath.Join(c.dir, "receipts"))
	var got []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // the import's journal (issue 10)
		}
		got = append(got, regexp.MustCompile(`^\d{6}`).ReplaceAllString(e.Name(), "N"))
	}
	slices.Sort(got)
	want := []string{"N-row2-Anna-Public.tlog-proof", "N-row3.tlog-proof", "N-row4-Anna-Public.tlog-proof"}
	if !slices.Equal(got, want) {
		t.Errorf("receipts %v, want %v", got, want)
	}
	// Rows 2 and 4 are one endorsement: one index, two files.
	if a, b := receiptOfRow(t, filepath.Join(c.dir, "receipts"), 2), receiptOfRow(t, filepath.Join(c.dir, "receipts"), 4); filepath.Base(a)[:6] != filepath.Base(b)[:6] {
		t.Errorf("duplicate rows have different indexes: %s, %s", a, b)
	}
}

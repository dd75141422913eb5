package importfile_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/undersigned/undersigned/client/importfile"
	"github.com/undersigned/undersigned/client/records"
)

// FuzzRead feeds arbitrary files to the reader: nothing panics, every row
// it keeps obeys the rules the server applies, every reject has a reason,
// and row numbers rise.
func FuzzRead(f *testing.F) {
	sample, err := os.ReadFile("../testdata/sample-signatories.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte("name,visibility\nA,private\nB,bogus\n"))
	f.Add([]byte("\ufeffName;Country\n\"x\"\"y\";BY\n\n;\n"))
	f.Add([]byte("First name\tLast name\nA\tB\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := importfile.Read(bytes.NewReader(b), importfile.Options{Ignore: nil, NameOrder: importfile.FirstLast})
		if err != nil {
			return
		}
		last := 0
		for _, r := range file.Rows {
			if err := records.CheckFields("disclosure", r.Fields); err != nil {
				t.Fatalf("row %d kept but breaks a rule: %v", r.Line, err)
			}
			if r.Line <= 1 {
				t.Fatalf("data row numbered %d", r.Line)
			}
		}
		for _, r := range file.Rejects {
			if r.Reason == "" {
				t.Fatalf("row %d rejected without a reason", r.Line)
			}
			if r.Line <= last {
				t.Fatalf("reject rows not rising: %d after %d", r.Line, last)
			}
			last = r.Line
		}
	})
}

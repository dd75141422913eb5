package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// FuzzReadImport feeds arbitrary CSV files to the import reader: nothing
// panics, every row it keeps obeys the rules the server applies, and every
// data row is either kept or rejected with a reason.
func FuzzReadImport(f *testing.F) {
	sample, err := os.ReadFile("../../testdata/sample-signatories.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte("name,visibility\nA,private\nB,bogus\n"))
	f.Add([]byte("\ufeffName,Country\n\"x\"\"y\",BY\n"))
	e := &env{stdout: io.Discard, stderr: io.Discard}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, rows, rejects, err := readImport(e, bytes.NewReader(b), pb.Verification_VERIFICATION_NONE)
		if err != nil {
			return
		}
		for _, r := range rows {
			if err := records.CheckFields("disclosure", r.signer.Fields); err != nil {
				t.Fatalf("row %d kept but breaks a rule: %v", r.number, err)
			}
		}
		for _, r := range rejects {
			if r.reason == "" {
				t.Fatalf("row %d rejected without a reason", r.number)
			}
		}
		// Count the data rows the way a CSV reader does.
		cr := csv.NewReader(bytes.NewReader(b))
		cr.FieldsPerRecord = -1
		n := -1
		for {
			_, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return
			}
			n++
		}
		if len(rows)+len(rejects) != n {
			t.Fatalf("%d rows kept and %d rejected, of %d", len(rows), len(rejects), n)
		}
	})
}

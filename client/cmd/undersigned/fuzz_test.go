package main

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/undersigned/undersigned/client/audit"
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
			if err := records.CheckFields("disclosure", r.Fields); err != nil {
				t.Fatalf("row %d kept but breaks a rule: %v", r.Number, err)
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

// FuzzPublishedList feeds arbitrary published lists to the parser and the
// comparison with a roster: nothing panics, and every published name and
// every named endorsement lands in exactly one of the comparison's lists.
func FuzzPublishedList(f *testing.F) {
	f.Add([]byte("name,affiliation\nŁapińska Hanna,x\n\"Line\nBreak\",y\n"))
	f.Add([]byte("Тацяна Уладзіміраўна\nTaciana Ŭładzimiraŭna\n\nLapinska Hanna\n"))
	f.Add([]byte("\ufeffNAME\n  Spaces Around  \n"))
	var roster []audit.RosterEntry
	for i, n := range []string{"Łapińska Hanna", "Taciana Ŭładzimiraŭna", "Łapińska Hanna", "Müller Sören"} {
		roster = append(roster, audit.RosterEntry{Index: uint64(i + 1), Disclosure: &pb.Disclosure{Name: n}})
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := parsePublished(b)
		if err != nil {
			return
		}
		c := audit.CompareNames(names, roster)
		published := len(c.Exact) + len(c.Folded) + len(c.Transliterated) + len(c.NotInLedger)
		if published != len(names) {
			t.Fatalf("%d published names, %d accounted for", len(names), published)
		}
		ledger := len(c.Exact) + len(c.Folded) + len(c.Transliterated) + len(c.NotPublished)
		if ledger != len(roster) {
			t.Fatalf("%d named endorsements, %d accounted for", len(roster), ledger)
		}
		if c.Identical() != (len(c.Exact) == len(names) && len(names) == len(roster)) {
			t.Fatalf("Identical() is %v with %d exact of %d published and %d in the ledger", c.Identical(), len(c.Exact), len(names), len(roster))
		}
	})
}

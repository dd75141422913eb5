package main

import (
	"testing"

	"github.com/undersigned/undersigned/client/audit"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

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
		published := len(c.Exact) + len(c.Folded) + len(c.Confusable) + len(c.Transliterated) + len(c.NotInLedger)
		ledger := len(c.Exact) + len(c.Folded) + len(c.Confusable) + len(c.Transliterated) + len(c.NotPublished)
		for _, a := range c.Ambiguous {
			if len(a.Published) == 0 || len(a.Ledger) == 0 {
				t.Fatalf("an ambiguous match with an empty side: %+v", a)
			}
			published += len(a.Published)
			ledger += len(a.Ledger)
		}
		if published != len(names) {
			t.Fatalf("%d published names, %d accounted for", len(names), published)
		}
		if ledger != len(roster) {
			t.Fatalf("%d named endorsements, %d accounted for", len(roster), ledger)
		}
		if c.Identical() != (len(c.Exact) == len(names) && len(names) == len(roster)) {
			t.Fatalf("Identical() is %v with %d exact of %d published and %d in the ledger", c.Identical(), len(c.Exact), len(names), len(roster))
		}
	})
}

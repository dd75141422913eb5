package audit_test

import (
	"fmt"

	"github.com/undersigned/undersigned/client/audit"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// CompareNames matches a published list with a roster: exactly, then
// folded, then across scripts, and lists what is left on either side.
func ExampleCompareNames() {
	named := func(i uint64, name string) audit.RosterEntry {
		return audit.RosterEntry{Index: i, Visibility: pb.Visibility_VISIBILITY_PUBLIC, Disclosure: &pb.Disclosure{Name: name}}
	}
	roster := []audit.RosterEntry{
		named(1, "Łapińska Hanna"),
		named(2, "Тацяна Уладзіміраўна"),
		named(3, "Novik Iryna"),
		named(4, "Müller Sören"),
	}
	published := []string{"Łapińska Hanna", "Tatsiana Uladzimirauna", "Muller Soren", "Invented Person"}
	c := audit.CompareNames(published, roster)
	fmt.Println("exact:", c.Exact)
	fmt.Println("folded:", c.Folded)
	fmt.Println("transliterated:", c.Transliterated)
	fmt.Println("not in the ledger:", c.NotInLedger)
	fmt.Println("not published:", c.NotPublished)
	fmt.Println("identical:", c.Identical())
	// Output:
	// exact: [{Łapińska Hanna Łapińska Hanna 1}]
	// folded: [{Muller Soren Müller Sören 4}]
	// transliterated: [{Tatsiana Uladzimirauna Тацяна Уладзіміраўна 2}]
	// not in the ledger: [Invented Person]
	// not published: [{ Novik Iryna 3}]
	// identical: false
}

package audit_test

import (
	"fmt"

	"github.com/undersigned/undersigned/client/audit"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Names that differ only in case, spacing, diacritics or width fold to the
// same string.
func ExampleFold() {
	fmt.Println(audit.Fold("  ŁAPIŃSKA   Hanna "))
	fmt.Println(audit.Fold("Ｆｕｌｌｗｉｄｔｈ Zoë"))
	// Output:
	// lapinska hanna
	// fullwidth zoe
}

// One name in Belarusian Cyrillic, in Łacinka and in a passport
// romanisation, with its words in either order, has one key.
func ExampleTransliterationKey() {
	for _, name := range []string{"Тацяна Уладзіміраўна", "Taciana Ŭładzimiraŭna", "Tatsiana Uladzimirauna", "Uladzimirauna Tatsiana"} {
		fmt.Println(audit.TransliterationKey(name))
	}
	// Output:
	// tacana uladzimirauna
	// tacana uladzimirauna
	// tacana uladzimirauna
	// tacana uladzimirauna
}

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

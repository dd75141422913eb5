package names_test

import (
	"fmt"

	"github.com/undersigned/undersigned/client/names"
)

// Names that differ only in case, spacing, diacritics or width fold to the
// same string.
func ExampleFold() {
	fmt.Println(names.Fold("  ŁAPIŃSKA   Hanna "))
	fmt.Println(names.Fold("Ｆｕｌｌｗｉｄｔｈ Zoë"))
	// Output:
	// lapinska hanna
	// fullwidth zoe
}

// One name in Belarusian Cyrillic, in Łacinka and in a passport
// romanisation, with its words in either order, has one key.
func ExampleTransliterationKey() {
	for _, name := range []string{"Тацяна Уладзіміраўна", "Taciana Ŭładzimiraŭna", "Tatsiana Uladzimirauna", "Uladzimirauna Tatsiana"} {
		fmt.Println(names.TransliterationKey(name))
	}
	// Output:
	// tacana uladzimirauna
	// tacana uladzimirauna
	// tacana uladzimirauna
	// tacana uladzimirauna
}

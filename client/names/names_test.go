package names_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/undersigned/undersigned/client/names"
)

func TestFold(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Müller", "muller"},
		{"MU\u0308LLER", "muller"}, // decomposed
		{"Łapińska", "lapinska"},
		{"ŁAPIŃSKA", "lapinska"},
		{"  Ana   María \t", "ana maria"},
		{"Ana\u00a0María", "ana maria"}, // no-break space
		{"Ўладыка", "уладыка"},
		{"Зінаіда Ёлкіна", "зінаіда елкіна"},
		{"Zoë O'Connor-Łukasz", "zoe o'connor-lukasz"},
		{"Zoë O’Connor–Łukasz", "zoe o'connor-lukasz"}, // typographic apostrophe and dash
		{"Ｆｕｌｌｗｉｄｔｈ Zoë", "fullwidth zoe"},
		{"Straße", "strasse"},
		{"STRASSE", "strasse"},
		{"Øvergård Sören", "overgard soren"},
		{"ΣΊΣΥΦΟΣ", "σισυφοσ"},
		{"σίσυφος", "σισυφοσ"}, // final sigma
		{"İstanbul", "istanbul"},
		{"Dvořák", "dvorak"},
		{"\xff\xfe", "\ufffd\ufffd"}, // not UTF-8: replacement characters
	} {
		if got := names.Fold(tc.in); got != tc.want {
			t.Errorf("Fold(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestFoldIsIdempotent: the server stores a fold and searches with the
// fold of a query; folding a fold must not change it.
func TestFoldIsIdempotent(t *testing.T) {
	for _, s := range []string{"Müller Sören", "ŁAPIŃSKA Hanna", "Ｆｕｌｌ", "Ǆ", "ﬁnn", "Тацяна Уладзіміраўна", "ΣΊΣΥΦΟΣ", "ǰ"} {
		f := names.Fold(s)
		if g := names.Fold(f); g != f {
			t.Errorf("Fold(Fold(%q)) = %q, not %q", s, g, f)
		}
	}
}

// meet reports whether two names share a reading.
func meet(a, b string) bool {
	ka := names.TransliterationKeys(a)
	for _, k := range names.TransliterationKeys(b) {
		if slices.Contains(ka, k) {
			return true
		}
	}
	return false
}

// TestTransliterationKeys: each group is one name as Belarusian names
// really appear: Cyrillic, Łacinka, the passport systems and the spellings
// of the diaspora.
func TestTransliterationKeys(t *testing.T) {
	for _, group := range [][]string{
		// Łacinka, Belarusian passport, words in either order
		{"Тацяна Уладзіміраўна", "Taciana Ŭładzimiraŭna", "Tatsiana Uladzimirauna", "Uladzimirauna Tatsiana"},
		// Łacinka ch = х, passport kh, Polish ch
		{"Хвалей Аляксандр", "Chvalej Alaksandr", "Khvalei Aliaksandr", "Chwalej Aliaksandr"},
		// ч: Łacinka č, English ch, Polish cz; х in Міхал: Łacinka ch, passport kh
		{"Чарнецкі Міхал", "Čarniecki Michał", "Charnetski Mikhal", "Czarniecki Michał"},
		// German sch, tsch, w
		{"Шаўчэнка Вольга", "Schautschenka Wolha", "Shauchenka Volha", "Šaŭčenka Voĺha"},
		// Polish w for ў, j and y for й
		{"Янкоўскі Юрый", "Jankowski Jurij", "Yankouski Yury", "Jankoŭski Juryj"},
		// Lithuanian š, ž, č
		{"Жук Павел", "Žuk Pavel", "Zhuk Pavel", "Żuk Paweł"},
		// Russian ё as e or io
		{"Фёдоров Пётр", "Fedorov Petr", "Fiodorov Piotr"},
		{"Łapińska Hanna", "Лапінска Ганна", "Lapinska Hanna", "Łapinska Ganna"},
	} {
		for _, n := range group[1:] {
			if !meet(group[0], n) {
				t.Errorf("%q and %q do not meet: %v / %v", group[0], n, names.TransliterationKeys(group[0]), names.TransliterationKeys(n))
			}
		}
	}
	for _, pair := range [][2]string{{"Novik Iryna", "Marozau Ihar"}, {"Жук Павел", "Жук Пятро"}, {"Чарнецкі Міхал", "Хвалей Міхал"}} {
		if meet(pair[0], pair[1]) {
			t.Errorf("%q and %q meet", pair[0], pair[1])
		}
	}
	// The readings are bounded.
	if n := len(names.TransliterationKeys(strings.Repeat("Chochoch ", 10))); n > 32 {
		t.Errorf("%d keys", n)
	}
}

func TestSkeleton(t *testing.T) {
	latin, mixed := "Anna Popova", "\u0410nna P\u043epova" // Cyrillic А and о
	if !names.LookAlike(latin, mixed) {
		t.Errorf("%q and %q do not look alike: %q / %q", latin, mixed, names.Skeleton(latin), names.Skeleton(mixed))
	}
	if names.LookAlike(latin, latin) || names.LookAlike("Anna", "ANNA") {
		t.Error("equal folds are not look-alikes")
	}
	if names.LookAlike("Anna Popova", "Anna Petrova") {
		t.Error("different names look alike")
	}
}

// TestFoldConcurrently: the server folds names on many goroutines at once.
func TestFoldConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				in := fmt.Sprintf("Łapińska Hanna Müller %d-%d", g, i)
				want := fmt.Sprintf("lapinska hanna muller %d-%d", g, i)
				if got := names.Fold(in); got != want {
					t.Errorf("Fold(%q) = %q, want %q", in, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

package names_test

import (
	"fmt"
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

func TestTransliterationKey(t *testing.T) {
	for _, group := range [][]string{
		{"Тацяна Уладзіміраўна", "Taciana Ŭładzimiraŭna", "Tatsiana Uladzimirauna", "Uladzimirauna Tatsiana"},
		{"Łapińska Hanna", "Лапінска Ганна", "Lapinska Hanna"},
	} {
		want := names.TransliterationKey(group[0])
		for _, n := range group[1:] {
			if got := names.TransliterationKey(n); got != want {
				t.Errorf("TransliterationKey(%q) = %q, want %q (the key of %q)", n, got, want, group[0])
			}
		}
	}
	if a, b := names.TransliterationKey("Novik Iryna"), names.TransliterationKey("Marozau Ihar"); a == b {
		t.Errorf("different names share the key %q", a)
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

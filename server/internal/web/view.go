package web

import (
	"slices"
	"strings"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/server/internal/letters"
)

// search returns the named signatories whose name matches q: every word of
// q, folded like `undersigned diff` folds names (case, diacritics, and
// Latin or Cyrillic spelling), is part of the name.
func search(named []*letters.Endorsement, q string) []*letters.Endorsement {
	var folds, keys []string
	for _, w := range strings.Fields(q) {
		folds = append(folds, names.Fold(w))
		keys = append(keys, names.TransliterationKey(w))
	}
	if len(folds) == 0 {
		return named
	}
	var out []*letters.Endorsement
	for _, e := range named {
		if matchAll(e.Fold, folds) || matchAll(e.Key, keys) {
			out = append(out, e)
		}
	}
	return out
}

func matchAll(s string, words []string) bool {
	return !slices.ContainsFunc(words, func(w string) bool { return w == "" || !strings.Contains(s, w) })
}

package names

import (
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// strokes spells, without their stroke or ligature, the letters that
// Unicode does not decompose into a base letter and a mark; it also
// spells the apostrophes and dashes people type in names one way.
var strokes = strings.NewReplacer(
	"ł", "l", "ø", "o", "đ", "d", "ħ", "h", "ŧ", "t", "ß", "ss", "æ", "ae", "œ", "oe",
	"ı", "i", "þ", "th", "ð", "d",
	"’", "'", "‘", "'", "ʼ", "'", "`", "'", "´", "'", "′", "'",
	"‐", "-", "‒", "-", "–", "-", "—", "-", "−", "-",
)

// FoldVersion names the version of [Fold]. Stores that keep folded names
// to search (the server's) fold them again when it changes.
const FoldVersion = 2

// Fold returns name folded for search and comparison: compatibility
// characters replaced (full-width letters, ligatures), diacritics and
// strokes removed, case folded, apostrophes and dashes spelt one way, and
// white space collapsed to single spaces. Two names with the same fold
// differ only in case, spacing, diacritics or character width. Fold never
// fails: a string that is not valid UTF-8 is folded as far as it can be.
func Fold(name string) string {
	// NFKD replaces compatibility characters and splits marks off; a chain
	// keeps state, so a call takes one of its own from the pool
	// (transform.String resets it first).
	t := chains.Get().(transform.Transformer)
	s, _, err := transform.String(t, name)
	chains.Put(t)
	if err != nil {
		s = name
	}
	s = cases.Fold().String(s)
	s = strokes.Replace(s)
	return strings.Join(strings.Fields(s), " ")
}

// chains are the transformers of Fold, made once each: making one costs
// more than folding a name.
var chains = sync.Pool{New: func() any {
	return transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
}}

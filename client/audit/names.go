package audit

import (
	"regexp"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/undersigned/undersigned/client/records"
)

// strokes maps letters that carry a stroke or a ligature, which Unicode
// does not decompose, to their base letters.
var strokes = strings.NewReplacer(
	"ł", "l", "ø", "o", "đ", "d", "ħ", "h", "ŧ", "t", "ß", "ss", "æ", "ae", "œ", "oe",
	"ı", "i", "þ", "th", "ð", "d",
)

// Fold returns a name folded for comparison: compatibility characters
// replaced (full-width letters), diacritics and strokes removed, lower
// case, and white space collapsed to single spaces. Two names with the same
// fold differ only in case, spacing, diacritics or character width.
func Fold(name string) string {
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	s, _, err := transform.String(t, name)
	if err != nil {
		s = name
	}
	s = strokes.Replace(strings.ToLower(s))
	return strings.Join(strings.Fields(s), " ")
}

// cyrillic romanises the letters of the Belarusian and Russian alphabets.
var cyrillic = map[rune]string{
	'а': "a", 'б': "b", 'в': "v", 'г': "h", 'ґ': "g", 'д': "d", 'е': "ie", 'ё': "io", 'є': "ie",
	'ж': "zh", 'з': "z", 'и': "i", 'і': "i", 'ї': "i", 'й': "i", 'к': "k", 'л': "l", 'м': "m",
	'н': "n", 'о': "o", 'п': "p", 'р': "r", 'с': "s", 'т': "t", 'у': "u", 'ў': "u", 'ф': "f",
	'х': "h", 'ц': "c", 'ч': "ch", 'ш': "sh", 'щ': "shch", 'ъ': "", 'ы': "y", 'ь': "", 'э': "e",
	'ю': "iu", 'я': "ia", '\'': "", '’': "", 'ʼ': "",
}

// latin spells the Latin letters with a háček, and the Polish digraphs,
// the way the Cyrillic ones are romanised.
var latin = strings.NewReplacer(
	"č", "ch", "š", "sh", "ž", "zh", "ć", "c", "ś", "s", "ź", "z", "ń", "n", "ĺ", "l",
	"szcz", "shch", "cz", "ch", "sz", "sh", "rz", "zh",
)

// spellings reduces romanisations to one spelling; applied in order.
var spellings = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`kh`), "h"},
	{regexp.MustCompile(`g`), "h"},
	{regexp.MustCompile(`x`), "ks"},
	{regexp.MustCompile(`w`), "v"},
	{regexp.MustCompile(`ph`), "f"},
	{regexp.MustCompile(`q`), "k"},
	{regexp.MustCompile(`t[sz]`), "c"},
	{regexp.MustCompile(`[jy]`), "i"},
	// A softening glide before a vowel (ia, ja, ya; ie after a consonant)
	// is spelt in some romanisations and not in others.
	{regexp.MustCompile(`i([aeou])`), "$1"},
}

// TransliterationKey returns a key under which spellings of one name in
// Belarusian or Russian Cyrillic, Belarusian Łacinka and the common Latin
// romanisations meet: "Тацяна Уладзіміраўна", "Taciana Ŭładzimiraŭna" and
// "Tatsiana Uladzimirauna" have the same key. The words are sorted, so that
// "Surname Name" meets "Name Surname". It is for finding probable matches
// for a person to look at, never for deciding: unrelated names can share a
// key.
func TransliterationKey(name string) string {
	s := norm.NFC.String(norm.NFKC.String(strings.ToLower(name)))
	s = latin.Replace(s)
	var b strings.Builder
	for _, r := range s {
		if lat, ok := cyrillic[r]; ok {
			b.WriteString(lat)
			continue
		}
		b.WriteRune(r)
	}
	s = Fold(b.String())
	words := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\'' })
	for i, w := range words {
		w = strings.ReplaceAll(w, "'", "")
		for _, sp := range spellings {
			w = sp.re.ReplaceAllString(w, sp.with)
		}
		words[i] = squeeze(w)
	}
	words = slices.DeleteFunc(words, func(w string) bool { return w == "" })
	slices.Sort(words)
	return strings.Join(words, " ")
}

// squeeze collapses runs of one letter: "hanna" and "hana" meet.
func squeeze(s string) string {
	var b strings.Builder
	var last rune = -1
	for _, r := range s {
		if r != last {
			b.WriteRune(r)
		}
		last = r
	}
	return b.String()
}

// Match is a published name paired with a name in the ledger.
type Match struct {
	// Published is the name as published, or "" for a name in the ledger
	// that was not published.
	Published string `json:"published,omitempty"`
	// Ledger is the name in the ledger, and Index its endorsement's index.
	Ledger string `json:"ledger"`
	Index  uint64 `json:"index"`
}

// Comparison is the outcome of [CompareNames].
type Comparison struct {
	// Exact are names equal after NFC and trimming.
	Exact []Match `json:"exact"`
	// Folded are names that differ only in case, spacing, diacritics or
	// character width (see [Fold]).
	Folded []Match `json:"folded"`
	// Transliterated are probable matches across scripts and
	// romanisations (see [TransliterationKey]).
	Transliterated []Match `json:"transliterated"`
	// NotInLedger are published names that match nothing in the ledger.
	NotInLedger []string `json:"not_in_ledger"`
	// NotPublished are named endorsements that match no published name.
	NotPublished []Match `json:"not_published"`
}

// Identical reports whether every name matched exactly, both ways.
func (c *Comparison) Identical() bool {
	return len(c.Folded) == 0 && len(c.Transliterated) == 0 && len(c.NotInLedger) == 0 && len(c.NotPublished) == 0
}

// CompareNames compares a published list of names with the named entries
// of a roster. Each name is used once: a name listed twice needs two
// endorsements. Names are first matched exactly (after NFC and trimming),
// then by [Fold], then by [TransliterationKey]; what is left is reported
// as not in the ledger, or not published. Entries without a name (private,
// redacted, withheld) are ignored.
func CompareNames(published []string, roster []RosterEntry) *Comparison {
	type side struct {
		name  string
		index uint64
		used  bool
	}
	var pub, led []*side
	for _, p := range published {
		if p = records.CanonicalField(p); p != "" {
			pub = append(pub, &side{name: p})
		}
	}
	for _, e := range roster {
		if e.Disclosure != nil {
			led = append(led, &side{name: records.CanonicalField(e.Disclosure.GetName()), index: e.Index})
		}
	}
	c := &Comparison{}
	pass := func(key func(string) string, out *[]Match) {
		byKey := map[string][]*side{}
		for _, l := range led {
			if !l.used {
				k := key(l.name)
				byKey[k] = append(byKey[k], l)
			}
		}
		for _, p := range pub {
			if p.used {
				continue
			}
			k := key(p.name)
			if k == "" {
				continue
			}
			cands := byKey[k]
			if len(cands) == 0 {
				continue
			}
			l := cands[0]
			byKey[k] = cands[1:]
			p.used, l.used = true, true
			*out = append(*out, Match{Published: p.name, Ledger: l.name, Index: l.index})
		}
	}
	pass(func(s string) string { return s }, &c.Exact)
	pass(Fold, &c.Folded)
	pass(TransliterationKey, &c.Transliterated)
	for _, p := range pub {
		if !p.used {
			c.NotInLedger = append(c.NotInLedger, p.name)
		}
	}
	for _, l := range led {
		if !l.used {
			c.NotPublished = append(c.NotPublished, Match{Ledger: l.name, Index: l.index})
		}
	}
	return c
}

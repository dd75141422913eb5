package names

import (
	"regexp"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

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

package names

import (
	"slices"
	"strings"
	"sync"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// A romanisation key spells a name in a reduced Latin alphabet where the
// spellings of one Belarusian or Russian name meet: ш, š, sh, sz, sch are
// "S"; ч, č, ch, cz, tsch are "C"; ж, ž, ż, zh, rz are "Z"; ц, c, ts, tz
// are "c"; г, h, g, х, kh are "h"; в, v, w are "v"; й, и, і, ы, j, y are
// "i"; ў, ŭ, u are "u"; a softening glide before a vowel (я, ia, ja, ya) is
// dropped, soft signs and apostrophes too, and doubled letters are one.

// cyrillic spells the Cyrillic letters in the key's alphabet; letters with
// two readings have them all.
var cyrillic = map[rune][]string{
	'а': {"a"}, 'б': {"b"}, 'в': {"v"}, 'г': {"h"}, 'ґ': {"h"}, 'д': {"d"}, 'е': {"e"}, 'ё': {"io", "e"}, 'є': {"e"},
	'ж': {"Z"}, 'з': {"z"}, 'и': {"i"}, 'і': {"i"}, 'ї': {"i"}, 'й': {"i"}, 'к': {"k"}, 'л': {"l"}, 'м': {"m"},
	'н': {"n"}, 'о': {"o"}, 'п': {"p"}, 'р': {"r"}, 'с': {"s"}, 'т': {"t"}, 'у': {"u"}, 'ў': {"u"}, 'ф': {"f"},
	'х': {"h"}, 'ц': {"c"}, 'ч': {"C"}, 'ш': {"S"}, 'щ': {"SC"}, 'ъ': {""}, 'ы': {"i"}, 'ь': {""}, 'э': {"e"},
	'ю': {"iu"}, 'я': {"ia"},
}

// latin lists the Latin spellings, longest first, with every reading: "ch"
// is ч in English and the passport systems but х in Łacinka, Polish,
// German and Lithuanian; Polish w is в, or ў in -owski; Polish ó is read
// u, elsewhere o.
var latin = []struct {
	spelling string
	readings []string
}{
	{"szcz", []string{"SC"}}, {"shch", []string{"SC"}}, {"tsch", []string{"C"}},
	{"sch", []string{"S"}}, {"sh", []string{"S"}}, {"sz", []string{"S"}}, {"zh", []string{"Z"}}, {"rz", []string{"Z"}},
	{"cz", []string{"C"}}, {"ch", []string{"C", "h"}}, {"kh", []string{"h"}}, {"ts", []string{"c"}}, {"tz", []string{"c"}},
	{"ph", []string{"f"}},
	{"č", []string{"C"}}, {"š", []string{"S"}}, {"ž", []string{"Z"}}, {"ż", []string{"Z"}}, {"ŭ", []string{"u"}}, {"ó", []string{"o", "u"}},
	{"x", []string{"ks"}}, {"q", []string{"k"}}, {"w", []string{"v", "u"}}, {"g", []string{"h"}}, {"j", []string{"i"}}, {"y", []string{"i"}},
}

// maxReadings bounds the keys of one name.
const maxReadings = 32

// TransliterationKeys returns the keys under which spellings of one name
// in Belarusian or Russian Cyrillic, Belarusian Łacinka (c = ц, ch = х, č,
// š, ž, ŭ), the official Belarusian and Russian passport systems (ts, kh,
// ch, sh, zh, ia, iu) and the Polish, Lithuanian and German spellings of
// the diaspora (sz, cz, rz, w, sch, tsch) meet: "Тацяна Уладзіміраўна",
// "Taciana Ŭładzimiraŭna" and "Tatsiana Uladzimirauna" share a key. Where
// a spelling has several readings (ch is ч or х), each reading gives a key,
// at most 32. The words are sorted, so that "Surname Name" meets "Name
// Surname". Two names share a reading when their key sets meet. It is for
// finding probable matches for a person to look at, never for deciding:
// unrelated names can share a key.
func TransliterationKeys(name string) []string {
	var perWord [][]string
	for _, w := range words(name) {
		if r := wordReadings(w); len(r) > 0 && r[0] != "" {
			perWord = append(perWord, r)
		}
	}
	keys := []string{""}
	for _, rs := range perWord {
		var next []string
		for _, k := range keys {
			for _, r := range rs {
				if len(next) < maxReadings {
					next = append(next, strings.TrimSpace(k+" "+r))
				}
			}
		}
		keys = next
	}
	for i, k := range keys {
		ws := strings.Fields(k)
		slices.Sort(ws)
		keys[i] = strings.Join(ws, " ")
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// TransliterationKey returns the first of [TransliterationKeys].
func TransliterationKey(name string) string {
	return TransliterationKeys(name)[0]
}

// words splits a name into lower-case words of letters and digits, with
// apostrophes (Belarusian and Ukrainian ' and ’) removed.
func words(name string) []string {
	s := strings.ToLower(norm.NFC.String(norm.NFKC.String(name)))
	s = apostrophes.Replace(s)
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) })
}

// apostrophes removes the apostrophes of words.
var apostrophes = strings.NewReplacer("'", "", "’", "", "ʼ", "", "`", "")

// wordReadings returns the keys of one word.
func wordReadings(w string) []string {
	var parts [][]string
	if strings.IndexFunc(w, func(r rune) bool { return unicode.Is(unicode.Cyrillic, r) }) >= 0 {
		for _, r := range w {
			if lat, ok := cyrillic[r]; ok {
				parts = append(parts, lat)
			} else {
				parts = append(parts, []string{foldRune(r)})
			}
		}
	} else {
		w = norm.NFC.String(w)
	next:
		for len(w) > 0 {
			for _, sp := range latin {
				if strings.HasPrefix(w, sp.spelling) {
					parts = append(parts, sp.readings)
					w = w[len(sp.spelling):]
					continue next
				}
			}
			r, size := firstRune(w)
			parts = append(parts, []string{foldRune(r)})
			w = w[size:]
		}
	}
	out := []string{""}
	for _, p := range parts {
		var next []string
		for _, o := range out {
			for _, r := range p {
				if len(next) < maxReadings {
					next = append(next, o+r)
				}
			}
		}
		out = next
	}
	for i, o := range out {
		out[i] = squeeze(dropGlides(o))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func firstRune(s string) (rune, int) {
	for _, r := range s {
		return r, len(string(r))
	}
	return 0, 0
}

// foldRune spells one letter without its marks and strokes, in lower case.
func foldRune(r rune) string {
	if f, ok := foldedRunes.Load(r); ok {
		return f.(string)
	}
	f := strings.ReplaceAll(Fold(string(r)), " ", "")
	foldedRunes.Store(r, f)
	return f
}

// foldedRunes remembers foldRune's answers: a name folds each of its
// letters, and names share their letters. Letters are few (at most the
// runes of Unicode, in practice some hundreds).
var foldedRunes sync.Map

// dropGlides drops an i that softens the vowel after it (ia, ie, io, iu),
// which some romanisations spell and others do not.
func dropGlides(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 'i' && i+1 < len(s) && strings.IndexByte("aeou", s[i+1]) >= 0 {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
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

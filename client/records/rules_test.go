package records_test

import (
	"encoding/csv"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/undersigned/undersigned/client/records"
)

// wantFieldError checks that err is a *records.FieldError for field whose
// rule contains rule, and whether it wraps records.ErrBadSignature.
func wantFieldError(t *testing.T, err error, field, rule string, badSignature bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one for %s", field)
	}
	fe, ok := records.AsFieldError(err)
	if !ok {
		t.Fatalf("got %T %v, want a *records.FieldError", err, err)
	}
	if fe.Field != field {
		t.Errorf("field = %q, want %q (error: %v)", fe.Field, field, err)
	}
	if fe.Rule == "" || !strings.Contains(fe.Rule, rule) {
		t.Errorf("rule = %q, want it to contain %q", fe.Rule, rule)
	}
	if got := errors.Is(err, records.ErrBadSignature); got != badSignature {
		t.Errorf("errors.Is(err, ErrBadSignature) = %v, want %v (error: %v)", got, badSignature, err)
	}
	if got, want := err.Error(), fe.Field+": "+fe.Rule; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestCheckField(t *testing.T) {
	tests := []struct {
		name     string
		value    string
		required bool
		max      int
		rule     string // "" when the value is valid
	}{
		{name: "plain", value: "Ada Lovelace", required: true, max: 200},
		{name: "Cyrillic", value: "Таццяна Уладзіміраўна", required: true, max: 200},
		{name: "Łacinka", value: "Taciana Žadzimiraśna", required: true, max: 200},
		{name: "apostrophes quotes and guillemets", value: "O'Connor «Разам» \"Free\"", required: true, max: 200},
		{name: "ZWNJ U+200C is allowed", value: "می\u200Cخواهم", required: true, max: 200},
		{name: "ZWJ U+200D is allowed", value: "क्\u200Dष", required: true, max: 200},
		{name: "NBSP inside is allowed", value: "Ivan\u00A0Petrov", required: true, max: 200},
		{name: "fullwidth letters are allowed", value: "ＦＵＬＬ", required: true, max: 200},
		{name: "emoji are allowed", value: "Ada 🙂", required: true, max: 200},
		{name: "empty optional field", value: "", required: false, max: 1000},

		{name: "newline Cc", value: "Line\nBreak", required: true, max: 200, rule: "(Cc)"},
		{name: "tab Cc", value: "Tab\there", required: true, max: 200, rule: "(Cc)"},
		{name: "NUL Cc", value: "Nul\x00", required: true, max: 200, rule: "(Cc)"},
		{name: "DEL Cc", value: "Del\x7f", required: true, max: 200, rule: "(Cc)"},
		{name: "C1 control U+0085 Cc", value: "Next\u0085Line", required: true, max: 200, rule: "(Cc)"},
		{name: "zero-width space U+200B Cf", value: "Zero\u200BWidth", required: true, max: 200, rule: "(Cf)"},
		{name: "bidi override U+202E Cf", value: "Right\u202ELeft", required: true, max: 200, rule: "(Cf)"},
		{name: "bidi isolate U+2066 Cf", value: "a\u2066b", required: true, max: 200, rule: "(Cf)"},
		{name: "soft hyphen U+00AD Cf", value: "Soft\u00ADHyphen", required: true, max: 200, rule: "(Cf)"},
		{name: "byte order mark U+FEFF inside Cf", value: "a\uFEFFb", required: true, max: 200, rule: "(Cf)"},
		{name: "private use U+E000 Co", value: "Private\uE000", required: true, max: 200, rule: "(Co)"},
		{name: "supplementary private use U+F0000 Co", value: "Private\U000F0000", required: true, max: 200, rule: "(Co)"},
		{name: "unassigned U+0378 Cn", value: "Un\u0378assigned", required: true, max: 200, rule: "(Cn)"},
		{name: "noncharacter U+FFFF Cn", value: "Non\uFFFF", required: true, max: 200, rule: "(Cn)"},
		{name: "forbidden character in an optional field", value: "Aff\u200Biliation", required: false, max: 1000, rule: "(Cf)"},
		{name: "rule names the code point", value: "x\u202E", required: true, max: 200, rule: "U+202E"},

		// A surrogate cannot be encoded in valid UTF-8; its bytes are
		// invalid UTF-8.
		{name: "encoded surrogate is invalid UTF-8", value: "a\xed\xa0\x80b", required: true, max: 200, rule: "UTF-8"},
		{name: "invalid UTF-8", value: "Bad\xff", required: true, max: 200, rule: "valid UTF-8"},
		{name: "truncated UTF-8", value: "Bad\xd0", required: true, max: 200, rule: "valid UTF-8"},

		{name: "empty required", value: "", required: true, max: 200, rule: "must not be empty"},
		{name: "white space only required", value: " \t ", required: true, max: 200, rule: "must not be empty"},

		{name: "non-NFC", value: "e\u0301milie", required: true, max: 200, rule: "NFC"},
		{name: "non-NFC Cyrillic", value: "Андре\u0438\u0306", required: true, max: 200, rule: "NFC"},
		{name: "leading space", value: " Ada", required: true, max: 200, rule: "white space"},
		{name: "trailing space", value: "Ada ", required: true, max: 200, rule: "white space"},
		{name: "trailing NBSP", value: "Ada\u00A0", required: true, max: 200, rule: "white space"},
		{name: "leading ideographic space", value: "\u3000Ada", required: true, max: 200, rule: "white space"},
		{name: "untrimmed optional field", value: " Teacher", required: false, max: 1000, rule: "white space"},

		{name: "at the limit in code points", value: strings.Repeat("a", 10), required: true, max: 10},
		{name: "over the limit in code points", value: strings.Repeat("a", 11), required: true, max: 10, rule: "at most 10 code points, has 11"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := records.CheckField("x.field", tt.value, tt.required, tt.max)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("CheckField(%q) = %v, want nil", tt.value, err)
				}
				return
			}
			wantFieldError(t, err, "x.field", tt.rule, false)
		})
	}
}

// TestCheckFieldsLimits checks the limits of §3.2, which count code points
// and not bytes: two-byte and four-byte characters at the limit pass.
func TestCheckFieldsLimits(t *testing.T) {
	tests := []struct {
		name   string
		fields records.Fields
		field  string // "" when valid
		rule   string
	}{
		{name: "name of 200 two-byte code points", fields: records.Fields{Name: strings.Repeat("ж", 200)}},
		{name: "name of 200 four-byte code points", fields: records.Fields{Name: strings.Repeat("𠀀", 200)}},
		{name: "name of emoji only", fields: records.Fields{Name: strings.Repeat("😀", 3)},
			field: "disclosure.name", rule: "at least one letter or digit"},
		{name: "name of combining marks only", fields: records.Fields{Name: "\u0301\u0308"},
			field: "disclosure.name", rule: "at least one letter or digit"},
		{name: "name of Hangul fillers", fields: records.Fields{Name: "\u3164\u115F\u1160\uFFA0"},
			field: "disclosure.name", rule: "at least one letter or digit"},
		{name: "name of blank Braille", fields: records.Fields{Name: "\u2800\u2800"},
			field: "disclosure.name", rule: "at least one letter or digit"},
		{name: "a filler beside a letter", fields: records.Fields{Name: "A\u3164"}},
		{name: "a name of digits", fields: records.Fields{Name: "42"}},
		{name: "a name in Devanagari with marks", fields: records.Fields{Name: "अनिल"}},
		{name: "name of 201 code points", fields: records.Fields{Name: strings.Repeat("ж", 201)},
			field: "disclosure.name", rule: "at most 200 code points, has 201"},
		{name: "affiliation of 1000 two-byte code points", fields: records.Fields{Name: "A", Affiliation: strings.Repeat("ł", 1000)}},
		{name: "affiliation of 1001 code points", fields: records.Fields{Name: "A", Affiliation: strings.Repeat("ł", 1001)},
			field: "disclosure.affiliation", rule: "at most 1000 code points, has 1001"},
		{name: "country of 100 three-byte code points", fields: records.Fields{Name: "A", Country: strings.Repeat("中", 100)}},
		{name: "country of 101 code points", fields: records.Fields{Name: "A", Country: strings.Repeat("中", 101)},
			field: "disclosure.country", rule: "at most 100 code points, has 101"},
		{name: "empty name", fields: records.Fields{Name: "", Affiliation: "Teacher"},
			field: "disclosure.name", rule: "must not be empty"},
		{name: "empty affiliation and country", fields: records.Fields{Name: "Sasha"}},
		{name: "control character in country", fields: records.Fields{Name: "A", Country: "B\nY"},
			field: "disclosure.country", rule: "(Cc)"},
		{name: "non-NFC affiliation", fields: records.Fields{Name: "A", Affiliation: "Cafe\u0301"},
			field: "disclosure.affiliation", rule: "NFC"},
		{name: "unassigned code point in name", fields: records.Fields{Name: "Ada\u0378"},
			field: "disclosure.name", rule: "(Cn)"},
		{name: "invalid UTF-8 name", fields: records.Fields{Name: "\xc3"},
			field: "disclosure.name", rule: "UTF-8"},
		{name: "the name is checked first", fields: records.Fields{Name: "", Affiliation: "\u200B", Country: "\u202E"},
			field: "disclosure.name", rule: "must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := records.CheckFields("disclosure", tt.fields)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("CheckFields = %v, want nil", err)
				}
				return
			}
			wantFieldError(t, err, tt.field, tt.rule, false)
		})
	}
}

// TestSampleSignatories runs the rules over client/testdata: every row
// whose note starts with "invalid:" is rejected on its name, for the reason
// the note gives, and every other row passes after canonicalisation.
func TestSampleSignatories(t *testing.T) {
	file, err := os.Open("../testdata/sample-signatories.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	r := csv.NewReader(file)
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	if strings.Join(header, ",") != "name,affiliation,visibility,note" {
		t.Fatalf("header = %q", header)
	}
	// The reason in the note, and what the rule must say.
	reasons := []struct{ note, rule string }{
		{"category Cc", "(Cc)"},
		{"category Cf", "(Cf)"},
		{"empty", "must not be empty"},
		{"over 200 code points", "at most 200 code points"},
	}
	canonical := map[string]string{} // input name -> canonical name, for the tricky rows
	invalid := 0
	for i, row := range rows[1:] {
		name, affiliation, note := row[0], row[1], row[3]
		t.Run(strings.ReplaceAll(name, "\n", `\n`)+"/row"+strconv.Itoa(i+2), func(t *testing.T) {
			f := records.CanonicalFields(records.Fields{Name: name, Affiliation: affiliation})
			err := records.CheckFields("disclosure", f)
			if !strings.HasPrefix(note, "invalid:") {
				if err != nil {
					t.Fatalf("note %q: CheckFields = %v, want nil", note, err)
				}
				canonical[name] = f.Name
				if f.Affiliation != strings.TrimSpace(f.Affiliation) || !norm.NFC.IsNormalString(f.Affiliation) {
					t.Errorf("affiliation %q is not canonical", f.Affiliation)
				}
				return
			}
			invalid++
			rule := ""
			for _, r := range reasons {
				if strings.Contains(note, r.note) {
					rule = r.rule
				}
			}
			if rule == "" {
				t.Fatalf("note %q names no reason this test knows", note)
			}
			wantFieldError(t, err, "disclosure.name", rule, false)
		})
	}
	if invalid != 5 {
		t.Errorf("%d invalid rows, want the 5 of the sample", invalid)
	}

	// The tricky rows become exactly what §3.2 says.
	for in, want := range map[string]string{
		"e\u0301milie Dupont": "\u00e9milie Dupont", // NFD becomes NFC
		"  Spaces Around  ":   "Spaces Around",      // trimmed
		"Ivan\u00A0Petrov":    "Ivan\u00A0Petrov",   // inner NBSP kept
		"\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 Name": "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 Name", // fullwidth kept, not NFKC
		"Taciana \u016c\u0142adzimira\u016dna":                        "Taciana \u016c\u0142adzimira\u016dna",                        // Łacinka kept
		"O'Connor-\u0141ukasz Zo\u00eb":                               "O'Connor-\u0141ukasz Zo\u00eb",
	} {
		got, ok := canonical[in]
		if !ok {
			t.Errorf("the sample has no valid row named %q", in)
			continue
		}
		if got != want {
			t.Errorf("canonical name of %q = %q (%x), want %q (%x)", in, got, got, want, want)
		}
	}
}

func TestCanonicalField(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"NFD to NFC", "e\u0301milie", "\u00e9milie"},
		{"trim spaces", "  Spaces Around  ", "Spaces Around"},
		{"trim tabs and newlines", "\t\nName\r\n", "Name"},
		{"trim NBSP and ideographic space", "\u00A0Name\u3000", "Name"},
		{"inner NBSP kept", "Ivan\u00A0Petrov", "Ivan\u00A0Petrov"},
		{"inner double space kept", "Ivan  Petrov", "Ivan  Petrov"},
		{"fullwidth kept", "ＦＵＬＬ", "ＦＵＬＬ"},
		{"case kept", "mcCALLUM", "mcCALLUM"},
		{"ligature kept", "ﬁne", "ﬁne"},
		{"zero-width space is not trimmed", "\u200BName", "\u200BName"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := records.CanonicalField(tt.in); got != tt.want {
				t.Errorf("CanonicalField(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := records.CanonicalField(tt.want); got != tt.want {
				t.Errorf("CanonicalField is not idempotent on %q: %q", tt.want, got)
			}
		})
	}
	f := records.CanonicalFields(records.Fields{Name: " e\u0301 ", Affiliation: " A ", Country: "\u00A0BY\u00A0"})
	if want := (records.Fields{Name: "\u00e9", Affiliation: "A", Country: "BY"}); f != want {
		t.Errorf("CanonicalFields = %+q, want %+q", f, want)
	}
}

func TestCanonicalText(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"canonical", "a\nb\n", "a\nb\n"},
		{"CRLF", "a\r\nb\r\n", "a\nb\n"},
		{"lone CR", "a\rb", "a\nb"},
		{"CR CR LF", "a\r\r\nb", "a\n\nb"},
		{"BOM stripped", "\uFEFFa\n", "a\n"},
		{"two BOMs stripped", "\uFEFF\uFEFFa\n", "a\n"},
		{"inner BOM kept", "a\uFEFFb", "a\uFEFFb"},
		{"NFD to NFC", "Cafe\u0301\n", "Caf\u00e9\n"},
		{"not trimmed", "  a  \n\n", "  a  \n\n"},
		{"fullwidth kept", "ＦＵＬＬ", "ＦＵＬＬ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := records.CanonicalText(tt.in)
			if got != tt.want {
				t.Errorf("CanonicalText(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if err := records.CheckText("letter.text", got); err != nil && strings.TrimSpace(got) != "" {
				t.Errorf("CheckText(CanonicalText(%q)) = %v", tt.in, err)
			}
		})
	}
}

func TestCheckText(t *testing.T) {
	tests := []struct {
		name, text, rule string
	}{
		{name: "canonical", text: "We ask.\n"},
		{name: "largest", text: strings.Repeat("a", records.MaxTextBytes)},
		{name: "too large in bytes", text: strings.Repeat("ж", records.MaxTextBytes/2+1), rule: "at most 49152 bytes"},
		{name: "empty", text: "", rule: "must not be empty"},
		{name: "white space only", text: " \n ", rule: "must not be empty"},
		{name: "invalid UTF-8", text: "a\xffb", rule: "valid UTF-8"},
		{name: "CRLF", text: "a\r\nb", rule: "LF line endings"},
		{name: "BOM", text: "\uFEFFa", rule: "byte order mark"},
		{name: "NFD", text: "Cafe\u0301", rule: "NFC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := records.CheckText("letter.text", tt.text)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("CheckText = %v", err)
				}
				return
			}
			wantFieldError(t, err, "letter.text", tt.rule, false)
		})
	}
}

func TestCheckLetterID(t *testing.T) {
	for _, id := range []string{"a", "keep-the-square-open", "2024-letter", strings.Repeat("z", 64), "-"} {
		if err := records.CheckLetterID("letter.id", id); err != nil {
			t.Errorf("CheckLetterID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("z", 65), "Upper", "under_score", "space here", "dot.ted", "slash/", "ł", "a\n"} {
		t.Run(id, func(t *testing.T) {
			wantFieldError(t, records.CheckLetterID("letter.id", id), "letter.id", "[a-z0-9-]", false)
		})
	}
}

func TestMaxLengthsCountCodePoints(t *testing.T) {
	// Guard the premise of the limit tests: the strings have the lengths
	// they claim.
	if n := utf8.RuneCountInString(strings.Repeat("😀", 200)); n != 200 {
		t.Fatalf("rune count %d", n)
	}
	if records.MaxNameLength != 200 || records.MaxAffiliationLength != 1000 || records.MaxCountryLength != 100 {
		t.Errorf("limits are %d/%d/%d, DESIGN.md §3.2 says 200/1000/100",
			records.MaxNameLength, records.MaxAffiliationLength, records.MaxCountryLength)
	}
}

package records

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FieldError is a rule broken by one field of a request, a record or a
// disclosure.
type FieldError struct {
	// Field is the dotted path of the field, such as "disclosure.name".
	Field string
	// Rule says what the field must be, such as "must not be empty".
	Rule string

	err error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// Unwrap returns the underlying error, such as [ErrBadSignature], if any.
func (e *FieldError) Unwrap() error { return e.err }

func fieldError(field, rule string) *FieldError {
	return &FieldError{Field: field, Rule: rule}
}

// AsFieldError reports whether err is or wraps a [*FieldError] and returns
// it.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}

// Limits of the fields of §3.2, in code points.
const (
	MaxNameLength        = 200
	MaxAffiliationLength = 1000
	MaxCountryLength     = 100
	MaxTitleLength       = 500
	MaxNoteLength        = 1000
	MaxLanguageLength    = 35
	// MaxTextBytes is the largest letter text, in bytes.
	MaxTextBytes = 48 << 10
	// MaxOrganiserKeys is the most organiser keys a letter may list.
	MaxOrganiserKeys = 16
)

// CanonicalField returns s in the form the format requires of a disclosure
// field: NFC, with leading and trailing white space removed. Nothing else is
// changed: names are never transliterated or case-folded.
func CanonicalField(s string) string {
	return strings.TrimSpace(norm.NFC.String(s))
}

// CanonicalFields returns f with each field in canonical form.
func CanonicalFields(f Fields) Fields {
	return Fields{
		Name:        CanonicalField(f.Name),
		Affiliation: CanonicalField(f.Affiliation),
		Country:     CanonicalField(f.Country),
	}
}

// CanonicalText returns a letter text in canonical form: no byte order mark
// (however many an editor left), LF line endings, NFC.
func CanonicalText(s string) string {
	s = strings.TrimLeft(s, "\uFEFF")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return norm.NFC.String(s)
}

// assigned lists every general category but Cn (unassigned). It names the
// subcategories of C, because Go's unicode.C also holds the unassigned code
// points.
var assigned = []*unicode.RangeTable{unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z,
	unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs}

// forbiddenRune reports whether r belongs to Cc, Cf (except U+200C and
// U+200D), Cs, Co or Cn, and names the category.
func forbiddenRune(r rune) (string, bool) {
	switch {
	case unicode.Is(unicode.Cc, r):
		return "control character (Cc)", true
	case r == '\u200C' || r == '\u200D':
		return "", false
	case unicode.Is(unicode.Cf, r):
		return "format character (Cf)", true
	case unicode.Is(unicode.Cs, r):
		return "surrogate (Cs)", true
	case unicode.Is(unicode.Co, r):
		return "private-use character (Co)", true
	case !unicode.IsOneOf(assigned, r):
		return "unassigned code point (Cn)", true
	}
	return "", false
}

// CheckField checks one disclosure field (or a title or note) against the
// rules of §3.2: valid UTF-8, canonical (see [CanonicalField]), not empty
// when required, at most max code points, and no character of the
// categories Cc, Cf (except U+200C and U+200D), Cs, Co or Cn.
func CheckField(field, s string, required bool, max int) error {
	if !utf8.ValidString(s) {
		return fieldError(field, "must be valid UTF-8")
	}
	if required && strings.TrimSpace(s) == "" {
		return fieldError(field, "must not be empty")
	}
	n := 0
	for i, r := range s {
		n++
		if cat, bad := forbiddenRune(r); bad {
			return fieldError(field, fmt.Sprintf("must not contain a %s: U+%04X at byte %d", cat, r, i))
		}
	}
	if n > max {
		return fieldError(field, fmt.Sprintf("must be at most %d code points, has %d", max, n))
	}
	if s != CanonicalField(s) {
		return fieldError(field, "must be NFC with no leading or trailing white space")
	}
	return nil
}

// blankLetters are letters (category Lo) that show as blank space, and
// the blank Braille pattern: a name of them alone looks empty.
var blankLetters = []rune{'\u115F', '\u1160', '\u3164', '\uFFA0', '\u2800'}

// hasLetterOrDigit reports whether s holds a letter or a digit other than
// the blank-looking fillers.
func hasLetterOrDigit(s string) bool {
	for _, r := range s {
		if (unicode.IsLetter(r) || unicode.IsDigit(r)) && !slices.Contains(blankLetters, r) {
			return true
		}
	}
	return false
}

// CheckFields checks the fields of a disclosure; prefix is the path of the
// disclosure, such as "disclosure". Beyond [CheckField], a name must hold
// at least one letter or digit; the fillers U+115F, U+1160, U+3164, U+FFA0
// and U+2800, which look blank, count as neither (so a name of combining
// marks or fillers alone is refused).
func CheckFields(prefix string, f Fields) error {
	if err := CheckField(prefix+".name", f.Name, true, MaxNameLength); err != nil {
		return err
	}
	if !hasLetterOrDigit(f.Name) {
		return fieldError(prefix+".name", "must hold at least one letter or digit (blank-looking fillers such as U+3164 count as neither)")
	}
	if err := CheckField(prefix+".affiliation", f.Affiliation, false, MaxAffiliationLength); err != nil {
		return err
	}
	return CheckField(prefix+".country", f.Country, false, MaxCountryLength)
}

// CheckLetterID checks that id is a slug of 1 to 64 characters from
// [a-z0-9-].
func CheckLetterID(field, id string) error {
	if id == "" || len(id) > 64 {
		return fieldError(field, "must be 1 to 64 characters from [a-z0-9-]")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fieldError(field, "must be 1 to 64 characters from [a-z0-9-]")
		}
	}
	return nil
}

// CheckText checks a letter text: valid UTF-8, at most [MaxTextBytes],
// not empty, and canonical (see [CanonicalText]).
func CheckText(field, text string) error {
	switch {
	case !utf8.ValidString(text):
		return fieldError(field, "must be valid UTF-8")
	case strings.TrimSpace(text) == "":
		return fieldError(field, "must not be empty")
	case len(text) > MaxTextBytes:
		return fieldError(field, fmt.Sprintf("must be at most %d bytes, has %d", MaxTextBytes, len(text)))
	case text != CanonicalText(text):
		return fieldError(field, "must be NFC with LF line endings and no byte order mark")
	}
	return nil
}

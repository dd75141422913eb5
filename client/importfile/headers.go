package importfile

import (
	"regexp"
	"strings"

	"github.com/undersigned/undersigned/client/names"
)

// Field is a column an import understands.
type Field string

// The fields of an import file.
const (
	FieldName        Field = "name"
	FieldFirstName   Field = "first_name"
	FieldLastName    Field = "last_name"
	FieldAffiliation Field = "affiliation"
	FieldCountry     Field = "country"
	FieldVisibility  Field = "visibility"
	FieldID          Field = "id"
	FieldEmail       Field = "email"
)

// Fields lists the fields a column can be mapped to, in the order of
// their columns in the files this tool writes.
var Fields = []Field{FieldName, FieldFirstName, FieldLastName, FieldAffiliation, FieldCountry, FieldVisibility, FieldID, FieldEmail}

// headerWords are the header names recognised without a mapping, in
// English, Belarusian, Russian, Ukrainian and Polish, folded (see
// headerKey). An e-mail column is never recognised by itself: addresses
// are used only when the caller names their column.
var headerWords = map[Field][]string{
	FieldName: {
		"name", "full name", "fullname", "names", "signatory", "signer", "signer name", "signature", "your name",
		"first and last name", "name and surname", "name surname", "surname name",
		// be
		"імя і прозвішча", "прозвішча і імя", "прозвішча імя", "імя прозвішча", "поўнае імя", "подпіс",
		// ru
		"имя и фамилия", "фамилия и имя", "фамилия имя", "имя фамилия", "фио", "фио полностью", "полное имя", "подпись",
		// uk
		"ім'я та прізвище", "прізвище та ім'я", "прізвище ім'я", "ім'я прізвище", "піб", "повне ім'я", "підпис",
		// pl
		"imie i nazwisko", "nazwisko i imie", "imie nazwisko", "nazwisko imie", "podpis",
	},
	FieldFirstName: {"first name", "firstname", "first", "given name", "given names", "forename", "imie", "imiona", "имя", "імя", "ім'я"},
	FieldLastName:  {"last name", "lastname", "last", "surname", "family name", "nazwisko", "фамилия", "прозвішча", "прізвище"},
	FieldAffiliation: {
		"affiliation", "organisation", "organization", "org", "employer", "institution", "workplace",
		"арганізацыя", "месца працы", "установа",
		"организация", "место работы", "учреждение",
		"організація", "місце роботи", "установа",
		"afiliacja", "organizacja", "instytucja", "miejsce pracy",
	},
	FieldCountry:    {"country", "краіна", "страна", "країна", "kraj", "panstwo"},
	FieldVisibility: {"visibility", "бачнасць", "видимость", "видимість", "widocznosc"},
	FieldID:         {"id"},
}

var headerIndex = func() map[string]Field {
	m := map[string]Field{}
	for f, words := range headerWords {
		for _, w := range words {
			m[headerKey(w)] = f
		}
	}
	return m
}()

var punctuation = regexp.MustCompile(`[\s_:*()\-/]+`)

// headerKey folds a header name for recognition: case, diacritics and
// punctuation do not matter ("Full_Name", "full name", "Ф.И.О." meet).
func headerKey(h string) string {
	h = strings.ReplaceAll(names.Fold(strings.TrimLeft(h, "\uFEFF")), ".", "")
	return strings.TrimSpace(punctuation.ReplaceAllString(h, " "))
}

// HeaderField returns the field a header names by itself, if any: "Full
// name", "ФИО" and "Imię i nazwisko" name [FieldName].
func HeaderField(h string) (Field, bool) {
	f, ok := headerIndex[headerKey(h)]
	return f, ok
}

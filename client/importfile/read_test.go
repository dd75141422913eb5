package importfile_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/importfile"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func readFixture(t *testing.T, name string, o importfile.Options) (*importfile.File, error) {
	t.Helper()
	f, err := os.Open(filepath.Join("../testdata/realworld", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return importfile.Read(f, o)
}

func rowNames(f *importfile.File) []string {
	var s []string
	for _, r := range f.Rows {
		s = append(s, r.Fields.Name+"|"+r.Fields.Affiliation+"|"+r.Fields.Country)
	}
	return s
}

// TestRealWorldFiles reads each file of client/testdata/realworld as its
// README says it must be read.
func TestRealWorldFiles(t *testing.T) {
	for _, tc := range []struct {
		file  string
		opts  importfile.Options
		want  []string
		lines []int
		delim rune
	}{
		{"excel-utf16-semicolon.csv", importfile.Options{}, []string{
			"Łapińska Hanna|Uniwersytet Warszawski|PL",
			`Kowalczyk Paweł|Stowarzyszenie "Wolne Ręce"; Kraków|PL`,
			"Novik Iryna||BY",
		}, []int{2, 3, 4}, ';'},
		{"cyrillic-windows-1251.csv", importfile.Options{Encoding: "windows-1251"}, []string{
			"Бяляцкая Таццяна|Праваабарончы цэнтр «Вясна»|BY",
			"Марозаў Ігар||BY",
			"Шчарбакова Зінаіда|Настаўніца|BY",
		}, []int{2, 3, 4}, ';'},
		{"form-first-last.csv", importfile.Options{NameOrder: importfile.LastFirst}, []string{
			"Bialiatskaya Tatsiana|Mother of three|BY",
			"Müller Sören|Driver|DE",
			"Łapińska Hanna||PL",
		}, []int{2, 3, 4}, ','},
		{"form-first-last.csv", importfile.Options{NameOrder: importfile.FirstLast}, []string{
			"Tatsiana Bialiatskaya|Mother of three|BY",
			"Sören Müller|Driver|DE",
			"Hanna Łapińska||PL",
		}, []int{2, 3, 4}, ','},
		{"western-windows-1252.csv", importfile.Options{Encoding: "windows-1252"}, []string{
			"Müller Sören|Driver|",
			"Øvergård Sören||",
			`José Núñez|Asociación "Libre"|`,
		}, []int{2, 3, 4}, ','},
		{"russian-tabs.tsv", importfile.Options{}, []string{
			"Лапинская Анна|Библиотека №5|BY",
			"Новик Ирина||BY",
		}, []int{2, 3}, '\t'},
		{"ukrainian-name-only.csv", importfile.Options{}, []string{"Олена Шевчук||", "Тарас Коваль||"}, []int{2, 3}, ','},
		{"unknown-column.csv", importfile.Options{Ignore: []string{"note"}}, []string{
			"Smith John|Acme Ltd|GB", "Novik Iryna|Programmer|BY",
		}, []int{2, 3}, ','},
	} {
		t.Run(tc.file, func(t *testing.T) {
			f, err := readFixture(t, tc.file, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := rowNames(f); !slices.Equal(got, tc.want) {
				t.Errorf("rows\n%q\nwant\n%q", got, tc.want)
			}
			var lines []int
			for _, r := range f.Rows {
				lines = append(lines, r.Line)
			}
			if !slices.Equal(lines, tc.lines) {
				t.Errorf("row numbers %v, want %v", lines, tc.lines)
			}
			if f.Delimiter != tc.delim {
				t.Errorf("delimiter %q, want %q", f.Delimiter, tc.delim)
			}
			if len(f.Rejects) != 0 {
				t.Errorf("rejects: %+v", f.Rejects)
			}
		})
	}
}

func TestPrivateRow(t *testing.T) {
	f, err := readFixture(t, "russian-tabs.tsv", importfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Rows[0].Visibility != pb.Visibility_VISIBILITY_PUBLIC || f.Rows[1].Visibility != pb.Visibility_VISIBILITY_PRIVATE {
		t.Errorf("visibilities %v, %v", f.Rows[0].Visibility, f.Rows[1].Visibility)
	}
	if f.Blank != 0 {
		t.Errorf("%d blank rows, want 0 (empty lines are no records)", f.Blank)
	}
}

// TestRefused: each file that would lose or misread data is refused
// whole, with an error that says what to do.
func TestRefused(t *testing.T) {
	var ce *importfile.ColumnsError
	var le *importfile.LongRowsError
	var ee *importfile.EncodingError
	for _, tc := range []struct {
		file string
		opts importfile.Options
		is   func(error) bool
		text string
	}{
		{"unknown-column.csv", importfile.Options{}, func(err error) bool { return errors.As(err, &ce) }, `columns not understood: "note"`},
		{"unquoted-comma.csv", importfile.Options{}, func(err error) bool { return errors.As(err, &le) && slices.Equal(le.Rows, []int{3}) }, `"Smith, John"`},
		{"cyrillic-windows-1251.csv", importfile.Options{}, func(err error) bool { return errors.As(err, &ee) && ee.Line == 1 }, "windows-1251"},
		{"western-windows-1252.csv", importfile.Options{}, func(err error) bool { return errors.As(err, &ee) && ee.Line == 2 }, "windows-1252"},
		{"form-first-last.csv", importfile.Options{}, func(err error) bool { return errors.Is(err, importfile.ErrOptions) }, "first-last"},
		{"unknown-column.csv", importfile.Options{Ignore: []string{"notes"}}, func(err error) bool { return errors.Is(err, importfile.ErrOptions) }, `no column "notes"`},
		{"unknown-column.csv", importfile.Options{Encoding: "klingon"}, func(err error) bool { return errors.Is(err, importfile.ErrOptions) }, "unknown encoding"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := readFixture(t, tc.file, tc.opts)
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v (%T), want one saying %q", err, err, tc.text)
			}
		})
	}
}

// TestColumns covers mapping, duplicates, missing names and empty header
// cells.
func TestColumns(t *testing.T) {
	read := func(s string, o importfile.Options) (*importfile.File, error) {
		return importfile.Read(strings.NewReader(s), o)
	}
	f, err := read("Name,Organisation,Notes\nA B,Acme,x\n", importfile.Options{
		Columns: map[importfile.Field]string{importfile.FieldAffiliation: "organisation"}, Ignore: []string{"Notes"},
	})
	if err != nil || rowNames(f)[0] != "A B|Acme|" {
		t.Fatalf("mapped: %v %v", err, f)
	}
	if _, err := read("Name,Full name\nA,B\n", importfile.Options{}); err == nil || !strings.Contains(err.Error(), "more than one column holds the name") {
		t.Errorf("two name columns: %v", err)
	}
	if _, err := read("Organisation\nAcme\n", importfile.Options{}); err == nil || !strings.Contains(err.Error(), "no column holds the name") {
		t.Errorf("no name column: %v", err)
	}
	// A trailing delimiter in the header is no column; a headerless
	// column with data is.
	if f, err := read("name,affiliation,\nA B,C,\n", importfile.Options{}); err != nil || len(f.Rows) != 1 {
		t.Errorf("trailing delimiter: %v", err)
	}
	if _, err := read("name,\nA B,secret\n", importfile.Options{}); err == nil || !strings.Contains(err.Error(), `""`) {
		t.Errorf("a headerless column with data: %v", err)
	}
	// Trailing empty cells beyond the header are not data.
	if f, err := read("name\nA B,,\n", importfile.Options{}); err != nil || len(f.Rows) != 1 {
		t.Errorf("trailing empty cells: %v", err)
	}
	// Localised and punctuated headers.
	for _, h := range []string{"Ф.И.О.", "Imię i nazwisko", "Імя і прозвішча", "FULL_NAME", "ПІБ"} {
		if f, err := read(h+"\nA B\n", importfile.Options{}); err != nil || len(f.Rows) != 1 {
			t.Errorf("header %q: %v", h, err)
		}
	}
}

// TestRowNumbers: rows are numbered as a spreadsheet shows them, blank
// rows are skipped, and a bad row is rejected with its number.
func TestRowNumbers(t *testing.T) {
	in := "name,visibility\n\"Multi\nLine\",\nGood One,\n\n,\nBad,secret\n\u3164,\nLast One,private\n"
	f, err := importfile.Read(strings.NewReader(in), importfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range f.Rows {
		got = append(got, r.Fields.Name)
	}
	if !slices.Equal(got, []string{"Good One", "Last One"}) || f.Rows[0].Line != 3 || f.Rows[1].Line != 8 {
		t.Errorf("rows %q at %+v", got, f.Rows)
	}
	if f.Blank != 1 {
		t.Errorf("%d blank rows, want 1", f.Blank)
	}
	// The cell spanning two lines is one row (2), with a control character.
	if len(f.Rejects) != 3 || f.Rejects[0].Line != 2 || f.Rejects[1].Line != 6 || !strings.HasPrefix(f.Rejects[1].Reason, "visibility:") ||
		f.Rejects[2].Line != 7 || !strings.Contains(f.Rejects[2].Reason, "letter or digit") {
		t.Errorf("rejects %+v", f.Rejects)
	}
	// A broken quote names its spreadsheet row.
	_, err = importfile.Read(strings.NewReader("name\n\"A\nB\"\nC \"D\" E\"\n"), importfile.Options{})
	if err == nil || !strings.Contains(err.Error(), "row 3") {
		t.Errorf("broken quote: %v", err)
	}
}

func TestUTF16WithoutBOM(t *testing.T) {
	b := []byte{}
	for _, c := range "name\nAnna\n" {
		b = append(b, byte(c), 0)
	}
	var ee *importfile.EncodingError
	if _, err := importfile.Read(strings.NewReader(string(b)), importfile.Options{}); !errors.As(err, &ee) || !ee.UTF16 {
		t.Errorf("err = %v", err)
	}
	f, err := importfile.Read(strings.NewReader(string(b)), importfile.Options{Encoding: "utf-16le"})
	if err != nil || len(f.Rows) != 1 || f.Rows[0].Fields.Name != "Anna" {
		t.Errorf("with --encoding utf-16le: %v %+v", err, f)
	}
}

// TestMacLineEndings: Excel's "CSV (Macintosh)" ends lines with CR alone.
func TestMacLineEndings(t *testing.T) {
	f, err := importfile.Read(strings.NewReader("name;affiliation\rAnna Lis;Teacher\rPetr Zhuk;\r"), importfile.Options{})
	if err != nil || len(f.Rows) != 2 || f.Rows[1].Fields.Name != "Petr Zhuk" || f.Rows[1].Line != 3 {
		t.Fatalf("%v %+v", err, f)
	}
}

package importfile

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Name orders for files with a first-name and a last-name column.
const (
	FirstLast = "first-last"
	LastFirst = "last-first"
)

// Options says how to read a file. The zero value detects the encoding
// and the delimiter and recognises the header by itself.
type Options struct {
	// Encoding names the file's encoding ("windows-1251", "windows-1252",
	// "iso-8859-2", "utf-16le", any WHATWG encoding label); empty detects
	// UTF-8 (with or without a byte order mark) and UTF-16 with one.
	Encoding string
	// Delimiter is the field separator; 0 detects comma, semicolon or tab
	// from the header line.
	Delimiter rune
	// Columns maps fields to the headers of the columns that hold them,
	// for headers that are not recognised by themselves.
	Columns map[Field]string
	// Ignore lists headers of columns to leave out on purpose.
	Ignore []string
	// NameOrder says how to join a first-name and a last-name column into
	// the name: [FirstLast] or [LastFirst]. A file with both needs it.
	NameOrder string
	// EmailColumn is the header of a column of e-mail addresses, or "".
	EmailColumn string
}

// Row is a row to send.
type Row struct {
	// Line is the row's number as a spreadsheet shows it (the header is 1).
	Line int
	// Raw is the row's cells as read.
	Raw []string
	// Fields are the disclosure fields, in canonical form.
	Fields records.Fields
	// Visibility is public unless the row says private.
	Visibility pb.Visibility
	// ID is the row's id column, or "".
	ID string
	// Email is the row's e-mail address, or "" (see [Options.EmailColumn]).
	Email string
}

// Reject is a row that breaks a rule, and the rule.
type Reject struct {
	Line   int
	Raw    []string
	Reason string
}

// Column says what became of one column of the file.
type Column struct {
	Header string
	// Field is the field it holds, or "" when it was ignored.
	Field Field
	// Mapped reports whether the caller mapped it (Options.Columns).
	Mapped bool
}

// File is a file read by [Read].
type File struct {
	// Header is the header row as read.
	Header []string
	// Columns says what each column of the header holds.
	Columns []Column
	// Encoding and Delimiter are those the file was read with.
	Encoding  string
	Delimiter rune
	// Rows are the rows to send, Rejects those that break a rule, in file
	// order; Blank counts the blank rows skipped.
	Rows    []Row
	Rejects []Reject
	Blank   int
}

// ErrOptions is wrapped by the errors of options that do not fit the file:
// a mapped or ignored header that is not there, a missing name order.
var ErrOptions = errors.New("options do not fit the file")

// ErrNameOrder wraps ErrOptions for a file with a first-name and a
// last-name column read without [Options.NameOrder].
var ErrNameOrder = fmt.Errorf("%w: the file has a first-name and a last-name column: say how to join them into the name (%s or %s)", ErrOptions, FirstLast, LastFirst)

// EncodingError reports a file that is not in the encoding it was read
// with: it is not UTF-8 and no encoding was named, or it does not decode.
type EncodingError struct {
	// Encoding is the encoding tried.
	Encoding string
	// Line is the line of the first byte that does not decode (from 1).
	Line int
	// UTF16 reports that the file looks like UTF-16 without a byte order
	// mark.
	UTF16 bool
}

func (e *EncodingError) Error() string {
	if e.UTF16 {
		return "the file looks like UTF-16 without a byte order mark: name its encoding (utf-16le or utf-16be)"
	}
	return fmt.Sprintf("line %d is not %s: name the file's encoding, such as windows-1251 (Cyrillic), windows-1252 (Western European) or iso-8859-2 (Central European), or save it as UTF-8", e.Line, e.Encoding)
}

// ColumnsError reports columns that hold no known field and were not
// ignored: importing without them would lose their data.
type ColumnsError struct {
	// Unknown are the headers of those columns ("" for a column without
	// a header that holds data).
	Unknown []string
	// Duplicate are fields that more than one column holds.
	Duplicate []Field
	// NoName reports a header without a name column.
	NoName bool
}

func (e *ColumnsError) Error() string {
	var parts []string
	if len(e.Unknown) > 0 {
		q := make([]string, len(e.Unknown))
		for i, h := range e.Unknown {
			q[i] = fmt.Sprintf("%q", h)
		}
		parts = append(parts, fmt.Sprintf("columns not understood: %s (map each to a field, or ignore it)", strings.Join(q, ", ")))
	}
	for _, f := range e.Duplicate {
		parts = append(parts, fmt.Sprintf("more than one column holds the %s (map one, ignore the others)", f))
	}
	if e.NoName {
		parts = append(parts, "no column holds the name (map one)")
	}
	return strings.Join(parts, "; ")
}

// LongRowsError reports rows with more fields than the header: a name
// with a delimiter in it that was not quoted, say ("Smith, John").
type LongRowsError struct {
	// Rows are the spreadsheet row numbers, Columns the header's width.
	Rows    []int
	Columns int
}

func (e *LongRowsError) Error() string {
	rows := make([]string, 0, 10)
	for i, r := range e.Rows {
		if i == 10 {
			rows = append(rows, fmt.Sprintf("and %d more", len(e.Rows)-10))
			break
		}
		rows = append(rows, fmt.Sprint(r))
	}
	return fmt.Sprintf("rows with more fields than the header's %d: %s (quote the cells that hold the delimiter, such as \"Smith, John\")",
		e.Columns, strings.Join(rows, ", "))
}

// Read reads an import file. It fails, reading nothing, with an
// [*EncodingError], a [*ColumnsError], a [*LongRowsError], an error wrapping
// [ErrOptions] or a CSV syntax error naming the row; otherwise every row is
// in exactly one of File.Rows and File.Rejects, or blank.
func Read(r io.Reader, o Options) (*File, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	text, enc, err := Decode(b, o.Encoding)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(text, "\n") {
		// Classic Mac line endings ("CSV (Macintosh)" in Excel).
		text = strings.ReplaceAll(text, "\r", "\n")
	}
	f := &File{Encoding: enc, Delimiter: o.Delimiter}
	if f.Delimiter == 0 {
		f.Delimiter = DetectDelimiter(text)
	}
	recs, lines, err := readCSV(text, f.Delimiter)
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, errors.New("the file is empty: want a header row naming the columns")
	}
	f.Header = recs[0]
	cols, err := mapColumns(f.Header, recs[1:], o)
	if err != nil {
		return nil, err
	}
	f.Columns = cols
	var long []int
	for i, rec := range recs[1:] {
		if len(rec) > len(f.Header) && !blank(rec[len(f.Header):]) {
			long = append(long, lines[i+1])
		}
	}
	if len(long) > 0 {
		return nil, &LongRowsError{Rows: long, Columns: len(f.Header)}
	}
	for i, rec := range recs[1:] {
		if blank(rec) {
			f.Blank++
			continue
		}
		row, reason := makeRow(lines[i+1], rec, cols, o.NameOrder)
		if reason != "" {
			f.Rejects = append(f.Rejects, Reject{Line: row.Line, Raw: rec, Reason: reason})
			continue
		}
		f.Rows = append(f.Rows, row)
	}
	return f, nil
}

// Decode returns a file as UTF-8 without a byte order mark, and the
// encoding it was in: name, or when name is empty UTF-8 (with or without a
// byte order mark) or UTF-16 with one. It fails with an [*EncodingError]
// when the file is not in that encoding, and with an error wrapping
// [ErrOptions] for an unknown encoding name.
func Decode(b []byte, name string) (string, string, error) {
	if name == "" {
		switch {
		case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
			name = "utf-8"
		case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
			s, err := unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder().Bytes(b)
			if err != nil {
				return "", "", &EncodingError{Encoding: "UTF-16", Line: 1}
			}
			return strings.TrimLeft(string(s), "\uFEFF"), "utf-16 with a byte order mark", nil
		default:
			if looksUTF16(b) {
				return "", "", &EncodingError{Encoding: "UTF-8", UTF16: true}
			}
			name = "utf-8"
		}
	}
	var enc encoding.Encoding
	if strings.EqualFold(name, "utf-8") || strings.EqualFold(name, "utf8") {
		if !utf8.Valid(b) {
			return "", "", &EncodingError{Encoding: "UTF-8", Line: badLine(b)}
		}
		s := string(b)
		if strings.HasPrefix(s, "\uFEFF") {
			return strings.TrimLeft(s, "\uFEFF"), "utf-8 with a byte order mark", nil
		}
		return s, "utf-8", nil
	}
	enc, err := htmlindex.Get(name)
	if err != nil {
		return "", "", fmt.Errorf("%w: unknown encoding %q: want one such as windows-1251, windows-1252, iso-8859-2, utf-16le", ErrOptions, name)
	}
	s, err := enc.NewDecoder().Bytes(b)
	if err != nil {
		return "", "", &EncodingError{Encoding: name, Line: 1}
	}
	canonical, _ := htmlindex.Name(enc)
	return strings.TrimLeft(string(s), "\uFEFF"), canonical, nil
}

// looksUTF16 reports whether many of the bytes are NUL, as in UTF-16 text
// of mostly Latin letters.
func looksUTF16(b []byte) bool {
	n := min(len(b), 4096)
	return n >= 4 && bytes.Count(b[:n], []byte{0}) > n/4
}

// badLine returns the line of the first byte that is not UTF-8.
func badLine(b []byte) int {
	line := 1
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		if r == '\n' {
			line++
		}
		b = b[size:]
	}
	return line
}

// DetectDelimiter picks comma, semicolon or tab, whichever the first line
// (outside quotes) holds most of; comma on a tie.
func DetectDelimiter(text string) rune {
	counts := map[rune]int{}
	quoted := false
	for _, r := range text {
		if r == '"' {
			quoted = !quoted
		}
		if quoted {
			continue
		}
		if r == '\n' && len(counts) > 0 {
			break
		}
		if r == ',' || r == ';' || r == '\t' {
			counts[r]++
		}
	}
	best := ','
	for _, d := range []rune{';', '\t'} {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return best
}

// readCSV reads every record with its spreadsheet row number: the line it
// starts on, less the extra lines of earlier cells that span lines.
func readCSV(text string, delim rune) ([][]string, []int, error) {
	cr := csv.NewReader(strings.NewReader(text))
	cr.Comma = delim
	cr.FieldsPerRecord = -1
	var recs [][]string
	var rows []int
	extra := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return recs, rows, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, nil, fmt.Errorf("row %d: %w (a cell with a quote in it must be quoted, its quotes doubled)", pe.StartLine-extra, pe.Err)
			}
			return nil, nil, err
		}
		start, _ := cr.FieldPos(0)
		last, _ := cr.FieldPos(len(rec) - 1)
		recs = append(recs, rec)
		rows = append(rows, start-extra)
		extra += last + strings.Count(rec[len(rec)-1], "\n") - start
	}
}

func blank(cells []string) bool {
	for _, c := range cells {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// mapColumns decides what each column holds.
func mapColumns(header []string, rows [][]string, o Options) ([]Column, error) {
	cols := make([]Column, len(header))
	find := func(h string) int {
		for i, x := range header {
			if strings.EqualFold(strings.TrimSpace(strings.TrimLeft(x, "\uFEFF")), strings.TrimSpace(h)) {
				return i
			}
		}
		return -1
	}
	assigned := make([]bool, len(header))
	for f, h := range o.Columns {
		if !slices.Contains(Fields, f) {
			return nil, fmt.Errorf("%w: %q is not a field: want one of %s", ErrOptions, f, fieldList())
		}
		i := find(h)
		if i < 0 {
			return nil, fmt.Errorf("%w: no column %q to map to %s (the columns: %s)", ErrOptions, h, f, quoteAll(header))
		}
		cols[i], assigned[i] = Column{Header: header[i], Field: f, Mapped: true}, true
	}
	if o.EmailColumn != "" {
		i := find(o.EmailColumn)
		if i < 0 {
			return nil, fmt.Errorf("%w: no e-mail column %q (the columns: %s)", ErrOptions, o.EmailColumn, quoteAll(header))
		}
		cols[i], assigned[i] = Column{Header: header[i], Field: FieldEmail, Mapped: true}, true
	}
	for _, h := range o.Ignore {
		i := find(h)
		if i < 0 {
			return nil, fmt.Errorf("%w: no column %q to ignore (the columns: %s)", ErrOptions, h, quoteAll(header))
		}
		if !assigned[i] {
			cols[i], assigned[i] = Column{Header: header[i]}, true
		}
	}
	ce := &ColumnsError{}
	for i, h := range header {
		if assigned[i] {
			continue
		}
		cols[i].Header = h
		if f, ok := HeaderField(h); ok {
			cols[i].Field = f
			continue
		}
		if strings.TrimSpace(h) == "" && emptyColumn(rows, i) {
			continue // a trailing delimiter in the header, say
		}
		ce.Unknown = append(ce.Unknown, h)
	}
	checkFields(cols, ce)
	if len(ce.Unknown)+len(ce.Duplicate) > 0 || ce.NoName {
		return nil, ce
	}
	if slices.ContainsFunc(cols, func(c Column) bool { return c.Field == FieldFirstName }) && o.NameOrder != FirstLast && o.NameOrder != LastFirst {
		return nil, ErrNameOrder
	}
	return cols, nil
}

// checkFields notes in ce the fields held by more than one column and a
// missing name. One column of first names alone ("Імя", "Imię") is taken
// as the name: people write the whole name there.
func checkFields(cols []Column, ce *ColumnsError) {
	seen := map[Field]bool{}
	for _, c := range cols {
		if c.Field != "" && seen[c.Field] && !slices.Contains(ce.Duplicate, c.Field) {
			ce.Duplicate = append(ce.Duplicate, c.Field)
		}
		seen[c.Field] = true
	}
	switch {
	case seen[FieldName] && (seen[FieldFirstName] || seen[FieldLastName]):
		ce.Duplicate = append(ce.Duplicate, FieldName)
	case seen[FieldName] || (seen[FieldFirstName] && seen[FieldLastName]):
	case seen[FieldFirstName]:
		for i := range cols {
			if cols[i].Field == FieldFirstName {
				cols[i].Field = FieldName
			}
		}
	default:
		ce.NoName = true
	}
}

func emptyColumn(rows [][]string, i int) bool {
	for _, r := range rows {
		if i < len(r) && strings.TrimSpace(r[i]) != "" {
			return false
		}
	}
	return true
}

func fieldList() string {
	s := make([]string, len(Fields))
	for i, f := range Fields {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// makeRow builds a row from its cells, or says which rule it breaks.
func makeRow(line int, rec []string, cols []Column, order string) (Row, string) {
	get := func(f Field) string {
		for i, c := range cols {
			if c.Field == f && i < len(rec) {
				return rec[i]
			}
		}
		return ""
	}
	name := get(FieldName)
	if first, last := strings.TrimSpace(get(FieldFirstName)), strings.TrimSpace(get(FieldLastName)); first != "" || last != "" {
		parts := []string{first, last}
		if order == LastFirst {
			parts = []string{last, first}
		}
		name = strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), " ")
	}
	row := Row{
		Line: line,
		Raw:  rec,
		Fields: records.CanonicalFields(records.Fields{
			Name: name, Affiliation: get(FieldAffiliation), Country: get(FieldCountry),
		}),
		ID:    strings.TrimSpace(get(FieldID)),
		Email: strings.TrimSpace(get(FieldEmail)),
	}
	switch v := strings.ToLower(strings.TrimSpace(get(FieldVisibility))); v {
	case "", "public":
		row.Visibility = pb.Visibility_VISIBILITY_PUBLIC
	case "private":
		row.Visibility = pb.Visibility_VISIBILITY_PRIVATE
	default:
		return row, fmt.Sprintf("visibility: must be public, private or empty, not %q", v)
	}
	if err := records.CheckFields("disclosure", row.Fields); err != nil {
		return row, err.Error()
	}
	return row, ""
}

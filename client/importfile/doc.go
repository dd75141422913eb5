// Package importfile reads the files organisers import: CSV as
// spreadsheets, form tools and people write them, in any of the common
// delimiters and encodings, with localised headers, so that no field is
// ever lost or silently misread.
//
// [Read] decodes the file (UTF-8 with or without a byte order mark, UTF-16
// with one, or a named legacy encoding such as windows-1251), detects the
// delimiter (comma, semicolon or tab), maps the header to the fields of a
// disclosure, and checks every row with the rules the server applies
// (records.CheckFields). It refuses the whole file, before anything is sent,
// when a column is not understood ([*ColumnsError]) or a row has more
// fields than the header ([*LongRowsError]): the caller maps such columns
// ([Options.Columns]) or ignores them ([Options.Ignore]) explicitly.
//
// Rows are numbered as a spreadsheet shows them: the header is row 1, a
// blank line is a row, and a cell spanning several lines is one row. Blank
// rows are skipped, not rejected.
package importfile

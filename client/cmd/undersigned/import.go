package main

import (
	"bytes"
	"context"

	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/importer"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// row is one data row of an import file.
type row struct {
	fields []string // as read
	importer.Row
}

func runImport(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	csvFile := fs.String("csv", "", "the CSV file: a header naming name (required), affiliation, country, visibility, id")
	dir := fs.String("receipts", "receipts", "the folder for the receipts, one per accepted row, and the import's journal")
	verification := fs.String("verification", "none", "how the signers were verified: none, email, phone, in_person, document")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" || *csvFile == "" {
		return usagef("import: --letter and --csv are required")
	}
	ver, err := parseVerification(*verification)
	if err != nil {
		return err
	}
	f, err := os.Open(*csvFile)
	if err != nil {
		return usagef("import: %v", err)
	}
	defer f.Close()
	header, rows, rejects, err := readImport(e, f, ver)
	if err != nil {
		return err
	}
	key, err := e.organiserKey()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return usagef("import: %v", err)
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	l, _, err := c.Letter(ctx, *letter)
	if err != nil {
		return err
	}
	var bar *progressbar.ProgressBar
	if fd, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		bar = progressbar.NewOptions(len(rows), progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("importing"), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("rows"), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
	}
	in := make([]importer.Row, len(rows))
	byNumber := map[int]*row{}
	for i, r := range rows {
		in[i] = r.Row
		byNumber[r.Number] = r
	}
	cfg := importer.Config{Client: c, Letter: l, OrganiserKey: key, Dir: *dir}
	if bar != nil {
		cfg.Progress = func(done, total int) { bar.Set(done) }
	}
	outcomes, err := importer.Run(ctx, cfg, in)
	if bar != nil {
		bar.Finish()
	}
	nrejects, werr := report(e, *csvFile, *dir, header, len(rows), rejects, byNumber, outcomes)
	err = errors.Join(err, werr)
	if err != nil {
		var mismatch *client.MismatchError
		if errors.As(err, &mismatch) {
			return &exitError{exitFailed, fmt.Errorf("import stopped: %w", err)}
		}
		return err
	}
	if nrejects > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d rows rejected", nrejects)}
	}
	return nil
}

// report writes FILE.rejects.csv and FILE.merged.csv and prints the
// summary of an import; it returns the number of rows rejected.
func report(e *env, csvFile, dir string, header []string, read int, rejects []rejected, byNumber map[int]*row, outcomes []importer.Outcome) (int, error) {
	var accepted, duplicates, done int
	var merged []rejected
	for _, o := range outcomes {
		switch {
		case o.Rejected != "":
			rejects = append(rejects, rejected{o.Row.Number, byNumber[o.Row.Number].fields, o.Rejected})
		case o.Skipped:
			done++
		case o.Receipt != "":
			accepted++
			if o.Duplicate {
				duplicates++
			}
		}
		if o.MergedInto != 0 && o.Rejected == "" {
			merged = append(merged, rejected{o.Row.Number, byNumber[o.Row.Number].fields, fmt.Sprint(o.MergedInto)})
		}
	}
	err := errors.Join(writeRows(csvFile+".rejects.csv", header, "reason", rejects),
		writeRows(csvFile+".merged.csv", header, "merged_into_row", merged))
	fmt.Fprintf(e.stdout, "%d rows: %d accepted now (%d of them duplicates of earlier endorsements), %d already had receipts, %d rejected; receipts in %s\n",
		read+len(rejects)-countServerRejects(outcomes), accepted, duplicates, done, len(rejects), dir)
	if len(merged) > 0 {
		fmt.Fprintf(e.stdout, "%d rows describe the same person as an earlier row and share its receipt (rows %s); they are listed in %s\n",
			len(merged), rowNumbers(merged), csvFile+".merged.csv")
	}
	if len(rejects) > 0 {
		fmt.Fprintf(e.stdout, "rejected rows, with the reason, are in %s\n", csvFile+".rejects.csv")
	}
	return len(rejects), err
}

func countServerRejects(outcomes []importer.Outcome) int {
	n := 0
	for _, o := range outcomes {
		if o.Rejected != "" {
			n++
		}
	}
	return n
}

func rowNumbers(rs []rejected) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprint(r.number))
	}
	return strings.Join(s, ", ")
}

// rejected is a row that gets no receipt, and why.
type rejected struct {
	number int
	fields []string
	reason string
}

// readImport reads the header and rows, checks each row with the rules the
// server applies, and returns the good rows and the rejected ones.
func readImport(e *env, r io.Reader, ver pb.Verification) ([]string, []*row, []rejected, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, nil, nil, failedf("import: reading the header: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
		switch h {
		case "name", "affiliation", "country", "visibility", "id":
			col[h] = i
		default:
			fmt.Fprintf(e.stderr, "import: ignoring column %q\n", h)
		}
	}
	if _, ok := col["name"]; !ok {
		return nil, nil, nil, failedf("import: the header has no name column")
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	var rows []*row
	var rejects []rejected
	for n := 1; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, nil, failedf("import: row %d: %v", n, err)
		}
		s := importer.Row{
			Number: n,
			Fields: records.CanonicalFields(records.Fields{
				Name: get(rec, "name"), Affiliation: get(rec, "affiliation"), Country: get(rec, "country"),
			}),
			Verification: ver,
			ID:           strings.TrimSpace(get(rec, "id")),
		}
		switch v := strings.ToLower(strings.TrimSpace(get(rec, "visibility"))); v {
		case "", "public":
			s.Visibility = pb.Visibility_VISIBILITY_PUBLIC
		case "private":
			s.Visibility = pb.Visibility_VISIBILITY_PRIVATE
		default:
			rejects = append(rejects, rejected{n, rec, fmt.Sprintf("visibility: must be public, private or empty, not %q", v)})
			continue
		}
		if err := records.CheckFields("disclosure", s.Fields); err != nil {
			rejects = append(rejects, rejected{n, rec, err.Error()})
			continue
		}
		if len(s.ID) > 128 {
			rejects = append(rejects, rejected{n, rec, "id: must be at most 128 bytes"})
			continue
		}
		rows = append(rows, &row{fields: rec, Row: s})
	}
	return header, rows, rejects, nil
}

// writeRows writes rows with a last column (the reason of a rejection,
// the row a row was merged into), or removes the file of an earlier run
// when there are none.
func writeRows(path string, header []string, last string, rejects []rejected) error {
	if len(rejects) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	sort.Slice(rejects, func(i, j int) bool { return rejects[i].number < rejects[j].number })
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(append(append([]string{"row"}, header...), last))
	for _, r := range rejects {
		w.Write(append(append([]string{fmt.Sprint(r.number)}, r.fields...), r.reason))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes(), 0o600)
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/importer"
	"github.com/undersigned/undersigned/client/importfile"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// row is one data row of an import file.
type row struct {
	importer.Row
	fields []string // as read
	email  string   // the signer's address, with --email-column
	path   string   // its receipt, from an earlier run or written now
	fresh  bool     // its receipt was written in this run
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// importFlags are the flags of import that say how to read the file and
// name the receipts.
type importFlags struct {
	letter, csvFile, dir, verification string
	columns, ignore                    listFlag
	encoding, nameOrder, receiptNames  string
	dryRun                             bool
	deliver                            deliveryFlags
}

// parseImportFlags reads the flags of import.
func parseImportFlags(e *env, args []string) (importFlags, error) {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	var o importFlags
	fs.StringVar(&o.letter, "letter", "", "the letter `ID`")
	fs.StringVar(&o.csvFile, "csv", "", "the CSV `FILE`: a header naming the name (or first and last name), and optionally affiliation, country, visibility (public, private or empty), id")
	fs.StringVar(&o.dir, "receipts", "receipts", "the `DIR` for the receipts, one per accepted row")
	fs.StringVar(&o.verification, "verification", "none", "how the signers were verified: none, email, phone, in_person or document")
	fs.Var(&o.columns, "column", "map a column: `FIELD=HEADER`, FIELD one of "+fieldNames()+" (repeatable)")
	fs.Var(&o.ignore, "ignore", "leave out the column with this `HEADER` on purpose (repeatable)")
	fs.StringVar(&o.encoding, "encoding", "", "the file's encoding if not UTF-8 or UTF-16 with a byte order mark: windows-1251, windows-1252, iso-8859-2, utf-16le, ...")
	fs.StringVar(&o.nameOrder, "name-order", "", "with first-name and last-name columns, the name is: first-last or last-first")
	fs.StringVar(&o.receiptNames, "receipt-names", "index", "receipt file names: index (INDEX-rowN.tlog-proof) or name (INDEX-rowN-NAME.tlog-proof, but never a private signer's name)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "check every row as the server would, write the rejects file, and append nothing")
	o.deliver.register(fs)
	if _, err := parse(e, fs, args); err != nil {
		return o, err
	}
	if o.letter == "" || o.csvFile == "" {
		return o, usagef("import: --letter and --csv are required")
	}
	if o.receiptNames != "index" && o.receiptNames != "name" {
		return o, usagef("import: --receipt-names must be index or name")
	}
	return o, o.deliver.check(e.g.server)
}

func runImport(ctx context.Context, e *env, args []string) error {
	o, err := parseImportFlags(e, args)
	if err != nil {
		return err
	}
	ver, err := parseVerification(o.verification)
	if err != nil {
		return err
	}
	file, err := readImportFile(o)
	if err != nil {
		return err
	}
	describeFile(e, file)
	rows, rejects := importRows(file, ver)
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	l, info, err := c.Letter(ctx, o.letter)
	if err != nil {
		return err
	}
	if info.GetStatus() == pb.Status_STATUS_CLOSED {
		return &exitError{exitRefused, fmt.Errorf("letter %s is closed: it takes no more endorsements", o.letter)}
	}
	key, err := e.letterOrganiserKey(l, info)
	if err != nil {
		return err
	}
	cfg := importer.Config{Client: c, Letter: l, OrganiserKey: key, Dir: o.dir, NamedReceipts: o.receiptNames == "name"}
	if o.dryRun {
		return dryRun(e, cfg, o, file.Header, rows, rejects)
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return usagef("import: %v", err)
	}
	progress := e.importProgress()
	cfg.Progress = progress.set
	outcomes, err := importer.Run(ctx, cfg, rowsOf(rows))
	progress.finish()
	nrejects, nunknown, werr := report(e, o.csvFile, o.dir, file.Header, rows, rejects, outcomes)
	err = errors.Join(err, werr)
	if err == nil && o.deliver.wanted() {
		err = deliverAndSay(e, o.deliver, c, l, rows)
	}
	if err != nil {
		var mismatch *client.MismatchError
		if errors.As(err, &mismatch) {
			return &exitError{exitFailed, fmt.Errorf("import stopped: %w", err)}
		}
		return err
	}
	switch {
	case nunknown > 0 && nrejects > 0:
		return &exitError{exitFailed, fmt.Errorf("%d rows rejected, and %d rows not known to be written: run the import again", nrejects, nunknown)}
	case nunknown > 0:
		return &exitError{exitFailed, fmt.Errorf("%d rows not known to be written: run the import again", nunknown)}
	case nrejects > 0:
		return &exitError{exitFailed, fmt.Errorf("%d rows rejected", nrejects)}
	}
	return nil
}

// rowsOf returns what the importer needs of the rows.
func rowsOf(rows []*row) []importer.Row {
	in := make([]importer.Row, len(rows))
	for i, r := range rows {
		in[i] = r.Row
	}
	return in
}

// report notes each row's receipt, writes FILE.rejects.csv,
// FILE.unknown.csv and FILE.merged.csv and prints the summary of an
// import; it returns the number of rows rejected and the number whose
// outcome is not known.
func report(e *env, csvFile, dir string, header []string, rows []*row, rejects []rejected, outcomes []importer.Outcome) (int, int, error) {
	var accepted, duplicates, done int
	var merged, unknown []rejected
	for i, o := range outcomes {
		r := rows[i]
		r.path, r.fresh = o.Receipt, o.Receipt != "" && !o.Skipped
		switch {
		case o.Rejected != "":
			rejects = append(rejects, rejected{r.Number, r.fields, o.Rejected})
		case o.Unknown != "":
			unknown = append(unknown, rejected{r.Number, r.fields, o.Unknown})
		case o.Skipped:
			done++
		case o.Receipt != "":
			accepted++
			if o.Duplicate {
				duplicates++
			}
		}
		if o.MergedInto != 0 && o.Rejected == "" {
			merged = append(merged, rejected{r.Number, r.fields, fmt.Sprint(o.MergedInto)})
		}
	}
	err := errors.Join(writeRows(csvFile+".rejects.csv", header, "reason", rejects),
		writeRows(csvFile+".unknown.csv", header, "reason", unknown),
		writeRows(csvFile+".merged.csv", header, "merged_into_row", merged))
	fmt.Fprintf(e.stdout, "%d rows: %d accepted now (%d of them duplicates of earlier endorsements), %d already had receipts, %d rejected, %d not known; receipts in %s\n",
		len(rows)+len(rejects)-countRejected(outcomes), accepted, duplicates, done, len(rejects), len(unknown), dir)
	sayMergedAndRejected(e, csvFile, merged, rejects)
	if len(unknown) > 0 {
		fmt.Fprintf(e.stdout, "%d rows are not known to be written: the server failed while writing them (they may be in the log). Run the import again: it sends them again, and those already written get their receipts back. They are listed in %s\n",
			len(unknown), csvFile+".unknown.csv")
	}
	return len(rejects), len(unknown), err
}

// sayMergedAndRejected says which rows were merged and where the rejected
// rows are.
func sayMergedAndRejected(e *env, csvFile string, merged, rejects []rejected) {
	if len(merged) > 0 {
		fmt.Fprintf(e.stdout, "%d rows describe the same person as an earlier row and share its receipt (rows %s); they are listed in %s\n",
			len(merged), rowNumbers(merged), csvFile+".merged.csv")
	}
	if len(rejects) > 0 {
		fmt.Fprintf(e.stdout, "rejected rows, with the reason, are in %s\n", csvFile+".rejects.csv")
	}
}

func countRejected(outcomes []importer.Outcome) int {
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

// importProgress is the progress bar of an import, on a terminal: the rows
// sent in this run and settled (receipt written or rejected), the rate over
// the last five seconds and the time left at that rate. It appears when
// the first endorsement is sent; from the first answer on it is sampled
// twice a second even when no answer comes, so that a stall shows as a
// falling rate and a growing time left.
type importProgress struct {
	e       *env
	bar     atomic.Pointer[progressbar.ProgressBar]
	ticking bool
	stop    chan struct{}
}

func (e *env) importProgress() *importProgress {
	return &importProgress{e: e, stop: make(chan struct{})}
}

// set is the importer's Progress, called from one goroutine.
func (p *importProgress) set(done, total int) {
	bar := p.bar.Load()
	if bar == nil {
		if bar = p.e.progressBar(total); bar == nil {
			return
		}
		p.bar.Store(bar)
	}
	bar.Set(done)
	if done > 0 && !p.ticking {
		p.ticking = true
		go func() {
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					bar.Add(0)
				case <-p.stop:
					return
				}
			}
		}()
	}
}

func (p *importProgress) finish() {
	close(p.stop)
	if bar := p.bar.Load(); bar != nil {
		bar.Finish()
	}
}

// progressBar returns a progress bar on a terminal, or nil.
func (e *env) progressBar(n int) *progressbar.ProgressBar {
	if fd, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) && n > 0 {
		return progressbar.NewOptions(n, progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("importing"), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("rows"), progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	return nil
}

// rejected is a row that gets no receipt, and why.
type rejected struct {
	number int
	fields []string
	reason string
}

func fieldNames() string {
	s := make([]string, len(importfile.Fields))
	for i, f := range importfile.Fields {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// readImportFile reads the file with package importfile; every way the
// file does not fit is a usage error (exit 2) saying which flag helps.
func readImportFile(o importFlags) (*importfile.File, error) {
	opts := importfile.Options{Encoding: o.encoding, Ignore: o.ignore, NameOrder: o.nameOrder, EmailColumn: o.deliver.emailColumn, Columns: map[importfile.Field]string{}}
	for _, m := range o.columns {
		f, h, ok := strings.Cut(m, "=")
		if !ok || strings.TrimSpace(h) == "" {
			return nil, usagef("import: --column %q: want FIELD=HEADER, such as affiliation=Organisation", m)
		}
		opts.Columns[importfile.Field(strings.TrimSpace(f))] = h
	}
	f, err := os.Open(o.csvFile)
	if err != nil {
		return nil, usagef("import: %v", err)
	}
	defer f.Close()
	file, err := importfile.Read(f, opts)
	var ce *importfile.ColumnsError
	var ee *importfile.EncodingError
	switch {
	case err == nil:
		return file, nil
	case errors.As(err, &ce):
		return nil, usagef("import: %s: %v; nothing was sent: use --column FIELD=HEADER (FIELD one of %s) or --ignore HEADER", o.csvFile, err, fieldNames())
	case errors.As(err, &ee):
		return nil, usagef("import: %s: %v, with --encoding", o.csvFile, err)
	case errors.Is(err, importfile.ErrNameOrder):
		return nil, usagef("import: %s has a first-name and a last-name column: say how to join them into the name with --name-order first-last or --name-order last-first", o.csvFile)
	case errors.Is(err, importfile.ErrOptions):
		return nil, usagef("import: %s: %v", o.csvFile, strings.TrimPrefix(err.Error(), importfile.ErrOptions.Error()+": "))
	}
	return nil, usagef("import: %s: %v; nothing was sent", o.csvFile, err)
}

// describeFile says on stderr how the file was read.
func describeFile(e *env, f *importfile.File) {
	var cols []string
	for _, c := range f.Columns {
		if c.Field == "" {
			cols = append(cols, fmt.Sprintf("%q ignored", c.Header))
		} else if c.Header != string(c.Field) {
			cols = append(cols, fmt.Sprintf("%q as %s", c.Header, c.Field))
		}
	}
	delim := map[rune]string{',': "commas", ';': "semicolons", '\t': "tabs"}[f.Delimiter]
	line := fmt.Sprintf("import: read as %s with %s", f.Encoding, delim)
	if len(cols) > 0 {
		line += "; columns: " + strings.Join(cols, ", ")
	}
	if f.Blank > 0 {
		line += fmt.Sprintf("; %d blank rows skipped", f.Blank)
	}
	fmt.Fprintln(e.stderr, line)
}

// importRows turns the rows read into rows to send, and the rows that break
// a rule into rejects.
func importRows(f *importfile.File, ver pb.Verification) ([]*row, []rejected) {
	var rows []*row
	var rejects []rejected
	for _, r := range f.Rejects {
		rejects = append(rejects, rejected{r.Line, r.Raw, r.Reason})
	}
	for _, r := range f.Rows {
		rows = append(rows, &row{fields: r.Raw, email: r.Email, Row: importer.Row{
			Number: r.Line, Fields: r.Fields, Visibility: r.Visibility, Verification: ver, ID: r.ID,
		}})
	}
	return rows, rejects
}

// previewRows shows the first rows as they would be appended, so that a
// column read wrongly shows before anything is sent.
func previewRows(e *env, rows []*row) {
	const show = 5
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(e.stdout, "the first rows as they would be appended:\n")
	for _, r := range rows[:min(show, len(rows))] {
		vis := "public"
		if r.Visibility == pb.Visibility_VISIBILITY_PRIVATE {
			vis = "private"
		}
		f := r.Fields
		fmt.Fprintf(e.stdout, "  row %d: name %q, affiliation %q, country %q, %s\n", r.Number, f.Name, f.Affiliation, f.Country, vis)
	}
	if len(rows) > show {
		fmt.Fprintf(e.stdout, "  ... and %d more\n", len(rows)-show)
	}
}

// dryRun checks each row as the import would before it sends (see
// importer.Check), writes the rejects and merged files a real import
// would, and appends nothing; it exits as the import would.
func dryRun(e *env, cfg importer.Config, o importFlags, header []string, rows []*row, rejects []rejected) error {
	total := len(rows) + len(rejects)
	var would, merged []rejected
	for i, out := range importer.Check(cfg, rowsOf(rows)) {
		r := rows[i]
		switch {
		case out.Rejected != "":
			rejects = append(rejects, rejected{r.Number, r.fields, out.Rejected})
		case out.MergedInto != 0:
			merged = append(merged, rejected{r.Number, r.fields, fmt.Sprint(out.MergedInto)})
		default:
			would = append(would, rejected{number: r.Number})
		}
	}
	err := errors.Join(writeRows(o.csvFile+".rejects.csv", header, "reason", rejects),
		writeRows(o.csvFile+".merged.csv", header, "merged_into_row", merged))
	if err != nil {
		return err
	}
	previewRows(e, rows)
	fmt.Fprintf(e.stdout, "dry run: %d rows: %d would be appended (%d of them merged into an earlier row's endorsement), %d rejected; nothing was sent\n",
		total, len(would)+len(merged), len(merged), len(rejects))
	sayMergedAndRejected(e, o.csvFile, merged, rejects)
	if len(rejects) > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d rows would be rejected", len(rejects))}
	}
	return nil
}

// writeRows writes rows with a last column (the reason of a rejection, the
// row a row was merged into), or removes the file of an earlier run when
// there are none.
func writeRows(path string, header []string, last string, rs []rejected) error {
	if len(rs) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].number < rs[j].number })
	var b bytes.Buffer
	w := newCSVWriter(&b)
	w.Write(append(append([]string{"row"}, header...), last))
	for _, r := range rs {
		w.Write(append(append([]string{fmt.Sprint(r.number)}, r.fields...), r.reason))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes(), 0o600)
}

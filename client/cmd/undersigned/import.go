package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/importfile"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// row is one data row of an import file.
type row struct {
	number int      // the spreadsheet's row number
	fields []string // as read
	signer client.Signer
	path   string // its receipt, from an earlier run or once written
	id     string // the id column, if any (the sending side's idempotency key)
	email  string // the signer's address, with --email-column
	fresh  bool   // its receipt was written in this run
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
	key, err := e.letterOrganiserKey(l)
	if err != nil {
		return err
	}
	secret := client.ClientSecret(key)
	earlier, err := existingReceipts(o.dir)
	if err != nil {
		return err
	}
	var todo []*row
	done := 0
	for _, r := range rows {
		r.signer.OrganiserKey, r.signer.ClientSecret = key, secret
		if p, ok := earlier[r.number]; ok && hasReceipt(c, p, r, l) {
			r.path = p
			done++
			continue
		}
		todo = append(todo, r)
	}
	if o.dryRun {
		return dryRun(e, c, l, o, file.Header, todo, done, rejects)
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return usagef("import: %v", err)
	}
	shuffle(todo)

	bar := e.progressBar(len(todo))
	namer := func(r *row, index uint64) string { return receiptPath(o.dir, o.receiptNames, r, index) }
	accepted, duplicates, serverRejects, err := sendRows(ctx, c, l, todo, namer, bar)
	if bar != nil {
		bar.Finish()
	}
	rejects = append(rejects, serverRejects...)
	if werr := writeRejects(o.csvFile+".rejects.csv", file.Header, rejects); werr != nil {
		err = errors.Join(err, werr)
	}
	fmt.Fprintf(e.stdout, "%d rows: %d accepted now (%d of them duplicates of earlier rows), %d already had receipts, %d rejected; receipts in %s\n",
		len(rows)+len(rejects)-len(serverRejects), accepted, duplicates, done, len(rejects), o.dir)
	if len(rejects) > 0 {
		fmt.Fprintf(e.stdout, "rejected rows, with the reason, are in %s\n", o.csvFile+".rejects.csv")
	}
	if err == nil && o.deliver.wanted() {
		err = deliverAndSay(e, o.deliver, c, l, rows)
	}
	if err != nil {
		return err
	}
	if len(rejects) > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d rows rejected", len(rejects))}
	}
	return nil
}

// progressBar returns a progress bar on a terminal, or nil.
func (e *env) progressBar(n int) *progressbar.ProgressBar {
	if fd, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		return progressbar.NewOptions(n, progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("importing"), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("rows"), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
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
		rows = append(rows, &row{number: r.Line, fields: r.Raw, id: r.ID, email: r.Email, signer: client.Signer{
			Fields: r.Fields, Visibility: r.Visibility, Verification: ver,
		}})
	}
	return rows, rejects
}

// receiptFile matches the receipts import writes: INDEX-rowN[-NAME].tlog-proof.
var receiptFile = regexp.MustCompile(`^[0-9]+-row([0-9]+)(-.*)?\` + receipt.Extension + `$`)

// receiptPath names a row's receipt by its log index and spreadsheet row,
// and, with --receipt-names name, the signer's name unless they are private.
func receiptPath(dir, mode string, r *row, index uint64) string {
	name := fmt.Sprintf("%06d-row%d", index, r.number)
	if mode == "name" && r.signer.Visibility != pb.Visibility_VISIBILITY_PRIVATE {
		name += "-" + slug(r.signer.Fields.Name)
	}
	return filepath.Join(dir, name+receipt.Extension)
}

// existingReceipts maps spreadsheet rows to the receipts an earlier run
// wrote in dir.
func existingReceipts(dir string) (map[int]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, usagef("import: %v", err)
	}
	m := map[int]string{}
	for _, e := range ents {
		if sub := receiptFile.FindStringSubmatch(e.Name()); sub != nil {
			n, _ := strconv.Atoi(sub[1])
			m[n] = filepath.Join(dir, e.Name())
		}
	}
	return m, nil
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
		if r.signer.Visibility == pb.Visibility_VISIBILITY_PRIVATE {
			vis = "private"
		}
		f := r.signer.Fields
		fmt.Fprintf(e.stdout, "  row %d: name %q, affiliation %q, country %q, %s\n", r.number, f.Name, f.Affiliation, f.Country, vis)
	}
	if len(rows) > show {
		fmt.Fprintf(e.stdout, "  ... and %d more\n", len(rows)-show)
	}
}

// dryRun checks each row as the server would (fields, the letter, the
// signatures), writes the rejects file a real import would, and appends
// nothing; it exits as the import would.
func dryRun(e *env, c *client.Client, l *pb.Letter, o importFlags, header []string, todo []*row, done int, rejects []rejected) error {
	seen := map[records.Fields]bool{}
	would, duplicates := 0, 0
	for _, r := range todo {
		en := client.NewEndorsement(c.Origin(), l, r.signer)
		err := records.CheckEndorsement(c.Origin(), l, en.Endorsement)
		if err == nil {
			err = records.CheckDisclosure(en.Endorsement, en.Disclosure)
		}
		if err != nil {
			rejects = append(rejects, rejected{r.number, r.fields, err.Error()})
			continue
		}
		would++
		if seen[r.signer.Fields] {
			duplicates++
		}
		seen[r.signer.Fields] = true
	}
	if err := writeRejects(o.csvFile+".rejects.csv", header, rejects); err != nil {
		return err
	}
	previewRows(e, todo)
	fmt.Fprintf(e.stdout, "dry run: %d rows: %d would be appended (%d of them duplicates of earlier rows), %d already have receipts, %d rejected; nothing was sent\n",
		would+done+len(rejects), would, duplicates, done, len(rejects))
	if len(rejects) > 0 {
		fmt.Fprintf(e.stdout, "rejected rows, with the reason, are in %s\n", o.csvFile+".rejects.csv")
		return &exitError{exitFailed, fmt.Errorf("%d rows would be rejected", len(rejects))}
	}
	return nil
}

// hasReceipt reports whether a row already has a valid receipt for the
// endorsement it would send, from an earlier run.
func hasReceipt(c *client.Client, path string, r *row, l *pb.Letter) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	_, v, err := client.VerifyOffline(b, c.Verifier())
	if err != nil {
		return false
	}
	want := client.NewEndorsement(c.Origin(), l, r.signer)
	return v.Record.GetEndorsement() != nil && bytes.Equal(v.Record.GetEndorsement().GetCommitment(), want.Endorsement.GetCommitment())
}

// shuffle puts the rows in random order, so that the log's order does not
// reveal the order of the list.
func shuffle(rows []*row) {
	for i := len(rows) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		rows[i], rows[j.Int64()] = rows[j.Int64()], rows[i]
	}
}

// sendRows streams the rows and writes each receipt as it arrives.
func sendRows(ctx context.Context, c *client.Client, l *pb.Letter, rows []*row, namer func(*row, uint64) string, bar *progressbar.ProgressBar) (accepted, duplicates int, rejects []rejected, err error) {
	if len(rows) == 0 {
		return 0, 0, nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.EndorseStream(ctx)
	if err != nil {
		return 0, 0, nil, err
	}
	sendErr := make(chan error, 1)
	go func() {
		for _, r := range rows {
			if err := stream.Send(client.NewEndorsement(c.Origin(), l, r.signer), ""); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()
	for _, r := range rows {
		res, rej, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the server ended the stream early")
			}
			return accepted, duplicates, rejects, err
		}
		if rej != nil {
			rejects = append(rejects, rejected{r.number, r.fields, rej.GetMessage()})
		} else {
			r.path, r.fresh = namer(r, res.Verified.Index), true
			if err := writeFileAtomic(r.path, res.Receipt, 0o600); err != nil {
				return accepted, duplicates, rejects, err
			}
			accepted++
			if res.Duplicate {
				duplicates++
			}
		}
		if bar != nil {
			bar.Add(1)
		}
	}
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
		return accepted, duplicates, rejects, err
	}
	return accepted, duplicates, rejects, nil
}

// writeRejects writes the rejected rows with their reason, or removes the
// file of an earlier run when there are none.
func writeRejects(path string, header []string, rejects []rejected) error {
	if len(rejects) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	sort.Slice(rejects, func(i, j int) bool { return rejects[i].number < rejects[j].number })
	var b bytes.Buffer
	w := newCSVWriter(&b)
	w.Write(append(append([]string{"row"}, header...), "reason"))
	for _, r := range rejects {
		w.Write(append(append([]string{fmt.Sprint(r.number)}, r.fields...), r.reason))
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes(), 0o600)
}

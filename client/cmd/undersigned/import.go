package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// row is one data row of an import file.
type row struct {
	number int      // 1 for the first row after the header
	fields []string // as read
	signer client.Signer
	path   string // its receipt
}

func runImport(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	csvFile := fs.String("csv", "", "the CSV file: a header naming name (required), affiliation, country, visibility")
	dir := fs.String("receipts", "receipts", "the folder for the receipts, one per accepted row")
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
	secret := client.ClientSecret(key)
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
	width := len(fmt.Sprint(len(rows) + len(rejects)))
	var todo []*row
	done := 0
	for _, r := range rows {
		r.signer.OrganiserKey, r.signer.ClientSecret = key, secret
		r.path = filepath.Join(*dir, fmt.Sprintf("%0*d-%s%s", width, r.number, slug(r.signer.Fields.Name), receipt.Extension))
		if hasReceipt(c, r, l) {
			done++
			continue
		}
		todo = append(todo, r)
	}
	shuffle(todo)

	var bar *progressbar.ProgressBar
	if fd, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(fd.Fd())) {
		bar = progressbar.NewOptions(len(todo), progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("importing"), progressbar.OptionShowCount(),
			progressbar.OptionSetItsString("rows"), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
	}
	accepted, duplicates, serverRejects, err := sendRows(ctx, c, l, todo, bar)
	if bar != nil {
		bar.Finish()
	}
	rejects = append(rejects, serverRejects...)
	if werr := writeRejects(*csvFile+".rejects.csv", header, rejects); werr != nil {
		err = errors.Join(err, werr)
	}
	fmt.Fprintf(e.stdout, "%d rows: %d accepted now (%d of them duplicates of earlier rows), %d already had receipts, %d rejected; receipts in %s\n",
		len(rows)+len(rejects)-len(serverRejects), accepted, duplicates, done, len(rejects), *dir)
	if len(rejects) > 0 {
		fmt.Fprintf(e.stdout, "rejected rows, with the reason, are in %s\n", *csvFile+".rejects.csv")
	}
	if err != nil {
		return err
	}
	if len(rejects) > 0 {
		return &exitError{exitFailed, fmt.Errorf("%d rows rejected", len(rejects))}
	}
	return nil
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
		case "name", "affiliation", "country", "visibility":
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
		s := client.Signer{
			Fields: records.CanonicalFields(records.Fields{
				Name: get(rec, "name"), Affiliation: get(rec, "affiliation"), Country: get(rec, "country"),
			}),
			Verification: ver,
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
		rows = append(rows, &row{number: n, fields: rec, signer: s})
	}
	return header, rows, rejects, nil
}

// hasReceipt reports whether a row already has a valid receipt for the
// endorsement it would send, from an earlier run.
func hasReceipt(c *client.Client, r *row, l *pb.Letter) bool {
	b, err := os.ReadFile(r.path)
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
func sendRows(ctx context.Context, c *client.Client, l *pb.Letter, rows []*row, bar *progressbar.ProgressBar) (accepted, duplicates int, rejects []rejected, err error) {
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
	w := csv.NewWriter(&b)
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

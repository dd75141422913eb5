// Package importer sends the rows of a bulk import to a server: one
// endorsement per person, with random secrets kept in a journal before
// anything is sent, and one receipt per row.
//
// # Safe to rerun
//
// The salt and the withdrawal secret of each person are random. [Run]
// writes them to a journal in the receipts folder, and syncs it, before it
// sends: a rerun after a crash or an interrupted connection sends the same
// endorsements again and gets their receipts back as duplicates. A rerun into
// a new receipts folder starts a new journal: its endorsements have new
// secrets, and the server answers each with the earlier endorsement of the
// same person (a duplicate), or refuses it if it differs.
//
// A row the server refuses (a rule broken, a right missing) is
// [Outcome.Rejected]: nothing was written for it. A row whose write failed
// otherwise (the server could not write then, the connection broke) is
// [Outcome.Unknown]: it may be in the log, and running the import again is
// what tells, and gets its receipt.
//
// # The same person
//
// Rows with the same id (the organiser's own id for a person, sent as the
// idempotency key), or without ids and with the same exact fields, are one
// person: they are merged into the first such row and share its receipt,
// and [Outcome.MergedInto] says so. Rows of one person that disagree on
// visibility or verification are all rejected before anything is sent: a
// private signer must never be named because another row says public.
//
// Every record the server returns is compared with what was sent
// (client.CheckReturned); a difference stops the import with an error.
package importer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Row is one person of an import, as read from a file.
type Row struct {
	// Number is the row's number in the file, 1 for the first data row.
	Number int
	// Fields are the name, affiliation and country, in canonical form.
	Fields records.Fields
	// Visibility and Verification are the endorsement's.
	Visibility   pb.Visibility
	Verification pb.Verification
	// ID is the organiser's own id for the person, or empty. It is sent as
	// the idempotency key: two rows with different ids are two people,
	// whatever their names.
	ID string
}

// Config is what an import needs besides its rows.
type Config struct {
	// Client is connected to the server, with an organiser token.
	Client *client.Client
	// Letter is the endorsed letter.
	Letter *pb.Letter
	// OrganiserKey signs the endorsements.
	OrganiserKey ed25519.PrivateKey
	// Dir is the receipts folder: one receipt per accepted row, and the
	// journal.
	Dir string
	// NamedReceipts adds the signer's name to the file names of public
	// signers' receipts (see [ReceiptName]).
	NamedReceipts bool
	// Progress, when set, is called as the answers come in, with the
	// number of rows settled (a receipt written or a rejection) and the
	// number of rows sent in this run; rows settled by receipts of an
	// earlier run are in neither. It is called from one goroutine.
	Progress func(done, total int)
	// Streams is how many streams carry the endorsements at once; 0 means
	// [DefaultStreams].
	Streams int
}

// DefaultStreams is how many streams an import opens by default: with
// the server's window per stream (2,048 endorsements), enough in flight to
// keep a server of two cores busy.
const DefaultStreams = 2

// Outcome is what became of one row.
type Outcome struct {
	Row Row
	// Receipt is the path of the row's receipt, or empty when it has none
	// (rejected, or the import stopped before its answer).
	Receipt string
	// Index is the endorsement's log index, when accepted.
	Index uint64
	// Duplicate is true when the server answered with an earlier
	// endorsement of the same person.
	Duplicate bool
	// Skipped is true when the row had a receipt from an earlier run.
	Skipped bool
	// MergedInto is the number of the row this one was merged into, or 0.
	MergedInto int
	// Rejected is the rule the row broke, or empty: the server refused
	// it, and nothing was written for it.
	Rejected string
	// Unknown is set when the row got neither a receipt nor a refusal:
	// the server failed while writing it (it was unavailable, say), or
	// the import stopped before the answer came. The row may or may not
	// be in the log: running the import again tells (see the package
	// documentation), and gets its receipt.
	Unknown string
}

// person is the rows of one person, and what is sent for them.
type person struct {
	key         string
	rows        []int  // indexes into the rows, the first one sent
	earlier     string // the first row's receipt from an earlier run, if any
	endorsement *client.Endorsement
}

// answer is what became of a person sent: a result or a rejection.
type answer struct {
	p        *person
	result   *client.Result
	rejected *pb.Rejection
}

// Run imports rows: it merges the rows of each person, rejects conflicting
// ones, and sends the rest in random order on [Config.Streams] streams.
// The endorsements are signed on every core, a chunk at a time, and each
// chunk's secrets are journaled and synced before any of it is sent; the
// receipts are written in batches as the answers arrive (see
// [atomicfile.Batch]), so that writing never stalls the streams. It returns
// one outcome per row, in the rows' order. An error means the import
// stopped (a connection lost, a file not written, a record returned that
// differs from the one sent); the outcomes then say what was done: a row
// has a Receipt only once its file is durable.
func Run(ctx context.Context, cfg Config, rows []Row) ([]Outcome, error) {
	out := make([]Outcome, len(rows))
	for i, r := range rows {
		out[i].Row = r
	}
	persons := group(rows, out)
	earlier, err := existingReceipts(cfg.Dir)
	if err != nil {
		return out, err
	}
	j, err := openJournal(filepath.Join(cfg.Dir, JournalName), cfg.Letter.GetId())
	if err != nil {
		return out, err
	}
	defer j.close()
	// The log's order must not reveal the order of the list.
	shuffle(persons)
	im := &run{cfg: cfg, rows: rows, out: out, journal: j}
	var again, todo []*person
	for _, p := range persons {
		if p.earlier = earlier[rows[p.rows[0]].Number]; p.earlier != "" {
			again = append(again, p)
		} else {
			todo = append(todo, p)
		}
	}
	// Rows with receipts from an earlier run are settled first, so that
	// the progress counts only what is sent.
	unsettled, err := im.settleEarlier(again)
	if err != nil {
		return out, err
	}
	return out, im.send(ctx, append(unsettled, todo...))
}

// Check does what [Run] does before it sends, and sends nothing: it merges
// the rows of each person, rejects conflicting ones, and checks each
// endorsement as the server checks it alone (its fields, the letter, the
// signatures). Rules that depend on the log (the same person endorsed
// before with another visibility, a redaction) are the server's alone to
// check. It is the import's dry run; of cfg.Client only the origin is used.
func Check(cfg Config, rows []Row) []Outcome {
	out := make([]Outcome, len(rows))
	for i, r := range rows {
		out[i].Row = r
	}
	origin := cfg.Client.Origin()
	for _, p := range group(rows, out) {
		e := client.NewEndorsement(origin, cfg.Letter, signer(cfg, rows[p.rows[0]]))
		err := records.CheckEndorsement(origin, cfg.Letter, e.Endorsement)
		if err == nil {
			err = records.CheckDisclosure(e.Endorsement, e.Disclosure)
		}
		if err != nil {
			for _, i := range p.rows {
				out[i].Rejected, out[i].MergedInto = err.Error(), 0
			}
		}
	}
	return out
}

// signer is the signer of a row's endorsement.
func signer(cfg Config, r Row) client.Signer {
	return client.Signer{Fields: r.Fields, Visibility: r.Visibility, Verification: r.Verification, OrganiserKey: cfg.OrganiserKey}
}

// JournalName is the name of the journal in the receipts folder.
const JournalName = ".undersigned-import-journal"

// group finds the rows of each person and rejects those that conflict.
func group(rows []Row, out []Outcome) []*person {
	byKey := map[string]*person{}
	var persons []*person
	for i, r := range rows {
		k := personKey(r)
		p := byKey[k]
		if p == nil {
			p = &person{key: k}
			byKey[k] = p
			persons = append(persons, p)
		}
		p.rows = append(p.rows, i)
	}
	var kept []*person
	for _, p := range persons {
		first := rows[p.rows[0]]
		conflict := false
		for _, i := range p.rows[1:] {
			if rows[i].Visibility != first.Visibility || rows[i].Verification != first.Verification {
				conflict = true
			}
		}
		if conflict {
			for _, i := range p.rows {
				out[i].Rejected = fmt.Sprintf("the same person as rows %s with another visibility or verification: fix the rows to agree (nothing was sent)", numbers(rows, p.rows, i))
			}
			continue
		}
		for _, i := range p.rows[1:] {
			out[i].MergedInto = first.Number
		}
		kept = append(kept, p)
	}
	return kept
}

// personKey is the key of a row's person within one import: its id, or
// its exact fields.
func personKey(r Row) string {
	if r.ID != "" {
		return "id\x00" + r.ID
	}
	return "fields\x00" + r.Fields.Name + "\x00" + r.Fields.Affiliation + "\x00" + r.Fields.Country
}

func numbers(rows []Row, is []int, except int) string {
	var s []string
	for _, i := range is {
		if i != except {
			s = append(s, fmt.Sprint(rows[i].Number))
		}
	}
	return strings.Join(s, ", ")
}

// IsRefusal reports whether a write answered with code was refused by the
// server, a rule broken or a right missing, so that nothing was written
// for it. Any other code (Unavailable, Internal, DeadlineExceeded,
// ResourceExhausted...) leaves the outcome unknown: the write may still be
// appended, and sending it again returns it.
func IsRefusal(code codes.Code) bool {
	switch code {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.PermissionDenied,
		codes.Unauthenticated, codes.NotFound, codes.OutOfRange:
		return true
	}
	return false
}

// unknownOutcome says what became of a row whose write failed for a
// reason other than the rules, with the server's message (which names no
// internal detail: the server says only that it failed, and its request
// id).
func unknownOutcome(msg string) string {
	return "not known whether it was written (the server failed: " + msg + "): run the import again"
}

// hasReceipt returns the receipt of an earlier run at path, when it
// verifies and is for the endorsement e would send (or a duplicate of it).
func hasReceipt(c *client.Client, path string, e *client.Endorsement) ([]byte, uint64, bool) {
	if path == "" {
		return nil, 0, false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, false
	}
	_, v, err := client.VerifyOffline(b, c.Verifier())
	if err != nil || v.Record.GetEndorsement() == nil {
		return nil, 0, false
	}
	// The endorsement the journal's secrets make, or the earlier one of
	// the same person that a duplicate answer gave.
	got := v.Record.GetEndorsement()
	if !bytes.Equal(got.GetCommitment(), e.Endorsement.GetCommitment()) &&
		(v.Disclosure == nil || records.FieldsOf(v.Disclosure) != records.FieldsOf(e.Disclosure)) {
		return nil, 0, false
	}
	sent := &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}}
	if client.CheckReturned(sent, &client.Result{Verified: v, Duplicate: true}) != nil {
		return nil, 0, false
	}
	return b, v.Index, true
}

// shuffle puts the persons in random order, so that the log's order does
// not reveal the order of the list.
func shuffle(ps []*person) {
	for i := len(ps) - 1; i > 0; i-- {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		ps[i], ps[j.Int64()] = ps[j.Int64()], ps[i]
	}
}

var notSlug = regexp.MustCompile(`[^\p{L}\p{N}]+`)

// ReceiptName is the file name of a row's receipt: the log index, padded
// to six digits, and the row's number in the file (000036-row5.tlog-proof).
// With named, a public signer's name follows as a [Slug]; a private
// signer's name never does.
func ReceiptName(index uint64, r Row, named bool) string {
	name := fmt.Sprintf("%06d-row%d", index, r.Number)
	if named && r.Visibility != pb.Visibility_VISIBILITY_PRIVATE {
		name += "-" + Slug(r.Fields.Name)
	}
	return name + receipt.Extension
}

// Slug turns a name into a part of a file name: letters and digits of any
// script, other runs as one '-', at most 48 runes.
func Slug(name string) string {
	s := strings.Trim(notSlug.ReplaceAllString(name, "-"), "-")
	if rs := []rune(s); len(rs) > 48 {
		s = strings.TrimRightFunc(string(rs[:48]), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	}
	if s == "" {
		s = "endorsement"
	}
	return s
}

// receiptFile matches the file names [ReceiptName] gives.
var receiptFile = regexp.MustCompile(`^[0-9]+-row([0-9]+)(-.*)?\` + receipt.Extension + `$`)

// existingReceipts maps row numbers to the receipts an earlier run wrote in
// dir.
func existingReceipts(dir string) (map[int]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("receipts folder: %w", err)
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

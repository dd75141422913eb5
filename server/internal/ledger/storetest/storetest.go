// Package storetest is the contract of a ledger.Store, as a test suite that
// every store runs against itself: SQLite (package sqlitestore) and
// PostgreSQL (package pgstore). The gRPC conformance suite checks the
// service on each engine; this one checks what the ledger relies on of
// its store, one method at a time, so that two stores in two dialects of
// SQL mean the same:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) ledger.Store { return openNewStore(t) })
//	}
//
// # What it checks
//
//   - Admission: one transaction, whose reads see its own writes, and
//     which leaves nothing behind when it fails.
//   - Dedup keys: found until the entry is withdrawn, redacted or
//     superseded; permanent keys never freed; a key inserted again passes
//     to the new entry (a correction), which a later mark does not free.
//   - Marks: what became of an endorsement, and whether its withdrawal
//     secret was spent; a redaction deletes the disclosure.
//   - Letters and their status, inside and outside admission.
//   - The watermark: Assign, Unassign, Unassigned, EntryByIndex,
//     IndexOfSeq.
//   - The roster and its counts at a tree size, paging, and Find.
//   - Disclosures, redactions and Purge.
//   - Tokens: stored hashed, found, listed, revoked once.
//   - For a ledger.UnorderedStore: entries by leaf hash, letters by id,
//     and the entries without an index.
//
// A store method added to ledger.Store gets its test here, in the list of
// [Run], so that every store is held to it.
package storetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Run runs the suite. open returns a new, empty store each time it is
// called; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) ledger.Store) {
	tests := []struct {
		name string
		test func(t *testing.T, f *fixture)
	}{
		{"admission is one transaction", testAdmission},
		{"dedup keys through withdrawal, redaction and correction", testDedupKeys},
		{"marks", testMarks},
		{"letters and their status", testLetters},
		{"organiser keys", testOrganiserKeys},
		{"watermark, assign and unassign", testWatermark},
		{"roster and counts at a tree size", testRoster},
		{"find", testFind},
		{"disclosures, redactions and purge", testDisclosures},
		{"tokens", testTokens},
		{"unordered: entries by leaf hash", testUnordered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.test(t, &fixture{t: t, s: s, ctx: context.Background()})
		})
	}
}

// fixture admits records into a store for a test.
type fixture struct {
	t   *testing.T
	s   ledger.Store
	ctx context.Context
	n   int // entries made, for unique leaf hashes
}

// key returns a dedup key (or any 32-byte value) derived from s.
func key(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func encode(t *testing.T, r *pb.Record) []byte {
	t.Helper()
	r.Version = records.Version
	b, err := records.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// admit runs fn in one admission and fails the test if it fails.
func (f *fixture) admit(fn func(tx ledger.AdmitTx) error) {
	f.t.Helper()
	if err := f.s.Admit(f.ctx, fn); err != nil {
		f.t.Fatalf("admit: %v", err)
	}
}

// entry returns a new entry of kind for letter, with a unique leaf hash.
func (f *fixture) entry(kind ledger.Kind, letter string, record []byte) ledger.Entry {
	f.n++
	return ledger.Entry{Kind: kind, LetterID: letter, Record: record,
		LeafHash: key(fmt.Sprintf("leaf %d", f.n)), Principal: "token:storetest"}
}

// insert admits one entry and returns its seq.
func (f *fixture) insert(n *ledger.NewEntry) int64 {
	f.t.Helper()
	var seq int64
	f.admit(func(tx ledger.AdmitTx) error {
		var err error
		seq, err = tx.Insert(f.ctx, n)
		return err
	})
	return seq
}

// letter admits a letter.
func (f *fixture) letter(id string) int64 {
	f.t.Helper()
	rec := encode(f.t, &pb.Record{Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: id, Title: "Letter " + id}}})
	return f.insert(&ledger.NewEntry{Entry: f.entry(ledger.KindLetter, id, rec)})
}

// newEndorsement returns an endorsement of letter by name to admit, public
// with its disclosure or private, under the dedup keys given.
func (f *fixture) newEndorsement(letter, name string, vis pb.Visibility, keys ...[]byte) *ledger.NewEntry {
	rec := encode(f.t, &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{
		LetterId: letter, Commitment: key("commitment of " + name), WithdrawalLock: key("lock of " + name), Visibility: vis,
	}}})
	n := &ledger.NewEntry{Entry: f.entry(ledger.KindEndorsement, letter, rec), DedupKeys: keys,
		Visibility: vis, Verification: pb.Verification_VERIFICATION_EMAIL}
	if vis == pb.Visibility_VISIBILITY_PUBLIC {
		n.Disclosure = &pb.Disclosure{Salt: key("salt of " + name), Name: name, Affiliation: "Affiliation of " + name, Country: "PL"}
		n.FoldedName = strings.ToLower(name)
	}
	return n
}

// endorse admits a public endorsement of letter by name.
func (f *fixture) endorse(letter, name string, keys ...[]byte) int64 {
	f.t.Helper()
	return f.insert(f.newEndorsement(letter, name, pb.Visibility_VISIBILITY_PUBLIC, keys...))
}

// act admits a withdrawal, redaction or correction of the endorsement at
// seq, and marks it.
func (f *fixture) act(what ledger.Target, letter string, seq int64, spent bool) int64 {
	f.t.Helper()
	var n *ledger.NewEntry
	switch what {
	case ledger.TargetWithdrawn:
		n = &ledger.NewEntry{Entry: f.entry(ledger.KindWithdrawal, letter,
			encode(f.t, &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: uint64(seq)}}}))}
	case ledger.TargetRedacted:
		n = &ledger.NewEntry{Entry: f.entry(ledger.KindRedaction, letter,
			encode(f.t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: uint64(seq)}}}))}
	default:
		n = f.newEndorsement(letter, fmt.Sprintf("Correction of %d", seq), pb.Visibility_VISIBILITY_PUBLIC)
	}
	var by int64
	f.admit(func(tx ledger.AdmitTx) error {
		var err error
		if by, err = tx.Insert(f.ctx, n); err != nil {
			return err
		}
		return tx.Mark(f.ctx, seq, what, by, spent)
	})
	return by
}

// assign gives the entries the next indexes after the watermark, and
// moves it past them.
func (f *fixture) assign(seqs ...int64) {
	f.t.Helper()
	w, err := f.s.Watermark(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var as []ledger.Assignment
	for i, seq := range seqs {
		as = append(as, ledger.Assignment{Seq: seq, Index: w + uint64(i)})
	}
	if err := f.s.Assign(f.ctx, as, w+uint64(len(seqs))); err != nil {
		f.t.Fatalf("assign: %v", err)
	}
}

// lookup returns what a dedup key finds, in an admission of its own.
func (f *fixture) lookup(k []byte) (int64, bool) {
	f.t.Helper()
	var seq int64
	var found bool
	f.admit(func(tx ledger.AdmitTx) error {
		var err error
		seq, found, err = tx.LookupDedup(f.ctx, k)
		return err
	})
	return seq, found
}

// endorsementAt returns the endorsement at index as admission reads it.
func (f *fixture) endorsementAt(index uint64) *ledger.Endorsement {
	f.t.Helper()
	var e *ledger.Endorsement
	f.admit(func(tx ledger.AdmitTx) error {
		var err error
		e, err = tx.EndorsementByIndex(f.ctx, index)
		return err
	})
	return e
}

// names returns the names of roster rows.
func names(rows []ledger.RosterRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Disclosure.GetName())
	}
	return out
}

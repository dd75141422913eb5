package sqlitestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/ledger/storetest"
)

func open(t *testing.T, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func key(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// admitEndorsement admits a public endorsement of letter "l" named name,
// with the dedup keys given, and returns its seq.
func admitEndorsement(t *testing.T, s *sqlitestore.Store, name string, keys ...[]byte) int64 {
	t.Helper()
	rec, err := records.Encode(&pb.Record{Version: records.Version, Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{
		LetterId: "l", Commitment: key("commitment of " + name), Visibility: pb.Visibility_VISIBILITY_PUBLIC,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	err = s.Admit(context.Background(), func(tx ledger.AdmitTx) error {
		var err error
		seq, err = tx.Insert(context.Background(), &ledger.NewEntry{
			Entry:      ledger.Entry{Kind: ledger.KindEndorsement, LetterID: "l", Record: rec, LeafHash: key(name), Principal: "token:t"},
			DedupKeys:  keys,
			Disclosure: &pb.Disclosure{Salt: key("salt"), Name: name, Affiliation: "Affiliation of " + name},
			FoldedName: strings.ToLower(name),
			Visibility: pb.Visibility_VISIBILITY_PUBLIC,
		})
		return err
	})
	if err != nil {
		t.Fatalf("admit %q: %v", name, err)
	}
	return seq
}

func admitWithdrawal(t *testing.T, s *sqlitestore.Store, target int64) int64 {
	t.Helper()
	var seq int64
	err := s.Admit(context.Background(), func(tx ledger.AdmitTx) error {
		var err error
		seq, err = tx.Insert(context.Background(), &ledger.NewEntry{Entry: ledger.Entry{Kind: ledger.KindWithdrawal, LetterID: "l", Record: []byte("w"), LeafHash: key("w")}})
		if err != nil {
			return err
		}
		return tx.Mark(context.Background(), target, ledger.TargetWithdrawn, seq, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

func assign(t *testing.T, s *sqlitestore.Store, seqs ...int64) {
	t.Helper()
	w, err := s.Watermark(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var as []ledger.Assignment
	for i, seq := range seqs {
		as = append(as, ledger.Assignment{Seq: seq, Index: w + uint64(i)})
	}
	if err := s.Assign(context.Background(), as, w+uint64(len(seqs))); err != nil {
		t.Fatal(err)
	}
}

func lookup(t *testing.T, s *sqlitestore.Store, k []byte) (int64, bool) {
	t.Helper()
	var seq int64
	var found bool
	err := s.Admit(context.Background(), func(tx ledger.AdmitTx) error {
		var err error
		seq, found, err = tx.LookupDedup(context.Background(), k)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return seq, found
}

func TestSchemaVersionIsChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE meta SET value = 99 WHERE key = 'schema_version'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = sqlitestore.Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("a database of schema version 99 was opened")
	}
	if !strings.Contains(err.Error(), "99") {
		t.Errorf("the error %q does not give the version", err)
	}
}

// TestNamesAreFoldedAgain: names stored with an older fold (before
// client/names, full-width letters and typographic apostrophes were not
// folded) are folded again when the store opens, so that search finds them.
func TestNamesAreFoldedAgain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	seq := admitEndorsement(t, s, "Ｏ’Ｃｏｎｎｏｒ Zoë")
	assign(t, s, seq)
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE disclosures SET folded = 'ｏ’ｃｏｎｎｏｒ zoe'`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM meta WHERE key = 'fold_version'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s = open(t, path)
	rows, err := s.Find(ctx, "l", names.Fold("O'Connor"), 1, 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("Find after reopening: %d rows, %v", len(rows), err)
	}
}

// TestRedactionIsPurgedFromTheFiles marks an endorsement redacted, purges,
// and checks that no file of the folder still holds its disclosure.
func TestRedactionIsPurgedFromTheFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "state.db"))
	name := "Purgeable Ŭnique Name"
	var seqs []int64
	for i := range 50 {
		seqs = append(seqs, admitEndorsement(t, s, fmt.Sprintf("Neighbour %02d", i)))
	}
	target := admitEndorsement(t, s, name, key("dedup of "+name))
	seqs = append(seqs, target)
	assign(t, s, seqs...)
	if err := s.Purge(ctx); err != nil { // moves everything into the main file
		t.Fatal(err)
	}
	needles := [][]byte{[]byte(name), []byte(strings.ToLower(name)), []byte("Affiliation of " + name)}
	if len(holding(t, dir, needles...)) == 0 {
		t.Fatal("before the redaction no file holds the name: the search cannot fail")
	}
	err := s.Admit(ctx, func(tx ledger.AdmitTx) error {
		by, err := tx.Insert(ctx, &ledger.NewEntry{Entry: ledger.Entry{Kind: ledger.KindRedaction, LetterID: "l", Record: []byte("r"), LeafHash: key("r")}})
		if err != nil {
			return err
		}
		return tx.Mark(ctx, target, ledger.TargetRedacted, by, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if found := holding(t, dir, needles...); len(found) > 0 {
		t.Errorf("after the redaction and a purge: %v", found)
	}
	targetIndex := uint64(len(seqs) - 1)
	ds, err := s.Disclosures(ctx, 0, targetIndex+1)
	if err != nil || len(ds) != 50 {
		t.Errorf("Disclosures = %d rows, %v; want the 50 others", len(ds), err)
	}
	if red, err := s.Redacted(ctx, 0, targetIndex+1); err != nil || !red[targetIndex] || len(red) != 1 {
		t.Errorf("Redacted = %v, %v; want only %d", red, err, targetIndex)
	}
	if _, found := lookup(t, s, key("dedup of "+name)); found {
		t.Error("the redacted endorsement's dedup key is still in the index")
	}
}

// TestPurgeFailsWhileReadersHoldOldPages keeps a read transaction open
// across a redaction: the purge cannot checkpoint the WAL, the name is
// still in the files, and Purge must say so rather than succeed. It waits
// out the store's busy timeout (10 s).
func TestPurgeFailsWhileReadersHoldOldPages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	s := open(t, path)
	name := "Held By A Reader"
	other := admitEndorsement(t, s, "Another Name")
	target := admitEndorsement(t, s, name)
	assign(t, s, other, target)
	if err := s.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	reader, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	tx, err := reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM disclosures`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the reader sees %d disclosures (%v)", n, err)
	}
	err = s.Admit(ctx, func(atx ledger.AdmitTx) error {
		by, err := atx.Insert(ctx, &ledger.NewEntry{Entry: ledger.Entry{Kind: ledger.KindRedaction, LetterID: "l", Record: []byte("r"), LeafHash: key("r")}})
		if err != nil {
			return err
		}
		return atx.Mark(ctx, target, ledger.TargetRedacted, by, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Purge(ctx)
	if found := holding(t, dir, []byte(name)); len(found) > 0 && err == nil {
		t.Errorf("Purge succeeded but %v", found)
	}
	// Once the reader is gone, a purge completes.
	tx.Rollback()
	if err := s.Purge(ctx); err != nil {
		t.Fatalf("purge without readers: %v", err)
	}
	if found := holding(t, dir, []byte(name)); len(found) > 0 {
		t.Errorf("after a purge without readers: %v", found)
	}
}

func holding(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				found = append(found, fmt.Sprintf("%s holds %q", filepath.Base(path), n))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestContract runs the contract of a ledger.Store on SQLite.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ServeUnordered(context.Background()); err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestIndexesOfUnorderedLogs: the embedded engine's store keeps no index
// on leaf hashes (random keys, a page written per entry); a store that
// serves an unordered log gets it, and loses it when opened for the
// embedded engine again.
func TestIndexesOfUnorderedLogs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	indexes := func(s *sqlitestore.Store) int {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(ON)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('entries_by_leaf_hash', 'entries_by_letter')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, unordered := range []bool{false, true, false} {
		s, err := sqlitestore.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if unordered {
			if err := s.ServeUnordered(ctx); err != nil {
				t.Fatal(err)
			}
		}
		want := 0
		if unordered {
			want = 2
		}
		if n := indexes(s); n != want {
			t.Errorf("unordered %v: %d indexes of unordered logs, want %d", unordered, n, want)
		}
		s.Close()
	}
}

// TestLetterStateWithinATransaction: admission reads a letter's state once
// per transaction; a change the transaction makes to it (a status, an
// organiser change) is seen by the next read in the same transaction.
func TestLetterStateWithinATransaction(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Admit(ctx, func(tx ledger.AdmitTx) error {
		seq, err := tx.Insert(ctx, &ledger.NewEntry{Entry: ledger.Entry{Kind: ledger.KindLetter, LetterID: "l", Record: []byte("letter"), LeafHash: key("letter")}})
		if err != nil {
			return err
		}
		before, err := tx.Letter(ctx, "l")
		if err != nil || before == nil || before.Seq != seq || before.KeysSeq != 0 || before.ClosedSeq != 0 {
			t.Fatalf("the letter just admitted: %+v, %v", before, err)
		}
		if err := tx.SetOrganiserKeys(ctx, "l", [][]byte{key("k1")}, [][]byte{key("k0")}, seq+1); err != nil {
			return err
		}
		after, err := tx.Letter(ctx, "l")
		if err != nil || after.KeysSeq != seq+1 || len(after.OrganiserKeys) != 1 || len(after.RevokedKeys) != 1 {
			t.Errorf("after an organiser change in the same transaction: %+v, %v", after, err)
		}
		if err := tx.SetLetterStatus(ctx, "l", pb.Status_STATUS_CLOSED, seq+2); err != nil {
			return err
		}
		closed, err := tx.Letter(ctx, "l")
		if err != nil || closed.ClosedSeq != seq+2 || closed.KeysSeq != seq+1 {
			t.Errorf("after closing in the same transaction: %+v, %v", closed, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

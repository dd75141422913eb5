package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/embedded/tesseralog"
	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

const testOrigin = "example.test/undersigned/ledger"

// testKeys are the log's keys and secrets, shared by every engine a test
// opens on the same log.
type testKeys struct {
	signer      note.Signer
	verifier    note.Verifier
	verifierKey string
	secret      []byte
	organiser   ed25519.PrivateKey
}

func newKeys(t *testing.T) testKeys {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	_, org, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	return testKeys{signer: s, verifier: v, verifierKey: vkey, secret: secret, organiser: org}
}

// engine is a ledger on the embedded engine: a SQLite store and a Tessera
// POSIX log, as the server opens them.
type engine struct {
	store  *sqlitestore.Store
	log    *tesseralog.Log
	ledger *ledger.Ledger
	once   sync.Once
}

// openEngine opens a ledger on the store at storePath and the log in
// logDir, whose last signed checkpoint is kept in guardPath.
func openEngine(t *testing.T, k testKeys, storePath, logDir, guardPath string) (*engine, error) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, storePath)
	if err != nil {
		return nil, err
	}
	g, err := guard.New(ctx, k.signer, k.verifier, guard.File(guardPath), nil, nil)
	if err != nil {
		store.Close()
		return nil, err
	}
	log, err := tesseralog.Open(ctx, tesseralog.Config{Dir: logDir, Signer: g, Verifier: k.verifier, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		store.Close()
		return nil, err
	}
	l, err := ledger.New(ctx, ledger.Config{
		Origin: testOrigin, Verifier: k.verifier, VerifierKey: k.verifierKey, Engine: "embedded",
		Log: log, Store: store, DedupSecret: k.secret,
	})
	if err != nil {
		log.Close(ctx)
		store.Close()
		return nil, err
	}
	e := &engine{store: store, log: log, ledger: l}
	t.Cleanup(func() { e.close(t) })
	return e, nil
}

func (e *engine) close(t *testing.T) {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.ledger.Close(); err != nil {
			t.Errorf("close the ledger: %v", err)
		}
		if err := e.log.Close(ctx); err != nil {
			t.Errorf("close the log: %v", err)
		}
		if err := e.store.Close(); err != nil {
			t.Errorf("close the store: %v", err)
		}
	})
}

var organiser = ledger.Caller{Token: &ledger.Token{ID: "test"}}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func publish(t *testing.T, k testKeys, l *ledger.Ledger, id string) *pb.Letter {
	t.Helper()
	lt := client.NewLetter(testOrigin, client.LetterDraft{ID: id, Title: "Letter " + id, Text: "We ask for " + id + ".\n"}, k.organiser)
	if _, err := l.PublishLetter(testContext(t), organiser, lt, ""); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
	return lt
}

// TestReconcileAppendsAdmittedIntents admits an endorsement in the store
// without appending it, as a crash between the two steps would leave it,
// and checks that the next start appends it exactly once.
func TestReconcileAppendsAdmittedIntents(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t)
	storePath, logDir, guardPath := filepath.Join(dir, "state.db"), filepath.Join(dir, "log"), filepath.Join(dir, "checkpoint.signed")
	first, err := openEngine(t, k, storePath, logDir, guardPath)
	if err != nil {
		t.Fatal(err)
	}
	letter := publish(t, k, first.ledger, "reconcile")
	first.close(t)

	// The intent of an endorsement, committed to the store as admission
	// does, and never appended.
	e := client.NewEndorsement(testOrigin, letter, client.Signer{Fields: records.Fields{Name: "Crashed Before Append"}, OrganiserKey: k.organiser})
	data, err := records.Encode(&pb.Record{Version: records.Version, AcceptedAt: time.Now().Unix() / 60 * 60, Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlitestore.Open(context.Background(), storePath)
	if err != nil {
		t.Fatal(err)
	}
	err = store.Admit(context.Background(), func(tx ledger.AdmitTx) error {
		_, err := tx.Insert(context.Background(), &ledger.NewEntry{
			Entry:        ledger.Entry{Kind: ledger.KindEndorsement, LetterID: letter.GetId(), Record: data, LeafHash: rfc6962.DefaultHasher.HashLeaf(data), Principal: "token:test"},
			Disclosure:   e.Disclosure,
			FoldedName:   names.Fold(e.Disclosure.GetName()),
			Visibility:   pb.Visibility_VISIBILITY_PUBLIC,
			Verification: pb.Verification_VERIFICATION_NONE,
		})
		return err
	})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	second, err := openEngine(t, k, storePath, logDir, guardPath)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	ctx := testContext(t)
	if size, err := second.log.IntegratedSize(ctx); err != nil || size != 2 {
		t.Fatalf("after reconciling, the log has %d entries (%v), want 2", size, err)
	}
	leaves, err := second.log.ReadLeaves(ctx, 1, 2)
	if err != nil || !bytes.Equal(leaves[0], data) {
		t.Fatalf("log entry 1 is not the admitted record (%v)", err)
	}
	if w, err := second.store.Watermark(ctx); err != nil || w != 2 {
		t.Errorf("watermark %d (%v), want 2", w, err)
	}
	if _, err := second.log.AwaitCheckpoint(ctx, 1); err != nil {
		t.Fatal(err)
	}
	rows, counts, _, err := second.ledger.Roster(ctx, letter.GetId(), 0, -1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Index != 1 || rows[0].Disclosure.GetName() != "Crashed Before Append" || counts.Public != 1 {
		t.Errorf("roster %v, counts %v; want the reconciled endorsement at 1", rows, counts)
	}
	// The log continues after the reconciled entry.
	next := client.NewEndorsement(testOrigin, letter, client.Signer{Fields: records.Fields{Name: "After Reconciling"}, OrganiserKey: k.organiser})
	res, err := second.ledger.Endorse(ctx, organiser, next.Endorsement, next.Disclosure, ledger.EndorseOptions{})
	if err != nil || res.Index != 2 {
		t.Fatalf("the next endorsement: %v at %v, want index 2", err, res)
	}
	second.close(t)

	third, err := openEngine(t, k, storePath, logDir, guardPath)
	if err != nil {
		t.Fatal(err)
	}
	if size, err := third.log.IntegratedSize(ctx); err != nil || size != 3 {
		t.Errorf("after a second start the log has %d entries (%v): the intent was appended twice", size, err)
	}
	third.close(t)

	t.Run("a log entry the store never admitted", func(t *testing.T) {
		_, err := openEngine(t, k, filepath.Join(t.TempDir(), "state.db"), logDir, guardPath)
		if err == nil || !strings.Contains(err.Error(), "never admitted") {
			t.Errorf("opening another store on the log: %v, want a refusal", err)
		}
	})
	t.Run("a log that lost entries gets them back from the store", func(t *testing.T) {
		// The store holds the exact bytes of every entry, in the log's
		// order: on an empty log, the ledger appends them again and the
		// log is the same, entry for entry. (Whether such a log may be
		// served is the checkpoint signer's call: it must extend the last
		// checkpoint signed.)
		original, err := openEngine(t, k, storePath, logDir, guardPath)
		if err != nil {
			t.Fatal(err)
		}
		want, err := original.log.ReadLeaves(ctx, 0, 3)
		original.close(t)
		if err != nil {
			t.Fatal(err)
		}
		other := t.TempDir()
		rebuilt, err := openEngine(t, k, storePath, filepath.Join(other, "log"), filepath.Join(other, "checkpoint.signed"))
		if err != nil {
			t.Fatalf("opening the store on an empty log: %v", err)
		}
		defer rebuilt.close(t)
		got, err := rebuilt.log.ReadLeaves(ctx, 0, 3)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Errorf("entry %d differs in the rebuilt log", i)
			}
		}
	})
}

// TestConcurrentWritesMatchTheLog endorses concurrently and checks that
// each receipt's index holds its record in the log and in the store.
func TestConcurrentWritesMatchTheLog(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t)
	e, err := openEngine(t, k, filepath.Join(dir, "state.db"), filepath.Join(dir, "log"), filepath.Join(dir, "checkpoint.signed"))
	if err != nil {
		t.Fatal(err)
	}
	letter := publish(t, k, e.ledger, "concurrent")
	ctx := testContext(t)
	const n = 200
	results := make([]*ledger.WriteResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			en := client.NewEndorsement(testOrigin, letter, client.Signer{Fields: records.Fields{Name: fmt.Sprintf("Concurrent %03d", i)}, OrganiserKey: k.organiser})
			results[i], errs[i] = e.ledger.Endorse(ctx, organiser, en.Endorsement, en.Disclosure, ledger.EndorseOptions{})
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("endorsement %d: %v", i, errs[i])
		}
		if seen[r.Index] || r.Index == 0 || r.Index > n {
			t.Errorf("endorsement %d got index %d", i, r.Index)
		}
		seen[r.Index] = true
		rc, err := receipt.Parse(r.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Verify(k.verifier); err != nil {
			t.Errorf("receipt %d: %v", i, err)
		}
		leaves, err := e.log.ReadLeaves(ctx, r.Index, r.Index+1)
		if err != nil {
			t.Fatal(err)
		}
		entry, err := e.store.EntryByIndex(ctx, r.Index)
		if err != nil || entry == nil {
			t.Fatalf("store entry %d: %v", r.Index, err)
		}
		if !bytes.Equal(leaves[0], rc.Extra.GetRecord()) || !bytes.Equal(entry.Record, leaves[0]) {
			t.Errorf("index %d: the receipt, the log and the store disagree", r.Index)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// TestMigrate fills an embedded log, stops it, migrates it with
// `undersigned-server migrate` into a new Trillian tree and PostgreSQL
// database, and serves it on the Trillian engine: the first checkpoint is
// byte for byte the embedded one, every receipt the embedded server issued
// verifies online with the state it should have, the dedup index and the
// token survive, and the log continues.
func TestMigrate(t *testing.T) {
	env := trilliantest.Need(t)
	db := env.NewDatabase(t)
	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const origin = "migrate.test/undersigned"

	// An embedded log with endorsements, a withdrawal, a redaction and
	// organiser changes.
	from := t.TempDir()
	emb, err := server.New(ctx, server.Config{DataDir: from, Origin: origin, Engine: servertest.EmbeddedEngine})
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- emb.Serve(sctx, gl, hl) }()
	token := servertest.ReadToken(t, from)
	pub, err := os.ReadFile(filepath.Join(from, datadir.LogPubFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, client.Config{Addr: gl.Addr().String(), Token: token, LogKey: strings.TrimSpace(string(pub))})
	if err != nil {
		t.Fatal(err)
	}
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	letter := client.NewLetter(origin, client.LetterDraft{ID: "migrated", Title: "Migrated", Text: "We ask.\n"}, org)
	if _, err := c.PublishLetter(ctx, letter, ""); err != nil {
		t.Fatal(err)
	}
	const n = 300
	receipts := make([]*client.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		vis := pb.Visibility_VISIBILITY_PUBLIC
		if i%10 == 3 {
			vis = pb.Visibility_VISIBILITY_PRIVATE
		}
		e := client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: fmt.Sprintf("Migrated Signer %03d", i)}, Visibility: vis, OrganiserKey: org})
		wg.Go(func() { receipts[i], errs[i] = c.Endorse(ctx, e, "") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	action := func(r *client.Result) client.Action {
		rc, err := receipt.Parse(r.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		a, err := client.ActionFromReceipt(origin, r.Verified, rc, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if _, err := c.Withdraw(ctx, action(receipts[5])); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Redact(ctx, action(receipts[6])); err != nil {
		t.Fatal(err)
	}
	vpub, volunteer, _ := ed25519.GenerateKey(rand.Reader)
	tpub, temporary, _ := ed25519.GenerateKey(rand.Reader)
	for _, ch := range []struct {
		change pb.KeyChange
		key    ed25519.PublicKey
		by     ed25519.PrivateKey
	}{{pb.KeyChange_KEY_CHANGE_ADD, vpub, org}, {pb.KeyChange_KEY_CHANGE_ADD, tpub, org}, {pb.KeyChange_KEY_CHANGE_REVOKE, tpub, volunteer}} {
		if _, err := c.ChangeOrganiser(ctx, "migrated", ch.change, ch.key, ch.by); err != nil {
			t.Fatal(err)
		}
	}
	before, err := c.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: "migrated", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	embeddedCP, err := os.ReadFile(filepath.Join(from, datadir.LastCheckpointFile))
	if err != nil {
		t.Fatal(err)
	}

	// The migration.
	to := filepath.Join(t.TempDir(), "trillian-data")
	out, errOut, err := runCommand(t, "migrate", "--from", from, "--data", to, "--trillian", env.TrillianAddr, "--postgres", db)
	logs.Write([]byte(errOut))
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	tree, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("migrate printed %q, want the tree id", out)
	}
	for _, size := range []uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, n + 6} {
		if !strings.Contains(errOut, fmt.Sprintf("the roots agree\" origin=%s tree_id=%d size=%d", origin, tree, size)) {
			t.Errorf("the migration did not report the roots agreeing at size %d", size)
		}
	}
	t.Run("a second migration into the same database is refused", func(t *testing.T) {
		_, errOut, err := runCommand(t, "migrate", "--from", from, "--data", t.TempDir(), "--trillian", env.TrillianAddr, "--postgres", db)
		if err == nil || !strings.Contains(errOut, "not empty") {
			t.Errorf("a second migration: %v\n%s", err, errOut)
		}
	})

	// The Trillian engine continues the log.
	f := startFrontend(t, env, to, origin, tree, db, 0, logs)
	tc := f.Dial(t, token, filepath.Join(t.TempDir(), "known_logs"))
	defer tc.Close()
	if got := f.Checkpoint(t); !bytes.Equal(got, embeddedCP) {
		t.Errorf("the first checkpoint of the Trillian engine is not the embedded one:\n%s\n%s", got, embeddedCP)
	}
	if tc.VerifierKey() != strings.TrimSpace(string(pub)) {
		t.Errorf("the Trillian engine serves another key")
	}
	for i, r := range receipts {
		want := client.StateCounted
		switch i {
		case 5:
			want = client.StateWithdrawn
		case 6:
			want = client.StateCountedRedacted
		}
		st, err := tc.Verify(ctx, r.Receipt)
		if err != nil {
			t.Fatalf("receipt %d from the embedded server: %v", i, err)
		}
		if st.State != want {
			t.Errorf("receipt %d: %v, want %v", i, st.State, want)
		}
	}
	after, err := tc.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: "migrated", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after.GetCounts()) != fmt.Sprint(before.GetCounts()) || len(after.GetEntries()) != len(before.GetEntries()) {
		t.Errorf("the roster was %v (%d rows), is %v (%d rows)", before.GetCounts(), len(before.GetEntries()), after.GetCounts(), len(after.GetEntries()))
	}
	dup, err := tc.Endorse(ctx, client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "Migrated Signer 042"}, OrganiserKey: org}), "")
	if err != nil || !dup.Duplicate || dup.Verified.Index != receipts[42].Verified.Index {
		t.Errorf("repeating an endorsement from before the migration: %v, %v", dup, err)
	}
	// The organiser keys came along: the revoked key signs nothing.
	_, err = tc.Endorse(ctx, client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "By A Revoked Key"}, OrganiserKey: temporary}), "")
	if err == nil || !strings.Contains(err.Error(), "was revoked") {
		t.Errorf("an endorsement by a key revoked before the migration: %v", err)
	}
	next, err := tc.Endorse(ctx, client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "After The Migration"}, OrganiserKey: volunteer}), "")
	if err != nil {
		t.Fatal(err)
	}
	if next.Verified.Index != n+6 {
		t.Errorf("the first write after the migration is at %d, want %d", next.Verified.Index, n+6)
	}
	f.Stop(t)
}

// runCommand runs undersigned-server (this test binary) with args.
func runCommand(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := servertest.Command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

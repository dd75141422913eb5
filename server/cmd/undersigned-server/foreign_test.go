package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// TestForeignLeaves queues leaves on Trillian directly, as anyone who can
// reach trillian_log_server can: bytes that are no record (with an
// identity hash of their own), and a copy of an endorsement with another
// time. One such leaf made every frontend stop ("log entry N was never
// admitted by this store"), for good (issue 17, item 2). Now writes keep
// succeeding, the leaves are served, marked as foreign, the audit reports
// exactly their indexes, the frontend counts them, and a restarted
// frontend starts.
func TestForeignLeaves(t *testing.T) {
	env := trilliantest.Need(t)
	tree, db := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)
	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	const origin = "foreign.test/undersigned"
	dir, known := t.TempDir(), filepath.Join(t.TempDir(), "known_logs")
	f := startFrontend(t, env, dir, origin, tree, db, 0, logs)
	c, token := f.DialOrganiser(t, known)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(origin, client.LetterDraft{ID: "foreign", Title: "Foreign", Text: "We ask.\n"}, org)
	if _, err := c.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	endorse := func(c *client.Client, n int) {
		t.Helper()
		for range n {
			name := fmt.Sprintf("Foreign Test Signer %02d", len(got))
			e := client.NewEndorsement(origin, l, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: org})
			r, err := c.Endorse(ctx, e, "")
			if err != nil {
				t.Fatalf("endorse %s: %v", name, err)
			}
			got = append(got, r.Receipt)
		}
	}
	endorse(c, 3)

	// The leaves, queued on Trillian as an attacker would.
	first, err := receipt.Parse(got[0])
	if err != nil {
		t.Fatal(err)
	}
	copied := new(pb.Record)
	if err := proto.Unmarshal(first.Extra.GetRecord(), copied); err != nil {
		t.Fatal(err)
	}
	copied.AcceptedAt += 60
	copyBytes, err := proto.Marshal(copied)
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte("not an undersigned record")
	other := sha256.Sum256([]byte("an identity of its own"))
	before, _, err := trillianlog.LatestRoot(ctx, env.Log, tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range []*trillian.LogLeaf{
		{LeafValue: junk, LeafIdentityHash: other[:]},
		{LeafValue: copyBytes, LeafIdentityHash: trillianlog.IdentityHash(copyBytes)},
	} {
		if _, err := env.Log.QueueLeaf(ctx, &trillian.QueueLeafRequest{LogId: tree, Leaf: leaf}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		size, _, err := trillianlog.LatestRoot(ctx, env.Log, tree)
		if err != nil {
			t.Fatal(err)
		}
		if size >= before+2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	foreign := []uint64{before, before + 1}

	// Writes go on, through this frontend and a restarted one.
	endorse(c, 3)
	checkForeign := func(c *client.Client) {
		t.Helper()
		a := auditFresh(t, ctx, c)
		var idx []uint64
		for _, v := range a.Violations {
			if v.Rule != audit.RuleForeign {
				t.Errorf("audit: %v, want only foreign entries", v)
			}
			idx = append(idx, v.Index)
		}
		if !slices.Equal(idx, foreign) {
			t.Errorf("the audit reports %v, want exactly the foreign leaves %v", idx, foreign)
		}
		for _, b := range got {
			if st, err := c.Verify(ctx, b); err != nil || st.State != client.StateCounted {
				t.Errorf("a receipt: %v %v", st, err)
			}
		}
		// The foreign leaves are served, marked, and proved.
		for _, i := range foreign {
			stream, err := c.API().GetEntries(ctx, &pb.GetEntriesRequest{Start: i, End: i + 1})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || len(resp.GetEntries()) != 1 || !resp.GetEntries()[0].GetForeign() {
				t.Errorf("GetEntries of the foreign leaf %d: %v %v, want it marked foreign", i, resp, err)
			}
			if _, err := c.API().GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: i}); err != nil {
				t.Errorf("GetInclusionProof of the foreign leaf %d: %v", i, err)
			}
		}
		roster, err := c.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: "foreign"})
		if err != nil || roster.GetCounts().GetPublic() != uint64(len(got)) {
			t.Errorf("the roster counts %d, want %d: the copy does not count (%v)", roster.GetCounts().GetPublic(), len(got), err)
		}
	}
	checkForeign(c)
	resp, err := http.Get("http://" + f.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "undersigned_ledger_foreign_entries_total 2") {
		t.Errorf("the foreign leaves are not counted in /metrics")
	}
	for _, i := range foreign {
		if !strings.Contains(logs.String(), fmt.Sprintf("index=%d", i)) {
			t.Errorf("the server's log does not name the foreign leaf %d", i)
		}
	}
	c.Close()
	f.Stop(t)

	f = startFrontend(t, env, dir, origin, tree, db, 0, logs)
	c = f.Dial(t, token, known)
	defer c.Close()
	endorse(c, 2)
	checkForeign(c)
}

// auditFresh audits the whole log with a new state folder and returns
// the report.
func auditFresh(t *testing.T, ctx context.Context, cl *client.Client) *audit.Report {
	t.Helper()
	st, err := audit.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := audit.New(audit.Config{Source: audit.NewGRPCSource(cl.API()), VerifierKey: cl.VerifierKey(), State: st})
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.Run(ctx)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return r
}

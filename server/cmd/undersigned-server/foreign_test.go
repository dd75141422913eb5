package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/webcheck"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// TestForeignLeaves queues leaves on Trillian directly, as anyone who can
// reach trillian_log_server can: bytes that are no record (with an
// identity hash of their own), a copy of an endorsement with another
// time, and a well-formed private endorsement of an open letter signed
// with a key the intruder made. One such leaf made every frontend stop
// ("log entry N was never admitted by this store"), for good (issue 17,
// item 2). Now writes keep succeeding, the leaves are served, marked as
// foreign over gRPC and beside the tiles (/log/foreign/<N>), the audit
// over gRPC and over the tlog-tiles API (audit --tiles, monitor) reports
// exactly their indexes, the frontend counts them, and a restarted
// frontend starts. The intruder's endorsement counts nowhere: not in
// GetLetter, not on the letter's page, not in the browser's verifier
// (webcheck), which used to count it.
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
	open := client.NewLetter(origin, client.LetterDraft{ID: "open-foreign", Title: "Open", Text: "Anyone may sign.\n", Policy: pb.Policy_POLICY_OPEN}, org)
	if _, err := c.PublishLetter(ctx, open, ""); err != nil {
		t.Fatal(err)
	}
	_, signerKey, _ := ed25519.GenerateKey(rand.Reader)
	honest, err := c.Endorse(ctx, client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Signs Openly"}, SignerKey: signerKey}), "")
	if err != nil {
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
	_, intruderKey, _ := ed25519.GenerateKey(rand.Reader)
	intruder := client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Nobody Admitted"}, SignerKey: intruderKey,
		Visibility: pb.Visibility_VISIBILITY_PRIVATE})
	intruderBytes, err := records.Encode(&pb.Record{Version: records.Version, AcceptedAt: time.Now().Unix(),
		Kind: &pb.Record_Endorsement{Endorsement: intruder.Endorsement}})
	if err != nil {
		t.Fatal(err)
	}
	before, _, err := trillianlog.LatestRoot(ctx, env.Log, tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range []*trillian.LogLeaf{
		{LeafValue: junk, LeafIdentityHash: other[:]},
		{LeafValue: copyBytes, LeafIdentityHash: trillianlog.IdentityHash(copyBytes)},
		{LeafValue: intruderBytes, LeafIdentityHash: trillianlog.IdentityHash(intruderBytes)},
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
		if size >= before+3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	foreign := []uint64{before, before + 1, before + 2}

	// Writes go on, through this frontend and a restarted one.
	endorse(c, 3)
	checkForeign := func(c *client.Client, f *frontend) {
		t.Helper()
		tiles, err := audit.NewHTTPSource("http://"+f.HTTPAddr+"/log/", nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, src := range map[string]audit.Source{"gRPC": audit.NewGRPCSource(c.API()), "tlog-tiles": tiles} {
			a := auditFresh(t, ctx, c, src)
			var idx []uint64
			for _, v := range a.Violations {
				if v.Rule != audit.RuleForeign {
					t.Errorf("audit over %s: %v, want only foreign entries", name, v)
				}
				idx = append(idx, v.Index)
			}
			if !slices.Equal(idx, foreign) || a.ForeignNotChecked != 0 {
				t.Errorf("the audit over %s reports %v (%d entries without marks), want exactly the foreign leaves %v", name, idx, a.ForeignNotChecked, foreign)
			}
		}
		checkOpenLetter(t, ctx, c, f, open.GetId(), intruderBytes, intruder, honest.Receipt)
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
	checkForeign(c, f)
	resp, err := http.Get("http://" + f.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "undersigned_ledger_foreign_entries_total 3") {
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
	checkForeign(c, f)
}

// auditFresh audits the whole log from src with a new state folder and
// returns the report.
func auditFresh(t *testing.T, ctx context.Context, cl *client.Client, src audit.Source) *audit.Report {
	t.Helper()
	st, err := audit.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := audit.New(audit.Config{Source: src, VerifierKey: cl.VerifierKey(), State: st})
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.Run(ctx)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return r
}

// checkOpenLetter checks that the endorsement an intruder queued on the
// log directly counts nowhere: GetLetter, the letter's page and the
// browser's verifier (webcheck, loaded from the tiles and the foreign
// marks as the page loads them) give the same counts, the honest
// endorsement's receipt counts and the intruder's does not.
func checkOpenLetter(t *testing.T, ctx context.Context, c *client.Client, f *frontend, id string, intruderBytes []byte, intruder *client.Endorsement, honest []byte) {
	t.Helper()
	_, info, err := c.Letter(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.GetCounts(); got.GetPublic() != 1 || got.GetPrivate() != 0 {
		t.Errorf("GetLetter counts %v, want the one honest endorsement only", got)
	}
	page := httpGet(t, "http://"+f.HTTPAddr+"/letters/"+id)
	for kind, want := range map[string]string{"counted": "1", "public": "1", "private": "0"} {
		m := regexp.MustCompile(`data-count="` + kind + `">([0-9]+)<`).FindStringSubmatch(string(page))
		if m == nil || m[1] != want {
			t.Errorf("the letter's page counts %s %v, want %s", kind, m, want)
		}
	}

	wl := loadWebcheck(t, "http://"+f.HTTPAddr+"/log/", c.VerifierKey())
	v, err := note.NewVerifier(c.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if got := webcheck.Verify(v, honest, wl); got.State != webcheck.Counted {
		t.Errorf("webcheck: the honest receipt %+v, want counted", got)
	}
	// The intruder holds a receipt as good as any: the leaf is in the
	// tree, and the proof is public.
	var index uint64
	var counted, private uint64
	stream, err := c.API().GetEntries(ctx, &pb.GetEntriesRequest{Start: 0, End: wl.Size()})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEntries() {
			if bytes.Equal(e.GetRecord(), intruderBytes) {
				index = e.GetIndex()
			}
			r := webcheck.VerifyReference(c.Origin(), e.GetIndex(), receipt.LeafHash(e.GetRecord()), wl)
			if r.Letter == id && (r.State == webcheck.Counted || r.State == webcheck.Redacted) {
				counted++
				if r.Private {
					private++
				}
			}
		}
	}
	if counted != 1 || private != 0 {
		t.Errorf("webcheck counts %d endorsements of %s, %d private; want the one honest endorsement only", counted, id, private)
	}
	p, err := c.API().GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: index})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := (&receipt.Receipt{Index: index, Proof: p.GetHashes(), Checkpoint: p.GetCheckpoint(),
		Extra: &pb.ReceiptExtra{Record: intruderBytes, Disclosure: intruder.Disclosure, WithdrawalSecret: intruder.WithdrawalSecret}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if got := webcheck.Verify(v, forged, wl); got.State != webcheck.Invalid || !strings.Contains(got.Reason, "no server of the log admitted it") {
		t.Errorf("webcheck: the intruder's receipt %+v, want invalid: no server admitted it", got)
	}
	if st, err := c.Verify(ctx, forged); err == nil {
		t.Errorf("the client verifies the intruder's receipt online: %v, want an error", st.State)
	}
}

// loadWebcheck loads the log as the browser's verifier does: the
// checkpoint, then every entry bundle with its foreign marks.
func loadWebcheck(t *testing.T, tiles, key string) *webcheck.Log {
	t.Helper()
	v, err := note.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := webcheck.NewLog(v, httpGet(t, tiles+"checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := wl.ForeignPaths()
	for i, p := range wl.BundlePaths() {
		if err := wl.AddBundle(httpGet(t, tiles+p), httpGet(t, tiles+foreign[i])); err != nil {
			t.Fatal(err)
		}
	}
	if err := wl.Complete(); err != nil {
		t.Fatal(err)
	}
	return wl
}

func httpGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	return b
}

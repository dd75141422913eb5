// Package conformance is the test suite that every engine of the undersigned
// server passes: the embedded engine (Tessera and SQLite), Trillian in the
// process on its memory storage, and Trillian on PostgreSQL. It talks to a
// served server only through the gRPC API, with the client library, and
// the HTTP API, as clients and auditors do, so that what it checks is
// what they get.
//
// An engine's test gives [Run] a function that returns a new, empty [Log];
// the suite starts a server on it with [Log.Start], and starts it again on
// the same log to check what survives a restart:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) conformance.Log { return newEmbeddedLog(t) })
//	}
//
// # What it checks
//
//   - GetLogInfo and the checkpoint: the engine, origin and key; a C2SP
//     checkpoint with no extension lines and one signature.
//   - Writes, one by one and streamed, concurrently: each returns a
//     receipt that verifies offline (with two independent verifiers) and
//     online, and the log holds each record at its receipt's index.
//   - Strict deduplication: a repeated write returns the first record to
//     the same caller and AlreadyExists to another.
//   - Withdrawal, redaction, correction and the letter's status, and the
//     roster's counts.
//   - The meaning of the log under concurrency: no endorsement before its
//     letter, none after the close that refused it.
//   - The tlog-tiles API: the tiles and entry bundles reproduce the
//     checkpoint's root, a tlog-tiles proof builder proves inclusion from
//     them, full resources are immutable, nothing beyond the checkpoint is
//     served; the disclosure bundles.
//   - A restart: the same log, origin and key; old receipts verify
//     online; the dedup index survives; the log continues.
//   - Organiser keys: an organiser change adds a key, which then acts for
//     the letter, and revokes it, after which everything it signs is
//     refused while what it signed before stays.
package conformance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/receipt/receipttest"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Target is a served server.
type Target struct {
	// Engine is the engine GetLogInfo must report: "embedded" or
	// "trillian".
	Engine string
	// Addr and DialOptions reach the gRPC API.
	Addr        string
	DialOptions []grpc.DialOption
	// HTTP is the base URL of the HTTP API.
	HTTP string
	// Token and OtherToken are two organiser tokens with rights to every
	// letter.
	Token, OtherToken string
	// VerifierKey is the log's verifier key, as log.pub holds it.
	VerifierKey string
	// Policy, when set, is the server's witness policy: every checkpoint
	// it serves, and every receipt's, carries cosignatures that meet it.
	Policy *policy.Policy
	// Stop stops the server; it may be called more than once.
	Stop func(t *testing.T)
}

// Log is a log of one engine that servers can be started on, one at a
// time.
type Log interface {
	// Start starts a server on the log and serves it until Stop or the end
	// of the test.
	Start(t *testing.T) *Target
}

// timeout bounds each call the suite makes.
const timeout = 60 * time.Second

// Run runs the suite. newLog returns a new, empty log each time it is
// called.
func Run(t *testing.T, newLog func(t *testing.T) Log) {
	for _, tc := range []struct {
		name string
		test func(t *testing.T, l Log)
	}{
		{"log info and checkpoint", testCheckpoint},
		{"writes return receipts that verify", testReceipts},
		{"deduplication is strict", testDedup},
		{"withdrawal redaction correction status", testLifecycle},
		{"the log keeps its meaning under concurrency", testOrdering},
		{"tlog-tiles and disclosure bundles", testTiles},
		{"restart", testRestart},
		{"the promises of issue 10", testPromises},
		{"organiser keys added and revoked", testOrganisers},
		{"organiser keys change under concurrency", testKeyOrdering},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, newLog(t)) })
	}
}

// session is a client of a target.
type session struct {
	t      *testing.T
	target *Target
	c      *client.Client // with Token
	other  *client.Client // with OtherToken
	anon   *client.Client // no token
	org    ed25519.PrivateKey
}

func open(t *testing.T, target *Target, org ed25519.PrivateKey) *session {
	t.Helper()
	if org == nil {
		_, org, _ = ed25519.GenerateKey(rand.Reader)
	}
	s := &session{t: t, target: target, org: org}
	s.c = s.dial(target.Token)
	s.other = s.dial(target.OtherToken)
	s.anon = s.dial("")
	return s
}

func (s *session) dial(token string) *client.Client {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Addr: s.target.Addr, Token: token, LogKey: s.target.VerifierKey, DialOptions: s.target.DialOptions,
	})
	if err != nil {
		s.t.Fatalf("dial %s: %v", s.target.Addr, err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

const letterText = "We, the undersigned, ask the council to keep the library open.\n"

func (s *session) publish(id string, policy pb.Policy) *pb.Letter {
	s.t.Helper()
	l := client.NewLetter(s.c.Origin(), client.LetterDraft{ID: id, Title: "Letter " + id, Text: letterText, Language: "en", Policy: policy}, s.org)
	if _, err := s.c.PublishLetter(testContext(s.t), l, ""); err != nil {
		s.t.Fatalf("publish %s: %v", id, err)
	}
	return l
}

func (s *session) endorsement(l *pb.Letter, name string, vis pb.Visibility) *client.Endorsement {
	return client.NewEndorsement(s.c.Origin(), l, client.Signer{
		Fields: records.Fields{Name: name, Affiliation: "Conformance"}, Visibility: vis, OrganiserKey: s.org,
	})
}

func (s *session) endorse(e *client.Endorsement) *client.Result {
	s.t.Helper()
	r, err := s.c.Endorse(testContext(s.t), e, "")
	if err != nil {
		s.t.Fatalf("endorse %q: %v", e.Disclosure.GetName(), err)
	}
	return r
}

// stream sends es through one EndorseStream and returns the outcomes.
func (s *session) stream(es []*client.Endorsement) ([]*client.Result, []*pb.Rejection) {
	s.t.Helper()
	ctx := testContext(s.t)
	st, err := s.c.EndorseStream(ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		for _, e := range es {
			if err := st.Send(e, ""); err != nil {
				sent <- err
				return
			}
		}
		sent <- st.CloseSend()
	}()
	res := make([]*client.Result, len(es))
	rej := make([]*pb.Rejection, len(es))
	for i := range es {
		if res[i], rej[i], err = st.Recv(); err != nil {
			s.t.Fatalf("stream outcome %d: %v", i, err)
		}
	}
	if err := <-sent; err != nil {
		s.t.Fatal(err)
	}
	return res, rej
}

func (s *session) checkpoint() *log.Checkpoint {
	s.t.Helper()
	resp, err := s.c.API().GetCheckpoint(testContext(s.t), &pb.GetCheckpointRequest{})
	if err != nil {
		s.t.Fatal(err)
	}
	cp, _, _, err := log.ParseCheckpoint(resp.GetCheckpoint(), s.c.Origin(), s.c.Verifier())
	if err != nil {
		s.t.Fatalf("the checkpoint does not verify: %v", err)
	}
	s.witnessed(resp.GetCheckpoint())
	return cp
}

func (s *session) entries() []*pb.Entry {
	s.t.Helper()
	stream, err := s.c.API().GetEntries(testContext(s.t), &pb.GetEntriesRequest{})
	if err != nil {
		s.t.Fatal(err)
	}
	var out []*pb.Entry
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			s.t.Fatalf("GetEntries: %v", err)
		}
		out = append(out, resp.GetEntries()...)
	}
}

func (s *session) get(path string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(testContext(s.t), http.MethodGet, s.target.HTTP+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, b
}

// verifyReceipt checks a receipt with the client library, offline and
// online, and with the independent verifier.
func (s *session) verifyReceipt(r *client.Result, want client.State) {
	s.t.Helper()
	if rc, err := receipt.Parse(r.Receipt); err != nil {
		s.t.Errorf("receipt of %d: %v", r.Verified.Index, err)
	} else {
		s.witnessed(rc.Checkpoint)
	}
	if _, _, err := receipttest.VerifyIndependently(r.Receipt, s.target.VerifierKey); err != nil {
		s.t.Errorf("receipt of %d, independently: %v", r.Verified.Index, err)
	}
	if _, _, err := client.VerifyOffline(r.Receipt, s.c.Verifier()); err != nil {
		s.t.Errorf("receipt of %d, offline: %v", r.Verified.Index, err)
	}
	st, err := s.c.Verify(testContext(s.t), r.Receipt)
	if err != nil {
		s.t.Errorf("receipt of %d, online: %v", r.Verified.Index, err)
		return
	}
	if st.State != want {
		s.t.Errorf("receipt of %d: %v, want %v", r.Verified.Index, st.State, want)
	}
}

// witnessed checks, with a policy, that a checkpoint carries cosignatures
// that meet it.
func (s *session) witnessed(checkpoint []byte) {
	s.t.Helper()
	if s.target.Policy == nil {
		return
	}
	r, err := s.target.Policy.Check(checkpoint)
	if err != nil || !r.Met {
		s.t.Errorf("a checkpoint served without the witnesses' quorum: %v %v\n%s", err, r, checkpoint)
	}
}

func wantCode(t *testing.T, err error, codes ...codes.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", codes)
	}
	if !slices.Contains(codes, status.Code(err)) {
		t.Fatalf("%v, want %v", err, codes)
	}
}

func testCheckpoint(t *testing.T, l Log) {
	target := l.Start(t)
	s := open(t, target, nil)
	ctx := testContext(t)
	info, err := s.c.API().GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(target.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	if info.GetEngine() != target.Engine || info.GetVerifierKey() != target.VerifierKey || info.GetOrigin() != v.Name() {
		t.Errorf("log info %v; want engine %q, key %q", info, target.Engine, target.VerifierKey)
	}
	s.publish("checkpoint", pb.Policy_POLICY_CURATED)
	resp, err := s.c.API().GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(resp.GetCheckpoint(), note.VerifierList(v))
	if err != nil {
		t.Fatalf("the checkpoint does not verify: %v", err)
	}
	if len(n.Sigs) != 1 || target.Policy == nil && len(n.UnverifiedSigs) != 0 {
		t.Errorf("%d signatures verified, %d not: want exactly one", len(n.Sigs), len(n.UnverifiedSigs))
	}
	s.witnessed(resp.GetCheckpoint())
	if lines := strings.Split(n.Text, "\n"); len(lines) != 4 || lines[0] != v.Name() || lines[3] != "" {
		t.Errorf("checkpoint body %q: want the origin, size and hash lines only", n.Text)
	}
	if resp.GetSize() < 1 {
		t.Errorf("size %d after a letter", resp.GetSize())
	}
	code, h, body := s.get("/log/checkpoint")
	if code != http.StatusOK || len(body) == 0 || strings.Contains(h.Get("Cache-Control"), "immutable") {
		t.Errorf("/log/checkpoint: %d, Cache-Control %q", code, h.Get("Cache-Control"))
	}
	if cp, _, _, err := log.ParseCheckpoint(body, v.Name(), v); err != nil || cp.Size < resp.GetSize() {
		t.Errorf("/log/checkpoint: %v, size %v below GetCheckpoint's %d", err, cp, resp.GetSize())
	}
	s.witnessed(body)
}

func testReceipts(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	letter := s.publish("receipts", pb.Policy_POLICY_CURATED)
	first := s.checkpoint()
	const n = 40
	var wg sync.WaitGroup
	unary := make([]*client.Result, n)
	errs := make([]error, n)
	for i := range n {
		vis := pb.Visibility_VISIBILITY_PUBLIC
		if i%5 == 0 {
			vis = pb.Visibility_VISIBILITY_PRIVATE
		}
		e := s.endorsement(letter, fmt.Sprintf("Unary Signer %02d", i), vis)
		wg.Go(func() { unary[i], errs[i] = s.c.Endorse(testContext(t), e, "") })
	}
	var es []*client.Endorsement
	for i := range n {
		es = append(es, s.endorsement(letter, fmt.Sprintf("Stream Signer %02d", i), pb.Visibility_VISIBILITY_PUBLIC))
	}
	streamed, rej := s.stream(es)
	wg.Wait()
	var all []*client.Result
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("unary endorsement %d: %v", i, errs[i])
		}
		if rej[i] != nil {
			t.Fatalf("streamed endorsement %d rejected: %v", i, rej[i])
		}
		all = append(all, unary[i], streamed[i])
	}
	indexes := map[uint64]*client.Result{}
	for _, r := range all {
		if r.Duplicate || indexes[r.Verified.Index] != nil || r.Verified.Index == 0 {
			t.Fatalf("receipt at %d (duplicate %v) is not a new, unique index", r.Verified.Index, r.Duplicate)
		}
		indexes[r.Verified.Index] = r
	}
	for _, r := range all[:10] {
		s.verifyReceipt(r, client.StateCounted)
	}
	entries := s.entries()
	latest := s.checkpoint()
	if uint64(len(entries)) != latest.Size || latest.Size < 2*n+1 {
		t.Fatalf("GetEntries returned %d entries, the checkpoint has %d", len(entries), latest.Size)
	}
	for i, e := range entries {
		if e.GetIndex() != uint64(i) {
			t.Fatalf("entry %d has index %d", i, e.GetIndex())
		}
		if r := indexes[uint64(i)]; r != nil && !bytes.Equal(r.Verified.Record.GetEndorsement().GetCommitment(), mustDecode(t, e.GetRecord()).GetEndorsement().GetCommitment()) {
			t.Errorf("entry %d is not the record of its receipt", i)
		}
	}
	ctx := testContext(t)
	for _, index := range []uint64{0, 1, latest.Size / 2, latest.Size - 1} {
		p, err := s.c.API().GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: index, TreeSize: latest.Size})
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, latest.Size, rfc6962.DefaultHasher.HashLeaf(entries[index].GetRecord()), p.GetHashes(), latest.Hash); err != nil {
			t.Errorf("inclusion of %d in %d: %v", index, latest.Size, err)
		}
	}
	cp, err := s.c.API().GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: first.Size, ToSize: latest.Size})
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, first.Size, latest.Size, cp.GetHashes(), first.Hash, latest.Hash); err != nil {
		t.Errorf("consistency from %d to %d: %v", first.Size, latest.Size, err)
	}
	rows, counts := s.roster("receipts", 0)
	if counts.GetPublic() != 2*n-n/5 || counts.GetPrivate() != n/5 || len(rows) != 2*n {
		t.Errorf("roster: %d rows, counts %v; want %d public, %d private", len(rows), counts, 2*n-n/5, n/5)
	}
}

func mustDecode(t *testing.T, b []byte) *pb.Record {
	t.Helper()
	r, err := records.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (s *session) roster(letterID string, size uint64) ([]*pb.RosterEntry, *pb.Counts) {
	s.t.Helper()
	resp, err := s.c.API().GetRoster(testContext(s.t), &pb.GetRosterRequest{LetterId: letterID, TreeSize: size, PageSize: 10000})
	if err != nil {
		s.t.Fatalf("GetRoster: %v", err)
	}
	return resp.GetEntries(), resp.GetCounts()
}

func testDedup(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	letter := s.publish("dedup", pb.Policy_POLICY_CURATED)
	e := s.endorsement(letter, "Once Only", pb.Visibility_VISIBILITY_PUBLIC)
	first := s.endorse(e)
	size := s.checkpoint().Size
	for _, tc := range []struct {
		name string
		e    *client.Endorsement
	}{
		{"the same endorsement", e},
		{"the same person again, with a new salt", s.endorsement(letter, "Once Only", pb.Visibility_VISIBILITY_PUBLIC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			again, err := s.c.Endorse(testContext(t), tc.e, "")
			if err != nil {
				t.Fatal(err)
			}
			if !again.Duplicate || again.Verified.Index != first.Verified.Index || !bytes.Equal(again.Verified.LeafHash, first.Verified.LeafHash) {
				t.Errorf("duplicate %v at %d, want the first record at %d", again.Duplicate, again.Verified.Index, first.Verified.Index)
			}
			if again.Verified.Disclosure.GetName() != "Once Only" {
				t.Errorf("the duplicate's receipt carries the disclosure %v", again.Verified.Disclosure)
			}
			_, err = s.other.Endorse(testContext(t), tc.e, "")
			wantCode(t, err, codes.AlreadyExists)
			if st, ok := status.FromError(err); ok && strings.Contains(st.Message(), "Once Only") {
				t.Errorf("AlreadyExists to another caller names the signer: %q", st.Message())
			}
		})
	}
	t.Run("concurrent copies get one index", func(t *testing.T) {
		e := s.endorsement(letter, "Raced Twice", pb.Visibility_VISIBILITY_PUBLIC)
		var wg sync.WaitGroup
		out := make([]*client.Result, 8)
		errs := make([]error, 8)
		for i := range out {
			wg.Go(func() { out[i], errs[i] = s.c.Endorse(testContext(t), e, "") })
		}
		wg.Wait()
		news := 0
		for i, r := range out {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if !r.Duplicate {
				news++
			}
			if r.Verified.Index != out[0].Verified.Index {
				t.Errorf("copy %d at %d, copy 0 at %d", i, r.Verified.Index, out[0].Verified.Index)
			}
		}
		if news != 1 {
			t.Errorf("%d copies were new, want 1", news)
		}
	})
	t.Run("idempotency key", func(t *testing.T) {
		a, err := s.c.Endorse(testContext(t), s.endorsement(letter, "Keyed Signer", pb.Visibility_VISIBILITY_PUBLIC), "import-row-17")
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.c.Endorse(testContext(t), s.endorsement(letter, "Keyed Signer Retyped", pb.Visibility_VISIBILITY_PUBLIC), "import-row-17")
		if err != nil {
			t.Fatal(err)
		}
		if !b.Duplicate || b.Verified.Index != a.Verified.Index {
			t.Errorf("the same idempotency key gave index %d (duplicate %v), want %d", b.Verified.Index, b.Duplicate, a.Verified.Index)
		}
	})
	if got := s.checkpoint().Size; got != size+2 {
		t.Errorf("the log grew from %d to %d: want the two new endorsements only", size, got)
	}
	_, err := s.anon.Endorse(testContext(t), s.endorsement(letter, "No Token", pb.Visibility_VISIBILITY_PUBLIC), "")
	wantCode(t, err, codes.Unauthenticated)
}

func testLifecycle(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	letter := s.publish("lifecycle", pb.Policy_POLICY_CURATED)
	withdrawn := s.endorse(s.endorsement(letter, "Will Withdraw", pb.Visibility_VISIBILITY_PUBLIC))
	redacted := s.endorse(s.endorsement(letter, "Will Be Redacted", pb.Visibility_VISIBILITY_PUBLIC))
	typo := s.endorse(s.endorsement(letter, "Typo Nmae", pb.Visibility_VISIBILITY_PUBLIC))
	kept := s.endorse(s.endorsement(letter, "Stays Counted", pb.Visibility_VISIBILITY_PRIVATE))
	before := s.checkpoint().Size

	action := func(r *client.Result) client.Action {
		t.Helper()
		rc, err := receipt.Parse(r.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		a, err := client.ActionFromReceipt(s.c.Origin(), r.Verified, rc, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	ctx := testContext(t)
	w, err := s.anon.Withdraw(ctx, action(withdrawn))
	if err != nil {
		t.Fatalf("withdraw with the receipt's secret: %v", err)
	}
	// A retry returns the same withdrawal; another principal is refused.
	again, err := s.anon.Withdraw(ctx, action(withdrawn))
	if err != nil || !again.Duplicate || again.Verified.Index != w.Verified.Index {
		t.Errorf("withdrawing again: %v, %v; want the first withdrawal", again, err)
	}
	_, err = s.c.Withdraw(ctx, client.Action{TargetIndex: withdrawn.Verified.Index, TargetLeafHash: withdrawn.Verified.LeafHash, OrganiserKey: s.org})
	wantCode(t, err, codes.FailedPrecondition, codes.AlreadyExists)
	if _, err := s.anon.Redact(ctx, action(redacted)); err != nil {
		t.Fatalf("redact with the receipt's secret: %v", err)
	}
	idx := typo.Verified.Index
	fix := client.NewEndorsement(s.c.Origin(), letter, client.Signer{
		Fields: records.Fields{Name: "Typo Name", Affiliation: "Conformance"}, OrganiserKey: s.org, Supersedes: &idx,
	})
	s.endorse(fix)

	s.verifyReceipt(withdrawn, client.StateWithdrawn)
	s.verifyReceipt(redacted, client.StateCountedRedacted)
	s.verifyReceipt(typo, client.StateSuperseded)
	s.verifyReceipt(kept, client.StateCounted)

	s.checkLifecycleServed(redacted, before)
	s.checkStatus(letter)
}

// checkLifecycleServed checks what is served after the lifecycle's
// actions: the redacted endorsement without its name, and the counts now
// and at size before.
func (s *session) checkLifecycleServed(redacted *client.Result, before uint64) {
	t := s.t
	for _, e := range s.entries() {
		if e.GetIndex() == redacted.Verified.Index && (e.GetDisclosure() != nil || !e.GetRedacted()) {
			t.Errorf("GetEntries serves the redacted endorsement with disclosure %v, redacted %v", e.GetDisclosure(), e.GetRedacted())
		}
	}
	_, body := s.disclosureBundle(0)
	if bytes.Contains(body, []byte("Will Be Redacted")) {
		t.Error("the disclosure bundle still names the redacted signer")
	}
	_, counts := s.roster("lifecycle", 0)
	if counts.GetPublic() != 1 || counts.GetPrivate() != 1 || counts.GetRedacted() != 1 || counts.GetWithdrawn() != 1 || counts.GetSuperseded() != 1 {
		t.Errorf("counts %v; want one each of public, private, redacted, withdrawn, superseded", counts)
	}
	_, counts = s.roster("lifecycle", before)
	// A redaction deletes the disclosure everywhere: it shows at every size.
	if counts.GetPublic() != 2 || counts.GetRedacted() != 1 || counts.GetWithdrawn() != 0 || counts.GetSuperseded() != 0 {
		t.Errorf("counts at size %d: %v; want the state before the actions", before, counts)
	}
}

// checkStatus closes the lifecycle letter, then records its delivery:
// endorsements and a second close are refused.
func (s *session) checkStatus(letter *pb.Letter) {
	t := s.t
	ctx := testContext(t)
	if _, err := s.c.SetLetterStatus(ctx, "lifecycle", pb.Status_STATUS_CLOSED, "", s.org); err != nil {
		t.Fatalf("close: %v", err)
	}
	_, err := s.c.Endorse(ctx, s.endorsement(letter, "Too Late", pb.Visibility_VISIBILITY_PUBLIC), "")
	wantCode(t, err, codes.FailedPrecondition)
	_, err = s.other.SetLetterStatus(ctx, "lifecycle", pb.Status_STATUS_CLOSED, "", s.org)
	wantCode(t, err, codes.FailedPrecondition, codes.AlreadyExists)
	if _, err := s.c.SetLetterStatus(ctx, "lifecycle", pb.Status_STATUS_DELIVERED, "Handed to the council", s.org); err != nil {
		t.Fatalf("delivered: %v", err)
	}
	_, info, err := s.c.Letter(ctx, "lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	if info.GetStatus() != pb.Status_STATUS_DELIVERED {
		t.Errorf("letter status %v, want delivered", info.GetStatus())
	}
}

// testOrdering publishes a letter and endorses it at once from many
// callers, then closes it while endorsements still arrive, and checks
// what an auditor sees: no endorsement before its letter, none after the
// close, and every endorsement that got a receipt before the close.
func testOrdering(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	letters := []*pb.Letter{
		client.NewLetter(s.c.Origin(), client.LetterDraft{ID: "order-a", Title: "A", Text: letterText}, s.org),
		client.NewLetter(s.c.Origin(), client.LetterDraft{ID: "order-b", Title: "B", Text: letterText}, s.org),
	}
	accepted, closedAt := s.writeConcurrently(letters)
	if t.Failed() {
		return
	}
	letterAt := map[string]uint64{}
	for _, e := range s.entries() {
		rec := mustDecode(t, e.GetRecord())
		switch {
		case rec.GetLetter() != nil:
			letterAt[rec.GetLetter().GetId()] = e.GetIndex()
		case rec.GetEndorsement() != nil:
			id := rec.GetEndorsement().GetLetterId()
			at, ok := letterAt[id]
			if !ok || at > e.GetIndex() {
				t.Errorf("endorsement at %d comes before its letter %s", e.GetIndex(), id)
			}
			if c, ok := closedAt[id]; ok && e.GetIndex() > c {
				t.Errorf("endorsement at %d comes after letter %s was closed at %d", e.GetIndex(), id, c)
			}
			if accepted[e.GetIndex()] != id {
				t.Errorf("endorsement at %d of %s has no receipt", e.GetIndex(), id)
			}
			delete(accepted, e.GetIndex())
		}
	}
	if len(accepted) != 0 {
		t.Errorf("%d receipts name indexes that hold no endorsement", len(accepted))
	}
}

// writeConcurrently publishes the letters and endorses them at once from
// many callers, one of which closes each letter half way. It returns the
// letter of each index that got a receipt, and the index of each close.
func (s *session) writeConcurrently(letters []*pb.Letter) (accepted map[uint64]string, closedAt map[string]uint64) {
	t := s.t
	const writers, each = 8, 12
	var wg sync.WaitGroup
	for _, lt := range letters {
		wg.Go(func() {
			if _, err := s.c.PublishLetter(testContext(t), lt, ""); err != nil {
				t.Errorf("publish %s: %v", lt.GetId(), err)
			}
		})
	}
	deadline := time.Now().Add(timeout)
	var mu sync.Mutex
	accepted, closedAt = map[uint64]string{}, map[string]uint64{}
	for w := range writers {
		lt := letters[w%2]
		wg.Go(func() {
			for i := 0; i < each; i++ {
				e := s.endorsement(lt, fmt.Sprintf("Writer %d Signer %d", w, i), pb.Visibility_VISIBILITY_PUBLIC)
				r, err := s.c.Endorse(testContext(t), e, "")
				switch {
				case err == nil:
					mu.Lock()
					accepted[r.Verified.Index] = lt.GetId()
					mu.Unlock()
				case status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "letter_id") && time.Now().Before(deadline):
					// The letter is not admitted yet: try again shortly.
					i--
					time.Sleep(time.Millisecond)
				case status.Code(err) == codes.FailedPrecondition:
				default:
					t.Errorf("endorse %s: %v", lt.GetId(), err)
					return
				}
				if w == 0 && i == each/2 {
					r, err := s.c.SetLetterStatus(testContext(t), lt.GetId(), pb.Status_STATUS_CLOSED, "", s.org)
					if err != nil {
						t.Errorf("close %s: %v", lt.GetId(), err)
						return
					}
					mu.Lock()
					closedAt[lt.GetId()] = r.Verified.Index
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return accepted, closedAt
}

func (s *session) disclosureBundle(n uint64) ([]map[string]any, []byte) {
	s.t.Helper()
	size := s.checkpoint().Size
	path := "/log/disclosures/" + layout.NWithSuffix(0, n, layout.PartialTileSize(0, n, size))
	code, _, body := s.get(path)
	if code != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	var out []map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return out, body
}

func testTiles(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	letter := s.publish("tiles", pb.Policy_POLICY_CURATED)
	var es []*client.Endorsement
	for i := range 300 {
		es = append(es, s.endorsement(letter, fmt.Sprintf("Tile Signer %03d", i), pb.Visibility_VISIBILITY_PUBLIC))
	}
	if _, rej := s.stream(es); slices.ContainsFunc(rej, func(r *pb.Rejection) bool { return r != nil }) {
		t.Fatal("an endorsement was rejected")
	}
	code, _, raw := s.get("/log/checkpoint")
	if code != http.StatusOK {
		t.Fatalf("/log/checkpoint: %d", code)
	}
	cp, _, _, err := log.ParseCheckpoint(raw, s.c.Origin(), s.c.Verifier())
	if err != nil || cp.Size < 301 {
		t.Fatalf("/log/checkpoint: %v, %v", cp, err)
	}
	s.witnessed(raw)
	leaves, nodes := s.checkEntryBundles(cp)
	s.checkTiles(cp, leaves, nodes)
	// Nothing beyond the checkpoint.
	size := cp.Size
	for _, p := range []string{
		layout.TilePath(0, size/256+1, 0),
		layout.TilePath(0, size/256, uint8(size%256)+1),
		layout.TilePath(1, 0, 0),
		layout.EntriesPath(size/256, 0),
		layout.EntriesPath(size/256+1, 0),
	} {
		if code, _, _ := s.get("/log/" + p); code != http.StatusNotFound {
			t.Errorf("GET /log/%s: %d, want 404", p, code)
		}
	}
	ds, _ := s.disclosureBundle(0)
	if len(ds) != layout.EntryBundleWidth-1 || ds[0]["index"] != float64(1) || !strings.HasPrefix(ds[0]["name"].(string), "Tile Signer") {
		t.Errorf("disclosure bundle 0 has %d elements, the first %v; want the 255 endorsements", len(ds), ds[0])
	}
	// The foreign marks of every bundle: none in a log of admitted
	// writes, with a short cache life; nothing beyond the checkpoint.
	for n := uint64(0); n*layout.EntryBundleWidth < size; n++ {
		path := "/log/foreign/" + layout.NWithSuffix(0, n, layout.PartialTileSize(0, n, size))
		code, h, body := s.get(path)
		marks, err := records.DecodeForeignMarks(n, bytes.NewReader(body))
		if code != http.StatusOK || err != nil || len(marks) != 0 || h.Get("Cache-Control") != "public, max-age=5" {
			t.Errorf("GET %s: %d %q (%v), cache %q; want an empty array with a short cache life", path, code, body, err, h.Get("Cache-Control"))
		}
	}
	for path, want := range map[string]int{
		"/log/foreign/" + layout.NWithSuffix(0, size/256+1, 0):               http.StatusNotFound,
		"/log/foreign/" + layout.NWithSuffix(0, size/256, uint8(size%256)+1): http.StatusNotFound,
		"/log/foreign/x": http.StatusBadRequest,
	} {
		if code, _, _ := s.get(path); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
}

// fetchResource returns a resource of the tlog-tiles API, which must be
// served immutable exactly when it is full.
func (s *session) fetchResource(path string, wantImmutable bool) []byte {
	s.t.Helper()
	code, h, body := s.get("/log/" + path)
	if code != http.StatusOK {
		s.t.Fatalf("GET /log/%s: %d %s", path, code, body)
	}
	if immutable := strings.Contains(h.Get("Cache-Control"), "immutable"); immutable != wantImmutable {
		s.t.Errorf("GET /log/%s: Cache-Control %q", path, h.Get("Cache-Control"))
	}
	return body
}

// checkEntryBundles reads the entry bundles of the checkpoint's tree and
// checks that their leaves give its root. It returns the leaves, and the
// nodes of the tree that tiles hold, by tile level and index.
func (s *session) checkEntryBundles(cp *log.Checkpoint) ([][]byte, map[[2]uint64][]byte) {
	t, size := s.t, cp.Size
	var leaves [][]byte
	for n := uint64(0); n*layout.EntryBundleWidth < size; n++ {
		p := layout.PartialTileSize(0, n, size)
		var b api.EntryBundle
		if err := b.UnmarshalText(s.fetchResource(layout.EntriesPath(n, p), p == 0)); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, b.Entries...)
	}
	if uint64(len(leaves)) != size {
		t.Fatalf("the entry bundles hold %d entries, the checkpoint %d", len(leaves), size)
	}
	nodes := map[[2]uint64][]byte{}
	rng := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, leaf := range leaves {
		rng.Append(rfc6962.DefaultHasher.HashLeaf(leaf), func(id compact.NodeID, h []byte) {
			if id.Level%8 == 0 {
				nodes[[2]uint64{uint64(id.Level / 8), id.Index}] = h
			}
		})
	}
	if root, _ := rng.GetRootHash(nil); !bytes.Equal(root, cp.Hash) {
		t.Fatalf("the entry bundles give the root %x, the checkpoint %x", root, cp.Hash)
	}
	return leaves, nodes
}

// checkTiles checks that every tile of the checkpoint's tree holds the
// nodes the leaves give, and that a tlog-tiles proof builder proves
// inclusion from the tiles alone.
func (s *session) checkTiles(cp *log.Checkpoint, leaves [][]byte, nodes map[[2]uint64][]byte) {
	t, size := s.t, cp.Size
	for level := uint64(0); size>>(8*level) > 0; level++ {
		width := size >> (8 * level)
		for n := uint64(0); n*layout.TileWidth < width; n++ {
			p := layout.PartialTileSize(level, n, size)
			var tile api.HashTile
			if err := tile.UnmarshalText(s.fetchResource(layout.TilePath(level, n, p), p == 0)); err != nil {
				t.Fatal(err)
			}
			for i, h := range tile.Nodes {
				if !bytes.Equal(h, nodes[[2]uint64{level, n*layout.TileWidth + uint64(i)}]) {
					t.Fatalf("tile %s: node %d is not the tree's", layout.TilePath(level, n, p), i)
				}
			}
		}
	}
	tiles := func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		return s.fetchResource(layout.TilePath(level, index, p), p == 0), nil
	}
	builder, err := tclient.NewProofBuilder(testContext(t), size, tiles)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{0, 255, 256, size - 1} {
		p, err := builder.InclusionProof(testContext(t), i)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, size, rfc6962.DefaultHasher.HashLeaf(leaves[i]), p, cp.Hash); err != nil {
			t.Errorf("inclusion of %d from the tiles: %v", i, err)
		}
	}
}

func testRestart(t *testing.T, l Log) {
	first := l.Start(t)
	s := open(t, first, nil)
	letter := s.publish("restart", pb.Policy_POLICY_CURATED)
	var receipts []*client.Result
	for _, name := range []string{"Before Restart One", "Before Restart Two"} {
		receipts = append(receipts, s.endorse(s.endorsement(letter, name, pb.Visibility_VISIBILITY_PUBLIC)))
	}
	size := s.checkpoint().Size
	first.Stop(t)

	second := l.Start(t)
	if second.VerifierKey != first.VerifierKey {
		t.Fatalf("the verifier key changed across the restart")
	}
	s2 := open(t, second, s.org)
	if got := s2.checkpoint().Size; got < size {
		t.Fatalf("after the restart the log has %d entries, before %d", got, size)
	}
	for _, r := range receipts {
		s2.verifyReceipt(r, client.StateCounted)
	}
	dup, err := s2.c.Endorse(testContext(t), s2.endorsement(letter, "Before Restart One", pb.Visibility_VISIBILITY_PUBLIC), "")
	if err != nil || !dup.Duplicate || dup.Verified.Index != receipts[0].Verified.Index {
		t.Fatalf("repeating an endorsement from before the restart: %v, %v", dup, err)
	}
	next := s2.endorse(s2.endorsement(letter, "After Restart", pb.Visibility_VISIBILITY_PUBLIC))
	if next.Verified.Index != size {
		t.Errorf("the first write after the restart is at %d, want %d", next.Verified.Index, size)
	}
}

package conformance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// testPromises tries, as an attacker and a careless organiser would, each
// promise that issue 10 found broken: a signature counts once, a private
// signer is never named, a redaction sticks, a signature covers what it
// vouches for, a letter id is used once.
func testPromises(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	for _, tc := range []struct {
		name string
		test func(t *testing.T, s *session)
	}{
		{"1 a withdrawn endorsement replayed by anyone is refused", promiseReplay},
		{"2 the same person private and public is refused, never merged", promisePrivate},
		{"3 a redaction sticks against a re-import", promiseRedaction},
		{"4 the organiser's signature covers the signer key", promiseSignerKey},
		{"5 withdraw and redact with one receipt", promiseWithdrawRedact},
		{"6 a closed letter answers a probe with its state only", promiseClosed},
		{"7 namesakes with their own ids are two endorsements", promiseNamesakes},
		{"8 a letter id is unique", promiseLetterID},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.test(t, s) })
	}
}

// served reports whether anything served (GetEntries, the disclosure
// bundles, the roster, search) names name.
func (s *session) served(t *testing.T, letterID, name string) bool {
	t.Helper()
	for _, e := range s.entries() {
		if strings.Contains(e.GetDisclosure().GetName(), name) {
			return true
		}
	}
	size := s.checkpoint().Size
	for n := uint64(0); n*256 < size; n++ {
		_, body := s.disclosureBundle(n)
		if bytes.Contains(body, []byte(name)) {
			return true
		}
	}
	entries, _ := s.roster(letterID, 0)
	for _, e := range entries {
		if strings.Contains(e.GetDisclosure().GetName(), name) {
			return true
		}
	}
	found, err := s.c.API().FindEndorsements(testContext(t), &pb.FindEndorsementsRequest{LetterId: letterID, Query: name})
	if err != nil {
		t.Fatalf("FindEndorsements: %v", err)
	}
	return len(found.GetEntries()) > 0
}

// unchanged fails the test if the log grew since size.
func (s *session) unchanged(t *testing.T, size uint64) {
	t.Helper()
	if got := s.checkpoint().Size; got != size {
		t.Errorf("the log grew from %d to %d", size, got)
	}
}

func (s *session) receiptAction(t *testing.T, r *client.Result) client.Action {
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

func promiseReplay(t *testing.T, s *session) {
	ctx := testContext(t)
	open := s.publish("promise-replay", pb.Policy_POLICY_OPEN)
	seed := make([]byte, 32)
	rand.Read(seed)
	e := client.NewEndorsement(s.c.Origin(), open, client.Signer{Fields: records.Fields{Name: "Replayed Signer"}, SignerKey: client.SignerKey(seed, s.c.Origin(), open.GetId())})
	first, err := s.anon.Endorse(ctx, e, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.anon.Withdraw(ctx, s.receiptAction(t, first)); err != nil {
		t.Fatal(err)
	}
	// The endorsement as anyone reads it, sent again without a token and
	// with a token.
	var served *pb.Entry
	for _, en := range s.entries() {
		if en.GetIndex() == first.Verified.Index {
			served = en
		}
	}
	rec, err := records.Decode(served.GetRecord())
	if err != nil {
		t.Fatal(err)
	}
	size := s.checkpoint().Size
	for _, c := range []*client.Client{s.anon, s.other, s.c} {
		resp, err := c.API().Endorse(c.Context(ctx), &pb.EndorseRequest{Endorsement: rec.GetEndorsement(), Disclosure: served.GetDisclosure()})
		// Without a token, the record's own signer key is the principal:
		// its exact repeat is answered with the withdrawn record itself.
		if err == nil && (!resp.GetResult().GetDuplicate() || resp.GetResult().GetIndex() != first.Verified.Index) {
			t.Errorf("the withdrawn endorsement replayed was accepted at %d", resp.GetResult().GetIndex())
		}
	}
	s.unchanged(t, size)
	if _, counts := s.roster(open.GetId(), 0); counts.GetPublic() != 0 || counts.GetWithdrawn() != 1 {
		t.Errorf("counts after the replay: %v, want the one withdrawn endorsement", counts)
	}

	// On a curated letter, the operator's token replays an endorsement the
	// organiser withdrew as not signed.
	curated := s.publish("promise-replay-curated", pb.Policy_POLICY_CURATED)
	forged := s.endorse(s.endorsement(curated, "Never Signed", pb.Visibility_VISIBILITY_PUBLIC))
	if _, err := s.c.Withdraw(ctx, client.Action{TargetIndex: forged.Verified.Index, TargetLeafHash: forged.Verified.LeafHash,
		Reason: pb.Reason_REASON_NOT_SIGNED, OrganiserKey: s.org}); err != nil {
		t.Fatal(err)
	}
	size = s.checkpoint().Size
	_, err = s.other.API().Endorse(s.other.Context(ctx), &pb.EndorseRequest{Endorsement: forged.Verified.Record.GetEndorsement(), Disclosure: forged.Verified.Disclosure})
	wantCode(t, err, codes.AlreadyExists, codes.InvalidArgument)
	s.unchanged(t, size)
}

func promisePrivate(t *testing.T, s *session) {
	ctx := testContext(t)
	letter := s.publish("promise-private", pb.Policy_POLICY_CURATED)
	public := s.endorse(s.endorsement(letter, "Public First", pb.Visibility_VISIBILITY_PUBLIC))
	private := s.endorse(s.endorsement(letter, "Private First", pb.Visibility_VISIBILITY_PRIVATE))
	size := s.checkpoint().Size
	for _, tc := range []struct {
		name string
		c    *client.Client
		e    *client.Endorsement
		of   uint64
	}{
		{"public, then private by its writer", s.c, s.endorsement(letter, "Public First", pb.Visibility_VISIBILITY_PRIVATE), public.Verified.Index},
		{"private, then public by its writer", s.c, s.endorsement(letter, "Private First", pb.Visibility_VISIBILITY_PUBLIC), private.Verified.Index},
		{"private, then public by another token", s.other, s.endorsement(letter, "Private First", pb.Visibility_VISIBILITY_PUBLIC), private.Verified.Index},
	} {
		_, err := tc.c.Endorse(ctx, tc.e, "")
		wantCode(t, err, codes.InvalidArgument)
		msg := status.Convert(err).Message()
		if strings.Contains(msg, "First") {
			t.Errorf("%s: the refusal names the person: %q", tc.name, msg)
		}
		where := strings.Contains(msg, "record at ")
		if mine := tc.c == s.c; where != mine {
			t.Errorf("%s: the refusal %q tells where the earlier record is: %v, want %v", tc.name, msg, where, mine)
		}
	}
	s.unchanged(t, size)
	if s.served(t, letter.GetId(), "Private First") {
		t.Error("the private signer is named")
	}
	// The answer to another token is counted.
	_, _, metrics := s.get("/metrics")
	if m := regexp.MustCompile(`(?m)^undersigned_ledger_others_record_total ([0-9.e+]+)$`).FindSubmatch(metrics); m == nil || string(m[1]) == "0" {
		t.Errorf("undersigned_ledger_others_record_total is %q, want at least 1", m)
	}
}

func promiseRedaction(t *testing.T, s *session) {
	ctx := testContext(t)
	letter := s.publish("promise-redaction", pb.Policy_POLICY_CURATED)
	first := s.endorse(s.endorsement(letter, "Redact Me", pb.Visibility_VISIBILITY_PUBLIC))
	if _, err := s.c.Redact(ctx, client.Action{TargetIndex: first.Verified.Index, TargetLeafHash: first.Verified.LeafHash,
		Reason: pb.Reason_REASON_SAFETY, OrganiserKey: s.org}); err != nil {
		t.Fatal(err)
	}
	size := s.checkpoint().Size
	// The same row imported again, with fresh secrets, with and without
	// an id, by the organiser and by another token.
	for _, tc := range []struct {
		c   *client.Client
		key string
	}{{s.c, ""}, {s.c, "row-1"}, {s.other, ""}} {
		_, err := tc.c.Endorse(ctx, s.endorsement(letter, "Redact Me", pb.Visibility_VISIBILITY_PUBLIC), tc.key)
		wantCode(t, err, codes.InvalidArgument)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "readd_after_redaction") || strings.Contains(msg, "Redact Me") {
			t.Errorf("the refusal %q does not name the rule, or names the person", msg)
		}
	}
	s.unchanged(t, size)
	if s.served(t, letter.GetId(), "Redact Me") {
		t.Error("the redacted name is served")
	}
	// The served salt does not open the redacted commitment: nothing is
	// served for it at all.
	for _, e := range s.entries() {
		if e.GetIndex() == first.Verified.Index && e.GetDisclosure() != nil {
			t.Error("a disclosure is served for the redacted endorsement")
		}
	}
	// A signer who asks to come back is added when the organiser says so.
	again := s.endorsement(letter, "Redact Me", pb.Visibility_VISIBILITY_PUBLIC)
	again.ReaddAfterRedaction = true
	_, err := s.anon.Endorse(ctx, again, "")
	wantCode(t, err, codes.Unauthenticated, codes.PermissionDenied)
	back, err := s.c.Endorse(ctx, again, "")
	if err != nil || back.Duplicate {
		t.Fatalf("re-added on request: %v, %v", back, err)
	}
}

func promiseSignerKey(t *testing.T, s *session) {
	ctx := testContext(t)
	letter := s.publish("promise-signer-key", pb.Policy_POLICY_CURATED)
	e := s.endorsement(letter, "Relayed Once", pb.Visibility_VISIBILITY_PUBLIC)
	_, relay, _ := ed25519.GenerateKey(rand.Reader)
	records.SignEndorsementAsSigner(relay, s.c.Origin(), e.Endorsement)
	size := s.checkpoint().Size
	_, err := s.c.Endorse(ctx, e, "")
	wantCode(t, err, codes.InvalidArgument)
	if !strings.Contains(status.Convert(err).Message(), "endorsement.organiser") {
		t.Errorf("the refusal does not name the organiser's signature: %v", err)
	}
	s.unchanged(t, size)
}

func promiseWithdrawRedact(t *testing.T, s *session) {
	ctx := testContext(t)
	letter := s.publish("promise-withdraw-redact", pb.Policy_POLICY_CURATED)
	r := s.endorse(s.endorsement(letter, "Gone Entirely", pb.Visibility_VISIBILITY_PUBLIC))
	a := s.receiptAction(t, r)
	if _, err := s.anon.Withdraw(ctx, a); err != nil {
		t.Fatal(err)
	}
	a.Reason = pb.Reason_REASON_SIGNER_REQUEST
	if _, err := s.anon.Redact(ctx, a); err != nil {
		t.Fatalf("a redaction by the spent secret: %v", err)
	}
	if s.served(t, letter.GetId(), "Gone Entirely") {
		t.Error("the name is still served")
	}
}

func promiseClosed(t *testing.T, s *session) {
	ctx := testContext(t)
	letter := s.publish("promise-closed", pb.Policy_POLICY_CURATED)
	e := s.endorsement(letter, "Signed Privately", pb.Visibility_VISIBILITY_PRIVATE)
	first := s.endorse(e)
	if _, err := s.c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "", s.org); err != nil {
		t.Fatal(err)
	}
	size := s.checkpoint().Size
	// A probe by another token learns only that the letter is closed.
	for _, probe := range []*client.Endorsement{s.endorsement(letter, "Signed Privately", pb.Visibility_VISIBILITY_PRIVATE), e} {
		_, err := s.other.Endorse(ctx, probe, "")
		wantCode(t, err, codes.FailedPrecondition)
	}
	// The writer's exact repeat keeps its receipt.
	again, err := s.c.Endorse(ctx, e, "")
	if err != nil || !again.Duplicate || again.Verified.Index != first.Verified.Index {
		t.Errorf("the writer's rerun after the close: %v, %v; want the first record at %d", again, err, first.Verified.Index)
	}
	// Its repeat with new secrets (a new receipts folder) is refused as
	// closed too.
	_, err = s.c.Endorse(ctx, s.endorsement(letter, "Signed Privately", pb.Visibility_VISIBILITY_PRIVATE), "")
	wantCode(t, err, codes.FailedPrecondition)
	s.unchanged(t, size)
}

func promiseNamesakes(t *testing.T, s *session) {
	ctx := testContext(t)
	letter := s.publish("promise-namesakes", pb.Policy_POLICY_CURATED)
	a, err := s.c.Endorse(ctx, s.endorsement(letter, "Common Name", pb.Visibility_VISIBILITY_PUBLIC), "person-1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.c.Endorse(ctx, s.endorsement(letter, "Common Name", pb.Visibility_VISIBILITY_PUBLIC), "person-2")
	if err != nil {
		t.Fatal(err)
	}
	if b.Duplicate || a.Verified.Index == b.Verified.Index {
		t.Errorf("two people with their own ids share index %d", a.Verified.Index)
	}
	if bytes.Equal(a.Verified.Record.GetEndorsement().GetWithdrawalLock(), b.Verified.Record.GetEndorsement().GetWithdrawalLock()) {
		t.Error("two people share a withdrawal lock")
	}
}

func promiseLetterID(t *testing.T, s *session) {
	ctx := testContext(t)
	l := s.publish("promise-letter-id", pb.Policy_POLICY_CURATED)
	again, err := s.c.PublishLetter(ctx, l, "")
	if err != nil || !again.Duplicate {
		t.Errorf("the same letter again: %v, %v; want its first record", again, err)
	}
	size := s.checkpoint().Size
	other := proto.CloneOf(l)
	other.Title = "Another title"
	records.SignLetter(s.org, s.c.Origin(), other)
	_, err = s.c.PublishLetter(ctx, other, "")
	wantCode(t, err, codes.InvalidArgument)
	if !strings.Contains(status.Convert(err).Message(), "letter.id") {
		t.Errorf("the refusal does not name letter.id: %v", err)
	}
	s.unchanged(t, size)
}

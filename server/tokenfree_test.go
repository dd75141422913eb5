package server_test

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
)

// endorsementState returns what GetEndorsement says of index.
func endorsementState(t *testing.T, c *client.Client, index uint64) *pb.GetEndorsementResponse {
	t.Helper()
	resp, err := c.API().GetEndorsement(testContext(t), &pb.GetEndorsementRequest{Index: index})
	if err != nil {
		t.Fatalf("GetEndorsement(%d): %v", index, err)
	}
	return resp
}

// actionOf returns the action the holder of a receipt can take with it.
func actionOf(t *testing.T, c *client.Client, r *client.Result) client.Action {
	t.Helper()
	rc, v, err := client.VerifyOffline(r.Receipt, c.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	a, err := client.ActionFromReceipt(c.Origin(), v, rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.WithdrawalSecret == nil {
		t.Fatal("the receipt's action is not authorised by its withdrawal secret")
	}
	return a
}

// TestTokenFreeWrites checks the writes a signer makes without a token:
// withdrawals and redactions authorised by the receipt's secret or the
// signer's key, and endorsements of an open letter.
func TestTokenFreeWrites(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	anon := ts.dial(t, "")
	origin := c.Origin()
	curated := ts.publish(t, c, "curated", pb.Policy_POLICY_CURATED)
	open := ts.publish(t, c, "open", pb.Policy_POLICY_OPEN)
	withdrawn := endorse(t, c, ts.endorsement(origin, curated, "Will Withdraw", "Withdrawers"))
	redacted := endorse(t, c, ts.endorsement(origin, curated, "Will Redact", "Redactors"))
	endorse(t, c, ts.endorsement(origin, curated, "Will Stay", "Stayers"))

	t.Run("withdrawal by the receipt's secret needs no token", func(t *testing.T) {
		w, err := anon.Withdraw(ctx, actionOf(t, anon, withdrawn))
		if err != nil {
			t.Fatalf("withdraw without a token: %v", err)
		}
		if got := w.Verified.Record.GetWithdrawal().GetTargetIndex(); got != withdrawn.Verified.Index {
			t.Errorf("the withdrawal targets %d, want %d", got, withdrawn.Verified.Index)
		}
		st := endorsementState(t, anon, withdrawn.Verified.Index)
		if st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_WITHDRAWN || st.GetWithdrawnBy() != w.Verified.Index {
			t.Errorf("GetEndorsement: %v by %d, want withdrawn by %d", st.GetState(), st.GetWithdrawnBy(), w.Verified.Index)
		}
		vs, err := anon.Verify(ctx, withdrawn.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if vs.State != client.StateWithdrawn || vs.By == nil || *vs.By != w.Verified.Index {
			t.Errorf("Verify: %v by %v, want withdrawn by %d", vs.State, vs.By, w.Verified.Index)
		}
		roster, counts := rosterAll(t, anon, curated.GetId(), 0)
		for _, e := range roster {
			if e.GetIndex() == withdrawn.Verified.Index {
				t.Errorf("the roster still lists the withdrawn endorsement at %d", e.GetIndex())
			}
		}
		if len(roster) != 2 || counts.GetWithdrawn() != 1 || counts.GetPublic() != 2 {
			t.Errorf("roster of %d with counts %v, want 2 entries, 2 public, 1 withdrawn", len(roster), counts)
		}
		// The roster as of the tree before the withdrawal still has it.
		old, err := anon.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: curated.GetId(), TreeSize: w.Verified.Index})
		if err != nil {
			t.Fatal(err)
		}
		if len(old.GetEntries()) != 3 || old.GetCounts().GetWithdrawn() != 0 || old.GetTreeSize() != w.Verified.Index {
			t.Errorf("roster at size %d: %d entries, counts %v; want 3 and none withdrawn", w.Verified.Index, len(old.GetEntries()), old.GetCounts())
		}
	})

	t.Run("a retried withdrawal returns the first", func(t *testing.T) {
		before := logSize(t, c)
		w, err := anon.Withdraw(ctx, actionOf(t, anon, withdrawn))
		if err != nil {
			t.Fatal(err)
		}
		st := endorsementState(t, anon, withdrawn.Verified.Index)
		if !w.Duplicate || w.Verified.Index != st.GetWithdrawnBy() {
			t.Errorf("retry: duplicate %v at %d, want the first withdrawal at %d", w.Duplicate, w.Verified.Index, st.GetWithdrawnBy())
		}
		if got := logSize(t, c); got != before {
			t.Errorf("the log grew from %d to %d", before, got)
		}
	})

	t.Run("a withdrawn endorsement's lock cannot open a new endorsement", func(t *testing.T) {
		// The same person endorses again after withdrawing: a new
		// commitment under the withdrawn endorsement's lock, whose secret is
		// public, is refused and nothing is appended. (Locks are unique in
		// the log for good; secrets are random, never derived.)
		first := endorse(t, c, client.NewEndorsement(origin, curated, client.Signer{
			Fields: records.Fields{Name: "Comes Back"}, OrganiserKey: ts.Org}))
		if _, err := anon.Withdraw(ctx, actionOf(t, anon, first)); err != nil {
			t.Fatal(err)
		}
		before := logSize(t, c)
		salt, _ := client.NewSecrets()
		reused := client.NewEndorsementWithSecrets(origin, curated, client.Signer{
			Fields: records.Fields{Name: "Comes Back"}, OrganiserKey: ts.Org}, salt, actionOf(t, anon, first).WithdrawalSecret)
		_, err := c.Endorse(ctx, reused, "")
		wantCode(t, err, codes.InvalidArgument)
		if err == nil || !strings.Contains(err.Error(), "endorsement.withdrawal_lock") {
			t.Errorf("the refusal does not name the lock: %v", err)
		}
		if got := logSize(t, c); got != before {
			t.Errorf("the log grew from %d to %d", before, got)
		}
		// With fresh secrets the person is endorsed again.
		endorse(t, c, client.NewEndorsement(origin, curated, client.Signer{
			Fields: records.Fields{Name: "Comes Back"}, OrganiserKey: ts.Org}))
	})

	t.Run("a spent secret authorises nothing more but a redaction", func(t *testing.T) {
		// Withdrawn, then redacted with the revealed secret: accepted on
		// purpose (issue 10), a redaction can only hide a name.
		if _, err := anon.Redact(ctx, actionOf(t, anon, withdrawn)); err != nil {
			t.Errorf("a redaction by the spent secret of a withdrawn endorsement: %v", err)
		}

		// Redacted with the secret, then withdrawn with it.
		r, err := anon.Redact(ctx, actionOf(t, anon, redacted))
		if err != nil {
			t.Fatalf("redact without a token: %v", err)
		}
		st := endorsementState(t, anon, redacted.Verified.Index)
		if st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_COUNTED_REDACTED || st.GetRedactedBy() != r.Verified.Index {
			t.Errorf("GetEndorsement: %v, want counted but redacted by %d", st.GetState(), r.Verified.Index)
		}
		before := logSize(t, c)
		_, err = anon.Withdraw(ctx, actionOf(t, anon, redacted))
		wantCode(t, err, codes.FailedPrecondition)
		// Even with a token: the secret is public now.
		_, err = c.Withdraw(ctx, actionOf(t, anon, redacted))
		wantCode(t, err, codes.FailedPrecondition)
		if got := logSize(t, c); got != before {
			t.Errorf("the log grew from %d to %d", before, got)
		}
		// The organiser can still withdraw it.
		if _, err := c.Withdraw(ctx, client.Action{TargetIndex: redacted.Verified.Index, TargetLeafHash: redacted.Verified.LeafHash,
			Reason: pb.Reason_REASON_SIGNER_REQUEST, OrganiserKey: ts.Org}); err != nil {
			t.Errorf("organiser withdrawal of a redacted endorsement: %v", err)
		}
	})

	seed := randomBytes(t, 32)
	signer := client.SignerKey(seed, origin, open.GetId())
	var signed *client.Result
	t.Run("an open letter takes a signer-signed endorsement without a token", func(t *testing.T) {
		e := client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Open Signer", Country: "BY"}, SignerKey: signer})
		var err error
		signed, err = anon.Endorse(ctx, e, "")
		if err != nil {
			t.Fatalf("endorse an open letter without a token: %v", err)
		}
		got := signed.Verified.Record.GetEndorsement()
		if got.GetSigner() == nil || got.GetVerification() != pb.Verification_VERIFICATION_SIGNER_KEY {
			t.Errorf("the record has signer %v and verification %v", got.GetSigner(), got.GetVerification())
		}
		if st := endorsementState(t, anon, signed.Verified.Index); st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_COUNTED {
			t.Errorf("GetEndorsement: %v, want counted", st.GetState())
		}
		// The same signer key again is the same endorsement.
		again := client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Open Signer Renamed"}, SignerKey: signer})
		dup, err := anon.Endorse(ctx, again, "")
		if err != nil {
			t.Fatal(err)
		}
		if !dup.Duplicate || dup.Verified.Index != signed.Verified.Index {
			t.Errorf("a second endorsement by the same signer key: duplicate %v at %d, want the first at %d", dup.Duplicate, dup.Verified.Index, signed.Verified.Index)
		}
	})

	t.Run("an open letter refuses an endorsement without a signer signature", func(t *testing.T) {
		before := logSize(t, c)
		unsigned := client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Not Signed"}})
		_, err := anon.Endorse(ctx, unsigned, "")
		wantField(t, err, "endorsement.signer")
		organiserOnly := client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Organiser Only"}, OrganiserKey: ts.Org})
		_, err = c.Endorse(ctx, organiserOnly, "")
		wantField(t, err, "endorsement.signer")
		if got := logSize(t, c); got != before {
			t.Errorf("the log grew from %d to %d", before, got)
		}
	})

	t.Run("a curated letter refuses a signer-signed endorsement without a token", func(t *testing.T) {
		key := client.SignerKey(seed, origin, curated.GetId())
		e := client.NewEndorsement(origin, curated, client.Signer{Fields: records.Fields{Name: "Self Signed"}, SignerKey: key, OrganiserKey: ts.Org})
		_, err := anon.Endorse(ctx, e, "")
		wantCode(t, err, codes.Unauthenticated)
	})

	t.Run("withdrawal by the signer's key needs no token", func(t *testing.T) {
		if signed == nil {
			t.Fatal("no signer-signed endorsement")
		}
		w, err := anon.Withdraw(ctx, client.Action{TargetIndex: signed.Verified.Index, TargetLeafHash: signed.Verified.LeafHash, SignerKey: signer})
		if err != nil {
			t.Fatalf("withdraw by the signer key: %v", err)
		}
		if w.Verified.Record.GetWithdrawal().GetAuthorisation().GetSigner() == nil {
			t.Error("the withdrawal is not authorised by a signer signature")
		}
		if st := endorsementState(t, anon, signed.Verified.Index); st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_WITHDRAWN {
			t.Errorf("GetEndorsement: %v, want withdrawn", st.GetState())
		}
	})
}

// TestOpenRateLimit checks that the writes that need no token are limited
// per address and per letter, with a retry hint, and that organiser writes
// are not.
func TestOpenRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits server.RateLimits
		// letters names, for each write in turn, the letter it endorses;
		// the last is the one refused.
		letters []string
		// after is a write allowed once the limit is reached, or "".
		after string
	}{
		{"per address", server.RateLimits{PerAddress: 0.001, AddressBurst: 3, PerLetter: 1000, LetterBurst: 1000},
			[]string{"open-a", "open-b", "open-a", "open-b"}, ""},
		{"per letter", server.RateLimits{PerAddress: 1000, AddressBurst: 1000, PerLetter: 0.001, LetterBurst: 2},
			[]string{"open-a", "open-a", "open-a"}, "open-b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, t.TempDir(), withOpenRate(tc.limits))
			ctx := testContext(t)
			c := ts.dial(t, ts.Token)
			anon := ts.dial(t, "")
			letters := map[string]*pb.Letter{
				"open-a": ts.publish(t, c, "open-a", pb.Policy_POLICY_OPEN),
				"open-b": ts.publish(t, c, "open-b", pb.Policy_POLICY_OPEN),
			}
			signed := func(id string) *client.Endorsement {
				key := client.SignerKey(randomBytes(t, 32), c.Origin(), id)
				return client.NewEndorsement(c.Origin(), letters[id], client.Signer{Fields: records.Fields{Name: "Rate Limited " + id}, SignerKey: key})
			}
			for _, id := range tc.letters[:len(tc.letters)-1] {
				if _, err := anon.Endorse(ctx, signed(id), ""); err != nil {
					t.Fatalf("endorse %s within the limit: %v", id, err)
				}
			}
			before := logSize(t, c)
			e := signed(tc.letters[len(tc.letters)-1])
			var trailer metadata.MD
			_, err := anon.API().Endorse(ctx, &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure}, grpc.Trailer(&trailer))
			wantCode(t, err, codes.ResourceExhausted)
			hint := trailer.Get(server.RetryAfterTrailer)
			if len(hint) != 1 {
				t.Fatalf("trailer %v has no single %s", trailer, server.RetryAfterTrailer)
			}
			if ms, err := strconv.ParseInt(hint[0], 10, 64); err != nil || ms <= 0 {
				t.Errorf("%s = %q, want a positive number of milliseconds", server.RetryAfterTrailer, hint[0])
			}
			hasRetryInfo := false
			for _, d := range status.Convert(err).Details() {
				if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
					hasRetryInfo = true
				}
			}
			if !hasRetryInfo {
				t.Error("no RetryInfo detail")
			}
			if got := logSize(t, c); got != before {
				t.Errorf("the log grew from %d to %d", before, got)
			}
			if tc.after != "" {
				if _, err := anon.Endorse(ctx, signed(tc.after), ""); err != nil {
					t.Errorf("another letter is limited too: %v", err)
				}
			}
			// An organiser with a token is not limited.
			if _, err := c.Endorse(ctx, signed(tc.letters[len(tc.letters)-1]), ""); err != nil {
				t.Errorf("an organiser write with a token is limited: %v", err)
			}
		})
	}
}

// TestSeparateBuckets: the endorsements of an open letter without a token,
// the signers' own withdrawals and redactions, and the reads without a
// token are limited in buckets of their own (issue 12, item 6): when one
// is exhausted, the others still go through at once.
func TestSeparateBuckets(t *testing.T) {
	exhausted := server.RateLimits{PerAddress: 1000, AddressBurst: 1000, PerLetter: 0.001, LetterBurst: 2}
	roomy := server.RateLimits{PerAddress: 1000, AddressBurst: 1000, PerLetter: 1000, LetterBurst: 1000}
	signed := func(t *testing.T, c *client.Client, l *pb.Letter, name string) *client.Endorsement {
		key := client.SignerKey(randomBytes(t, 32), c.Origin(), l.GetId())
		return client.NewEndorsement(c.Origin(), l, client.Signer{Fields: records.Fields{Name: name}, SignerKey: key})
	}
	refused := func(t *testing.T, err error, what string) {
		t.Helper()
		wantCode(t, err, codes.ResourceExhausted)
		if !strings.Contains(status.Convert(err).Message(), what) {
			t.Errorf("the refusal %q does not name %q", status.Convert(err).Message(), what)
		}
	}

	t.Run("a flood of open endorsements leaves the signers' withdrawals alone", func(t *testing.T) {
		ts := startServer(t, t.TempDir(), func(o *servertest.Options) { o.OpenRate, o.SignerRate = exhausted, roomy })
		ctx := testContext(t)
		c, anon := ts.dial(t, ts.Token), ts.dial(t, "")
		open := ts.publish(t, c, "open-flood", pb.Policy_POLICY_OPEN)
		var first *client.Result
		for i := range 2 {
			r, err := anon.Endorse(ctx, signed(t, c, open, fmt.Sprintf("Flooder %d", i)), "")
			if err != nil {
				t.Fatal(err)
			}
			first = cmp.Or(first, r)
		}
		_, err := anon.Endorse(ctx, signed(t, c, open, "Flooder 2"), "")
		refused(t, err, "endorsements without a token")
		if _, err := anon.Withdraw(ctx, actionOf(t, c, first)); err != nil {
			t.Errorf("a signer's withdrawal once open endorsements are exhausted: %v", err)
		}
	})

	t.Run("the signers' withdrawals have a bucket of their own", func(t *testing.T) {
		ts := startServer(t, t.TempDir(), func(o *servertest.Options) { o.OpenRate, o.SignerRate = roomy, exhausted })
		ctx := testContext(t)
		c, anon := ts.dial(t, ts.Token), ts.dial(t, "")
		curated := ts.publish(t, c, "curated-actions", pb.Policy_POLICY_CURATED)
		open := ts.publish(t, c, "open-actions", pb.Policy_POLICY_OPEN)
		var rs []*client.Result
		for i := range 3 {
			rs = append(rs, endorse(t, c, ts.endorsement(c.Origin(), curated, fmt.Sprintf("Withdrawer %d", i), "")))
		}
		for _, r := range rs[:2] {
			if _, err := anon.Withdraw(ctx, actionOf(t, c, r)); err != nil {
				t.Fatal(err)
			}
		}
		_, err := anon.Redact(ctx, actionOf(t, c, rs[2]))
		refused(t, err, "withdrawals and redactions by signers")
		if _, err := anon.Endorse(ctx, signed(t, c, open, "Endorser"), ""); err != nil {
			t.Errorf("an open endorsement once the signers' actions are exhausted: %v", err)
		}
	})

	t.Run("reads without a token are limited apart, and writes go on", func(t *testing.T) {
		ts := startServer(t, t.TempDir(), func(o *servertest.Options) {
			o.OpenRate, o.ReadRate = roomy, server.ReadLimits{PerAddress: 0.001, AddressBurst: 5}
		})
		ctx := testContext(t)
		c := ts.dial(t, ts.Token) // Dial reads the log's info without a token: 1 read
		open := ts.publish(t, c, "open-reads", pb.Policy_POLICY_OPEN)
		anon := ts.Conn(t)
		api := pb.NewLedgerServiceClient(anon)
		for range 4 {
			if _, err := api.GetCheckpoint(ctx, &pb.GetCheckpointRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		var trailer metadata.MD
		_, err := api.GetLetter(ctx, &pb.GetLetterRequest{LetterId: "open-reads"}, grpc.Trailer(&trailer))
		refused(t, err, "reads without a token")
		if len(trailer.Get(server.RetryAfterTrailer)) != 1 {
			t.Errorf("no retry hint in %v", trailer)
		}
		stream, err := api.GetEntries(ctx, &pb.GetEntriesRequest{Start: 0, End: 1})
		if err == nil {
			_, err = stream.Recv()
		}
		refused(t, err, "reads without a token")
		if _, err := c.API().GetLetter(c.Context(ctx), &pb.GetLetterRequest{LetterId: "open-reads"}); err != nil {
			t.Errorf("a read with a token: %v", err)
		}
		if _, err := healthpb.NewHealthClient(anon).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("a health check: %v", err)
		}
		e := signed(t, c, open, "Writer While Reads Wait")
		if _, err := api.Endorse(ctx, &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure}); err != nil {
			t.Errorf("an open endorsement once reads are exhausted: %v", err)
		}
	})
}

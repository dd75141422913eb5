package server_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRejectedWritesAppendNothing sends writes whose signatures or digests
// are wrong: each is refused with InvalidArgument naming the field, and
// nothing reaches the log.
func TestRejectedWritesAppendNothing(t *testing.T) {
	ts := startServer(t, t.TempDir())
	c := ts.dial(t, ts.Token)
	origin := c.Origin()
	curated := ts.publish(t, c, "curated-letter", pb.Policy_POLICY_CURATED)
	open := ts.publish(t, c, "open-letter", pb.Policy_POLICY_OPEN)
	target := endorse(t, c, ts.endorsement(origin, curated, "Target Person", "Somewhere"))
	other := newOrganiserKey(t)
	signer := client.SignerKey(randomBytes(t, 32), origin, open.GetId())
	otherSigner := client.SignerKey(randomBytes(t, 32), origin, open.GetId())
	before := logSize(t, c)

	endorseWith := func(e *client.Endorsement) error {
		_, err := c.Endorse(testContext(t), e, "")
		return err
	}
	for _, tc := range []struct {
		name  string
		field string
		call  func() error
	}{
		{"endorsement signed by a key not in the letter", "endorsement.organiser", func() error {
			return endorseWith(client.NewEndorsement(origin, curated, client.Signer{Fields: records.Fields{Name: "Forged Organiser"}, OrganiserKey: other}))
		}},
		{"tampered organiser signature", "endorsement.organiser", func() error {
			e := ts.endorsement(origin, curated, "Tampered Signature", "")
			e.Endorsement.Organiser.Signature[0] ^= 1
			return endorseWith(e)
		}},
		{"organiser signature over other fields", "endorsement.organiser", func() error {
			e := ts.endorsement(origin, curated, "Changed After Signing", "")
			e.Endorsement.Verification = pb.Verification_VERIFICATION_IN_PERSON
			return endorseWith(e)
		}},
		{"tampered signer signature in an open letter", "endorsement.signer", func() error {
			e := client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Open Tampered"}, SignerKey: signer})
			e.Endorsement.Signer.Signature[10] ^= 1
			return endorseWith(e)
		}},
		{"signer signature claimed by another key", "endorsement.signer", func() error {
			e := client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Open Swapped"}, SignerKey: signer})
			e.Endorsement.Signer.PublicKey = otherSigner.Public().(ed25519.PublicKey)
			return endorseWith(e)
		}},
		{"wrong letter digest", "endorsement.letter_digest", func() error {
			e := ts.endorsement(origin, curated, "Wrong Digest", "")
			digest := sha256.Sum256([]byte("another text"))
			e.Endorsement.LetterDigest = digest[:]
			records.SignEndorsementAsOrganiser(ts.Org, origin, e.Endorsement)
			return endorseWith(e)
		}},
		{"letter with a bad signature", "letter.organiser", func() error {
			l := client.NewLetter(origin, client.LetterDraft{ID: "forged-letter", Title: "Forged", Text: "A text.\n"}, ts.Org)
			l.Organiser.Signature[0] ^= 1
			_, err := c.PublishLetter(testContext(t), l, "")
			return err
		}},
		{"letter retitled after signing", "letter.organiser", func() error {
			l := client.NewLetter(origin, client.LetterDraft{ID: "forged-letter", Title: "Forged", Text: "A text.\n"}, ts.Org)
			l.Title = "Another title"
			_, err := c.PublishLetter(testContext(t), l, "")
			return err
		}},
		{"status signed by a key not in the letter", "status.organiser", func() error {
			_, err := c.SetLetterStatus(testContext(t), curated.GetId(), pb.Status_STATUS_CLOSED, "", other)
			return err
		}},
		{"withdrawal signed by a key not in the letter", "withdrawal.authorisation.organiser", func() error {
			_, err := c.Withdraw(testContext(t), client.Action{TargetIndex: target.Verified.Index, TargetLeafHash: target.Verified.LeafHash, OrganiserKey: other})
			return err
		}},
		{"withdrawal with a wrong secret", "withdrawal.authorisation.withdrawal_secret", func() error {
			_, err := c.Withdraw(testContext(t), client.Action{TargetIndex: target.Verified.Index, TargetLeafHash: target.Verified.LeafHash, WithdrawalSecret: randomBytes(t, 32)})
			return err
		}},
		{"redaction naming another leaf hash", "redaction.target_leaf_hash", func() error {
			_, err := c.Redact(testContext(t), client.Action{TargetIndex: target.Verified.Index, TargetLeafHash: randomBytes(t, 32), OrganiserKey: ts.Org})
			return err
		}},
		{"withdrawal of a letter", "withdrawal.target_index", func() error {
			_, err := c.Withdraw(testContext(t), client.Action{TargetIndex: 0, TargetLeafHash: target.Verified.LeafHash, OrganiserKey: ts.Org})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantField(t, tc.call(), tc.field)
			if got := logSize(t, c); got != before {
				t.Errorf("the log grew from %d to %d", before, got)
			}
		})
	}

	// Nothing appears later either: the next write takes the next index.
	next := endorse(t, c, ts.endorsement(origin, curated, "After The Rejections", ""))
	if next.Verified.Index != before {
		t.Errorf("the next endorsement is at %d, want %d: something was appended", next.Verified.Index, before)
	}
	if _, err := c.API().GetLetter(testContext(t), &pb.GetLetterRequest{LetterId: "forged-letter"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetLetter(forged-letter) = %v, want NotFound", err)
	}
}

// TestWritesNeedTheRightToken checks that organiser writes without a
// token, with an unknown or revoked one, or with one scoped to another
// letter are refused and append nothing.
func TestWritesNeedTheRightToken(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	origin := c.Origin()
	letter := ts.publish(t, c, "letter-a", pb.Policy_POLICY_CURATED)
	target := endorse(t, c, ts.endorsement(origin, letter, "Somebody Endorsed", ""))

	// Tokens are made in the server's own store: the test lives in the
	// package, as Server has no exported accessor for its token store.
	scopedToken, _, err := ledger.NewToken(ctx, ts.Srv.Tokens(), "letter b only", []string{"letter-b"})
	if err != nil {
		t.Fatal(err)
	}
	revokedToken, revoked, err := ledger.NewToken(ctx, ts.Srv.Tokens(), "revoked", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := ts.Srv.Tokens().Revoke(ctx, revoked.ID, time.Now().Unix()); !ok || err != nil {
		t.Fatalf("revoke: %v, %v", ok, err)
	}
	before := logSize(t, c)

	writes := []struct {
		name string
		call func(c *client.Client) error
	}{
		{"curated endorsement", func(c *client.Client) error {
			_, err := c.Endorse(ctx, ts.endorsement(origin, letter, "Without The Right Token", ""), "")
			return err
		}},
		{"bulk endorsement", func(c *client.Client) error {
			stream, err := c.EndorseStream(ctx)
			if err != nil {
				return err
			}
			stream.Send(ts.endorsement(origin, letter, "Bulk Without The Right Token", ""), "")
			stream.CloseSend()
			_, rej, err := stream.Recv()
			if err != nil {
				return err
			}
			if rej != nil {
				return status.Error(codes.Code(rej.GetCode()), rej.GetMessage())
			}
			return nil
		}},
		{"publish letter", func(c *client.Client) error {
			l := client.NewLetter(origin, client.LetterDraft{ID: "letter-c", Title: "C", Text: "Text of C.\n"}, ts.Org)
			_, err := c.PublishLetter(ctx, l, "")
			return err
		}},
		{"close letter", func(c *client.Client) error {
			_, err := c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "", ts.Org)
			return err
		}},
		{"organiser withdrawal", func(c *client.Client) error {
			_, err := c.Withdraw(ctx, client.Action{TargetIndex: target.Verified.Index, TargetLeafHash: target.Verified.LeafHash,
				Reason: pb.Reason_REASON_ORGANISER_ERROR, OrganiserKey: ts.Org})
			return err
		}},
		{"organiser redaction", func(c *client.Client) error {
			_, err := c.Redact(ctx, client.Action{TargetIndex: target.Verified.Index, TargetLeafHash: target.Verified.LeafHash,
				Reason: pb.Reason_REASON_SAFETY, OrganiserKey: ts.Org})
			return err
		}},
	}
	callers := []struct {
		name string
		c    *client.Client
		want codes.Code
	}{
		{"no token", ts.dial(t, ""), codes.Unauthenticated},
		{"unknown token", ts.dial(t, ledger.TokenPrefix+"000000000000_bogus"), codes.Unauthenticated},
		{"revoked token", ts.dial(t, revokedToken), codes.Unauthenticated},
		{"token for another letter", ts.dial(t, scopedToken), codes.PermissionDenied},
	}
	for _, caller := range callers {
		for _, w := range writes {
			t.Run(caller.name+"/"+w.name, func(t *testing.T) {
				wantCode(t, w.call(caller.c), caller.want)
				if got := logSize(t, c); got != before {
					t.Errorf("the log grew from %d to %d", before, got)
				}
			})
		}
	}
	t.Run("malformed authorization header", func(t *testing.T) {
		e := ts.endorsement(origin, letter, "Basic Auth Person", "")
		md := metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+ts.Token)
		_, err := c.API().Endorse(md, &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
		wantCode(t, err, codes.Unauthenticated)
	})

	// The scoped token works for its own letter, and nothing was appended
	// before it.
	scoped := callers[3].c
	lb := client.NewLetter(origin, client.LetterDraft{ID: "letter-b", Title: "B", Text: "Text of B.\n"}, ts.Org)
	res, err := scoped.PublishLetter(ctx, lb, "")
	if err != nil {
		t.Fatalf("the scoped token cannot publish its own letter: %v", err)
	}
	if res.Verified.Index != before {
		t.Errorf("letter-b is at %d, want %d: a refused write was appended", res.Verified.Index, before)
	}
	endorse(t, scoped, ts.endorsement(origin, lb, "Endorser Of B", ""))
}

// TestDuplicatesAcrossPrincipals checks strict deduplication (§6): a
// duplicate returns the first record to the principal that wrote it, and
// AlreadyExists with no content to anyone else; idempotency keys belong to
// their principal.
func TestDuplicatesAcrossPrincipals(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	origin := c.Origin()
	letter := ts.publish(t, c, "dedup-letter", pb.Policy_POLICY_CURATED)
	secondToken, _, err := ledger.NewToken(ctx, ts.Srv.Tokens(), "second organiser", nil)
	if err != nil {
		t.Fatal(err)
	}
	other := ts.dial(t, secondToken)
	const name = "Shared Person Ŭnique"
	first := endorse(t, c, ts.endorsement(origin, letter, name, "Shared Affiliation"))

	t.Run("the same principal gets the first record with its disclosure", func(t *testing.T) {
		e := ts.endorsement(origin, letter, name, "Shared Affiliation")
		resp, err := c.API().Endorse(c.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
		if err != nil {
			t.Fatal(err)
		}
		r := resp.GetResult()
		if !r.GetDuplicate() || r.GetIndex() != first.Verified.Index {
			t.Fatalf("duplicate %v at %d, want the first at %d", r.GetDuplicate(), r.GetIndex(), first.Verified.Index)
		}
		_, v, err := client.VerifyOffline(r.GetReceipt(), c.Verifier())
		if err != nil {
			t.Fatal(err)
		}
		if v.Disclosure.GetName() != name || !bytes.Equal(v.LeafHash, first.Verified.LeafHash) {
			t.Errorf("the server's receipt carries %v and another record", v.Disclosure)
		}
	})

	t.Run("another principal gets AlreadyExists and no content", func(t *testing.T) {
		before := logSize(t, c)
		_, err := other.Endorse(ctx, ts.endorsement(origin, letter, name, "Shared Affiliation"), "")
		wantCode(t, err, codes.AlreadyExists)
		if st := status.Convert(err); strings.Contains(st.Message(), "Shared") || len(st.Details()) > 0 {
			t.Errorf("the refusal says too much: %q %v", st.Message(), st.Details())
		}
		if got := logSize(t, c); got != before {
			t.Errorf("the log grew from %d to %d", before, got)
		}
	})

	t.Run("a private duplicate's receipt carries no disclosure", func(t *testing.T) {
		e := client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "Private Twice"}, Visibility: pb.Visibility_VISIBILITY_PRIVATE, OrganiserKey: ts.Org})
		for i := range 2 {
			resp, err := c.API().Endorse(c.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetResult().GetDuplicate(); got != (i == 1) {
				t.Errorf("write %d: duplicate %v", i, got)
			}
			if bytes.Contains(resp.GetResult().GetReceipt(), []byte("Private Twice")) {
				t.Errorf("write %d: the server's receipt names the private signer", i)
			}
		}
	})

	t.Run("idempotency keys belong to their principal", func(t *testing.T) {
		a, err := c.Endorse(ctx, ts.endorsement(origin, letter, "Keyed One", ""), "import-row-1")
		if err != nil {
			t.Fatal(err)
		}
		// The same key with another endorsement returns the first.
		b, err := c.Endorse(ctx, ts.endorsement(origin, letter, "Keyed Two", ""), "import-row-1")
		if err != nil {
			t.Fatal(err)
		}
		if !b.Duplicate || b.Verified.Index != a.Verified.Index {
			t.Errorf("the same idempotency key: duplicate %v at %d, want %d", b.Duplicate, b.Verified.Index, a.Verified.Index)
		}
		// Another principal's key is its own.
		o, err := other.Endorse(ctx, ts.endorsement(origin, letter, "Keyed Three", ""), "import-row-1")
		if err != nil {
			t.Fatal(err)
		}
		if o.Duplicate || o.Verified.Index == a.Verified.Index {
			t.Errorf("another principal's key: duplicate %v at %d", o.Duplicate, o.Verified.Index)
		}
		_, err = c.Endorse(ctx, ts.endorsement(origin, letter, "Keyed Four", ""), strings.Repeat("k", 129))
		wantField(t, err, "idempotency_key")
	})
}

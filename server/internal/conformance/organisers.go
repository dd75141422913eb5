package conformance

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// testOrganisers adds a volunteer's organiser key to a letter with an
// organiser change, lets it act for the letter (endorse, withdraw, redact,
// change keys), then revokes it: from the revocation on, every organiser
// action it signs is refused, what it signed before still counts, and the
// letter always keeps a key.
func testOrganisers(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	ctx := testContext(t)
	letter := s.publish("co-organised", pb.Policy_POLICY_CURATED)
	vpub, volunteer, _ := ed25519.GenerateKey(rand.Reader)
	// A volunteer acting for the letter with their own key.
	asVolunteer := func(name string) *client.Endorsement {
		return client.NewEndorsement(s.c.Origin(), letter, client.Signer{
			Fields: records.Fields{Name: name, Affiliation: "Conformance"}, Visibility: pb.Visibility_VISIBILITY_PUBLIC, OrganiserKey: volunteer,
		})
	}
	_, err := s.c.Endorse(ctx, asVolunteer("Before The Key Is Listed"), "")
	wantCode(t, err, codes.InvalidArgument)

	added, err := s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_ADD, vpub, s.org)
	if err != nil {
		t.Fatalf("add the volunteer's key: %v", err)
	}
	s.verifyReceipt(added, client.StateIncluded)
	s.wantKeys(letter.GetId(), s.org.Public().(ed25519.PublicKey), vpub)
	// The same change again, by the same token: its receipt; by another,
	// AlreadyExists.
	again, err := s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_ADD, vpub, s.org)
	if err != nil || !again.Duplicate || again.Verified.Index != added.Verified.Index {
		t.Errorf("the same change again: %+v, %v; want the first receipt", again, err)
	}
	_, err = s.other.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_ADD, vpub, s.org)
	wantCode(t, err, codes.AlreadyExists)

	kept := s.endorse(asVolunteer("Signed Before The Revocation"))
	second := s.endorse(asVolunteer("Withdrawn By The Volunteer"))
	if _, err := s.c.Withdraw(ctx, client.Action{TargetIndex: second.Verified.Index, TargetLeafHash: second.Verified.LeafHash,
		Reason: pb.Reason_REASON_ORGANISER_ERROR, OrganiserKey: volunteer}); err != nil {
		t.Fatalf("a withdrawal by the volunteer's key: %v", err)
	}

	// The volunteer's key revokes the first organiser's; then the first
	// organiser could not act, so a new key is added back first.
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_ADD, newPub, volunteer); err != nil {
		t.Fatalf("a key added by the volunteer's key: %v", err)
	}
	revoked, err := s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_REVOKE, vpub, newKey)
	if err != nil {
		t.Fatalf("revoke the volunteer's key: %v", err)
	}
	s.wantKeys(letter.GetId(), s.org.Public().(ed25519.PublicKey), newPub)
	if _, info, err := s.c.Letter(ctx, letter.GetId()); err != nil || len(info.GetRevokedOrganiserKeys()) != 1 || !bytes.Equal(info.GetRevokedOrganiserKeys()[0], vpub) {
		t.Errorf("GetLetter lists revoked keys %x (%v), want the volunteer's", info.GetRevokedOrganiserKeys(), err)
	}
	size := s.checkpoint().Size

	// From the revocation on, the volunteer's key signs nothing.
	_, err = s.c.Endorse(ctx, asVolunteer("After The Revocation"), "")
	wantRevoked(t, "an endorsement", err)
	_, err = s.c.Withdraw(ctx, client.Action{TargetIndex: kept.Verified.Index, TargetLeafHash: kept.Verified.LeafHash,
		Reason: pb.Reason_REASON_ORGANISER_ERROR, OrganiserKey: volunteer})
	wantRevoked(t, "a withdrawal", err)
	_, err = s.c.Redact(ctx, client.Action{TargetIndex: kept.Verified.Index, TargetLeafHash: kept.Verified.LeafHash,
		Reason: pb.Reason_REASON_SAFETY, OrganiserKey: volunteer})
	wantRevoked(t, "a redaction", err)
	_, err = s.c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "", volunteer)
	wantRevoked(t, "a status", err)
	_, err = s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_REVOKE, newPub, volunteer)
	wantRevoked(t, "an organiser change", err)
	// The add, replayed after the revocation, does not list the key again.
	_, err = s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_ADD, vpub, s.org)
	wantCode(t, err, codes.InvalidArgument)
	s.unchanged(t, size)

	// What it signed before stays valid.
	s.verifyReceipt(kept, client.StateCounted)
	_, counts := s.roster(letter.GetId(), 0)
	if counts.GetPublic() != 1 || counts.GetWithdrawn() != 1 {
		t.Errorf("counts %v, want one public (signed before the revocation) and one withdrawn", counts)
	}
	// A letter keeps at least one key, and a key revokes only another.
	if _, err := s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_REVOKE, s.org.Public().(ed25519.PublicKey), newKey); err != nil {
		t.Fatalf("revoke the first organiser's key: %v", err)
	}
	_, err = s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_REVOKE, newPub, newKey)
	wantCode(t, err, codes.InvalidArgument)
	// The remaining key still closes the letter, and the revoked first
	// organiser cannot.
	_, err = s.c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "", s.org)
	wantRevoked(t, "a status by the first organiser's revoked key", err)
	if _, err := s.c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "", newKey); err != nil {
		t.Fatalf("close with the remaining key: %v", err)
	}
	s.verifyReceipt(revoked, client.StateIncluded)

	// Without a token, or with no rights, nothing changes.
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	_, err = s.anon.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_ADD, otherPub, newKey)
	wantCode(t, err, codes.Unauthenticated)
}

// wantKeys checks the organiser keys GetLetter says are valid.
func (s *session) wantKeys(letterID string, keys ...[]byte) {
	s.t.Helper()
	_, info, err := s.c.Letter(testContext(s.t), letterID)
	if err != nil {
		s.t.Fatal(err)
	}
	got := info.GetOrganiserKeys()
	ok := len(got) == len(keys)
	for i := 0; ok && i < len(keys); i++ {
		ok = bytes.Equal(got[i], keys[i])
	}
	if !ok {
		s.t.Errorf("GetLetter(%s) lists organiser keys %x, want %x", letterID, got, keys)
	}
}

// wantRevoked checks that err refuses an organiser action (what) signed by
// a revoked key, saying so.
func wantRevoked(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "was revoked") {
		t.Errorf("%s by a revoked key: %v, want InvalidArgument saying the key was revoked", what, err)
	}
}

// testKeyOrdering changes a letter's organiser keys while endorsements
// signed by the key being changed arrive from many callers: in the log,
// every endorsement that key signed comes after the change that added it
// and before the one that revoked it (an engine that orders entries itself
// must keep them so), and an audit finds nothing wrong.
func testKeyOrdering(t *testing.T, l Log) {
	s := open(t, l.Start(t), nil)
	ctx := testContext(t)
	letter := s.publish("keys-under-load", pb.Policy_POLICY_CURATED)
	vpub, volunteer, _ := ed25519.GenerateKey(rand.Reader)
	const writers, each = 8, 10
	var mu sync.Mutex
	var signed []uint64 // what the volunteer's key got receipts for
	var added, revoked uint64
	var wg sync.WaitGroup
	deadline := time.Now().Add(timeout)
	// The writers start before the key is listed, so that some of their
	// endorsements are admitted while the addition waits for its index.
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := client.NewEndorsement(s.c.Origin(), letter, client.Signer{
					Fields: records.Fields{Name: fmt.Sprintf("Writer %d Signer %d", w, i)}, OrganiserKey: volunteer})
				r, err := s.c.Endorse(testContext(t), e, "")
				switch {
				case err == nil:
					mu.Lock()
					signed = append(signed, r.Verified.Index)
					mu.Unlock()
				case status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "must be one of the organiser keys") && time.Now().Before(deadline):
					// Not listed yet: the addition is on its way.
					time.Sleep(time.Millisecond)
				case status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "was revoked"):
					return
				default:
					t.Errorf("endorse: %v", err)
					return
				}
			}
		})
	}
	r, err := s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_ADD, vpub, s.org)
	if err != nil {
		t.Fatal(err)
	}
	added = r.Verified.Index
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(signed)
		mu.Unlock()
		if n >= writers*each/2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if r, err = s.c.ChangeOrganiser(ctx, letter.GetId(), pb.KeyChange_KEY_CHANGE_REVOKE, vpub, s.org); err != nil {
		t.Fatal(err)
	}
	revoked = r.Verified.Index
	wg.Wait()
	for _, i := range signed {
		if i <= added || i >= revoked {
			t.Errorf("an endorsement signed by the volunteer's key is at %d, outside (%d, %d): before its addition or after its revocation", i, added, revoked)
		}
	}
	st, err := audit.OpenState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := audit.New(audit.Config{Source: audit.NewGRPCSource(s.c.API()), VerifierKey: s.target.VerifierKey, State: st})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("the audit finds %v", rep.Violations)
	}
	t.Logf("%d endorsements by the volunteer's key between its addition at %d and its revocation at %d", len(signed), added, revoked)
}

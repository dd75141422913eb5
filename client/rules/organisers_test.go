package rules_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func keyChangeIn(l *pb.Letter, change pb.KeyChange, key ed25519.PublicKey, by ed25519.PrivateKey) rules.Input {
	c := &pb.OrganiserChange{LetterId: l.GetId(), Change: change, Key: key}
	records.SignOrganiserChange(by, origin, c)
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: c}}}
}

// byOrganiser returns an endorsement of l signed by key instead of the
// letter's first organiser.
func byOrganiser(l *pb.Letter, name string, key ed25519.PrivateKey) signed {
	s := endorsement(l, name, pb.Visibility_VISIBILITY_PUBLIC, nil)
	records.SignEndorsementAsOrganiser(key, origin, s.e)
	return s
}

func withdrawByOrganiser(index uint64, leaf []byte, key ed25519.PrivateKey) rules.Input {
	w := &pb.Withdrawal{TargetIndex: index, TargetLeafHash: leaf, Reason: pb.Reason_REASON_ORGANISER_ERROR}
	w.Authorisation = &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignWithdrawal(key, origin, w)}}
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: w}}}
}

func redactByOrganiser(index uint64, leaf []byte, key ed25519.PrivateKey) rules.Input {
	r := &pb.Redaction{TargetIndex: index, TargetLeafHash: leaf, Reason: pb.Reason_REASON_SAFETY}
	r.Authorisation = &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignRedaction(key, origin, r)}}
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_Redaction{Redaction: r}}}
}

func statusBy(l *pb.Letter, st pb.Status, key ed25519.PrivateKey) rules.Input {
	s := &pb.LetterStatus{LetterId: l.GetId(), Status: st}
	records.SignStatus(key, origin, s)
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}}}
}

// wantKeyRefused checks that err refuses the organiser signature at field.
func wantKeyRefused(t *testing.T, what string, err error, field, rule string) {
	t.Helper()
	fe, ok := records.AsFieldError(err)
	if !ok || fe.Field != field || !strings.Contains(fe.Rule, rule) {
		t.Errorf("%s: %v, want %s: ...%s...", what, err, field, rule)
	}
}

func TestOrganiserKeysAddedAndRevoked(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("co-organised", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	volunteer := ed25519.NewKeyFromSeed(random(32))
	vpub := volunteer.Public().(ed25519.PublicKey)
	first := organiser.Public().(ed25519.PublicKey)

	// Before it is listed, the volunteer's key signs nothing.
	_, err := g.append(endorseIn(byOrganiser(l, "Early", volunteer)))
	wantKeyRefused(t, "an endorsement by a key not listed yet", err, "endorsement.organiser.public_key", "must be one of the organiser keys")

	add := keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, vpub, organiser)
	ch, err := g.append(add)
	if err != nil || ch.KeyChange != pb.KeyChange_KEY_CHANGE_ADD || len(ch.OrganiserKeys) != 2 {
		t.Fatalf("add the volunteer's key: %v %+v", err, ch)
	}
	added := g.m.Size() - 1
	lt, _ := g.m.Letter(l.GetId())
	if len(lt.OrganiserKeys) != 2 || lt.KeysChangedBy == nil || lt.KeysChangedBy.Index != int64(added) {
		t.Fatalf("the letter after the change: %+v", lt)
	}
	// The same change again is a repeat of it, for its writer.
	_, err = g.append(add)
	if ee := exists(t, err); !ee.Exact || ee.Of.Index != int64(added) {
		t.Errorf("the same change again: %+v", ee)
	}

	// Listed, the volunteer endorses, withdraws, redacts and closes.
	early := g.must(endorseIn(byOrganiser(l, "Signed before the revocation", volunteer)))
	second := g.must(endorseIn(byOrganiser(l, "Another", volunteer)))
	g.must(withdrawByOrganiser(second, leafOf(t, g.m, second), volunteer))

	// Revoked by the first organiser, from its index on.
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, vpub, organiser))
	revokedAt := g.m.Size() - 1
	for _, c := range []struct {
		what  string
		in    rules.Input
		field string
	}{
		{"an endorsement", endorseIn(byOrganiser(l, "Late", volunteer)), "endorsement.organiser.public_key"},
		{"a withdrawal", withdrawByOrganiser(early, leafOf(t, g.m, early), volunteer), "withdrawal.authorisation.organiser.public_key"},
		{"a redaction", redactByOrganiser(early, leafOf(t, g.m, early), volunteer), "redaction.authorisation.organiser.public_key"},
		{"a status", statusBy(l, pb.Status_STATUS_CLOSED, volunteer), "status.organiser.public_key"},
		{"an organiser change", keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, ed25519.NewKeyFromSeed(random(32)).Public().(ed25519.PublicKey), volunteer), "organiser_change.organiser.public_key"},
	} {
		_, err := g.append(c.in)
		wantKeyRefused(t, c.what+" by the revoked key", err, c.field, "was revoked")
	}
	// What it signed before stays: the endorsement counts.
	if e, _ := g.m.Endorsement(early); e == nil || e.WithdrawnBy != nil {
		t.Errorf("the endorsement signed before the revocation: %+v", e)
	}
	if pub, _, _, _, _ := g.m.Counts(l.GetId()); pub != 1 {
		t.Errorf("public count after the revocation = %d, want 1", pub)
	}
	// A revoked key is never valid again.
	_, err = g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, vpub, organiser))
	if fe, ok := records.AsFieldError(err); !ok || fe.Field != "organiser_change.key" || !strings.Contains(fe.Rule, "never valid") {
		t.Errorf("the revoked key added again: %v", err)
	}
	_, err = g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, vpub, organiser))
	if ee := exists(t, err); !ee.Exact || ee.Of.Index != int64(revokedAt) {
		t.Errorf("the revocation again: %+v", ee)
	}
	// The first organiser still acts; the letter keeps at least one key.
	g.must(withdrawByOrganiser(early, leafOf(t, g.m, early), organiser))
	_, err = g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, first, volunteer))
	wantKeyRefused(t, "the last key revoked by a revoked key", err, "organiser_change.organiser.public_key", "was revoked")
	other := ed25519.NewKeyFromSeed(random(32))
	opub := other.Public().(ed25519.PublicKey)
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, opub, organiser))
	// The new key may revoke the letter's first key, but not then itself
	// (the DESIGN: by another key), nor the last one.
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, first, other))
	third := ed25519.NewKeyFromSeed(random(32))
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, third.Public().(ed25519.PublicKey), other))
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, third.Public().(ed25519.PublicKey), other))
	lt, _ = g.m.Letter(l.GetId())
	if len(lt.OrganiserKeys) != 1 {
		t.Fatalf("keys = %d, want 1", len(lt.OrganiserKeys))
	}
	_, err = g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, opub, third))
	wantKeyRefused(t, "the last key revoked", err, "organiser_change.organiser.public_key", "was revoked")
	// A closed letter's organisers still change keys.
	g.must(statusBy(l, pb.Status_STATUS_CLOSED, other))
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, ed25519.NewKeyFromSeed(random(32)).Public().(ed25519.PublicKey), other))
}

func TestOrganiserChangeRules(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("one-key", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	first := organiser.Public().(ed25519.PublicKey)
	var se *rules.StateError

	// Only an organiser key of the letter changes its keys.
	outsider := ed25519.NewKeyFromSeed(random(32))
	_, err := g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, first, outsider))
	wantKeyRefused(t, "a change by a key never listed", err, "organiser_change.organiser.public_key", "must be one of the organiser keys")

	// A key that is already valid is not added twice.
	second := ed25519.NewKeyFromSeed(random(32))
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, second.Public().(ed25519.PublicKey), organiser))
	_, err = g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, first, second))
	if !errors.As(err, &se) || se.Field != "organiser_change.key" || !strings.Contains(se.Rule, "already an organiser key") {
		t.Errorf("a valid key added again: %v", err)
	}
	// A key that was never listed is not revoked.
	_, err = g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, outsider.Public().(ed25519.PublicKey), organiser))
	if fe, ok := records.AsFieldError(err); !ok || fe.Field != "organiser_change.key" {
		t.Errorf("a key never listed revoked: %v", err)
	}
	// At most MaxOrganiserKeys at once.
	for i := 2; i < records.MaxOrganiserKeys; i++ {
		g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, ed25519.NewKeyFromSeed(random(32)).Public().(ed25519.PublicKey), organiser))
	}
	_, err = g.append(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, ed25519.NewKeyFromSeed(random(32)).Public().(ed25519.PublicKey), organiser))
	if !errors.As(err, &se) || !strings.Contains(se.Rule, "the most it may hold") {
		t.Errorf("a 17th key: %v", err)
	}
	// An unknown letter.
	other := letter("not-published", pb.Policy_POLICY_CURATED)
	_, err = g.append(keyChangeIn(other, pb.KeyChange_KEY_CHANGE_ADD, outsider.Public().(ed25519.PublicKey), organiser))
	if fe, ok := records.AsFieldError(err); !ok || fe.Field != "organiser_change.letter_id" {
		t.Errorf("a change of a letter not in the log: %v", err)
	}
}

func TestRevisionNeedsAKeyOfTheRevisedLetter(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("first-text", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	volunteer := ed25519.NewKeyFromSeed(random(32))
	vpub := volunteer.Public().(ed25519.PublicKey)
	revision := func() *pb.Letter {
		r := proto.CloneOf(l)
		r.Id, r.Revises, r.OrganiserKeys = "second-text", l.GetId(), [][]byte{vpub}
		records.SignLetter(volunteer, origin, r)
		return r
	}
	// Not a key of the revised letter yet.
	_, err := g.append(letterIn(revision()))
	wantKeyRefused(t, "a revision by a key the revised letter does not list", err, "letter.organiser.public_key", "revised letter")
	// Listed by an organiser change, it may.
	g.must(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, vpub, organiser))
	g.must(letterIn(revision()))
	// A revision of a letter not in the log.
	orphan := proto.CloneOf(l)
	orphan.Id, orphan.Revises = "third-text", "never-published"
	records.SignLetter(organiser, origin, orphan)
	_, err = g.append(letterIn(orphan))
	if fe, ok := records.AsFieldError(err); !ok || fe.Field != "letter.revises" {
		t.Errorf("a revision of a letter not in the log: %v", err)
	}
}

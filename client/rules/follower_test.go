package rules_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// TestFollowerAgreesWithMemory feeds one log to a Memory (with the
// disclosures) and a Follower (records alone): both accept and refuse the
// same records, and say the same of every endorsement and letter.
func TestFollowerAgreesWithMemory(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	f := rules.NewFollower()
	l := letter("followed", pb.Policy_POLICY_CURATED)
	open := letter("followed-open", pb.Policy_POLICY_OPEN)
	volunteer := ed25519.NewKeyFromSeed(random(32))
	vpub := volunteer.Public().(ed25519.PublicKey)
	signer := ed25519.NewKeyFromSeed(random(32))
	step := func(in rules.Input, wantOK bool) uint64 {
		t.Helper()
		b, err := records.Encode(in.Record)
		if err != nil {
			t.Fatal(err)
		}
		leaf := leafHash(b)
		_, memErr := g.m.Append(in, leaf)
		_, folErr := f.Append(in.Record, leaf)
		if (memErr == nil) != wantOK || (folErr == nil) != wantOK {
			t.Fatalf("record %d: Memory says %v, Follower %v, want ok=%v", f.Size()-1, memErr, folErr, wantOK)
		}
		if memErr != nil && rules.FieldOf(memErr) != rules.FieldOf(folErr) {
			t.Errorf("record %d: Memory breaks %q, Follower %q", f.Size()-1, rules.FieldOf(memErr), rules.FieldOf(folErr))
		}
		if memErr != nil {
			// The Memory does not append a refused record; the log would
			// hold it, so keep the two in step with an accepted one.
			g.must(statusIn(l, pb.Status_STATUS_DELIVERED, fmt.Sprintf("filler %d", f.Size())))
		}
		return f.Size() - 1
	}
	step(letterIn(l), true)
	step(letterIn(open), true)
	a := endorsement(l, "Ada", pb.Visibility_VISIBILITY_PUBLIC, nil)
	ia := step(endorseIn(a), true)
	step(endorseIn(a), false) // a replay
	step(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_ADD, vpub, organiser), true)
	ib := step(endorseIn(byOrganiser(l, "Bea", volunteer)), true)
	step(withdrawByOrganiser(ib, leafOf(t, g.m, ib), volunteer), true)
	step(keyChangeIn(l, pb.KeyChange_KEY_CHANGE_REVOKE, vpub, organiser), true)
	step(endorseIn(byOrganiser(l, "Cid", volunteer)), false) // a revoked key
	step(redactIn(ia, leafOf(t, g.m, ia), a.secret), true)
	s1 := endorsement(open, "Dee", pb.Visibility_VISIBILITY_PRIVATE, signer)
	is := step(endorseIn(s1), true)
	step(endorseIn(endorsement(open, "Dee again", pb.Visibility_VISIBILITY_PRIVATE, signer)), false) // the same signer key
	step(withdrawIn(is, leafOf(t, g.m, is), s1.secret), true)
	step(withdrawIn(is, leafOf(t, g.m, is), s1.secret), false) // withdrawn twice
	step(endorseIn(endorsement(open, "Dee back", pb.Visibility_VISIBILITY_PUBLIC, signer)), true)
	step(statusIn(l, pb.Status_STATUS_CLOSED, ""), true)
	step(endorseIn(endorsement(l, "Too Late", pb.Visibility_VISIBILITY_PUBLIC, nil)), false)

	for i := range f.Size() {
		me, _ := g.m.Endorsement(i)
		fe, _ := f.Endorsement(i)
		if (me == nil) != (fe == nil) {
			t.Fatalf("index %d: Memory %+v, Follower %+v", i, me, fe)
		}
		if me == nil {
			continue
		}
		for _, c := range []struct {
			what string
			m, f *rules.Ref
		}{{"withdrawn", me.WithdrawnBy, fe.WithdrawnBy}, {"redacted", me.RedactedBy, fe.RedactedBy}, {"superseded", me.SupersededBy, fe.SupersededBy}} {
			if (c.m == nil) != (c.f == nil) || c.m != nil && c.m.Index != c.f.Index {
				t.Errorf("index %d %s: Memory %v, Follower %v", i, c.what, c.m, c.f)
			}
		}
		if me.SecretSpent != fe.SecretSpent || string(me.LeafHash) != string(fe.LeafHash) ||
			me.Endorsement.GetVisibility() != fe.Endorsement.GetVisibility() || me.Endorsement.GetLetterId() != fe.Endorsement.GetLetterId() {
			t.Errorf("index %d: Memory %+v, Follower %+v", i, me, fe)
		}
	}
	for _, id := range []string{l.GetId(), open.GetId()} {
		ml, _ := g.m.Letter(id)
		fl, _ := f.Letter(id)
		if len(ml.OrganiserKeys) != len(fl.OrganiserKeys) || len(ml.Revoked) != len(fl.Revoked) || (ml.Closed == nil) != (fl.Closed == nil) {
			t.Errorf("letter %s: Memory %+v, Follower %+v", id, ml, fl)
		}
	}
}

func leafHash(b []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, b...))
	return h[:]
}

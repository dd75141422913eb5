package audit_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// keyChange adds an organiser change of lt signed by by.
func (l *testLog) keyChange(lt *pb.Letter, change pb.KeyChange, key ed25519.PublicKey, by ed25519.PrivateKey) uint64 {
	c := &pb.OrganiserChange{LetterId: lt.GetId(), Change: change, Key: key}
	records.SignOrganiserChange(by, l.origin, c)
	return l.add(&pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: c}})
}

// TestOrganiserKeys audits a log crafted (without admission) in which a
// volunteer's organiser key is added, acts, and is revoked, after which it
// goes on signing: each of its records after the revocation is a
// violation naming its index, and those it signed before are valid.
func TestOrganiserKeys(t *testing.T) {
	l := newTestLog(t)
	lt := l.letter("co-organised", pb.Policy_POLICY_CURATED)
	vpub, volunteer, _ := ed25519.GenerateKey(rand.Reader)
	first := l.orgKey.Public().(ed25519.PublicKey)
	byVolunteer := func(name string) uint64 {
		i, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: volunteer})
		return i
	}

	early := byVolunteer("Before The Key Is Listed")
	added := l.keyChange(lt, pb.KeyChange_KEY_CHANGE_ADD, vpub, l.orgKey)
	before := byVolunteer("Signed Before The Revocation")
	withdrawnBefore := byVolunteer("Withdrawn By The Volunteer")
	l.withdraw(withdrawnBefore, organiserAuth(volunteer, l.origin))
	revoked := l.keyChange(lt, pb.KeyChange_KEY_CHANGE_REVOKE, vpub, l.orgKey)
	after := byVolunteer("Signed After The Revocation")
	withdrawalAfter := l.withdraw(before, organiserAuth(volunteer, l.origin))
	statusAfter := func() uint64 {
		s := &pb.LetterStatus{LetterId: lt.GetId(), Status: pb.Status_STATUS_CLOSED}
		records.SignStatus(volunteer, l.origin, s)
		return l.add(&pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}})
	}()
	readded := l.keyChange(lt, pb.KeyChange_KEY_CHANGE_ADD, vpub, l.orgKey)
	_, outsider, _ := ed25519.GenerateKey(rand.Reader)
	byOutsider := l.keyChange(lt, pb.KeyChange_KEY_CHANGE_REVOKE, first, outsider)
	// The last key, by itself: a key revokes only another, and a letter
	// keeps one.
	lastRevoked := l.keyChange(lt, pb.KeyChange_KEY_CHANGE_REVOKE, first, l.orgKey)
	l.write()

	dir := t.TempDir()
	rep := auditHTTP(t, l, dir)
	want := map[uint64]audit.Rule{
		early: audit.RuleEndorsement, after: audit.RuleEndorsement, withdrawalAfter: audit.RuleWithdrawal,
		statusAfter: audit.RuleStatus, readded: audit.RuleOrganiser, byOutsider: audit.RuleOrganiser, lastRevoked: audit.RuleOrganiser,
	}
	found := map[uint64]bool{}
	for _, v := range rep.Violations {
		rule, ok := want[v.Index]
		if !ok {
			t.Errorf("an unexpected violation: %v", v)
			continue
		}
		if v.Rule != rule {
			t.Errorf("index %d: %v, want rule %s", v.Index, v, rule)
		}
		found[v.Index] = true
	}
	for i, rule := range want {
		if !found[i] {
			t.Errorf("no %s violation at index %d; got %v", rule, i, rep.Violations)
		}
	}
	for _, v := range rep.Violations {
		if (v.Index == after || v.Index == withdrawalAfter || v.Index == statusAfter) && !strings.Contains(v.Message, "was revoked") {
			t.Errorf("the violation at %d does not say the key was revoked: %v", v.Index, v)
		}
	}

	st, err := audit.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// What the volunteer signed before the revocation counts.
	ro, err := st.Roster(lt.GetId(), revoked+1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ro.Entries, func(e audit.RosterEntry) bool { return e.Index == before }) {
		t.Errorf("the endorsement signed before the revocation does not count: %+v", ro.Entries)
	}
	if len(ro.Letter.OrganiserKeys) != 1 {
		t.Errorf("keys after the revocation: %x, want the first organiser's alone", ro.Letter.OrganiserKeys)
	}
	ro, err = st.Roster(lt.GetId(), revoked)
	if err != nil {
		t.Fatal(err)
	}
	if len(ro.Letter.OrganiserKeys) != 2 {
		t.Errorf("keys before the revocation: %x, want two", ro.Letter.OrganiserKeys)
	}
	// The history names each change, who signed it, and the key.
	cs, err := st.Changes(lt.GetId(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fp := records.KeyFingerprint(vpub)
	seen := map[uint64]audit.Change{}
	for _, c := range cs {
		seen[c.Index] = c
	}
	if c := seen[added]; c.Kind != audit.ChangeOrganiserAdded || c.OrganiserKey != fp || c.AuthorisedBy != "organiser key "+records.KeyFingerprint(first) || c.NoEffect {
		t.Errorf("the history of the addition: %+v", c)
	}
	if c := seen[revoked]; c.Kind != audit.ChangeOrganiserRevoked || c.OrganiserKey != fp || c.NoEffect {
		t.Errorf("the history of the revocation: %+v", c)
	}
	for _, i := range []uint64{readded, byOutsider, lastRevoked} {
		if c := seen[i]; !c.NoEffect {
			t.Errorf("the history of the invalid change at %d: %+v, want no effect", i, c)
		}
	}
}

// TestOrganiserKeysHonest: an honest log where organisers hand the letter
// over from key to key audits clean.
func TestOrganiserKeysHonest(t *testing.T) {
	l := newTestLog(t)
	lt := l.letter("handed-over", pb.Policy_POLICY_CURATED)
	vpub, volunteer, _ := ed25519.GenerateKey(rand.Reader)
	l.keyChange(lt, pb.KeyChange_KEY_CHANGE_ADD, vpub, l.orgKey)
	i, _ := l.endorse(lt, client.Signer{Fields: records.Fields{Name: "By The Volunteer"}, OrganiserKey: volunteer})
	l.keyChange(lt, pb.KeyChange_KEY_CHANGE_REVOKE, l.orgKey.Public().(ed25519.PublicKey), volunteer)
	l.withdraw(i, organiserAuth(volunteer, l.origin))
	s := &pb.LetterStatus{LetterId: lt.GetId(), Status: pb.Status_STATUS_CLOSED}
	records.SignStatus(volunteer, l.origin, s)
	l.add(&pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}})
	l.write()
	if rep := auditHTTP(t, l, t.TempDir()); !rep.OK() {
		t.Fatalf("an honest hand-over fails: %v", rep.Violations)
	}
}

package web

import (
	"bytes"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// TestPagesFollowTheRules: the letter's page follows the rules of a
// letter, as the server's admission and the audit do. Its history shows
// organiser keys added and revoked, by fingerprint; a withdrawal signed by
// a key after its revocation changes nothing; a redaction that breaks the
// rules still hides the name it targets.
func TestPagesFollowTheRules(t *testing.T) {
	m := smallLetter(t)
	volunteer := bytes.Repeat([]byte{9}, 32)
	change := func(c pb.KeyChange) {
		m.add(t, &pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: &pb.OrganiserChange{LetterId: "small", Change: c, Key: volunteer,
			Organiser: &pb.Signature{PublicKey: smallOrganiser}}}}, nil)
	}
	withdraw := func(target uint64, by []byte) {
		m.add(t, &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: target, Reason: pb.Reason_REASON_ORGANISER_ERROR,
			Authorisation: &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: &pb.Signature{PublicKey: by}}}}}}, nil)
	}
	change(pb.KeyChange_KEY_CHANGE_ADD)
	change(pb.KeyChange_KEY_CHANGE_REVOKE)
	withdraw(1, volunteer) // "Ales Public", by the revoked key: nothing
	// A redaction by a key never listed breaks the rules; the name goes
	// all the same.
	m.add(t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: 3, Reason: pb.Reason_REASON_SAFETY,
		Authorisation: &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: &pb.Signature{PublicKey: volunteer}}}}}}, nil)
	h, err := New(Config{Source: m})
	if err != nil {
		t.Fatal(err)
	}
	body := get(t, h, "/letters/small", "").Body.String()
	fp, by := records.KeyFingerprint(volunteer), records.KeyFingerprint(smallOrganiser)
	for _, want := range []string{`data-kind="organiser_added"`, `data-kind="organiser_revoked"`, "Organiser key " + fp + " revoked",
		"an organiser (key " + by + ")", "Ales Public", `data-count="withdrawn">0<`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(body, `data-kind="withdrawal"`) || strings.Contains(body, "Tatsiana Redacted") {
		t.Errorf("the page follows a record that breaks the rules, or shows the name a redaction targets")
	}
	if ru := get(t, h, "/letters/small?lang=ru", "").Body.String(); !strings.Contains(ru, "Отозван ключ организатора "+fp) {
		t.Errorf("the Russian page does not name the revoked key")
	}
}

package server_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	"google.golang.org/grpc/codes"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// TestRedaction redacts a public endorsement as its organiser and checks
// that its clear text is gone from every read and from every file of the
// data folder, while the endorsement still counts.
func TestRedaction(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	anon := ts.dial(t, "")
	origin := c.Origin()
	letter := ts.publish(t, c, "redaction-letter", pb.Policy_POLICY_CURATED)
	unique := hex.EncodeToString(randomBytes(t, 4))
	name := "Zbigniew Ŭnikalny-" + unique
	affiliation := "Hidden Collective " + unique
	target := endorse(t, c, ts.endorsement(origin, letter, name, affiliation))
	kept := endorse(t, c, ts.endorsement(origin, letter, "Zbigniew Kept", "Visible Collective"))
	needles := [][]byte{[]byte(name), []byte(affiliation), []byte(names.Fold(name)), []byte(unique)}

	// Before: the name is stored, found and served.
	if found := filesContaining(t, ts.Dir, []byte(name)); len(found) == 0 {
		t.Fatal("before the redaction the name is nowhere in the data folder: the search cannot fail")
	}
	if resp, err := c.API().FindEndorsements(ctx, &pb.FindEndorsementsRequest{LetterId: letter.GetId(), Query: "unikalny"}); err != nil || len(resp.GetEntries()) != 1 {
		t.Fatalf("before the redaction, find = %v, %v; want one entry", resp, err)
	}

	red, err := c.Redact(ctx, client.Action{TargetIndex: target.Verified.Index, TargetLeafHash: target.Verified.LeafHash,
		Reason: pb.Reason_REASON_SAFETY, OrganiserKey: ts.Org})
	if err != nil {
		t.Fatalf("redact: %v", err)
	}
	// Checked first, as soon as Redact returned.
	t.Run("no file of the data folder holds the name", func(t *testing.T) {
		if found := filesContaining(t, ts.Dir, needles...); len(found) > 0 {
			t.Errorf("after the redaction:\n%s", strings.Join(found, "\n"))
		}
	})

	t.Run("the roster no longer names it but counts it", func(t *testing.T) {
		entries, counts := rosterAll(t, c, letter.GetId(), 0)
		seen := false
		for _, e := range entries {
			if e.GetIndex() == target.Verified.Index {
				seen = true
				if !e.GetRedacted() || e.GetDisclosure() != nil {
					t.Errorf("roster entry %d: redacted %v, disclosure %v", e.GetIndex(), e.GetRedacted(), e.GetDisclosure())
				}
			}
			if strings.Contains(e.GetDisclosure().GetName(), unique) {
				t.Errorf("the roster names %q", e.GetDisclosure().GetName())
			}
		}
		if !seen {
			t.Error("the redacted endorsement is missing from the roster: it still counts")
		}
		if counts.GetRedacted() != 1 || counts.GetPublic() != 1 {
			t.Errorf("counts %v, want 1 public and 1 redacted", counts)
		}
	})

	t.Run("GetEntries serves no disclosure for it", func(t *testing.T) {
		var all []byte
		for _, e := range entriesAll(t, c) {
			b, _ := json.Marshal(e.GetDisclosure())
			all = append(all, b...)
			switch e.GetIndex() {
			case target.Verified.Index:
				if !e.GetRedacted() || e.GetDisclosure() != nil {
					t.Errorf("entry %d: redacted %v, disclosure %v", e.GetIndex(), e.GetRedacted(), e.GetDisclosure())
				}
			case kept.Verified.Index:
				if e.GetDisclosure().GetName() != "Zbigniew Kept" {
					t.Errorf("entry %d lost its disclosure: %v", e.GetIndex(), e.GetDisclosure())
				}
			case red.Verified.Index:
				r, err := records.Decode(e.GetRecord())
				if err != nil || r.GetRedaction().GetTargetIndex() != target.Verified.Index {
					t.Errorf("entry %d is not the redaction of %d: %v, %v", e.GetIndex(), target.Verified.Index, r, err)
				}
			}
		}
		if bytes.Contains(all, []byte(unique)) {
			t.Error("GetEntries serves the redacted name")
		}
	})

	t.Run("the disclosure bundle no longer holds it", func(t *testing.T) {
		size := logSize(t, c)
		n := target.Verified.Index / layout.EntryBundleWidth
		path := "/log/disclosures/" + layout.NWithSuffix(0, n, layout.PartialTileSize(0, n, size))
		code, _, body := httpGet(t, ts.HTTP, path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		if bytes.Contains(body, []byte(unique)) {
			t.Errorf("%s still holds the name: %s", path, body)
		}
		if !bytes.Contains(body, []byte("Zbigniew Kept")) {
			t.Errorf("%s lost the other disclosure: %s", path, body)
		}
	})

	t.Run("find no longer finds it", func(t *testing.T) {
		for _, q := range []string{"unikalny", "ŭnikalny-" + unique, "zbigniew"} {
			resp, err := c.API().FindEndorsements(ctx, &pb.FindEndorsementsRequest{LetterId: letter.GetId(), Query: q})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range resp.GetEntries() {
				if e.GetIndex() == target.Verified.Index || strings.Contains(e.GetDisclosure().GetName(), unique) {
					t.Errorf("find %q returns the redacted endorsement", q)
				}
			}
		}
	})

	t.Run("the endorsement reports counted but redacted", func(t *testing.T) {
		st := endorsementState(t, anon, target.Verified.Index)
		if st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_COUNTED_REDACTED || st.GetRedactedBy() != red.Verified.Index {
			t.Errorf("GetEndorsement: %v by %d, want counted but redacted by %d", st.GetState(), st.GetRedactedBy(), red.Verified.Index)
		}
		vs, err := anon.Verify(ctx, target.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if vs.State != client.StateCountedRedacted {
			t.Errorf("Verify: %v, want counted but redacted", vs.State)
		}
	})

	t.Run("a private endorsement has nothing to redact", func(t *testing.T) {
		private := endorse(t, c, client.NewEndorsement(origin, letter, client.Signer{
			Fields: records.Fields{Name: "Private " + unique}, Visibility: pb.Visibility_VISIBILITY_PRIVATE, OrganiserKey: ts.Org,
		}))
		_, err := c.Redact(ctx, client.Action{TargetIndex: private.Verified.Index, TargetLeafHash: private.Verified.LeafHash,
			Reason: pb.Reason_REASON_SAFETY, OrganiserKey: ts.Org})
		wantCode(t, err, codes.FailedPrecondition)
	})

	t.Run("a second redaction", func(t *testing.T) {
		again, err := c.Redact(ctx, client.Action{TargetIndex: target.Verified.Index, TargetLeafHash: target.Verified.LeafHash,
			Reason: pb.Reason_REASON_SAFETY, OrganiserKey: ts.Org})
		if err != nil {
			t.Fatalf("the same organiser's retry: %v", err)
		}
		if !again.Duplicate || again.Verified.Index != red.Verified.Index {
			t.Errorf("retry: duplicate %v at %d, want the first redaction at %d", again.Duplicate, again.Verified.Index, red.Verified.Index)
		}
		_, err = anon.Redact(ctx, actionOf(t, anon, target))
		wantCode(t, err, codes.AlreadyExists)
	})
}

// TestSupersedes corrects an endorsement and checks the states of both,
// then the corrections that must be refused.
func TestSupersedes(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	origin := c.Origin()
	letter := ts.publish(t, c, "supersedes-letter", pb.Policy_POLICY_CURATED)
	otherLetter := ts.publish(t, c, "another-letter", pb.Policy_POLICY_CURATED)
	open := ts.publish(t, c, "open-letter", pb.Policy_POLICY_OPEN)
	old := endorse(t, c, ts.endorsement(origin, letter, "Jon Smiht", "Typo Institute"))
	oldIndex := old.Verified.Index
	fix := client.NewEndorsement(origin, letter, client.Signer{
		Fields: records.Fields{Name: "Jon Smith", Affiliation: "Typo Institute"}, OrganiserKey: ts.Org, Supersedes: &oldIndex,
	})
	corrected := endorse(t, c, fix)

	t.Run("the old one is superseded, the new one counts", func(t *testing.T) {
		if got := corrected.Verified.Record.GetEndorsement(); got.Supersedes == nil || got.GetSupersedes() != oldIndex {
			t.Errorf("the correction's record supersedes %v, want %d", got.Supersedes, oldIndex)
		}
		st := endorsementState(t, c, oldIndex)
		if st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_SUPERSEDED || st.GetSupersededBy() != corrected.Verified.Index {
			t.Errorf("old: %v by %d, want superseded by %d", st.GetState(), st.GetSupersededBy(), corrected.Verified.Index)
		}
		if st := endorsementState(t, c, corrected.Verified.Index); st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_COUNTED {
			t.Errorf("new: %v, want counted", st.GetState())
		}
		vs, err := c.Verify(ctx, old.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if vs.State != client.StateSuperseded || vs.By == nil || *vs.By != corrected.Verified.Index {
			t.Errorf("Verify(old): %v by %v, want superseded by %d", vs.State, vs.By, corrected.Verified.Index)
		}
		if vs, err := c.Verify(ctx, corrected.Receipt); err != nil || vs.State != client.StateCounted {
			t.Errorf("Verify(new) = %v, %v; want counted", vs, err)
		}
		entries, counts := rosterAll(t, c, letter.GetId(), 0)
		if len(entries) != 1 || entries[0].GetDisclosure().GetName() != "Jon Smith" {
			t.Errorf("roster %v, want only Jon Smith", entries)
		}
		if counts.GetPublic() != 1 || counts.GetSuperseded() != 1 {
			t.Errorf("counts %v, want 1 public and 1 superseded", counts)
		}
	})

	seed := randomBytes(t, 32)
	signed := endorse(t, c, client.NewEndorsement(origin, open, client.Signer{
		Fields: records.Fields{Name: "Signed Signer"}, SignerKey: client.SignerKey(seed, origin, open.GetId()),
	}))
	before := logSize(t, c)
	u := func(i uint64) *uint64 { return &i }
	for _, tc := range []struct {
		name  string
		e     func() *client.Endorsement
		code  codes.Code
		field string
	}{
		{"a second correction of the same endorsement", func() *client.Endorsement {
			return client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "Jon Smyth"}, OrganiserKey: ts.Org, Supersedes: &oldIndex})
		}, codes.FailedPrecondition, ""},
		{"a correction of a letter", func() *client.Endorsement {
			return client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "Jon Smyth"}, OrganiserKey: ts.Org, Supersedes: u(0)})
		}, codes.InvalidArgument, "endorsement.supersedes"},
		{"a correction of an index beyond the log", func() *client.Endorsement {
			return client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "Jon Smyth"}, OrganiserKey: ts.Org, Supersedes: u(1 << 40)})
		}, codes.InvalidArgument, "endorsement.supersedes"},
		{"a correction across letters", func() *client.Endorsement {
			return client.NewEndorsement(origin, otherLetter, client.Signer{Fields: records.Fields{Name: "Jon Smyth"}, OrganiserKey: ts.Org, Supersedes: u(corrected.Verified.Index)})
		}, codes.InvalidArgument, "endorsement.supersedes"},
		{"a correction of a signer-signed endorsement by another key", func() *client.Endorsement {
			return client.NewEndorsement(origin, open, client.Signer{Fields: records.Fields{Name: "Signed Signer Fixed"},
				SignerKey: client.SignerKey(randomBytes(t, 32), origin, open.GetId()), Supersedes: u(signed.Verified.Index)})
		}, codes.InvalidArgument, "endorsement.signer"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := c.Endorse(ctx, tc.e(), "")
			if tc.field != "" {
				wantField(t, err, tc.field)
			} else {
				wantCode(t, err, tc.code)
			}
			if got := logSize(t, c); got != before {
				t.Errorf("the log grew from %d to %d", before, got)
			}
		})
	}

	t.Run("a superseded endorsement cannot be withdrawn", func(t *testing.T) {
		_, err := c.Withdraw(ctx, client.Action{TargetIndex: oldIndex, TargetLeafHash: old.Verified.LeafHash, OrganiserKey: ts.Org})
		wantCode(t, err, codes.FailedPrecondition)
	})
}

// TestCorrectionSharingAKey corrects endorsements with what their dedup
// key is made of unchanged: the same signer key (which §3.2 requires of a
// signer-signed correction), or the same fields with a new verification.
// The correction must be appended, not taken for a duplicate of the
// endorsement it corrects, and then own the key.
func TestCorrectionSharingAKey(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	anon := ts.dial(t, "")
	c := ts.dial(t, ts.Token)
	origin := anon.Origin()
	open := ts.publish(t, c, "open-letter", pb.Policy_POLICY_OPEN)
	curated := ts.publish(t, c, "curated-letter", pb.Policy_POLICY_CURATED)
	key := client.SignerKey(randomBytes(t, 32), origin, open.GetId())
	u := func(i uint64) *uint64 { return &i }

	for _, tc := range []struct {
		name   string
		c      *client.Client
		letter *pb.Letter
		signer func(name string, supersedes *uint64) client.Signer
		// first, fixed and again are the names of the endorsement, its
		// correction and a later endorsement with the same key.
		first, fixed, again string
	}{
		{"same signer key", anon, open, func(name string, s *uint64) client.Signer {
			return client.Signer{Fields: records.Fields{Name: name}, SignerKey: key, Supersedes: s}
		}, "Ana Typo", "Ana Tipo", "Ana Again"},
		{"same fields, new verification", c, curated, func(name string, s *uint64) client.Signer {
			v := pb.Verification_VERIFICATION_NONE
			if s != nil {
				v = pb.Verification_VERIFICATION_IN_PERSON
			}
			return client.Signer{Fields: records.Fields{Name: "Met In Person"}, Verification: v, OrganiserKey: ts.Org, Supersedes: s}
		}, "Met In Person", "Met In Person", "Met In Person"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, err := tc.c.Endorse(ctx, client.NewEndorsement(origin, tc.letter, tc.signer(tc.first, nil)), "")
			if err != nil {
				t.Fatal(err)
			}
			idx := old.Verified.Index
			fixed, err := tc.c.Endorse(ctx, client.NewEndorsement(origin, tc.letter, tc.signer(tc.fixed, u(idx))), "")
			if err != nil {
				t.Fatalf("correction: %v", err)
			}
			if fixed.Duplicate || fixed.Verified.Index == idx {
				t.Fatalf("the correction came back as a duplicate of %d (index %d)", idx, fixed.Verified.Index)
			}
			if st := endorsementState(t, anon, idx); st.GetState() != pb.EndorsementState_ENDORSEMENT_STATE_SUPERSEDED {
				t.Errorf("old: %v, want superseded", st.GetState())
			}
			entries, _ := rosterAll(t, anon, tc.letter.GetId(), 0)
			if len(entries) != 1 || entries[0].GetIndex() != fixed.Verified.Index || entries[0].GetDisclosure().GetName() != tc.fixed {
				t.Errorf("roster %v, want only %q at %d", entries, tc.fixed, fixed.Verified.Index)
			}
			// The key still deduplicates: the correction now holds it. An
			// exact repeat of the correction is its duplicate; one without
			// supersedes differs in a signed field and is refused (issue 10:
			// a duplicate is exact or refused).
			dup, err := tc.c.Endorse(ctx, client.NewEndorsement(origin, tc.letter, tc.signer(tc.again, u(idx))), "")
			if err != nil {
				t.Fatal(err)
			}
			if !dup.Duplicate || dup.Verified.Index != fixed.Verified.Index {
				t.Errorf("after the correction, the same key gives duplicate %v at %d, want the correction at %d", dup.Duplicate, dup.Verified.Index, fixed.Verified.Index)
			}
			_, err = tc.c.Endorse(ctx, client.NewEndorsement(origin, tc.letter, tc.signer(tc.again, nil)), "")
			wantCode(t, err, codes.InvalidArgument)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("the record at %d", fixed.Verified.Index)) {
				t.Errorf("the conflict does not tell its writer where the earlier record is: %v", err)
			}
		})
	}
}

// TestLetterStatus closes a letter and records its delivery.
func TestLetterStatus(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	origin := c.Origin()
	letter := ts.publish(t, c, "status-letter", pb.Policy_POLICY_CURATED)
	endorse(t, c, ts.endorsement(origin, letter, "Before Closing", ""))

	closed, err := c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "", ts.Org)
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	info := func() *pb.LetterInfo {
		t.Helper()
		resp, err := c.API().GetLetter(ctx, &pb.GetLetterRequest{LetterId: letter.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetLetter()
	}
	if li := info(); li.GetStatus() != pb.Status_STATUS_CLOSED || li.ClosedIndex == nil || li.GetClosedIndex() != closed.Verified.Index {
		t.Errorf("after closing: status %v, closed at %v; want closed at %d", li.GetStatus(), li.ClosedIndex, closed.Verified.Index)
	}
	before := logSize(t, c)
	t.Run("a closed letter refuses endorsements", func(t *testing.T) {
		_, err := c.Endorse(ctx, ts.endorsement(origin, letter, "After Closing", ""), "")
		wantCode(t, err, codes.FailedPrecondition)
		out := streamEndorse(t, c, []*client.Endorsement{ts.endorsement(origin, letter, "Bulk After Closing", "")})
		if out[0].rej == nil || codes.Code(out[0].rej.GetCode()) != codes.FailedPrecondition {
			t.Errorf("bulk endorsement of a closed letter: %v, want FailedPrecondition", out[0])
		}
		// A retry of the same close returns it; another close is refused.
		again, err := c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "", ts.Org)
		if err != nil || !again.Duplicate || again.Verified.Index != closed.Verified.Index {
			t.Errorf("retried close = %v, %v; want the first close at %d", again, err, closed.Verified.Index)
		}
		_, err = c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_CLOSED, "closed twice", ts.Org)
		wantCode(t, err, codes.FailedPrecondition)
		if got := logSize(t, c); got != before {
			t.Errorf("the log grew from %d to %d", before, got)
		}
	})

	t.Run("delivery is recorded after closing", func(t *testing.T) {
		note := "Handed to the council clerk, Riverside Street, 3 March"
		delivered, err := c.SetLetterStatus(ctx, letter.GetId(), pb.Status_STATUS_DELIVERED, note, ts.Org)
		if err != nil {
			t.Fatalf("delivered: %v", err)
		}
		if got := delivered.Verified.Record.GetLetterStatus().GetNote(); got != note {
			t.Errorf("the record's note is %q", got)
		}
		li := info()
		if li.GetStatus() != pb.Status_STATUS_DELIVERED || li.GetDeliveredIndex() != delivered.Verified.Index || li.GetClosedIndex() != closed.Verified.Index {
			t.Errorf("status %v, delivered at %v, closed at %v; want delivered at %d, closed at %d",
				li.GetStatus(), li.DeliveredIndex, li.ClosedIndex, delivered.Verified.Index, closed.Verified.Index)
		}
		if li.GetCounts().GetPublic() != 1 {
			t.Errorf("counts %v, want 1 public", li.GetCounts())
		}
		_, err = c.Endorse(ctx, ts.endorsement(origin, letter, "After Delivery", ""), "")
		wantCode(t, err, codes.FailedPrecondition)
	})

	t.Run("delivery without closing leaves the letter open", func(t *testing.T) {
		other := ts.publish(t, c, "delivered-open", pb.Policy_POLICY_CURATED)
		d, err := c.SetLetterStatus(ctx, other.GetId(), pb.Status_STATUS_DELIVERED, "first delivery", ts.Org)
		if err != nil {
			t.Fatal(err)
		}
		late := endorse(t, c, ts.endorsement(origin, other, "Signed After Delivery", ""))
		if late.Verified.Index <= d.Verified.Index {
			t.Errorf("the late endorsement is at %d, before the delivery at %d", late.Verified.Index, d.Verified.Index)
		}
		resp, err := c.API().ListLetters(ctx, &pb.ListLettersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]pb.Status{}
		for _, li := range resp.GetLetters() {
			got[li.GetLetterId()] = li.GetStatus()
		}
		if got[letter.GetId()] != pb.Status_STATUS_DELIVERED || got[other.GetId()] != pb.Status_STATUS_DELIVERED {
			t.Errorf("ListLetters statuses %v", got)
		}
	})
}

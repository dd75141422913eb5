package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// testAdmission: an admission's reads see its own writes, seqs grow, and
// a failed admission leaves nothing behind.
func testAdmission(t *testing.T, f *fixture) {
	f.letter("l")
	k := key("a person")
	var first, second int64
	f.admit(func(tx ledger.AdmitTx) error {
		var err error
		if first, err = tx.Insert(f.ctx, f.newEndorsement("l", "First", pb.Visibility_VISIBILITY_PUBLIC, k)); err != nil {
			return err
		}
		if seq, found, err := tx.LookupDedup(f.ctx, k); err != nil || !found || seq != first {
			return fmt.Errorf("within the admission, the key finds %d (%v, %v), want %d", seq, found, err, first)
		}
		e, err := tx.EntryBySeq(f.ctx, first)
		if err != nil || e == nil || e.Kind != ledger.KindEndorsement || e.LetterID != "l" || e.Index != ledger.NoIndex {
			return fmt.Errorf("within the admission, EntryBySeq(%d) = %+v, %v", first, e, err)
		}
		second, err = tx.Insert(f.ctx, f.newEndorsement("l", "Second", pb.Visibility_VISIBILITY_PRIVATE))
		return err
	})
	if second <= first {
		t.Errorf("seqs %d then %d: want them growing", first, second)
	}
	if seq, found := f.lookup(k); !found || seq != first {
		t.Errorf("after the admission, the key finds %d (%v), want %d", seq, found, first)
	}

	failed := errors.New("the admission fails")
	lost := key("never admitted")
	err := f.s.Admit(f.ctx, func(tx ledger.AdmitTx) error {
		if _, err := tx.Insert(f.ctx, f.newEndorsement("l", "Lost", pb.Visibility_VISIBILITY_PUBLIC, lost)); err != nil {
			return err
		}
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("Admit returned %v, want the error of its function", err)
	}
	if _, found := f.lookup(lost); found {
		t.Error("a failed admission left its dedup key behind")
	}
	rest, err := f.s.Unassigned(f.ctx, 0)
	if err != nil || len(rest) != 3 {
		t.Errorf("after a failed admission the store holds %d entries (%v), want 3", len(rest), err)
	}
}

// testDedupKeys: a withdrawal, a redaction and a correction free the
// target's dedup keys but not its permanent keys; a key inserted again
// passes to the correction, and marking the old entry does not free it.
func testDedupKeys(t *testing.T, f *fixture) {
	f.letter("l")
	for what, by := range map[ledger.Target]string{ledger.TargetWithdrawn: "withdrawal", ledger.TargetRedacted: "redaction", ledger.TargetSuperseded: "correction"} {
		t.Run(by, func(t *testing.T) {
			name := fmt.Sprintf("Person %d", what)
			own, permanent := key("fields of "+name), key("commitment key of "+name)
			n := f.newEndorsement("l", name, pb.Visibility_VISIBILITY_PUBLIC, own)
			n.PermanentKeys = [][]byte{permanent}
			seq := f.insert(n)
			for _, k := range [][]byte{own, permanent} {
				if got, found := f.lookup(k); !found || got != seq {
					t.Fatalf("before the mark a key finds %d (%v), want %d", got, found, seq)
				}
			}
			f.act(what, "l", seq, false)
			if _, found := f.lookup(own); found {
				t.Errorf("after the mark, the endorsement's dedup key is still found")
			}
			if got, found := f.lookup(permanent); !found || got != seq {
				t.Errorf("after the mark, the permanent key finds %d (%v), want %d", got, found, seq)
			}
		})
	}
	t.Run("a correction takes over a shared key", func(t *testing.T) {
		shared, own := key("signer key"), key("old fields")
		old := f.endorse("l", "Old", shared, own)
		var correction int64
		f.admit(func(tx ledger.AdmitTx) error {
			var err error
			if correction, err = tx.Insert(f.ctx, f.newEndorsement("l", "Corrected", pb.Visibility_VISIBILITY_PUBLIC, shared)); err != nil {
				return err
			}
			return tx.Mark(f.ctx, old, ledger.TargetSuperseded, correction, false)
		})
		if seq, found := f.lookup(shared); !found || seq != correction {
			t.Errorf("the shared key finds %d (%v), want the correction %d", seq, found, correction)
		}
		if _, found := f.lookup(own); found {
			t.Error("the superseded endorsement's own key is still found")
		}
	})
}

// testMarks: what admission reads of a marked endorsement, and its state
// at tree sizes.
func testMarks(t *testing.T, f *fixture) {
	l := f.letter("l")
	a, b := f.endorse("l", "Alpha"), f.endorse("l", "Beta")
	f.assign(l, a, b) // 0, 1, 2
	if e := f.endorsementAt(0); e != nil {
		t.Errorf("EndorsementByIndex(0), a letter: %+v, want nil", e)
	}
	e := f.endorsementAt(1)
	if e == nil || e.Seq != a || e.Index != 1 || e.Endorsement.GetLetterId() != "l" || e.WithdrawnBy != 0 || e.SecretSpent {
		t.Fatalf("EndorsementByIndex(1) = %+v, want Alpha, unmarked", e)
	}
	w := f.act(ledger.TargetWithdrawn, "l", a, true)
	r := f.act(ledger.TargetRedacted, "l", b, false)
	f.assign(w, r) // 3, 4
	if e := f.endorsementAt(1); e == nil || e.WithdrawnBy != w || !e.SecretSpent || e.RedactedBy != 0 {
		t.Errorf("after its withdrawal, EndorsementByIndex(1) = %+v, want withdrawn by %d with its secret spent", e, w)
	}
	if e := f.endorsementAt(2); e == nil || e.RedactedBy != r || e.SecretSpent || e.WithdrawnBy != 0 {
		t.Errorf("after its redaction, EndorsementByIndex(2) = %+v, want redacted by %d", e, r)
	}
	for _, tc := range []struct {
		index, size             uint64
		withdrawnBy, redactedBy int64
	}{
		{1, 3, -1, -1}, {1, 4, 3, -1}, {2, 4, -1, -1}, {2, 5, -1, 4},
	} {
		st, err := f.s.Endorsement(f.ctx, tc.index, tc.size)
		if err != nil || st == nil || st.Index != tc.index || st.WithdrawnBy != tc.withdrawnBy || st.RedactedBy != tc.redactedBy || st.SupersededBy != -1 {
			t.Errorf("Endorsement(%d) at size %d = %+v, %v; want withdrawn by %d, redacted by %d", tc.index, tc.size, st, err, tc.withdrawnBy, tc.redactedBy)
		}
	}
	if st, err := f.s.Endorsement(f.ctx, 2, 2); st != nil || err != nil {
		t.Errorf("Endorsement(2) at size 2 = %+v, %v; want nil: it is not in that tree", st, err)
	}
	if st, err := f.s.Endorsement(f.ctx, 0, 5); st != nil || err != nil {
		t.Errorf("Endorsement(0), a letter, = %+v, %v; want nil", st, err)
	}
}

// testOrganiserKeys: a letter's organiser keys, as organiser changes set
// them, in admission and after it, in every way a store gives a letter.
func testOrganiserKeys(t *testing.T, f *fixture) {
	k1, k2, k3 := slices.Repeat([]byte{1}, 32), slices.Repeat([]byte{2}, 32), slices.Repeat([]byte{3}, 32)
	a := f.letter("alpha")
	other := f.letter("other")
	change := func(letter string) int64 {
		return f.insert(&ledger.NewEntry{Entry: f.entry(ledger.KindOrganiserChange, letter,
			encode(t, &pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: &pb.OrganiserChange{LetterId: letter, Key: k2}}}))})
	}
	want := func(l *ledger.LetterRow, seq int64, keys, revoked [][]byte) error {
		if l == nil || l.KeysSeq != seq || !slices.EqualFunc(l.OrganiserKeys, keys, slices.Equal) || !slices.EqualFunc(l.RevokedKeys, revoked, slices.Equal) {
			return fmt.Errorf("letter row %+v, want keys changed at %d to %x, revoked %x", l, seq, keys, revoked)
		}
		return nil
	}
	first := change("alpha")
	f.admit(func(tx ledger.AdmitTx) error {
		if l, err := tx.Letter(f.ctx, "alpha"); err != nil || want(l, 0, nil, nil) != nil {
			return fmt.Errorf("before any change: %+v, %v", l, err)
		}
		if err := tx.SetOrganiserKeys(f.ctx, "alpha", [][]byte{k1, k2}, nil, first); err != nil {
			return err
		}
		l, err := tx.Letter(f.ctx, "alpha")
		if err != nil {
			return err
		}
		return want(l, first, [][]byte{k1, k2}, nil)
	})
	second := change("alpha")
	// A letter admitted and changed in the same admission.
	var b, third int64
	f.admit(func(tx ledger.AdmitTx) error {
		if err := tx.SetOrganiserKeys(f.ctx, "alpha", [][]byte{k2, k3}, [][]byte{k1}, second); err != nil {
			return err
		}
		var err error
		rec := encode(t, &pb.Record{Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: "beta"}}})
		if b, err = tx.Insert(f.ctx, &ledger.NewEntry{Entry: f.entry(ledger.KindLetter, "beta", rec)}); err != nil {
			return err
		}
		rec = encode(t, &pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: &pb.OrganiserChange{LetterId: "beta", Key: k3}}})
		if third, err = tx.Insert(f.ctx, &ledger.NewEntry{Entry: f.entry(ledger.KindOrganiserChange, "beta", rec)}); err != nil {
			return err
		}
		return tx.SetOrganiserKeys(f.ctx, "beta", [][]byte{k3}, [][]byte{k2}, third)
	})
	f.admit(func(tx ledger.AdmitTx) error {
		for _, c := range []struct {
			id            string
			seq           int64
			keys, revoked [][]byte
		}{{"alpha", second, [][]byte{k2, k3}, [][]byte{k1}}, {"beta", third, [][]byte{k3}, [][]byte{k2}}, {"other", 0, nil, nil}} {
			l, err := tx.Letter(f.ctx, c.id)
			if err != nil {
				return err
			}
			if err := want(l, c.seq, c.keys, c.revoked); err != nil {
				return fmt.Errorf("%s in a later admission: %w", c.id, err)
			}
		}
		return nil
	})
	all, err := f.s.Letters(f.ctx)
	if err != nil || len(all) != 3 || all[0].Seq != a || all[1].Seq != other || all[2].Seq != b {
		t.Fatalf("Letters = %+v, %v", all, err)
	}
	if err := want(&all[0], second, [][]byte{k2, k3}, [][]byte{k1}); err != nil {
		t.Errorf("Letters: alpha: %v", err)
	}
	if err := want(&all[1], 0, nil, nil); err != nil {
		t.Errorf("Letters: other: %v", err)
	}
	if err := want(&all[2], third, [][]byte{k3}, [][]byte{k2}); err != nil {
		t.Errorf("Letters: beta: %v", err)
	}
	if us, ok := f.s.(ledger.UnorderedStore); ok {
		l, err := us.LetterByID(f.ctx, "alpha")
		if err != nil {
			t.Fatal(err)
		}
		if err := want(l, second, [][]byte{k2, k3}, [][]byte{k1}); err != nil {
			t.Errorf("LetterByID: %v", err)
		}
	}
}

// testLetters: a letter and its status, in admission and after it.
func testLetters(t *testing.T, f *fixture) {
	a := f.letter("alpha")
	var b int64
	f.admit(func(tx ledger.AdmitTx) error {
		if l, err := tx.Letter(f.ctx, "beta"); err != nil || l != nil {
			return fmt.Errorf("Letter(beta) before it is admitted = %+v, %v", l, err)
		}
		var err error
		rec := encode(t, &pb.Record{Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: "beta"}}})
		if b, err = tx.Insert(f.ctx, &ledger.NewEntry{Entry: f.entry(ledger.KindLetter, "beta", rec)}); err != nil {
			return err
		}
		l, err := tx.Letter(f.ctx, "beta")
		if err != nil || l == nil || l.Seq != b || l.Index != ledger.NoIndex {
			return fmt.Errorf("Letter(beta) in the admission that made it = %+v, %v", l, err)
		}
		return nil
	})
	f.assign(a)
	closed := f.insert(&ledger.NewEntry{Entry: f.entry(ledger.KindStatus, "alpha",
		encode(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: "alpha", Status: pb.Status_STATUS_CLOSED}}}))})
	f.admit(func(tx ledger.AdmitTx) error {
		if err := tx.SetLetterStatus(f.ctx, "alpha", pb.Status_STATUS_CLOSED, closed); err != nil {
			return err
		}
		if err := tx.SetLetterStatus(f.ctx, "alpha", pb.Status_STATUS_DELIVERED, closed+1); err != nil {
			return err
		}
		// A second close does not move the first.
		return tx.SetLetterStatus(f.ctx, "alpha", pb.Status_STATUS_CLOSED, closed+2)
	})
	f.admit(func(tx ledger.AdmitTx) error {
		l, err := tx.Letter(f.ctx, "alpha")
		if err != nil || l == nil || l.Seq != a || l.Index != 0 || l.ClosedSeq != closed || l.DeliveredSeq != closed+1 {
			return fmt.Errorf("Letter(alpha) = %+v, %v; want index 0, closed at %d, delivered at %d", l, err, closed, closed+1)
		}
		return nil
	})
	all, err := f.s.Letters(f.ctx)
	if err != nil || len(all) != 2 || all[0].Seq != a || all[1].Seq != b || all[0].ClosedSeq != closed || all[1].Index != ledger.NoIndex {
		t.Fatalf("Letters = %+v, %v", all, err)
	}
	for i, id := range []string{"alpha", "beta"} {
		rec, err := decodeLetter(all[i].Record)
		if err != nil || rec != id {
			t.Errorf("Letters[%d] holds the record of %q (%v), want %q", i, rec, err, id)
		}
	}
}

// testWatermark: Assign, Unassign, Unassigned, EntryByIndex, IndexOfSeq.
func testWatermark(t *testing.T, f *fixture) {
	if w, err := f.s.Watermark(f.ctx); w != 0 || err != nil {
		t.Fatalf("a new store's watermark is %d (%v), want 0", w, err)
	}
	l := f.letter("l")
	a, b, c := f.endorse("l", "A"), f.endorse("l", "B"), f.endorse("l", "C")
	f.assign(l, a)
	if err := f.s.Assign(f.ctx, []ledger.Assignment{{Seq: c, Index: 3}}, 1); err != nil {
		t.Fatal(err)
	}
	if w, err := f.s.Watermark(f.ctx); w != 2 || err != nil {
		t.Errorf("after an Assign with a lower watermark, the watermark is %d (%v), want 2: it never moves back", w, err)
	}
	seqsOf := func(es []ledger.Entry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	if rest, err := f.s.Unassigned(f.ctx, 2); err != nil || !slices.Equal(seqsOf(rest), []int64{b, c}) {
		t.Errorf("Unassigned(2) = %v, %v; want %v in seq order", seqsOf(rest), err, []int64{b, c})
	}
	if e, err := f.s.EntryByIndex(f.ctx, 3); err != nil || e == nil || e.Seq != c || e.Index != 3 {
		t.Errorf("EntryByIndex(3) = %+v, %v; want seq %d", e, err, c)
	}
	if e, err := f.s.EntryByIndex(f.ctx, 2); err != nil || e != nil {
		t.Errorf("EntryByIndex(2) = %+v, %v; want nil", e, err)
	}
	if i, err := f.s.IndexOfSeq(f.ctx, b); err != nil || i != ledger.NoIndex {
		t.Errorf("IndexOfSeq(%d) = %d, %v; want NoIndex", b, i, err)
	}
	if i, err := f.s.IndexOfSeq(f.ctx, a); err != nil || i != 1 {
		t.Errorf("IndexOfSeq(%d) = %d, %v; want 1", a, i, err)
	}
	// The log lost everything from index 1 on.
	if err := f.s.Unassign(f.ctx, 1); err != nil {
		t.Fatal(err)
	}
	if w, err := f.s.Watermark(f.ctx); w != 1 || err != nil {
		t.Errorf("after Unassign(1), the watermark is %d (%v), want 1", w, err)
	}
	if rest, err := f.s.Unassigned(f.ctx, 1); err != nil || !slices.Equal(seqsOf(rest), []int64{a, b, c}) {
		t.Errorf("after Unassign(1), Unassigned(1) = %v, %v; want %v", seqsOf(rest), err, []int64{a, b, c})
	}
	if i, err := f.s.IndexOfSeq(f.ctx, l); err != nil || i != 0 {
		t.Errorf("after Unassign(1), IndexOfSeq of the letter = %d, %v; want 0", i, err)
	}
}

// testRoster: the endorsements that count at a tree size, their counts,
// and paging.
func testRoster(t *testing.T, f *fixture) {
	l := f.letter("l")
	a, b := f.endorse("l", "Alpha"), f.endorse("l", "Beta")
	p := f.insert(f.newEndorsement("l", "Private", pb.Visibility_VISIBILITY_PRIVATE))
	r := f.endorse("l", "Redacted")
	other := f.letter("other")
	o := f.endorse("other", "Elsewhere")
	f.assign(l, a, b, p, r, other, o) // 0 … 6
	w := f.act(ledger.TargetWithdrawn, "l", a, false)
	s := f.act(ledger.TargetSuperseded, "l", b, false)
	red := f.act(ledger.TargetRedacted, "l", r, false)
	f.assign(w, s, red) // 7, 8 (the correction), 9
	for _, tc := range []struct {
		size  uint64
		names []string
		want  ledger.Counts
	}{
		{2, []string{"Alpha"}, ledger.Counts{Public: 1}},
		{5, []string{"Alpha", "Beta", "", ""}, ledger.Counts{Public: 2, Private: 1, Redacted: 1}},
		{8, []string{"Beta", "", ""}, ledger.Counts{Public: 1, Private: 1, Redacted: 1, Withdrawn: 1}},
		{10, []string{"", "", "Correction of " + fmt.Sprint(b)}, ledger.Counts{Public: 1, Private: 1, Redacted: 1, Withdrawn: 1, Superseded: 1}},
	} {
		t.Run(fmt.Sprintf("size %d", tc.size), func(t *testing.T) {
			rows, c, err := f.s.Roster(f.ctx, "l", tc.size, -1, 100)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(rows), tc.names) || c != tc.want {
				t.Errorf("roster %q with counts %+v, want %q and %+v", names(rows), c, tc.names, tc.want)
			}
			for _, row := range rows {
				if row.Redacted != (row.Index == 4) {
					t.Errorf("the row at %d says redacted %v", row.Index, row.Redacted)
				}
				if row.Index == 3 && row.Disclosure != nil {
					t.Error("the private endorsement has a disclosure in the roster")
				}
			}
		})
	}
	rows, _, err := f.s.Roster(f.ctx, "l", 10, 3, 1)
	if err != nil || len(rows) != 1 || rows[0].Index != 4 {
		t.Errorf("the page of one after index 3 = %+v, %v; want the endorsement at 4", rows, err)
	}
	if rows, c, err := f.s.Roster(f.ctx, "other", 10, -1, 0); err != nil || len(rows) != 0 || c != (ledger.Counts{Public: 1}) {
		t.Errorf("the counts alone of another letter = %+v, %+v, %v; want one public", rows, c, err)
	}
}

// testFind: public endorsements that count, by folded name.
func testFind(t *testing.T, f *fixture) {
	l := f.letter("l")
	a, b, c := f.endorse("l", "Hanna Łapińska"), f.endorse("l", "Hanna Nowak"), f.endorse("l", "Jan 100%_done")
	p := f.insert(f.newEndorsement("l", "Hanna Private", pb.Visibility_VISIBILITY_PRIVATE))
	f.assign(l, a, b, c, p)
	w := f.act(ledger.TargetWithdrawn, "l", b, false)
	f.assign(w)
	for _, tc := range []struct {
		query string
		size  uint64
		want  []string
	}{
		{"hanna", 5, []string{"Hanna Łapińska", "Hanna Nowak"}},
		{"hanna", 6, []string{"Hanna Łapińska"}},
		{"hanna", 2, []string{"Hanna Łapińska"}},
		{"100%_", 6, []string{"Jan 100%_done"}},
		{"%", 6, []string{"Jan 100%_done"}},
		{"nobody", 6, nil},
	} {
		rows, err := f.s.Find(f.ctx, "l", tc.query, tc.size, 10)
		if err != nil || !slices.Equal(names(rows), tc.want) {
			t.Errorf("Find(%q) at size %d = %q, %v; want %q", tc.query, tc.size, names(rows), err, tc.want)
		}
	}
}

// testDisclosures: the public, unredacted disclosures of a range, the
// redacted endorsements, and a purge.
func testDisclosures(t *testing.T, f *fixture) {
	l := f.letter("l")
	a := f.endorse("l", "Alpha")
	p := f.insert(f.newEndorsement("l", "Private", pb.Visibility_VISIBILITY_PRIVATE))
	r := f.endorse("l", "Redacted")
	f.assign(l, a, p, r)
	red := f.act(ledger.TargetRedacted, "l", r, false)
	f.assign(red)
	ds, err := f.s.Disclosures(f.ctx, 0, 5)
	if err != nil || len(ds) != 1 || ds[0].Index != 1 || ds[0].Disclosure.GetName() != "Alpha" ||
		ds[0].Disclosure.GetAffiliation() != "Affiliation of Alpha" || string(ds[0].Disclosure.GetSalt()) != string(key("salt of Alpha")) {
		t.Fatalf("Disclosures(0, 5) = %+v, %v; want Alpha's alone", ds, err)
	}
	if ds, err := f.s.Disclosures(f.ctx, 2, 5); err != nil || len(ds) != 0 {
		t.Errorf("Disclosures(2, 5) = %+v, %v; want none", ds, err)
	}
	if got, err := f.s.Redacted(f.ctx, 0, 5); err != nil || len(got) != 1 || !got[3] {
		t.Errorf("Redacted(0, 5) = %v, %v; want {3}", got, err)
	}
	if got, err := f.s.Redacted(f.ctx, 0, 3); err != nil || len(got) != 0 {
		t.Errorf("Redacted(0, 3) = %v, %v; want none", got, err)
	}
	if err := f.s.Purge(f.ctx); err != nil {
		t.Errorf("Purge: %v", err)
	}
}

// testTokens: tokens are found by hash until revoked, revoked once, and
// listed.
func testTokens(t *testing.T, f *fixture) {
	ts := f.s.Tokens()
	a := ledger.Token{ID: "a", Hash: key("token a"), Name: "all letters", Created: 1}
	b := ledger.Token{ID: "b", Hash: key("token b"), Name: "two letters", Letters: []string{"one", "two"}, Created: 2}
	for _, tok := range []ledger.Token{a, b} {
		if err := ts.Create(f.ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.Create(f.ctx, ledger.Token{ID: "c", Hash: key("token a"), Name: "same hash"}); err == nil {
		t.Error("a second token with the same hash was stored")
	}
	got, err := ts.ByHash(f.ctx, key("token b"))
	if err != nil || got == nil || got.ID != "b" || got.Name != "two letters" || !slices.Equal(got.Letters, []string{"one", "two"}) {
		t.Fatalf("ByHash(b) = %+v, %v", got, err)
	}
	if got, err := ts.ByHash(f.ctx, key("unknown")); got != nil || err != nil {
		t.Errorf("ByHash(unknown) = %+v, %v; want nil, nil", got, err)
	}
	if ok, err := ts.Revoke(f.ctx, "a", 100); !ok || err != nil {
		t.Fatalf("Revoke(a) = %v, %v", ok, err)
	}
	if ok, err := ts.Revoke(f.ctx, "a", 200); ok || err != nil {
		t.Errorf("a second Revoke(a) = %v, %v; want false", ok, err)
	}
	if ok, err := ts.Revoke(f.ctx, "nobody", 200); ok || err != nil {
		t.Errorf("Revoke of an unknown id = %v, %v; want false", ok, err)
	}
	if got, err := ts.ByHash(f.ctx, key("token a")); got != nil || err != nil {
		t.Errorf("ByHash of a revoked token = %+v, %v; want nil", got, err)
	}
	all, err := ts.List(f.ctx)
	if err != nil || len(all) != 2 || all[0].ID != "a" || all[0].Revoked != 100 || all[1].Revoked != 0 || len(all[0].Letters) != 0 {
		t.Errorf("List = %+v, %v", all, err)
	}
}

// testUnordered: what a store of a log that orders entries itself answers.
func testUnordered(t *testing.T, f *fixture) {
	us, ok := f.s.(ledger.UnorderedStore)
	if !ok {
		t.Skip("not a ledger.UnorderedStore")
	}
	l := f.letter("l")
	a := f.insert(f.newEndorsement("l", "A", pb.Visibility_VISIBILITY_PUBLIC))
	b := f.insert(f.newEndorsement("l", "B", pb.Visibility_VISIBILITY_PUBLIC))
	f.letter("m")
	f.assign(l, a)
	unindexed, err := us.Unindexed(f.ctx)
	if err != nil || len(unindexed) != 2 || unindexed[0].Seq != b || unindexed[1].Kind != ledger.KindLetter {
		t.Fatalf("Unindexed = %+v, %v; want B and the letter m", unindexed, err)
	}
	entryA, err := f.s.EntryByIndex(f.ctx, 1)
	if err != nil || entryA == nil {
		t.Fatal(err)
	}
	got, err := us.LeafEntries(f.ctx, [][]byte{unindexed[0].LeafHash, key("no such leaf"), entryA.LeafHash})
	want := []ledger.LeafEntry{{Seq: b, Index: ledger.NoIndex}, {Seq: 0, Index: ledger.NoIndex}, {Seq: a, Index: 1}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("LeafEntries = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct {
		seq  int64
		want bool
	}{{a, false}, {b, false}, {b + 1, true}} {
		if busy, err := us.UnindexedBefore(f.ctx, "l", tc.seq); err != nil || busy != tc.want {
			t.Errorf("UnindexedBefore(l, %d) = %v, %v; want %v", tc.seq, busy, err, tc.want)
		}
	}
	if row, err := us.LetterByID(f.ctx, "l"); err != nil || row == nil || row.Seq != l || row.Index != 0 || len(row.Record) == 0 {
		t.Errorf("LetterByID(l) = %+v, %v", row, err)
	}
	if row, err := us.LetterByID(f.ctx, "none"); err != nil || row != nil {
		t.Errorf("LetterByID(none) = %+v, %v; want nil", row, err)
	}
}

// decodeLetter returns the id of the letter a record holds.
func decodeLetter(b []byte) (string, error) {
	r := new(pb.Record)
	if err := proto.Unmarshal(b, r); err != nil {
		return "", err
	}
	return r.GetLetter().GetId(), nil
}

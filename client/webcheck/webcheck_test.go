package webcheck_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/signing"
	"github.com/undersigned/undersigned/client/webcheck"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

const origin = "example.org/webcheck"

// testLog is a log kept in memory, signed like the server's.
type testLog struct {
	t       *testing.T
	signer  note.Signer
	v       note.Verifier
	entries [][]byte
	hashes  []tlog.Hash
	org     ed25519.PrivateKey
	letter  *pb.Letter
	// cosigners cosign the checkpoints signed from then on.
	cosigners []note.Signer
	// foreign are the indexes the log's server marks as foreign.
	foreign map[uint64]bool
}

func newTestLog(t *testing.T) *testLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	l := &testLog{t: t, signer: s, v: v, org: org}
	text := "Keep the library open.\n"
	l.letter = &pb.Letter{Id: "library", Title: "Library", Text: text, TextDigest: records.TextDigest(text), Language: "en",
		Policy: pb.Policy_POLICY_OPEN, OrganiserKeys: [][]byte{org.Public().(ed25519.PublicKey)}}
	records.SignLetter(org, origin, l.letter)
	l.add(&pb.Record{Kind: &pb.Record_Letter{Letter: l.letter}})
	return l
}

func (l *testLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

func (l *testLog) add(r *pb.Record) uint64 {
	r.Version = records.Version
	b, err := records.Encode(r)
	if err != nil {
		l.t.Fatal(err)
	}
	n := int64(len(l.entries))
	h, err := tlog.StoredHashes(n, b, l.reader())
	if err != nil {
		l.t.Fatal(err)
	}
	l.hashes = append(l.hashes, h...)
	l.entries = append(l.entries, b)
	return uint64(n)
}

func (l *testLog) checkpoint(size uint64) []byte {
	root, err := tlog.TreeHash(int64(size), l.reader())
	if err != nil {
		l.t.Fatal(err)
	}
	cp := log.Checkpoint{Origin: origin, Size: size, Hash: root[:]}
	signed, err := note.Sign(&note.Note{Text: string(cp.Marshal())}, append([]note.Signer{l.signer}, l.cosigners...)...)
	if err != nil {
		l.t.Fatal(err)
	}
	return signed
}

// receipt returns the receipt of entry i in the tree of size.
func (l *testLog) receipt(i, size uint64, extra *pb.ReceiptExtra) []byte {
	p, err := tlog.ProveRecord(int64(size), int64(i), l.reader())
	if err != nil {
		l.t.Fatal(err)
	}
	r := &receipt.Receipt{Index: i, Checkpoint: l.checkpoint(size), Extra: extra}
	for _, h := range p {
		r.Proof = append(r.Proof, bytes.Clone(h[:]))
	}
	if r.Extra == nil {
		r.Extra = &pb.ReceiptExtra{}
	}
	r.Extra.Record = l.entries[i]
	b, err := r.Marshal()
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

// bundles returns the entry bundles of the whole log, in order.
func (l *testLog) bundles() [][]byte {
	var out [][]byte
	for from := 0; from < len(l.entries); from += 256 {
		var b []byte
		for _, e := range l.entries[from:min(from+256, len(l.entries))] {
			b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
			b = append(b, e...)
		}
		out = append(out, b)
	}
	return out
}

// endorse adds an endorsement by the organiser and returns its index and
// what its receipt carries.
func (l *testLog) endorse(name string, supersedes *uint64) (uint64, *pb.ReceiptExtra) {
	e := signing.NewEndorsement(origin, l.letter, signing.Signer{Fields: records.Fields{Name: name}, OrganiserKey: l.org, Supersedes: supersedes})
	i := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
	return i, &pb.ReceiptExtra{Disclosure: e.Disclosure, WithdrawalSecret: e.WithdrawalSecret}
}

// foreignMarks returns the foreign marks of bundle n, as the server
// serves them.
func (l *testLog) foreignMarks(n uint64) []byte {
	marks := []uint64{}
	for i := n * 256; i < min((n+1)*256, uint64(len(l.entries))); i++ {
		if l.foreign[i] {
			marks = append(marks, i)
		}
	}
	b, err := json.Marshal(marks)
	if err != nil {
		l.t.Fatal(err)
	}
	return b
}

func (l *testLog) load(t *testing.T) *webcheck.Log {
	wl, err := webcheck.NewLog(l.v, l.checkpoint(uint64(len(l.entries))))
	if err != nil {
		t.Fatal(err)
	}
	paths := wl.BundlePaths()
	bundles := l.bundles()
	if len(paths) != len(bundles) || len(wl.ForeignPaths()) != len(bundles) {
		t.Fatalf("%d bundle paths and %d foreign paths for %d bundles", len(paths), len(wl.ForeignPaths()), len(bundles))
	}
	for n, b := range bundles {
		if err := wl.AddBundle(b, l.foreignMarks(uint64(n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := wl.Complete(); err != nil {
		t.Fatal(err)
	}
	return wl
}

func TestVerify(t *testing.T) {
	l := newTestLog(t)
	type held struct {
		rcpt []byte
		want webcheck.State
	}
	var receipts = map[string]held{}
	// Enough entries for two bundles, so that the second one is partial.
	for i := 0; i < 300; i++ {
		l.endorse(fmt.Sprintf("Signer %d", i), nil)
	}
	counted, extra := l.endorse("Łapińska Hanna", nil)
	withdrawn, wextra := l.endorse("Withdrawn Signer", nil)
	redacted, rextra := l.endorse("Redacted Signer", nil)
	replaced, pextra := l.endorse("Typo Signr", nil)
	size := uint64(len(l.entries))
	receipts["counted"] = held{l.receipt(counted, size, extra), webcheck.Counted}
	receipts["withdrawn"] = held{l.receipt(withdrawn, size, wextra), webcheck.Withdrawn}
	receipts["redacted"] = held{l.receipt(redacted, size, rextra), webcheck.Redacted}
	receipts["superseded"] = held{l.receipt(replaced, size, pextra), webcheck.Superseded}
	leaf := func(i uint64) []byte { return receipt.LeafHash(l.entries[i]) }
	l.add(&pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: withdrawn, TargetLeafHash: leaf(withdrawn),
		Reason: pb.Reason_REASON_SIGNER_REQUEST, Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: wextra.GetWithdrawalSecret()}}}}})
	l.add(&pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: redacted, TargetLeafHash: leaf(redacted),
		Reason: pb.Reason_REASON_SAFETY, Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: rextra.GetWithdrawalSecret()}}}}})
	// A withdrawal naming the right index with another leaf hash does
	// nothing.
	l.add(&pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: counted, TargetLeafHash: leaf(0),
		Reason: pb.Reason_REASON_SIGNER_REQUEST}}})
	l.endorse("Typo Signer", &replaced)
	// The newest receipt's checkpoint is the latest one.
	last, lextra := l.endorse("Last Signer", nil)
	receipts["latest"] = held{l.receipt(last, uint64(len(l.entries)), lextra), webcheck.Counted}
	wl := l.load(t)
	for name, h := range receipts {
		got := webcheck.Verify(l.v, h.rcpt, wl)
		if got.State != h.want {
			t.Errorf("%s: %+v, want %s", name, got, h.want)
		}
		if off := webcheck.Verify(l.v, h.rcpt, nil); off.State != webcheck.Included {
			t.Errorf("%s offline: %+v, want included", name, off)
		}
	}
	got := webcheck.Verify(l.v, receipts["counted"].rcpt, wl)
	if got.Name != "Łapińska Hanna" || got.Index != counted || got.Letter != "library" || got.CheckpointSize != size || got.LatestSize != uint64(len(l.entries)) {
		t.Errorf("counted: %+v", got)
	}
	if got := webcheck.Verify(l.v, receipts["withdrawn"].rcpt, wl); got.By == nil || *got.By != size {
		t.Errorf("withdrawn: by %v, want %d", got.By, size)
	}
	// One byte changed anywhere makes it invalid.
	rc := receipts["counted"].rcpt
	for _, part := range []string{"index ", "\n\n", "— "} {
		b := bytes.Clone(rc)
		i := bytes.Index(b, []byte(part)) + len(part) + 2
		b[i] ^= 1
		if got := webcheck.Verify(l.v, b, wl); got.State != webcheck.Invalid || got.Reason == "" {
			t.Errorf("changed after %q: %+v, want invalid with a reason", part, got)
		}
	}
}

// TestVerifyFork: a log that shows another history than the one the
// receipt was signed in is caught, though it is consistent with itself.
func TestVerifyFork(t *testing.T) {
	a := newTestLog(t)
	i, extra := a.endorse("Ales", nil)
	rcpt := a.receipt(i, uint64(len(a.entries)), extra)
	// The same log key, a history without Ales.
	b := &testLog{t: t, signer: a.signer, v: a.v, org: a.org, letter: a.letter}
	b.entries, b.hashes = [][]byte{a.entries[0]}, a.hashes[:1:1]
	b.endorse("Someone Else", nil)
	b.endorse("Someone Else Again", nil)
	got := webcheck.Verify(a.v, rcpt, b.load(t))
	if got.State != webcheck.Invalid || !strings.Contains(got.Reason, "two histories") {
		t.Errorf("a receipt of another history: %+v", got)
	}
}

func TestLogRefusesWrongEntries(t *testing.T) {
	l := newTestLog(t)
	for i := 0; i < 5; i++ {
		l.endorse(fmt.Sprintf("Signer %d", i), nil)
	}
	wl, err := webcheck.NewLog(l.v, l.checkpoint(uint64(len(l.entries))))
	if err != nil {
		t.Fatal(err)
	}
	b := l.bundles()[0]
	b[len(b)-3] ^= 1
	if err := wl.AddBundle(b, []byte("[]")); err != nil {
		t.Fatal(err)
	}
	if err := wl.Complete(); err == nil {
		t.Error("Complete accepted entries that do not give the checkpoint's root")
	}
	other, _, _ := note.GenerateKey(rand.Reader, origin)
	_ = other
	if _, err := webcheck.NewLog(l.v, []byte("not a checkpoint\n")); err == nil {
		t.Error("NewLog accepted a checkpoint that is not signed")
	}
}

// TestSignComplete signs as the page does, plays the server's part, and
// checks the receipt the page offers.
func TestSignComplete(t *testing.T) {
	l := newTestLog(t)
	req := webcheck.SignRequest{Origin: origin, LetterID: "library", LetterDigest: l.letter.GetTextDigest(), Name: " Ганна  ", Private: true}
	s, err := webcheck.Sign(req)
	if err != nil {
		t.Fatal(err)
	}
	var er pb.EndorseRequest
	if err := proto.Unmarshal(s.Request, &er); err != nil {
		t.Fatal(err)
	}
	e := er.GetEndorsement()
	if err := records.CheckEndorsement(origin, l.letter, e); err != nil {
		t.Fatalf("the server would refuse it: %v", err)
	}
	seed, err := signing.ParseSignerSeed(s.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.GetSigner().GetPublicKey(), records.SignerKeyForLetter(seed, origin, "library").Public().(ed25519.PublicKey)) {
		t.Error("the key file did not sign the endorsement")
	}
	i := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e}})
	kept, err := s.Complete(l.v, l.receipt(i, uint64(len(l.entries)), nil))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := receipt.Parse(kept)
	v, err := r.Verify(l.v)
	if err != nil || v.Disclosure.GetName() != "Ганна" || !v.HasSecret {
		t.Errorf("the kept receipt: %+v, %v", v, err)
	}
	// The receipt of another endorsement is refused.
	j, _ := l.endorse("Other", nil)
	if _, err := s.Complete(l.v, l.receipt(j, uint64(len(l.entries)), nil)); err == nil {
		t.Error("Complete accepted the receipt of another endorsement")
	}
	if _, err := webcheck.Sign(webcheck.SignRequest{Origin: origin, LetterID: "library", Name: "  "}); err == nil || !strings.Contains(err.Error(), "disclosure.name") {
		t.Errorf("an empty name: %v, want an error naming disclosure.name", err)
	}
}

func TestVerifyReference(t *testing.T) {
	l := newTestLog(t)
	kept, _ := l.endorse("Kept", nil)
	gone, gextra := l.endorse("Gone", nil)
	leaf := func(i uint64) []byte { return receipt.LeafHash(l.entries[i]) }
	l.add(&pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: gone, TargetLeafHash: leaf(gone),
		Reason: pb.Reason_REASON_SIGNER_REQUEST, Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: gextra.GetWithdrawalSecret()}}}}})
	wl := l.load(t)
	for _, c := range []struct {
		name   string
		origin string
		index  uint64
		leaf   []byte
		log    *webcheck.Log
		want   webcheck.State
	}{
		{"counted", origin, kept, leaf(kept), wl, webcheck.Counted},
		{"withdrawn", origin, gone, leaf(gone), wl, webcheck.Withdrawn},
		{"another leaf", origin, kept, leaf(gone), wl, webcheck.Invalid},
		{"another log", "example.org/other", kept, leaf(kept), wl, webcheck.Invalid},
		{"beyond the log", origin, 99, leaf(kept), wl, webcheck.Invalid},
		{"the letter", origin, 0, leaf(0), wl, webcheck.Invalid},
		{"offline", origin, kept, leaf(kept), nil, webcheck.Invalid},
	} {
		if got := webcheck.VerifyReference(c.origin, c.index, c.leaf, c.log); got.State != c.want {
			t.Errorf("%s: %+v, want %s", c.name, got, c.want)
		}
	}
}

// TestLogFollowsTheRules: the page applies the rules of a letter, as the
// server and the audit do. A withdrawal signed by an organiser key after
// its revocation, or of an endorsement already withdrawn, changes nothing;
// an endorsement signed by a revoked key does not count; and the page says
// that the log holds records that break its rules.
func TestLogFollowsTheRules(t *testing.T) {
	l := newTestLog(t)
	vpub, volunteer, _ := ed25519.GenerateKey(rand.Reader)
	change := func(c pb.KeyChange) {
		oc := &pb.OrganiserChange{LetterId: l.letter.GetId(), Change: c, Key: vpub}
		records.SignOrganiserChange(l.org, origin, oc)
		l.add(&pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: oc}})
	}
	byVolunteer := func(name string) (uint64, *pb.ReceiptExtra) {
		e := signing.NewEndorsement(origin, l.letter, signing.Signer{Fields: records.Fields{Name: name}, OrganiserKey: volunteer})
		i := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
		return i, &pb.ReceiptExtra{Disclosure: e.Disclosure, WithdrawalSecret: e.WithdrawalSecret}
	}
	withdraw := func(target uint64, by ed25519.PrivateKey) uint64 {
		w := &pb.Withdrawal{TargetIndex: target, TargetLeafHash: receipt.LeafHash(l.entries[target]), Reason: pb.Reason_REASON_ORGANISER_ERROR}
		w.Authorisation = &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignWithdrawal(by, origin, w)}}
		return l.add(&pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: w}})
	}
	change(pb.KeyChange_KEY_CHANGE_ADD)
	kept, kextra := byVolunteer("Signed Before The Revocation")
	gone, gextra := byVolunteer("Withdrawn Once")
	first := withdraw(gone, volunteer)
	change(pb.KeyChange_KEY_CHANGE_REVOKE)
	late, lextra := byVolunteer("Signed After The Revocation")
	revokedWithdrawal := withdraw(kept, volunteer)
	withdraw(gone, l.org) // withdrawn twice
	size := uint64(len(l.entries))
	wl := l.load(t)

	if b := wl.Broken(); len(b) != 3 || b[0].Index != late || b[1].Index != revokedWithdrawal || !strings.Contains(b[1].Rule, "was revoked") {
		t.Fatalf("Broken() = %+v, want the late endorsement, the revoked key's withdrawal and the second withdrawal", b)
	}
	got := webcheck.Verify(l.v, l.receipt(kept, size, kextra), wl)
	if got.State != webcheck.Counted || !strings.Contains(got.LogBroken, "3 record(s)") {
		t.Errorf("signed before the revocation, withdrawn after it by the revoked key: %+v, want counted, and the broken records said", got)
	}
	if got := webcheck.Verify(l.v, l.receipt(gone, size, gextra), wl); got.State != webcheck.Withdrawn || got.By == nil || *got.By != first {
		t.Errorf("withdrawn, then withdrawn again: %+v, want withdrawn by %d", got, first)
	}
	got = webcheck.Verify(l.v, l.receipt(late, size, lextra), wl)
	if got.State != webcheck.Invalid || !strings.Contains(got.Reason, "was revoked") {
		t.Errorf("signed by the revoked key: %+v, want invalid, saying the key was revoked", got)
	}
	if got := webcheck.VerifyReference(origin, late, receipt.LeafHash(l.entries[late]), wl); got.State != webcheck.Invalid {
		t.Errorf("a reference to the endorsement signed by the revoked key: %+v", got)
	}
}

// TestForeignEntries: an entry the server marks as foreign (no server of
// the log admitted it: a well-formed endorsement signed with a key of the
// intruder's own, queued on the log's storage directly) is skipped, as
// the server and the audit skip it: a receipt or a link for it is
// invalid, and the page says that the log holds one. Without the mark, the
// same log counts it.
func TestForeignEntries(t *testing.T) {
	l := newTestLog(t)
	for i := 0; i < 260; i++ {
		l.endorse(fmt.Sprintf("Signer %d", i), nil)
	}
	_, intruder, _ := ed25519.GenerateKey(rand.Reader)
	e := signing.NewEndorsement(origin, l.letter, signing.Signer{Fields: records.Fields{Name: "Nobody Admitted"}, SignerKey: intruder,
		Visibility: pb.Visibility_VISIBILITY_PRIVATE})
	foreign := l.add(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
	kept, kextra := l.endorse("Kept", nil)
	size := uint64(len(l.entries))
	rcpt := l.receipt(foreign, size, &pb.ReceiptExtra{Disclosure: e.Disclosure, WithdrawalSecret: e.WithdrawalSecret})
	leaf := receipt.LeafHash(l.entries[foreign])

	if got := webcheck.Verify(l.v, rcpt, l.load(t)); got.State != webcheck.Counted {
		t.Fatalf("unmarked: %+v, want counted (the rules alone cannot tell)", got)
	}
	l.foreign = map[uint64]bool{foreign: true}
	wl := l.load(t)
	if !slices.Equal(wl.Foreign(), []uint64{foreign}) {
		t.Errorf("Foreign() = %v, want [%d]", wl.Foreign(), foreign)
	}
	got := webcheck.Verify(l.v, rcpt, wl)
	if got.State != webcheck.Invalid || !strings.Contains(got.Reason, "no server of the log admitted it") {
		t.Errorf("the foreign endorsement's receipt: %+v, want invalid, saying no server admitted it", got)
	}
	if got := webcheck.VerifyReference(origin, foreign, leaf, wl); got.State != webcheck.Invalid || !strings.Contains(got.Reason, "no server of the log admitted it") {
		t.Errorf("a reference to the foreign endorsement: %+v", got)
	}
	got = webcheck.Verify(l.v, l.receipt(kept, size, kextra), wl)
	if got.State != webcheck.Counted || !strings.Contains(got.LogBroken, fmt.Sprintf("1 entry of the log that no server of it admitted (foreign) changed nothing here; the first at index %d", foreign)) {
		t.Errorf("an endorsement after it: %+v, want counted, and the foreign entry said", got)
	}
}

// TestHostileForeignMarks: marks that repeat an index, name one outside
// their bundle, or are larger than they can be are refused.
func TestHostileForeignMarks(t *testing.T) {
	l := newTestLog(t)
	for i := 0; i < 5; i++ {
		l.endorse(fmt.Sprintf("Signer %d", i), nil)
	}
	for name, marks := range map[string]string{
		"repeated":       "[2, 2]",
		"outside":        "[256]",
		"not an array":   `{"index": 2}`,
		"not an integer": `["2"]`,
		"too large":      "[2" + strings.Repeat(" ", records.MaxForeignMarksBytes) + "]",
		"missing":        "",
	} {
		wl, err := webcheck.NewLog(l.v, l.checkpoint(uint64(len(l.entries))))
		if err != nil {
			t.Fatal(err)
		}
		if err := wl.AddBundle(l.bundles()[0], []byte(marks)); err == nil {
			t.Errorf("%s: foreign marks %.20q accepted", name, marks)
		}
	}
}

package rules_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

const origin = "example.org/rules-test"

var organiser = ed25519.NewKeyFromSeed(make([]byte, 32))

func letter(id string, policy pb.Policy) *pb.Letter {
	text := "We ask for " + id + ".\n"
	l := &pb.Letter{Id: id, Title: "On " + id, Text: text, TextDigest: records.TextDigest(text), Policy: policy,
		OrganiserKeys: [][]byte{organiser.Public().(ed25519.PublicKey)}}
	records.SignLetter(organiser, origin, l)
	return l
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// signed is an endorsement with what only its writer knows.
type signed struct {
	e      *pb.Endorsement
	d      *pb.Disclosure
	secret []byte
}

func endorsement(l *pb.Letter, name string, vis pb.Visibility, signer ed25519.PrivateKey) signed {
	d := &pb.Disclosure{Salt: random(32), Name: name}
	secret := random(32)
	e := &pb.Endorsement{LetterId: l.GetId(), LetterDigest: l.GetTextDigest(), Commitment: records.Commitment(d.Salt, records.FieldsOf(d)),
		WithdrawalLock: records.WithdrawalLock(secret), Verification: pb.Verification_VERIFICATION_NONE, Visibility: vis}
	if signer != nil {
		e.Verification = pb.Verification_VERIFICATION_SIGNER_KEY
		records.SignEndorsementAsSigner(signer, origin, e)
	}
	if l.GetPolicy() == pb.Policy_POLICY_CURATED {
		records.SignEndorsementAsOrganiser(organiser, origin, e)
	}
	return signed{e, d, secret}
}

// log is a Memory with helpers.
type log struct {
	t *testing.T
	m *rules.Memory
}

func (g *log) append(in rules.Input) (*rules.Change, error) {
	b, err := records.Encode(in.Record)
	if err != nil {
		g.t.Fatal(err)
	}
	h := sha256.Sum256(append([]byte{0}, b...))
	return g.m.Append(in, h[:])
}

func (g *log) must(in rules.Input) uint64 {
	g.t.Helper()
	if _, err := g.append(in); err != nil {
		g.t.Fatalf("append %v: %v", in.Record.GetKind(), err)
	}
	return g.m.Size() - 1
}

func letterIn(l *pb.Letter) rules.Input {
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_Letter{Letter: l}}}
}

func endorseIn(s signed) rules.Input {
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: s.e}}, Disclosure: s.d}
}

func leafOf(t *testing.T, m *rules.Memory, index uint64) []byte {
	e, _ := m.Endorsement(index)
	if e == nil {
		t.Fatalf("no endorsement at %d", index)
	}
	return e.LeafHash
}

func withdrawIn(index uint64, leaf, secret []byte) rules.Input {
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: index, TargetLeafHash: leaf,
		Reason: pb.Reason_REASON_SIGNER_REQUEST, Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secret}}}}}}
}

func redactIn(index uint64, leaf, secret []byte) rules.Input {
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_Redaction{Redaction: &pb.Redaction{TargetIndex: index, TargetLeafHash: leaf,
		Reason: pb.Reason_REASON_SAFETY, Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secret}}}}}}
}

func statusIn(l *pb.Letter, st pb.Status, note string) rules.Input {
	s := &pb.LetterStatus{LetterId: l.GetId(), Status: st, Note: note}
	records.SignStatus(organiser, origin, s)
	return rules.Input{Record: &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}}}
}

func exists(t *testing.T, err error) *rules.ExistsError {
	t.Helper()
	var ee *rules.ExistsError
	if !errors.As(err, &ee) {
		t.Fatalf("got %v, want an ExistsError", err)
	}
	return ee
}

func TestCommitmentAndLockOnceForGood(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("open-one", pb.Policy_POLICY_OPEN)
	g.must(letterIn(l))
	signer := ed25519.NewKeyFromSeed(random(32))
	a := endorsement(l, "Ada", pb.Visibility_VISIBILITY_PUBLIC, signer)
	i := g.must(endorseIn(a))
	g.must(withdrawIn(i, leafOf(t, g.m, i), a.secret))

	// Case 1: the withdrawn endorsement replayed byte for byte.
	_, err := g.append(endorseIn(a))
	// Not even its writer gets it back as a duplicate: it no longer counts.
	if ee := exists(t, err); ee.Of.Index != int64(i) || ee.Exact {
		t.Errorf("replay of a withdrawn endorsement: %+v, want a refusal about %d", ee, i)
	}
	// The lock of the withdrawn endorsement under a new commitment.
	b := endorsement(l, "Ada", pb.Visibility_VISIBILITY_PUBLIC, nil)
	b.e.WithdrawalLock = a.e.WithdrawalLock
	records.SignEndorsementAsSigner(signer, origin, b.e)
	_, err = g.append(endorseIn(b))
	if ee := exists(t, err); ee.Exact || !strings.Contains(ee.Error(), "withdrawal_lock") {
		t.Errorf("a reused lock: %v", err)
	}
	// A new endorsement with fresh secrets is allowed after a withdrawal.
	g.must(endorseIn(endorsement(l, "Ada", pb.Visibility_VISIBILITY_PUBLIC, signer)))
}

func TestSamePersonExactOrRefused(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("curated-one", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	pub := endorsement(l, "Xenia", pb.Visibility_VISIBILITY_PUBLIC, nil)
	i := g.must(endorseIn(pub))

	// Case 2: the same person, private this time: refused, not merged.
	_, err := g.append(endorseIn(endorsement(l, "Xenia", pb.Visibility_VISIBILITY_PRIVATE, nil)))
	ee := exists(t, err)
	if ee.Exact || ee.Of.Index != int64(i) {
		t.Errorf("the same person with another visibility: %+v, want a conflict with %d", ee, i)
	}
	if strings.Contains(err.Error(), "Xenia") {
		t.Errorf("the error names the person: %v", err)
	}
	// The same person, the same fields, fresh secrets: an exact repeat.
	_, err = g.append(endorseIn(endorsement(l, "Xenia", pb.Visibility_VISIBILITY_PUBLIC, nil)))
	if ee := exists(t, err); !ee.Exact || ee.Of.Index != int64(i) {
		t.Errorf("an exact repeat with fresh secrets: %+v", ee)
	}
	// Case 7: namesakes with their own idempotency keys are two people.
	n1, n2 := endorseIn(endorsement(l, "Yan", pb.Visibility_VISIBILITY_PUBLIC, nil)), endorseIn(endorsement(l, "Yan", pb.Visibility_VISIBILITY_PUBLIC, nil))
	n1.IdempotencyKey, n2.IdempotencyKey = "row-1", "row-2"
	g.must(n1)
	g.must(n2)
}

func TestRedactionSticks(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("sticky", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	a := endorsement(l, "Zoë", pb.Visibility_VISIBILITY_PUBLIC, nil)
	i := g.must(endorseIn(a))
	// Case 5: withdraw with the secret, then redact with the spent secret.
	w := g.must(withdrawIn(i, leafOf(t, g.m, i), a.secret))
	ch, err := g.append(redactIn(i, leafOf(t, g.m, i), a.secret))
	if err != nil {
		t.Fatalf("a redaction authorised by a spent secret: %v", err)
	}
	if len(ch.Tombstones) == 0 {
		t.Fatalf("the redaction left no tombstone")
	}
	// Case 3: the same person again, with fresh secrets: refused.
	again := endorseIn(endorsement(l, "Zoë", pb.Visibility_VISIBILITY_PUBLIC, nil))
	_, err = g.append(again)
	if fe, ok := records.AsFieldError(err); !ok || !strings.Contains(fe.Rule, "readd_after_redaction") || strings.Contains(err.Error(), "Zoë") {
		t.Errorf("the redacted person again: %v", err)
	}
	// Under another idempotency key too.
	again.IdempotencyKey = "someone-else"
	if _, err := g.append(again); err == nil {
		t.Errorf("the redacted person under a new idempotency key was accepted")
	}
	// Unless asked for explicitly.
	again.ReaddAfterRedaction = true
	g.must(again)
	// The withdrawal again is a repeat of the first.
	_, err = g.append(withdrawIn(i, leafOf(t, g.m, i), a.secret))
	if ee := exists(t, err); !ee.Exact || ee.Of.Index != int64(w) {
		t.Errorf("the withdrawal again: %+v, want an exact repeat of %d", ee, w)
	}
}

func TestClosedBeforeDedup(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("closing", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	a := endorsement(l, "Ann", pb.Visibility_VISIBILITY_PRIVATE, nil)
	i := g.must(endorseIn(a))
	g.must(statusIn(l, pb.Status_STATUS_CLOSED, ""))

	// Case 6: a probe for the same person on a closed letter learns only
	// that the letter is closed.
	_, err := g.append(endorseIn(endorsement(l, "Ann", pb.Visibility_VISIBILITY_PUBLIC, nil)))
	var se *rules.StateError
	if !errors.As(err, &se) || errors.As(err, new(*rules.ExistsError)) {
		t.Errorf("a probe on a closed letter: %v, want only that it is closed", err)
	}
	// The exact repeat is recognised, for its writer, and refused to
	// anyone else as closed.
	_, err = g.append(endorseIn(a))
	ee := exists(t, err)
	if !ee.Exact || ee.Of.Index != int64(i) || ee.Refuse == nil {
		t.Errorf("an exact repeat on a closed letter: %+v", ee)
	}
}

func TestLettersUnique(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("only-once", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	_, err := g.append(letterIn(l))
	if ee := exists(t, err); !ee.Exact {
		t.Errorf("the same letter again: %+v, want an exact repeat", ee)
	}
	// Case 8: the same id with another title.
	other := proto.CloneOf(l)
	other.Title = "Another title"
	records.SignLetter(organiser, origin, other)
	_, err = g.append(letterIn(other))
	ee := exists(t, err)
	if fe, ok := records.AsFieldError(ee.Rule); ee.Exact || !ok || fe.Field != "letter.id" {
		t.Errorf("the same id with another title: %+v", ee)
	}
}

func TestCorrectionTakesOverTheKeys(t *testing.T) {
	g := &log{t, rules.NewMemory()}
	l := letter("typos", pb.Policy_POLICY_CURATED)
	g.must(letterIn(l))
	signer := ed25519.NewKeyFromSeed(random(32))
	a := endorsement(l, "Jonh", pb.Visibility_VISIBILITY_PUBLIC, signer)
	i := g.must(endorseIn(a))
	fix := endorsement(l, "John", pb.Visibility_VISIBILITY_PUBLIC, nil)
	fix.e.Supersedes = proto.Uint64(i)
	fix.e.Organiser = nil
	records.SignEndorsementAsSigner(signer, origin, fix.e)
	records.SignEndorsementAsOrganiser(organiser, origin, fix.e)
	ch, err := g.append(endorseIn(fix))
	if err != nil || ch.Mark != rules.MarkSuperseded || ch.Target.Ref.Index != int64(i) {
		t.Fatalf("a correction: %v %+v", err, ch)
	}
	// The signer key now belongs to the correction.
	e, _ := g.m.Person(l.GetId(), rules.PersonKey{Kind: rules.PersonSigner, Value: signer.Public().(ed25519.PublicKey)})
	if e == nil || e.Ref.Index != int64(g.m.Size()-1) {
		t.Errorf("the signer key is held by %+v, want the correction", e)
	}
}

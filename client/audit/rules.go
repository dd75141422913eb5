package audit

import (
	"errors"
	"fmt"
	"strings"

	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// modelState is the model as rules.Apply reads it: the log before the
// entry being applied. It knows what the log and the public disclosures
// show: commitments, locks and signer keys, never an idempotency key, a
// tombstone or the fields of a private endorsement.
type modelState struct{ m *model }

func (s modelState) Letter(id string) (*rules.Letter, error) {
	i, ok := s.m.byID[id]
	if !ok {
		return nil, nil
	}
	ls := s.m.letters[i]
	l := &rules.Letter{Ref: rules.Ref{Index: int64(ls.index)}, Letter: ls.letter, OrganiserKeys: ls.keys, Revoked: ls.revoked,
		KeysChangedBy: refAt(ls.keysChangedBy)}
	if ls.closedBy >= 0 {
		l.Closed = &rules.Ref{Index: ls.closedBy}
	}
	if ls.deliveredBy >= 0 {
		l.Delivered = &rules.Ref{Index: ls.deliveredBy}
	}
	return l, nil
}

func refAt(i int64) *rules.Ref {
	if i < 0 {
		return nil
	}
	return &rules.Ref{Index: i}
}

// Endorsement returns what the model keeps of an endorsement: its letter,
// lock, signer key, verification and visibility.
func (s modelState) Endorsement(index uint64) (*rules.Endorsement, error) {
	en := s.m.endorsementAt(index)
	if en == nil {
		return nil, nil
	}
	return s.endorsement(en), nil
}

func (s modelState) endorsement(en *endorsement) *rules.Endorsement {
	e := &pb.Endorsement{WithdrawalLock: en.lock[:], Visibility: en.visibility, Verification: en.verification}
	if ls := s.m.letterOf(en); ls != nil {
		e.LetterId = ls.letter.GetId()
	}
	if en.signerKey != nil {
		e.Signer = &pb.Signature{PublicKey: en.signerKey}
	}
	if en.supersedes >= 0 {
		sup := uint64(en.supersedes)
		e.Supersedes = &sup
	}
	return &rules.Endorsement{
		Ref: rules.Ref{Index: int64(en.index)}, Endorsement: e, LeafHash: en.leaf[:],
		WithdrawnBy: refAt(en.withdrawnBy), RedactedBy: refAt(en.redactedBy), SupersededBy: refAt(en.supersededBy),
		SecretSpent: en.secretSpent,
	}
}

func (s modelState) Commitment(c []byte) (*rules.Ref, error) {
	if i, ok := s.m.commitments[hash32(c)]; ok {
		return &rules.Ref{Index: int64(i)}, nil
	}
	return nil, nil
}

func (s modelState) Lock(l []byte) (*rules.Ref, error) {
	if i, ok := s.m.locks[hash32(l)]; ok {
		return &rules.Ref{Index: int64(i)}, nil
	}
	return nil, nil
}

// Person answers signer keys only: the log shows them, and a signer key is
// always a person key.
func (s modelState) Person(letterID string, k rules.PersonKey) (*rules.Endorsement, error) {
	if k.Kind != rules.PersonSigner {
		return nil, nil
	}
	i, ok := s.m.signers[signerKeyOf(letterID, k.Value)]
	if !ok {
		return nil, nil
	}
	return s.Endorsement(i)
}

func (s modelState) Tombstone(string, rules.PersonKey) (*rules.Ref, error) { return nil, nil }

func (s modelState) Disclosure(e *rules.Endorsement) (*pb.Disclosure, error) {
	if en := s.m.endorsementAt(uint64(e.Ref.Index)); en != nil && en.disc == discServed {
		return en.disclosure, nil
	}
	return nil, nil
}

func (s modelState) Record(rules.Ref) (*pb.Record, error) { return nil, nil }

func hash32(b []byte) [32]byte {
	var h [32]byte
	copy(h[:], b)
	return h
}

func signerKeyOf(letterID string, key []byte) string { return letterID + "\x00" + string(key) }

// checkRules applies the rules to the entry at index and reports the rule
// it breaks, if any, as a violation. The model's bookkeeping is the
// applier's: a record that breaks a rule still has its effect on the
// model, as it has on anyone who reads the log.
func (a *applier) checkRules(index uint64, it *item) {
	if a.replay {
		return
	}
	in := rules.Input{Record: it.rec}
	if it.disc == discServed {
		in.Disclosure = it.entry.Disclosure
	}
	_, err := rules.Apply(modelState{a.m}, in)
	if err == nil {
		return
	}
	field := rules.FieldOf(err)
	var exists *rules.ExistsError
	msg := err.Error()
	if errors.As(err, &exists) {
		field = rules.FieldOf(exists.Rule)
		msg = fmt.Sprintf("%v; the earlier record is at index %d", exists.Rule, exists.Of.Index)
	}
	a.violate(index, ruleOf(it.rec, field, exists != nil), "%s", msg)
}

// ruleOf names the audit rule of a rule the rules function reports.
func ruleOf(rec *pb.Record, field string, exists bool) Rule {
	switch {
	case exists && (field == "endorsement.commitment" || field == "endorsement.withdrawal_lock"):
		return RuleReplay
	case strings.HasPrefix(field, "endorsement.supersedes") || field == "endorsement.signer":
		return RuleSupersedes
	case strings.HasSuffix(field, ".withdrawal_secret"):
		return RuleSpentSecret
	}
	switch rec.GetKind().(type) {
	case *pb.Record_Letter:
		return RuleLetter
	case *pb.Record_Withdrawal:
		return RuleWithdrawal
	case *pb.Record_Redaction:
		return RuleRedaction
	case *pb.Record_LetterStatus:
		return RuleStatus
	case *pb.Record_OrganiserChange:
		return RuleOrganiser
	}
	return RuleEndorsement
}

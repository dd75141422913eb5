package webcheck

import (
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/receipt"
)

// The witnesses' cosignatures.
//
// A page whose server has a witness policy checks checkpoints against it
// (the policy comes in the page, without the witnesses' URLs): the log's
// latest checkpoint must meet it before the log is used ([Log.CheckPolicy]),
// and a receipt must show that its checkpoint was witnessed
// ([VerifyWitnessed]): by its own cosignatures, or, when the page loaded
// the log, by the latest checkpoint, which meets the policy and whose tree
// the page found to contain the receipt's.

// CheckPolicy checks that the log's latest checkpoint carries
// cosignatures that meet p, and makes [VerifyWitnessed] accept receipts
// whose tree is in it. The error names the witnesses missing: a page that
// gets it does not use the log.
func (l *Log) CheckPolicy(p *policy.Policy) error {
	r, err := p.Check(l.raw)
	if err != nil {
		return err
	}
	if !r.Met {
		return fmt.Errorf("the log's latest checkpoint: %w", r.Err())
	}
	l.witnessed = r
	return nil
}

// VerifyWitnessed is [Verify] with a witness policy (nil: none). A
// receipt that verifies gets Witnesses, which says which quorum its
// checkpoint meets and by whom. One whose checkpoint does not meet it is
// still accepted when l is a complete log whose latest checkpoint met the
// policy ([Log.CheckPolicy]) and contains the receipt's tree; otherwise it
// is [Invalid], the reason naming the witnesses missing: a valid receipt
// of the log, but not witnessed enough for the policy.
func VerifyWitnessed(v note.Verifier, p *policy.Policy, b []byte, l *Log) Result {
	res := Verify(v, b, l)
	if p == nil || res.State == Invalid {
		return res
	}
	r, err := receipt.Parse(b)
	if err != nil {
		return invalid(err)
	}
	w, err := p.Check(r.Checkpoint)
	if err != nil {
		return invalid(err)
	}
	res.Witnesses = w.String()
	if w.Met {
		return res
	}
	if l != nil && l.complete && l.witnessed != nil && res.LatestSize > 0 {
		res.Witnesses += fmt.Sprintf("; the log's latest checkpoint (size %d), which contains it, is: %s", l.checkpoint.Size, l.witnessed)
		return res
	}
	out := invalid(fmt.Errorf("%w (a valid receipt of the log, but not witnessed enough for this page's policy)", w.Err()))
	out.Witnesses = res.Witnesses
	return out
}

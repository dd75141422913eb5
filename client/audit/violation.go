package audit

import "fmt"

// Rule names a rule of the log that an entry, a checkpoint or a
// disclosure broke.
type Rule string

// The rules an audit checks. See the package documentation for what each
// covers.
const (
	// RuleCheckpoint: the checkpoint's signature or origin does not verify
	// with the pinned key.
	RuleCheckpoint Rule = "checkpoint"
	// RuleFork: a signed checkpoint does not extend the last trusted one.
	RuleFork Rule = "fork"
	// RuleTree: an entry is not the leaf the signed tree holds.
	RuleTree Rule = "tree"
	// RuleRecord: an entry is not a canonical version 1 record.
	RuleRecord Rule = "record"
	// RuleLetter: a letter's fields or signature (records.CheckLetter), or
	// a letter id used twice.
	RuleLetter Rule = "letter"
	// RuleEndorsement: an endorsement's letter, digest or signatures
	// (records.CheckEndorsement), or an endorsement of a closed letter.
	RuleEndorsement Rule = "endorsement"
	// RuleSupersedes: a correction of an endorsement it may not correct.
	RuleSupersedes Rule = "supersedes"
	// RuleWithdrawal: a withdrawal's target or authorisation.
	RuleWithdrawal Rule = "withdrawal"
	// RuleRedaction: a redaction's target or authorisation.
	RuleRedaction Rule = "redaction"
	// RuleSpentSecret: a withdrawal by a withdrawal secret already
	// revealed (a redaction may reveal a spent one: it can only hide a
	// name).
	RuleSpentSecret Rule = "spent-secret"
	// RuleReplay: a commitment or a withdrawal lock accepted a second time
	// in the log (withdrawn or not): a record replayed, or secrets reused.
	// The message names the earlier index.
	RuleReplay Rule = "replay"
	// RuleStatus: a status change's letter or signature, or a second
	// closing.
	RuleStatus Rule = "status"
	// RuleOrganiser: an organiser change's fields or signature
	// (records.CheckOrganiserChange), a change signed by a key that was not
	// an organiser key of the letter at that point, or a change that is not
	// possible (a key added twice, revoked twice or added again after its
	// revocation, or a letter's last key revoked).
	RuleOrganiser Rule = "organiser"
	// RuleDisclosure: a served disclosure does not open its endorsement's
	// commitment or breaks the rules on names.
	RuleDisclosure Rule = "disclosure"
	// RuleWithheld: a public endorsement with neither a disclosure nor a
	// redaction.
	RuleWithheld Rule = "withheld"
	// RuleRedactionIgnored: a disclosure still served after its
	// endorsement was redacted.
	RuleRedactionIgnored Rule = "redaction-ignored"
	// RulePrivateDisclosed: a disclosure served for a private endorsement
	// or for a record that is not an endorsement.
	RulePrivateDisclosed Rule = "private-disclosed"
)

// Violation is a rule broken by the entry at Index (for [RuleCheckpoint]
// and [RuleFork], Index is the size of the offending checkpoint).
type Violation struct {
	// Index is the entry's index (a checkpoint's size for RuleCheckpoint
	// and RuleFork).
	Index uint64 `json:"index"`
	// Rule is the rule broken.
	Rule Rule `json:"rule"`
	// Message says how, for people.
	Message string `json:"message"`
}

// Error returns "index N: rule: message".
func (v Violation) Error() string {
	return fmt.Sprintf("index %d: %s: %s", v.Index, v.Rule, v.Message)
}

// Warning is something an auditor should look at that breaks no rule,
// such as a probable duplicate.
type Warning struct {
	// Index is the entry's index.
	Index uint64 `json:"index"`
	// Message says what to look at.
	Message string `json:"message"`
}

// String returns "index N: message".
func (w Warning) String() string { return fmt.Sprintf("index %d: %s", w.Index, w.Message) }

package audit

import (
	"bytes"
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// RuleWitnesses: a checkpoint does not carry the cosignatures the witness
// policy's quorum requires.
const RuleWitnesses Rule = "witnesses"

// witnessed checks a served checkpoint against the witness policy, if
// any: it returns a [RuleWitnesses] violation naming the witnesses whose
// cosignature is missing or invalid, or nil.
func (a *Auditor) witnessed(raw []byte, size uint64) *Violation {
	if a.cfg.Policy == nil {
		return nil
	}
	res, err := a.cfg.Policy.CheckAt(raw, a.cfg.Now())
	if err != nil {
		return &Violation{Index: size, Rule: RuleWitnesses, Message: err.Error()}
	}
	if !res.Met {
		return &Violation{Index: size, Rule: RuleWitnesses, Message: "the checkpoint of size " + fmt.Sprint(size) + " does not carry the cosignatures the policy requires: " + res.String()}
	}
	return nil
}

// Compare checks a checkpoint of the audited log that another source holds
// (a mirror, or a witness's view of the log), raw as it was served by src,
// against the checkpoint the audit trusts, and so detects a log that shows
// different histories to different people. The two agree when the larger
// tree extends the smaller: the proof comes from the audited source. When
// they disagree, Compare writes both signed checkpoints to an evidence
// file, as for a fork the audit finds itself, and returns a [RuleFork]
// violation that names src and the file. It returns an error, and no
// violation, when raw does not verify with the log's key (anyone can
// serve such a thing: it proves nothing) or when the proof could not be
// had. Call it after [Auditor.Run].
func (a *Auditor) Compare(ctx context.Context, src string, raw []byte) (*Violation, error) {
	cp, err := a.openCheckpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	size := a.st.Size()
	root, err := a.trustedRoot()
	if err != nil {
		return nil, err
	}
	var reason string
	var hashes [][]byte
	switch {
	case cp.Size == size && !bytes.Equal(cp.Hash, root):
		reason = fmt.Sprintf("two signed checkpoints of size %d have different roots", size)
	case cp.Size < size && cp.Size > 0:
		if hashes, err = a.cfg.Source.ConsistencyProof(ctx, cp.Size, size); err != nil {
			return nil, fmt.Errorf("compare with %s: %w", src, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, size, hashes, cp.Hash, root); err != nil {
			reason = fmt.Sprintf("the audited checkpoint (size %d) does not extend the one of size %d: %v", size, cp.Size, err)
		}
	case cp.Size > size && size > 0:
		if hashes, err = a.cfg.Source.ConsistencyProof(ctx, size, cp.Size); err != nil {
			return nil, fmt.Errorf("compare with %s: %w", src, err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, cp.Size, hashes, root, cp.Hash); err != nil {
			reason = fmt.Sprintf("the checkpoint of size %d does not extend the audited one (size %d): %v", cp.Size, size, err)
		}
	}
	if reason == "" {
		return nil, nil
	}
	reason += "; the second checkpoint came from " + src
	f := &Fork{Trusted: a.st.Checkpoint(), Served: raw, Reason: reason, Source: src}
	path, err := a.writeEvidence(f, hashes)
	if err != nil {
		return nil, err
	}
	return &Violation{Index: cp.Size, Rule: RuleFork, Message: reason + "; both signed checkpoints are in " + path}, nil
}

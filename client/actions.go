package client

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Action says who authorises a withdrawal or a redaction and of what.
type Action struct {
	// TargetIndex and TargetLeafHash name the endorsement.
	TargetIndex    uint64
	TargetLeafHash []byte
	// Reason defaults to signer_request.
	Reason pb.Reason
	// Exactly one of these authorises it: the signer's per-letter key, the
	// withdrawal secret, or an organiser key.
	SignerKey        ed25519.PrivateKey
	WithdrawalSecret []byte
	OrganiserKey     ed25519.PrivateKey
}

// ActionFromReceipt returns the action a receipt's holder can take: by the
// withdrawal secret it carries, or else by signerSeed's key for the
// letter, when given.
func ActionFromReceipt(origin string, v *receipt.Verified, r *receipt.Receipt, signerSeed []byte) (Action, error) {
	e := v.Record.GetEndorsement()
	if e == nil {
		return Action{}, fmt.Errorf("the receipt is for a %T, not an endorsement", v.Record.GetKind())
	}
	a := Action{TargetIndex: v.Index, TargetLeafHash: v.LeafHash}
	switch {
	case len(r.Extra.GetWithdrawalSecret()) > 0:
		a.WithdrawalSecret = r.Extra.GetWithdrawalSecret()
	case signerSeed != nil && e.GetSigner() != nil:
		a.SignerKey = SignerKey(signerSeed, origin, e.GetLetterId())
	default:
		return Action{}, fmt.Errorf("the receipt carries no withdrawal secret and no signer key was given")
	}
	return a, nil
}

func (a Action) authorisation(origin, tag string, statement []byte) (*pb.Authorisation, error) {
	switch {
	case a.WithdrawalSecret != nil:
		return &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: a.WithdrawalSecret}}, nil
	case a.SignerKey != nil:
		return &pb.Authorisation{By: &pb.Authorisation_Signer{Signer: records.Sign(a.SignerKey, tag, statement)}}, nil
	case a.OrganiserKey != nil:
		return &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.Sign(a.OrganiserKey, tag, statement)}}, nil
	}
	return nil, fmt.Errorf("nothing authorises the action")
}

func (a Action) reason() pb.Reason {
	if a.Reason == pb.Reason_REASON_UNSPECIFIED {
		return pb.Reason_REASON_SIGNER_REQUEST
	}
	return a.Reason
}

// Withdraw appends a withdrawal.
func (c *Client) Withdraw(ctx context.Context, a Action) (*Result, error) {
	w := &pb.Withdrawal{TargetIndex: a.TargetIndex, TargetLeafHash: a.TargetLeafHash, Reason: a.reason()}
	auth, err := a.authorisation(c.origin, records.TagWithdraw, records.WithdrawalStatement(c.origin, w))
	if err != nil {
		return nil, err
	}
	w.Authorisation = auth
	resp, err := c.api.Withdraw(c.Context(ctx), &pb.WithdrawRequest{Withdrawal: w})
	if err != nil {
		return nil, err
	}
	return c.completeRecord(resp.GetResult(), &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: w}})
}

// Redact appends a redaction.
func (c *Client) Redact(ctx context.Context, a Action) (*Result, error) {
	r := &pb.Redaction{TargetIndex: a.TargetIndex, TargetLeafHash: a.TargetLeafHash, Reason: a.reason()}
	auth, err := a.authorisation(c.origin, records.TagRedact, records.RedactionStatement(c.origin, r))
	if err != nil {
		return nil, err
	}
	r.Authorisation = auth
	resp, err := c.api.Redact(c.Context(ctx), &pb.RedactRequest{Redaction: r})
	if err != nil {
		return nil, err
	}
	return c.completeRecord(resp.GetResult(), &pb.Record{Kind: &pb.Record_Redaction{Redaction: r}})
}

// SetLetterStatus appends a letter status signed by key.
func (c *Client) SetLetterStatus(ctx context.Context, letterID string, st pb.Status, note string, key ed25519.PrivateKey) (*Result, error) {
	s := &pb.LetterStatus{LetterId: letterID, Status: st, Note: records.CanonicalField(note)}
	records.SignStatus(key, c.origin, s)
	resp, err := c.api.SetLetterStatus(c.Context(ctx), &pb.SetLetterStatusRequest{Status: s})
	if err != nil {
		return nil, err
	}
	return c.completeRecord(resp.GetResult(), &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}})
}

// ChangeOrganiser adds key to the organiser keys of a letter
// (pb.KeyChange_KEY_CHANGE_ADD) or revokes it (pb.KeyChange_KEY_CHANGE_REVOKE),
// with a change signed by by, another organiser key of the letter. A
// revocation applies from the change's index on: what the key signed
// before stays valid, and the key is never valid for the letter again.
func (c *Client) ChangeOrganiser(ctx context.Context, letterID string, change pb.KeyChange, key ed25519.PublicKey, by ed25519.PrivateKey) (*Result, error) {
	oc := &pb.OrganiserChange{LetterId: letterID, Change: change, Key: key}
	records.SignOrganiserChange(by, c.origin, oc)
	resp, err := c.api.ChangeOrganiser(c.Context(ctx), &pb.ChangeOrganiserRequest{Change: oc})
	if err != nil {
		return nil, err
	}
	return c.completeRecord(resp.GetResult(), &pb.Record{Kind: &pb.Record_OrganiserChange{OrganiserChange: oc}})
}

// TargetOf returns the index and leaf hash of the entry at index, read from
// the log and proved against the latest checkpoint.
func (c *Client) TargetOf(ctx context.Context, index uint64) ([]byte, error) {
	resp, err := c.api.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: index})
	if err != nil {
		return nil, err
	}
	cp, err := c.openCheckpoint(resp.GetCheckpoint())
	if err != nil {
		return nil, err
	}
	if err := verifyInclusion(index, cp, resp.GetLeafHash(), resp.GetHashes()); err != nil {
		return nil, err
	}
	return resp.GetLeafHash(), nil
}

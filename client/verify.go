package client

import (
	"bytes"
	"context"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// State is what became of a receipt's record, as the log says now.
type State int

// The states of a verified receipt.
const (
	// StateUnknown: verified offline only.
	StateUnknown State = iota
	// StateIncluded: a record other than an endorsement, included.
	StateIncluded
	// StateCounted: the endorsement counts.
	StateCounted
	// StateCountedRedacted: it counts, its disclosure was redacted.
	StateCountedRedacted
	// StateSuperseded: a correction replaced it.
	StateSuperseded
	// StateWithdrawn: it was withdrawn.
	StateWithdrawn
)

func (s State) String() string {
	return [...]string{"unknown (offline)", "included", "counted", "counted but redacted", "superseded", "withdrawn"}[s]
}

// Status is the outcome of verifying a receipt online.
type Status struct {
	*receipt.Verified
	// State is what became of the record.
	State State
	// Latest is the log's latest checkpoint, proved consistent with the
	// receipt's.
	Latest log.Checkpoint
	// By is the index of the withdrawal, redaction or correction, if any.
	By *uint64
}

// VerifyOffline checks a receipt with only a verifier key.
func VerifyOffline(b []byte, v note.Verifier) (*receipt.Receipt, *receipt.Verified, error) {
	r, err := receipt.Parse(b)
	if err != nil {
		return nil, nil, err
	}
	out, err := r.Verify(v)
	if err != nil {
		return nil, nil, err
	}
	return r, out, nil
}

func (c *Client) openCheckpoint(raw []byte) (*log.Checkpoint, error) {
	cp, _, _, err := log.ParseCheckpoint(raw, c.origin, c.verifier)
	if err != nil {
		return nil, fmt.Errorf("%w: the server's checkpoint: %v", receipt.ErrVerification, err)
	}
	return cp, nil
}

func verifyInclusion(index uint64, cp *log.Checkpoint, leaf []byte, hashes [][]byte) error {
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, cp.Size, leaf, hashes, cp.Hash); err != nil {
		return fmt.Errorf("%w: inclusion of %d in the latest checkpoint: %v", receipt.ErrVerification, index, err)
	}
	return nil
}

// Verify checks a receipt offline with the pinned key, then against the log
// as it is now: the latest checkpoint must extend the receipt's
// (consistency proof), and for an endorsement it reports a later
// withdrawal, redaction or correction.
func (c *Client) Verify(ctx context.Context, b []byte) (*Status, error) {
	_, v, err := VerifyOffline(b, c.verifier)
	if err != nil {
		return nil, err
	}
	// Whichever server answers, it answers from a log at least as large
	// as the receipt's checkpoint.
	c.Observe(v.Checkpoint.Size)
	latestResp, err := c.api.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		return nil, err
	}
	latest, err := c.openCheckpoint(latestResp.GetCheckpoint())
	if err != nil {
		return nil, err
	}
	c.Observe(latest.Size)
	if latest.Size < v.Checkpoint.Size {
		return nil, fmt.Errorf("%w: the log's latest checkpoint (size %d) is smaller than the receipt's (size %d): the log went back", receipt.ErrVerification, latest.Size, v.Checkpoint.Size)
	}
	if latest.Size > v.Checkpoint.Size {
		cons, err := c.api.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: v.Checkpoint.Size, ToSize: latest.Size})
		if err != nil {
			return nil, err
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, v.Checkpoint.Size, latest.Size, cons.GetHashes(), v.Checkpoint.Hash, latest.Hash); err != nil {
			return nil, fmt.Errorf("%w: the log's latest checkpoint is not consistent with the receipt's: %v", receipt.ErrVerification, err)
		}
	} else if string(latest.Hash) != string(v.Checkpoint.Hash) {
		return nil, fmt.Errorf("%w: the log's latest checkpoint has the receipt's size but another root", receipt.ErrVerification)
	}
	st := &Status{Verified: v, Latest: *latest, State: StateIncluded}
	if v.Record.GetEndorsement() == nil {
		return st, nil
	}
	// As of the latest checkpoint verified: a change the log published
	// since (by another server, perhaps) is not in it yet.
	e, err := c.api.GetEndorsement(ctx, &pb.GetEndorsementRequest{Index: v.Index, TreeSize: latest.Size})
	if err != nil {
		return nil, err
	}
	switch e.GetState() {
	case pb.EndorsementState_ENDORSEMENT_STATE_COUNTED:
		st.State = StateCounted
	case pb.EndorsementState_ENDORSEMENT_STATE_COUNTED_REDACTED:
		st.State, st.By = StateCountedRedacted, e.RedactedBy
	case pb.EndorsementState_ENDORSEMENT_STATE_SUPERSEDED:
		st.State, st.By = StateSuperseded, e.SupersededBy
	case pb.EndorsementState_ENDORSEMENT_STATE_WITHDRAWN:
		st.State, st.By = StateWithdrawn, e.WithdrawnBy
	default:
		return nil, fmt.Errorf("the server reports an unknown state %v for %d", e.GetState(), v.Index)
	}
	if st.By != nil {
		if err := c.checkBy(ctx, st, latest); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// checkBy checks the server's claim that the record at st.By withdrew,
// redacted or superseded the receipt's endorsement: the record must be in
// the latest checkpoint's tree and say so.
func (c *Client) checkBy(ctx context.Context, st *Status, latest *log.Checkpoint) error {
	by := *st.By
	if by <= st.Index || by >= latest.Size {
		return fmt.Errorf("%w: the server says record %d changed endorsement %d, outside the log", receipt.ErrVerification, by, st.Index)
	}
	incl, err := c.api.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: by, TreeSize: latest.Size})
	if err != nil {
		return err
	}
	stream, err := c.api.GetEntries(ctx, &pb.GetEntriesRequest{Start: by, End: by + 1})
	if err != nil {
		return err
	}
	resp, err := stream.Recv()
	if err != nil {
		return err
	}
	if len(resp.GetEntries()) != 1 || resp.GetEntries()[0].GetIndex() != by {
		return fmt.Errorf("%w: the server did not return entry %d", receipt.ErrVerification, by)
	}
	data := resp.GetEntries()[0].GetRecord()
	if err := verifyInclusion(by, latest, receipt.LeafHash(data), incl.GetHashes()); err != nil {
		return err
	}
	rec, err := records.Decode(data)
	if err != nil {
		return fmt.Errorf("%w: record %d: %v", receipt.ErrVerification, by, err)
	}
	target := func(index uint64, leaf []byte) bool {
		return index == st.Index && bytes.Equal(leaf, st.LeafHash)
	}
	ok := false
	switch st.State {
	case StateWithdrawn:
		w := rec.GetWithdrawal()
		ok = w != nil && target(w.GetTargetIndex(), w.GetTargetLeafHash())
	case StateCountedRedacted:
		r := rec.GetRedaction()
		ok = r != nil && target(r.GetTargetIndex(), r.GetTargetLeafHash())
	case StateSuperseded:
		e := rec.GetEndorsement()
		ok = e != nil && e.Supersedes != nil && e.GetSupersedes() == st.Index
	}
	if !ok {
		return fmt.Errorf("%w: the server says record %d made endorsement %d %v, but that record does not", receipt.ErrVerification, by, st.Index, st.State)
	}
	return nil
}

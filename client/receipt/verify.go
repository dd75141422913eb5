package receipt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// ErrVerification is wrapped by every error of [Receipt.Verify] that says
// the receipt is false, as opposed to unreadable.
var ErrVerification = errors.New("receipt does not verify")

func failed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrVerification, fmt.Sprintf(format, args...))
}

// Verified is what a receipt proves once verified.
type Verified struct {
	// Index is the record's index.
	Index uint64
	// LeafHash is the RFC 6962 leaf hash of the record.
	LeafHash []byte
	// Checkpoint is the verified checkpoint the inclusion is proved against.
	Checkpoint log.Checkpoint
	// Record is the decoded record.
	Record *pb.Record
	// Disclosure is the endorsement's disclosure, checked against its
	// commitment, or nil when the receipt carries none.
	Disclosure *pb.Disclosure
	// HasSecret is true when the receipt carries the withdrawal secret,
	// checked against the lock.
	HasSecret bool
}

// LeafHash returns the RFC 6962 leaf hash of a record's bytes.
func LeafHash(record []byte) []byte {
	return rfc6962.DefaultHasher.HashLeaf(record)
}

// Verify checks the receipt offline with the log's verifier key: the
// checkpoint's signature and origin, the inclusion of the record at its
// index, the record's encoding, and for an endorsement the disclosure and
// the withdrawal secret it carries. It fails with an error wrapping
// [ErrVerification] when the receipt is false.
func (r *Receipt) Verify(v note.Verifier) (*Verified, error) {
	cp, _, n, err := log.ParseCheckpoint(r.Checkpoint, v.Name(), v)
	if err != nil {
		return nil, failed("checkpoint: %v", err)
	}
	// note.Open reads signatures with lenient base64: insist on the one
	// spelling, so that a receipt cannot be changed and still verify.
	for _, s := range n.Sigs {
		if _, err := base64.StdEncoding.Strict().DecodeString(s.Base64); err != nil {
			return nil, failed("checkpoint: signature of %s is not canonical base64", s.Name)
		}
	}
	if r.Extra == nil || len(r.Extra.GetRecord()) == 0 {
		return nil, failed("the receipt carries no record")
	}
	if r.Index >= cp.Size {
		return nil, failed("index %d is outside the checkpoint's tree of size %d", r.Index, cp.Size)
	}
	leaf := LeafHash(r.Extra.GetRecord())
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, leaf, r.Proof, cp.Hash); err != nil {
		return nil, failed("inclusion proof: %v", err)
	}
	rec, err := records.Decode(r.Extra.GetRecord())
	if err != nil {
		return nil, failed("record: %v", err)
	}
	out := &Verified{Index: r.Index, LeafHash: leaf, Checkpoint: *cp, Record: rec}
	e := rec.GetEndorsement()
	if d := r.Extra.GetDisclosure(); d != nil {
		if e == nil {
			return nil, failed("a disclosure comes with a record that is not an endorsement")
		}
		if err := records.CheckDisclosure(e, d); err != nil {
			return nil, failed("%v", err)
		}
		out.Disclosure = d
	}
	if s := r.Extra.GetWithdrawalSecret(); len(s) > 0 {
		if e == nil {
			return nil, failed("a withdrawal secret comes with a record that is not an endorsement")
		}
		if !bytes.Equal(records.WithdrawalLock(s), e.GetWithdrawalLock()) {
			return nil, failed("the withdrawal secret does not open the endorsement's lock")
		}
		out.HasSecret = true
	}
	return out, nil
}

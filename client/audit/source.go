package audit

import (
	"context"
	"errors"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Source is where an [Auditor] reads a log. Nothing it returns is trusted:
// the auditor checks every entry against a signed checkpoint.
type Source interface {
	// Checkpoint returns the latest signed checkpoint, as served.
	Checkpoint(ctx context.Context) ([]byte, error)
	// Entries calls fn with the entries [start, end) of the tree of size
	// end, in order, in batches of consecutive entries.
	Entries(ctx context.Context, start, end uint64, fn func([]Entry) error) error
	// ConsistencyProof returns the RFC 6962 proof that the tree of size to
	// extends the tree of size from, where 0 < from < to.
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	// Disclosures returns the disclosures served now for the endorsements
	// at indexes, all below size; an index with none is absent from the
	// map. It fails with [ErrNoDisclosures] when the source serves none.
	Disclosures(ctx context.Context, size uint64, indexes []uint64) (map[uint64]*pb.Disclosure, error)
}

// ErrNoDisclosures is returned by a [Source] that serves no disclosures,
// such as a mirror of the tlog-tiles resources alone. The auditor then
// reports disclosures as not checked rather than withheld.
var ErrNoDisclosures = errors.New("the source serves no disclosures")

// Entry is one entry of the log as a [Source] serves it.
type Entry struct {
	// Index is the entry's index.
	Index uint64
	// Record is the leaf: the record bytes exactly as stored.
	Record []byte
	// Disclosure is the disclosure served with the entry, if any.
	Disclosure *pb.Disclosure
	// Redacted is true when the source says the disclosure was redacted,
	// possibly by a record beyond the tree being audited.
	Redacted bool
	// NoDisclosures is true when the source could not say whether a
	// disclosure exists (see [ErrNoDisclosures]).
	NoDisclosures bool
	// Foreign is true when the source says that no server of the log
	// admitted the entry: it was queued on the log's storage directly
	// (Trillian's), or copies another. The audit reports it ([RuleForeign])
	// and the rules skip it.
	Foreign bool
	// NoForeignMarks is true when the source could not say whether the
	// entry is foreign: a mirror of the tlog-tiles resources alone. The
	// rules then judge it as any other entry.
	NoForeignMarks bool
}

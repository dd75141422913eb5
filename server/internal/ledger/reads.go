package ledger

import (
	"context"
	"fmt"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Info describes the log.
type Info struct {
	Origin      string
	VerifierKey string
	Engine      string
	Size        uint64
}

// Info returns the log's description.
func (l *Ledger) Info(ctx context.Context) (Info, error) {
	cp, err := l.cfg.Log.Checkpoint(ctx)
	if err != nil {
		return Info{}, err
	}
	return Info{Origin: l.origin, VerifierKey: l.cfg.VerifierKey, Engine: l.cfg.Engine, Size: cp.Size}, nil
}

// Checkpoint returns the latest published checkpoint.
func (l *Ledger) Checkpoint(ctx context.Context) (Checkpoint, error) {
	return l.cfg.Log.Checkpoint(ctx)
}

// sizeOrLatest returns size, checked against the published size, or the
// published size and its checkpoint when size is 0.
func (l *Ledger) sizeOrLatest(ctx context.Context, size uint64) (uint64, *Checkpoint, error) {
	cp, err := l.cfg.Log.Checkpoint(ctx)
	if err != nil {
		return 0, nil, err
	}
	if size == 0 {
		return cp.Size, &cp, nil
	}
	if size > cp.Size {
		return 0, nil, fmt.Errorf("%w: tree size %d is beyond the published size %d", ErrOutOfRange, size, cp.Size)
	}
	return size, nil, nil
}

// leafHasher is a Log that reads leaf hashes cheaply.
type leafHasher interface {
	// LeafHash returns the RFC 6962 leaf hash of the entry at index, in
	// the tree of size.
	LeafHash(ctx context.Context, index, size uint64) ([]byte, error)
}

// InclusionProof proves the entry at index in the tree of size, or in the
// latest checkpoint's tree when size is 0 (which it then returns).
func (l *Ledger) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, uint64, *Checkpoint, []byte, error) {
	size, cp, err := l.sizeOrLatest(ctx, size)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	if index >= size {
		return nil, 0, nil, nil, fmt.Errorf("%w: index %d is not in the tree of size %d", ErrOutOfRange, index, size)
	}
	p, err := l.cfg.Log.InclusionProof(ctx, index, size)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	// The log may know the leaf hash; otherwise the store has it, which is
	// cheaper than reading the entry bundle.
	if lh, ok := l.cfg.Log.(leafHasher); ok {
		h, err := lh.LeafHash(ctx, index, size)
		if err != nil {
			return nil, 0, nil, nil, err
		}
		return p, size, cp, h, nil
	}
	if err := l.waitIndexed(ctx, index+1); err != nil {
		return nil, 0, nil, nil, err
	}
	e, err := l.cfg.Store.EntryByIndex(ctx, index)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	if e == nil {
		return nil, 0, nil, nil, fmt.Errorf("entry %d is in the log but not in the store", index)
	}
	return p, size, cp, e.LeafHash, nil
}

// ConsistencyProof proves that the tree of size to extends that of size
// from; to 0 means the latest checkpoint, which it then returns.
func (l *Ledger) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, uint64, *Checkpoint, error) {
	to, cp, err := l.sizeOrLatest(ctx, to)
	if err != nil {
		return nil, 0, nil, err
	}
	if from > to {
		return nil, 0, nil, fmt.Errorf("%w: from size %d is larger than to size %d", ErrOutOfRange, from, to)
	}
	if from == 0 || from == to {
		return nil, to, cp, nil
	}
	p, err := l.cfg.Log.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, 0, nil, err
	}
	return p, to, cp, nil
}

// EntryBatch is a run of consecutive entries with their public
// disclosures.
type EntryBatch []*pb.Entry

// MaxEntriesPerBatch is the most entries in one batch of Entries.
const MaxEntriesPerBatch = 256

// Entries calls fn with the entries [start, end) in batches, in order; end
// 0 means the published size.
func (l *Ledger) Entries(ctx context.Context, start, end uint64, fn func(EntryBatch) error) error {
	end, _, err := l.sizeOrLatest(ctx, end)
	if err != nil {
		return err
	}
	if start > end {
		return fmt.Errorf("%w: start %d is beyond end %d", ErrOutOfRange, start, end)
	}
	if err := l.waitIndexed(ctx, end); err != nil {
		return err
	}
	for from := start; from < end; from += MaxEntriesPerBatch {
		to := min(from+MaxEntriesPerBatch, end)
		leaves, err := l.cfg.Log.ReadLeaves(ctx, from, to)
		if err != nil {
			return err
		}
		ds, err := l.cfg.Store.Disclosures(ctx, from, to)
		if err != nil {
			return err
		}
		redacted, err := l.cfg.Store.Redacted(ctx, from, to)
		if err != nil {
			return err
		}
		batch := make(EntryBatch, len(leaves))
		for i, leaf := range leaves {
			idx := from + uint64(i)
			batch[i] = &pb.Entry{Index: idx, Record: leaf, Redacted: redacted[idx]}
		}
		for _, d := range ds {
			batch[d.Index-from].Disclosure = d.Disclosure
		}
		if err := fn(batch); err != nil {
			return err
		}
	}
	return nil
}

// Disclosures returns the public, unredacted disclosures of the entries
// [from, to), which must be within the published log.
func (l *Ledger) Disclosures(ctx context.Context, from, to uint64) ([]DisclosureRow, error) {
	if _, _, err := l.sizeOrLatest(ctx, to); err != nil {
		return nil, err
	}
	if err := l.waitIndexed(ctx, to); err != nil {
		return nil, err
	}
	return l.cfg.Store.Disclosures(ctx, from, to)
}

// LetterInfo is a letter with its state.
type LetterInfo struct {
	Index          uint64
	Record         []byte
	Letter         *pb.Letter
	Status         pb.Status
	ClosedIndex    int64
	DeliveredIndex int64
	Counts         Counts
	// OrganiserKeys are the keys valid for the letter's next record: those
	// it lists, as organiser changes added and revoked them since;
	// RevokedKeys those they revoked.
	OrganiserKeys, RevokedKeys [][]byte
}

// Letter returns a letter, its state and its counts at the latest
// checkpoint.
func (l *Ledger) Letter(ctx context.Context, id string) (*LetterInfo, error) {
	if err := records.CheckLetterID("letter_id", id); err != nil {
		return nil, err
	}
	letters, err := l.listLetters(ctx)
	if err != nil {
		return nil, err
	}
	for _, li := range letters {
		if li.Letter.GetId() == id {
			return l.withCounts(ctx, li)
		}
	}
	return nil, fmt.Errorf("%w: no letter %q", ErrNotFound, id)
}

// Letters returns the published letters, in order, after the first skip.
func (l *Ledger) Letters(ctx context.Context, skip, limit int) ([]*LetterInfo, bool, error) {
	letters, err := l.listLetters(ctx)
	if err != nil {
		return nil, false, err
	}
	if skip > len(letters) {
		skip = len(letters)
	}
	page := letters[skip:]
	more := len(page) > limit
	if more {
		page = page[:limit]
	}
	for i, li := range page {
		if page[i], err = l.withCounts(ctx, li); err != nil {
			return nil, false, err
		}
	}
	return page, more, nil
}

// listLetters returns the letters within the published log.
func (l *Ledger) listLetters(ctx context.Context) ([]*LetterInfo, error) {
	cp, err := l.cfg.Log.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := l.cfg.Store.Letters(ctx)
	if err != nil {
		return nil, err
	}
	var out []*LetterInfo
	for _, row := range rows {
		if row.Index == NoIndex || uint64(row.Index) >= cp.Size {
			continue
		}
		rec, err := records.Decode(row.Record)
		if err != nil {
			return nil, err
		}
		li := &LetterInfo{Index: uint64(row.Index), Record: row.Record, Letter: rec.GetLetter(), ClosedIndex: -1, DeliveredIndex: -1,
			OrganiserKeys: rec.GetLetter().GetOrganiserKeys()}
		if row.KeysSeq != 0 {
			li.OrganiserKeys, li.RevokedKeys = row.OrganiserKeys, row.RevokedKeys
		}
		if row.ClosedSeq != 0 {
			if li.ClosedIndex, err = l.cfg.Store.IndexOfSeq(ctx, row.ClosedSeq); err != nil {
				return nil, err
			}
		}
		if row.DeliveredSeq != 0 {
			if li.DeliveredIndex, err = l.cfg.Store.IndexOfSeq(ctx, row.DeliveredSeq); err != nil {
				return nil, err
			}
		}
		for _, p := range []*int64{&li.ClosedIndex, &li.DeliveredIndex} {
			if *p >= int64(cp.Size) {
				*p = NoIndex
			}
		}
		// The status is the later of the two.
		switch {
		case li.ClosedIndex > li.DeliveredIndex:
			li.Status = pb.Status_STATUS_CLOSED
		case li.DeliveredIndex > li.ClosedIndex:
			li.Status = pb.Status_STATUS_DELIVERED
		}
		out = append(out, li)
	}
	return out, nil
}

func (l *Ledger) withCounts(ctx context.Context, li *LetterInfo) (*LetterInfo, error) {
	size, _, err := l.sizeOrLatest(ctx, 0)
	if err != nil {
		return nil, err
	}
	if err := l.waitIndexed(ctx, size); err != nil {
		return nil, err
	}
	_, c, err := l.cfg.Store.Roster(ctx, li.Letter.GetId(), size, -1, 0)
	if err != nil {
		return nil, err
	}
	li.Counts = c
	return li, nil
}

// Roster returns a page of a letter's endorsements that count at size (0:
// the latest checkpoint), after index after (-1: from the start).
func (l *Ledger) Roster(ctx context.Context, letterID string, size uint64, after int64, limit int) ([]RosterRow, Counts, uint64, error) {
	if err := records.CheckLetterID("letter_id", letterID); err != nil {
		return nil, Counts{}, 0, err
	}
	ls, err := l.letter(ctx, letterID)
	if err != nil {
		return nil, Counts{}, 0, err
	}
	if ls == nil {
		return nil, Counts{}, 0, fmt.Errorf("%w: no letter %q", ErrNotFound, letterID)
	}
	size, _, err = l.sizeOrLatest(ctx, size)
	if err != nil {
		return nil, Counts{}, 0, err
	}
	if err := l.waitIndexed(ctx, size); err != nil {
		return nil, Counts{}, 0, err
	}
	rows, c, err := l.cfg.Store.Roster(ctx, letterID, size, after, limit)
	return rows, c, size, err
}

// Find searches a letter's public endorsements that count at the latest
// checkpoint by name, insensitive to case and diacritics.
func (l *Ledger) Find(ctx context.Context, letterID, query string, limit int) ([]RosterRow, error) {
	if err := records.CheckLetterID("letter_id", letterID); err != nil {
		return nil, err
	}
	folded := names.Fold(query)
	if n := len([]rune(folded)); n < 2 || n > records.MaxNameLength {
		return nil, &records.FieldError{Field: "query", Rule: "must be 2 to 200 code points"}
	}
	size, _, err := l.sizeOrLatest(ctx, 0)
	if err != nil {
		return nil, err
	}
	if err := l.waitIndexed(ctx, size); err != nil {
		return nil, err
	}
	return l.cfg.Store.Find(ctx, letterID, folded, size, limit)
}

// Endorsement returns what became of the endorsement at index, at the
// latest checkpoint.
func (l *Ledger) Endorsement(ctx context.Context, index uint64) (*EndorsementState, uint64, error) {
	size, _, err := l.sizeOrLatest(ctx, 0)
	if err != nil {
		return nil, 0, err
	}
	if err := l.waitIndexed(ctx, size); err != nil {
		return nil, 0, err
	}
	st, err := l.cfg.Store.Endorsement(ctx, index, size)
	if err != nil {
		return nil, 0, err
	}
	if st == nil {
		return nil, 0, fmt.Errorf("%w: no endorsement at index %d in the tree of size %d", ErrNotFound, index, size)
	}
	return st, size, nil
}

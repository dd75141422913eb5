package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/letters"
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
	cp, err := l.published(ctx)
	if err != nil {
		return Info{}, err
	}
	return Info{Origin: l.origin, VerifierKey: l.cfg.VerifierKey, Engine: l.cfg.Engine, Size: cp.Size}, nil
}

// Checkpoint returns the latest published checkpoint; an error wrapping
// [ErrUnavailable] when there is none yet, or when the log stopped for
// good (see [ErrStopped]).
func (l *Ledger) Checkpoint(ctx context.Context) (Checkpoint, error) {
	return l.published(ctx)
}

// sizeOrLatest returns size, checked against the published size, or the
// published size and its checkpoint when size is 0.
func (l *Ledger) sizeOrLatest(ctx context.Context, size uint64) (uint64, *Checkpoint, error) {
	cp, err := l.published(ctx)
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
// latest checkpoint's tree when size is 0 (which it then returns). The
// log's proof is checked against the published checkpoint first.
func (l *Ledger) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, uint64, *Checkpoint, []byte, error) {
	latest, err := l.published(ctx)
	if err != nil {
		return nil, 0, nil, nil, err
	}
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
	h, err := l.leafHashAt(ctx, index, size)
	if err != nil {
		return nil, 0, nil, nil, err
	}
	if cp != nil {
		latest = *cp
	}
	if err := l.checkInclusion(ctx, index, size, h, p, latest); err != nil {
		return nil, 0, nil, nil, err
	}
	return p, size, cp, h, nil
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
	latest, err := l.published(ctx)
	if err != nil {
		return nil, 0, nil, err
	}
	if cp != nil {
		latest = *cp
	}
	p, err := l.cfg.Log.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := l.checkConsistency(ctx, from, to, p, latest); err != nil {
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
		var foreign map[uint64]bool
		if l.unordered != nil {
			if foreign, err = l.unordered.store.Foreign(ctx, from, to); err != nil {
				return err
			}
		}
		batch := make(EntryBatch, len(leaves))
		for i, leaf := range leaves {
			idx := from + uint64(i)
			batch[i] = &pb.Entry{Index: idx, Record: leaf, Redacted: redacted[idx], Foreign: foreign[idx]}
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

// Foreign returns, in ascending order, the indexes of the entries in
// [from, to) that no server of the log admitted (see [ForeignLeaf]); to
// must be within the published log. A log that orders its own entries has
// none.
func (l *Ledger) Foreign(ctx context.Context, from, to uint64) ([]uint64, error) {
	if _, _, err := l.sizeOrLatest(ctx, to); err != nil {
		return nil, err
	}
	if err := l.waitIndexed(ctx, to); err != nil {
		return nil, err
	}
	if l.unordered == nil {
		return nil, nil
	}
	marks, err := l.unordered.store.Foreign(ctx, from, to)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for i, foreign := range marks {
		if foreign {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out, nil
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
	// it lists, as the organiser changes in the published log added and
	// revoked them since; RevokedKeys those they revoked.
	OrganiserKeys, RevokedKeys [][]byte
}

// viewSource is the ledger as the letters' view reads it.
type viewSource struct{ l *Ledger }

func (v viewSource) Checkpoint(ctx context.Context) ([]byte, uint64, error) {
	cp, err := v.l.Checkpoint(ctx)
	return cp.Raw, cp.Size, err
}

func (v viewSource) Entries(ctx context.Context, start, end uint64, fn func([]*pb.Entry) error) error {
	return v.l.Entries(ctx, start, end, func(b EntryBatch) error { return fn(b) })
}

// View returns the letters of the log (package letters), brought up to
// the latest checkpoint: the one source of letter state that the reads of
// letters and the web pages answer from.
func (l *Ledger) View(ctx context.Context) (*letters.View, error) {
	if err := l.view.Update(ctx, viewSource{l}); err != nil {
		return nil, err
	}
	return l.view, nil
}

// ViewSource returns the ledger as a source of the view of [Ledger.View],
// for a reader (the web pages) that brings the view up to date itself.
func (l *Ledger) ViewSource() letters.Source { return viewSource{l} }

func letterInfo(lt *letters.Letter) *LetterInfo {
	c := lt.Counts
	return &LetterInfo{
		Index: lt.Index, Record: lt.Record, Letter: lt.Letter, Status: lt.Status,
		ClosedIndex: lt.ClosedIndex, DeliveredIndex: lt.DeliveredIndex,
		Counts:        Counts{Public: c.Public, Private: c.Private, Redacted: c.Redacted, Withdrawn: c.Withdrawn, Superseded: c.Superseded},
		OrganiserKeys: lt.OrganiserKeys, RevokedKeys: lt.RevokedKeys,
	}
}

// Letter returns a letter, its state and its counts at the latest
// checkpoint, from the letters' view: a lookup, never a count.
func (l *Ledger) Letter(ctx context.Context, id string) (*LetterInfo, error) {
	if err := records.CheckLetterID("letter_id", id); err != nil {
		return nil, err
	}
	v, err := l.View(ctx)
	if err != nil {
		return nil, err
	}
	var li *LetterInfo
	v.Read(func(s *letters.Snapshot) {
		if lt := s.Letter(id); lt != nil {
			li = letterInfo(lt)
		}
	})
	if li == nil {
		return nil, fmt.Errorf("%w: no letter %q", ErrNotFound, id)
	}
	return li, nil
}

// Letters returns the published letters, in order, after the first skip,
// with their counts at the latest checkpoint.
func (l *Ledger) Letters(ctx context.Context, skip, limit int) ([]*LetterInfo, bool, error) {
	v, err := l.View(ctx)
	if err != nil {
		return nil, false, err
	}
	var page []*LetterInfo
	more := false
	v.Read(func(s *letters.Snapshot) {
		all := s.Letters[min(skip, len(s.Letters)):]
		more = len(all) > limit
		for _, lt := range all[:min(limit, len(all))] {
			page = append(page, letterInfo(lt))
		}
	})
	return page, more, nil
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

// Endorsement returns what became of the endorsement at index, by tree
// size (0: the latest checkpoint).
func (l *Ledger) Endorsement(ctx context.Context, index, size uint64) (*EndorsementState, uint64, error) {
	size, _, err := l.sizeOrLatest(ctx, size)
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

// LettersView returns the letters' view of [Ledger.View] as it is, for a
// reader that brings it up to date itself from [Ledger.ViewSource].
func (l *Ledger) LettersView() *letters.View { return l.view }

// catcherUp is a [Log] that several servers publish from (Trillian): asked
// to, it follows the tree at once rather than at its next poll.
type catcherUp interface {
	CatchUp()
}

// behindRetry is the retry hint of a [BehindError].
const behindRetry = 250 * time.Millisecond

// CatchUp returns once the published checkpoint covers size, a tree size
// the caller knows (another server of the log may have published it):
// at once when it does, else after asking the log to follow the tree and
// waiting up to wait. It returns a [*BehindError] when the log is still
// behind then, so that a caller is never told the log is smaller than a
// checkpoint it was handed, nor that a record it was given is not found.
func (l *Ledger) CatchUp(ctx context.Context, size uint64, wait time.Duration) error {
	cp, err := l.cfg.Log.Checkpoint(ctx)
	if err == nil && cp.Size >= size {
		return nil
	}
	if c, ok := l.cfg.Log.(catcherUp); ok {
		c.CatchUp()
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if _, err := l.cfg.Log.AwaitCheckpoint(wctx, size-1); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		published, _ := l.cfg.Log.Checkpoint(ctx)
		l.cfg.Metrics.behind.Inc()
		return &BehindError{Known: size, Published: published.Size, RetryAfter: behindRetry}
	}
	return nil
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/undersigned/undersigned/server/internal/tileproofs"
)

// Stopped returns why the log stopped for good (an error wrapping
// [ErrStopped]), or nil while it runs, even when it cannot write for a
// while (Trillian unreachable, say).
func (l *Ledger) Stopped() error {
	if err := l.cfg.Log.Healthy(); errors.Is(err, ErrStopped) {
		return err
	}
	return nil
}

// published returns the latest published checkpoint, or an error wrapping
// [ErrUnavailable] when the log stopped for good: its checkpoint is no
// longer vouched for.
func (l *Ledger) published(ctx context.Context) (Checkpoint, error) {
	if err := l.Stopped(); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	cp, err := l.cfg.Log.Checkpoint(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return cp, nil
}

// badProof records a proof from the log that does not verify against the
// published checkpoint: the log's tree is not the one its checkpoint
// commits to (Trillian's database replaced or restored under a running
// frontend, say). The proof is not served.
func (l *Ledger) badProof(what string, err error) error {
	l.cfg.Metrics.badProofs.Inc()
	l.log.Error("a proof from the log does not verify against the published checkpoint: refused", slog.String("proof", what), slog.Any("error", err))
	return unavailable("the %s from the log does not verify against the published checkpoint: %v", what, err)
}

// leafHashAt returns the leaf hash of the entry at index, in the tree of
// size: from the log when it knows it cheaply, else from the store, else
// from the entry itself (a leaf the store does not hold).
func (l *Ledger) leafHashAt(ctx context.Context, index, size uint64) ([]byte, error) {
	if lh, ok := l.cfg.Log.(leafHasher); ok {
		return lh.LeafHash(ctx, index, size)
	}
	if err := l.waitIndexed(ctx, index+1); err != nil {
		return nil, err
	}
	e, err := l.cfg.Store.EntryByIndex(ctx, index)
	if err != nil {
		return nil, err
	}
	if e != nil {
		return e.LeafHash, nil
	}
	leaves, err := l.cfg.Log.ReadLeaves(ctx, index, index+1)
	if err != nil {
		return nil, err
	}
	if len(leaves) != 1 {
		return nil, fmt.Errorf("entry %d: the log returned %d entries", index, len(leaves))
	}
	return leafHash(leaves[0]), nil
}

// rootAt returns the root of the tree of size, which is at most the
// published checkpoint's: the checkpoint's own root, or one proved
// consistent with it.
func (l *Ledger) rootAt(ctx context.Context, size uint64, cp Checkpoint) ([]byte, error) {
	if size == cp.Size {
		return cp.Hash, nil
	}
	root, err := l.claimedRoot(ctx, size)
	if err != nil || size == 0 {
		return root, err
	}
	c, err := l.cfg.Log.ConsistencyProof(ctx, size, cp.Size)
	if err != nil {
		return nil, err
	}
	if err := proof.VerifyConsistency(tileproofs.Hasher, size, cp.Size, c, root, cp.Hash); err != nil {
		return nil, l.badProof(fmt.Sprintf("consistency proof from %d to %d", size, cp.Size), err)
	}
	return root, nil
}

// claimedRoot returns the root of the tree of size that the log's
// inclusion proof of the tree's last entry gives. It is not checked: a
// consistency proof to a known root checks it.
func (l *Ledger) claimedRoot(ctx context.Context, size uint64) ([]byte, error) {
	if size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	last, err := l.leafHashAt(ctx, size-1, size)
	if err != nil {
		return nil, err
	}
	p, err := l.cfg.Log.InclusionProof(ctx, size-1, size)
	if err != nil {
		return nil, err
	}
	root, err := proof.RootFromInclusionProof(tileproofs.Hasher, size-1, size, last, p)
	if err != nil {
		return nil, l.badProof(fmt.Sprintf("inclusion proof of %d in %d", size-1, size), err)
	}
	return root, nil
}

// checkInclusion checks an inclusion proof from the log against the
// published checkpoint cp, before it is served or put into a receipt.
func (l *Ledger) checkInclusion(ctx context.Context, index, size uint64, leaf []byte, p [][]byte, cp Checkpoint) error {
	root, err := l.rootAt(ctx, size, cp)
	if err != nil {
		return err
	}
	if err := proof.VerifyInclusion(tileproofs.Hasher, index, size, leaf, p, root); err != nil {
		return l.badProof(fmt.Sprintf("inclusion proof of %d in %d", index, size), err)
	}
	return nil
}

// checkConsistency checks a consistency proof from the log, from size
// from to size to, against the published checkpoint cp: the proof must
// lead to the root the checkpoint commits to at size to.
func (l *Ledger) checkConsistency(ctx context.Context, from, to uint64, p [][]byte, cp Checkpoint) error {
	rootTo, err := l.rootAt(ctx, to, cp)
	if err != nil {
		return err
	}
	rootFrom, err := l.claimedRoot(ctx, from)
	if err != nil {
		return err
	}
	if err := proof.VerifyConsistency(tileproofs.Hasher, from, to, p, rootFrom, rootTo); err != nil {
		return l.badProof(fmt.Sprintf("consistency proof from %d to %d", from, to), err)
	}
	return nil
}

package guard_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/server/internal/guard"
)

// row is a Persister shared by several signers: it stores by
// compare-and-swap, as the Trillian engine's PostgreSQL row does.
type row struct {
	mu  sync.Mutex
	raw []byte
}

func (r *row) Load(context.Context) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.raw), nil
}

func (r *row) Store(_ context.Context, prev, next []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !bytes.Equal(prev, r.raw) {
		return fmt.Errorf("store: %w", guard.ErrConflict)
	}
	r.raw = bytes.Clone(next)
	return nil
}

// tree is a log whose roots and consistency proofs the signers use.
type tree struct{ leaves [][]byte }

func (tr *tree) root(size uint64) []byte {
	r := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	for _, l := range tr.leaves[:size] {
		r.Append(rfc6962.DefaultHasher.HashLeaf(l), nil)
	}
	h, _ := r.GetRootHash(nil)
	return h
}

// prove builds consistency proofs by rehashing the leaves: slow and
// obviously right.
func (tr *tree) prove(_ context.Context, from, to uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		lo, hi := id.Index<<id.Level, (id.Index+1)<<id.Level
		sub := &tree{leaves: tr.leaves[lo:min(hi, to)]}
		hashes[i] = sub.root(uint64(len(sub.leaves)))
	}
	return nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}

func newSigners(t *testing.T, n int, p guard.Persister, prove guard.ConsistencyProver) []*guard.Signer {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "example.test/shared")
	if err != nil {
		t.Fatal(err)
	}
	var out []*guard.Signer
	for range n {
		s, _ := note.NewSigner(skey)
		v, _ := note.NewVerifier(vkey)
		g, err := guard.New(context.Background(), s, v, p, prove, nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	return out
}

// TestSharedPersister has two signers share one row: the one that lost
// the race gets ErrConflict, adopts the other's checkpoint with Reload,
// and signs the next tree; both sign the same bytes for the same tree;
// a checkpoint in the row that does not extend a signer's stops it.
func TestSharedPersister(t *testing.T) {
	ctx := context.Background()
	tr := &tree{}
	for i := range 40 {
		tr.leaves = append(tr.leaves, fmt.Appendf(nil, "entry %d", i))
	}
	shared := &row{}
	gs := newSigners(t, 2, shared, tr.prove)
	a, b := gs[0], gs[1]

	first, err := a.SignTree(ctx, 10, tr.root(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SignTree(ctx, 12, tr.root(12)); !errors.Is(err, guard.ErrConflict) {
		t.Fatalf("the second signer stored over the first: %v, want ErrConflict", err)
	}
	cp, raw, err := b.Reload(ctx)
	if err != nil || cp.Size != 10 || !bytes.Equal(raw, first) {
		t.Fatalf("Reload: %v, %v: want the first signer's checkpoint", cp, err)
	}
	same, err := b.SignTree(ctx, 10, tr.root(10))
	if err != nil || !bytes.Equal(same, first) {
		t.Errorf("the second signer signs other bytes for the same tree (%v)", err)
	}
	if _, err := b.SignTree(ctx, 25, tr.root(25)); err != nil {
		t.Fatalf("after Reload: %v", err)
	}
	if _, err := a.SignTree(ctx, 30, tr.root(30)); !errors.Is(err, guard.ErrConflict) {
		t.Fatalf("a stale signer stored: %v, want ErrConflict", err)
	}
	if cp, _, err := a.Reload(ctx); err != nil || cp.Size != 25 {
		t.Fatalf("Reload: %v, %v", cp, err)
	}
	if _, err := a.SignTree(ctx, 30, tr.root(30)); err != nil {
		t.Fatal(err)
	}

	t.Run("a row that does not extend the last checkpoint stops the signer", func(t *testing.T) {
		forked := &tree{leaves: append([][]byte{[]byte("forked")}, tr.leaves[1:]...)}
		r := &row{}
		gs := newSigners(t, 2, r, tr.prove)
		honest, forger := gs[0], gs[1]
		if _, err := honest.SignTree(ctx, 20, tr.root(20)); err != nil {
			t.Fatal(err)
		}
		// Another holder of the key writes a checkpoint of a forked tree.
		r.raw = nil
		if _, err := forger.SignTree(ctx, 30, forked.root(30)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := honest.Reload(ctx); !errors.Is(err, guard.ErrInconsistent) {
			t.Fatalf("Reload of a forked checkpoint: %v, want ErrInconsistent", err)
		}
		if _, err := honest.SignTree(ctx, 40, tr.root(40)); !errors.Is(err, guard.ErrInconsistent) || honest.Err() == nil {
			t.Errorf("the signer still signs after seeing a fork: %v", err)
		}
	})
}

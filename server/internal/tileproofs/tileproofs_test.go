package tileproofs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/undersigned/undersigned/server/internal/tileproofs"
)

// tree is a log's perfect subtrees, level by level, computed the plain way.
type tree [][][]byte

func newTree(n int) tree {
	t := tree{make([][]byte, n)}
	for i := range n {
		h := sha256.Sum256(fmt.Appendf(nil, "entry %d", i))
		t[0][i] = rfc6962.DefaultHasher.HashLeaf(h[:i%32+1])
	}
	for below := t[0]; len(below) > 1; below = t[len(t)-1] {
		var row [][]byte
		for i := 0; i+1 < len(below); i += 2 {
			row = append(row, rfc6962.DefaultHasher.HashChildren(below[i], below[i+1]))
		}
		t = append(t, row)
	}
	return t
}

// root is the root of the tree of the first size entries.
func (t tree) root(size uint64) []byte {
	var hashes [][]byte // the perfect subtrees, largest first
	for level := len(t) - 1; level >= 0; level-- {
		if size>>level&1 == 1 {
			start := size >> level &^ 1
			hashes = append(hashes, t[level][start])
		}
	}
	r := hashes[len(hashes)-1]
	for i := len(hashes) - 2; i >= 0; i-- {
		r = rfc6962.DefaultHasher.HashChildren(hashes[i], r)
	}
	return r
}

// fetch serves the tiles of the tree of size, as a log's tile API does.
func (t tree) fetch(size uint64) func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return func(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
		row := 8 * level
		if int(row) >= len(t) {
			return nil, os.ErrNotExist
		}
		width := uint64(layout.TileWidth)
		if p != 0 {
			width = uint64(p)
		}
		if want := layout.PartialTileSize(level, index, size); want != p {
			return nil, fmt.Errorf("tile %d/%d asked with width %d, the tree of %d has %d", level, index, p, size, want)
		}
		first := index * layout.TileWidth
		if first+width > uint64(len(t[row])) {
			return nil, os.ErrNotExist
		}
		return bytes.Join(t[row][first:first+width], nil), nil
	}
}

// TestProofs checks the proofs built from tiles against the roots of the
// tree, for trees that end inside a tile and on its edge, on several
// levels of tiles.
func TestProofs(t *testing.T) {
	ctx := context.Background()
	const n = 2*65536 + 3*256 + 17
	tr := newTree(n)
	for _, size := range []uint64{1, 2, 255, 256, 257, 1000, 65536, 65537, 70000, n} {
		nodes := tileproofs.New(tr.fetch(size))
		root := tr.root(size)
		for _, index := range []uint64{0, size / 3, size / 2, size - 1} {
			p, err := nodes.Inclusion(ctx, index, size, size)
			if err != nil {
				t.Fatalf("inclusion of %d in %d: %v", index, size, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, tr[0][index], p, root); err != nil {
				t.Errorf("inclusion of %d in %d: %v", index, size, err)
			}
		}
		for _, from := range []uint64{1, size / 2, size - 1} {
			if from == 0 || from >= size {
				continue
			}
			p, err := nodes.Consistency(ctx, from, size, size)
			if err != nil {
				t.Fatalf("consistency from %d to %d: %v", from, size, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, size, p, tr.root(from), root); err != nil {
				t.Errorf("consistency from %d to %d: %v", from, size, err)
			}
		}
	}
	// A tile that cannot be read is an error, never a wrong proof.
	nodes := tileproofs.New(func(context.Context, uint64, uint64, uint8) ([]byte, error) { return nil, os.ErrNotExist })
	if _, err := nodes.Inclusion(ctx, 5, 1000, 1000); err == nil {
		t.Error("a proof without tiles")
	}
}

// TestConcurrentReceiptsReadATileOnce checks that the receipts of one
// checkpoint, asking at once, read and hash each tile once between them,
// and that every proof is right.
func TestConcurrentReceiptsReadATileOnce(t *testing.T) {
	ctx := context.Background()
	const size = 3*256 + 100
	tr := newTree(size)
	var mu sync.Mutex
	reads := map[[3]uint64]int{}
	release := make(chan struct{})
	fetch := tr.fetch(size)
	nodes := tileproofs.New(func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		mu.Lock()
		reads[[3]uint64{level, index, uint64(p)}]++
		mu.Unlock()
		<-release // held while the other callers start and ask
		return fetch(ctx, level, index, p)
	})
	root := tr.root(size)
	const callers = 32
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		index := uint64(3*256 + i)
		wg.Go(func() {
			p, err := nodes.Inclusion(ctx, index, size, size)
			if err == nil {
				err = proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, tr[0][index], p, root)
			}
			errs <- err
		})
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		mu.Lock()
		n := len(reads)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for tile, n := range reads {
		if n != 1 {
			t.Errorf("tile %v read %d times by %d receipts at once, want once", tile, n, callers)
		}
	}
}

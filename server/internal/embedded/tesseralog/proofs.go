package tesseralog

import (
	"context"
	"fmt"
	"sync"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
)

// nodes answers proofs from the log's tiles. A tile holds one row of 256
// hashes; the seven rows above it inside the tile are computed once per tile
// and kept (a pyramid), so that the receipts of one checkpoint, which share
// most of their nodes, cost a few lookups each rather than rehashing the
// tile for every node.
type nodes struct {
	fetch tclient.TileFetcherFunc

	mu      sync.Mutex
	full    map[[2]uint64]pyramid
	order   [][2]uint64 // insertion order of full, for eviction
	partial map[[3]uint64]pyramid
}

// pyramid holds a tile's rows: rows[0] the tile's hashes, rows[k] the
// hashes k levels above, each row its hashes concatenated.
type pyramid [layout.TileHeight + 1][]byte

// The caches' bounds: a full pyramid is 511 hashes, about 16 KiB.
const (
	maxFullPyramids    = 512
	maxPartialPyramids = 64
)

func newNodes(f tclient.TileFetcherFunc) *nodes {
	return &nodes{fetch: f, full: map[[2]uint64]pyramid{}, partial: map[[3]uint64]pyramid{}}
}

func (n *nodes) pyramid(ctx context.Context, level, index uint64, p uint8) (pyramid, error) {
	n.mu.Lock()
	var pyr pyramid
	var ok bool
	if p == 0 {
		pyr, ok = n.full[[2]uint64{level, index}]
	} else {
		pyr, ok = n.partial[[3]uint64{level, index, uint64(p)}]
	}
	n.mu.Unlock()
	if ok {
		return pyr, nil
	}
	raw, err := n.fetch(ctx, level, index, p)
	if err != nil {
		return pyr, fmt.Errorf("read tile %d/%d.p/%d: %w", level, index, p, err)
	}
	var t api.HashTile
	if err := t.UnmarshalText(raw); err != nil {
		return pyr, fmt.Errorf("parse tile %d/%d: %w", level, index, err)
	}
	want := int(p)
	if want == 0 {
		want = layout.TileWidth
	}
	if len(t.Nodes) < want {
		return pyr, fmt.Errorf("tile %d/%d has %d hashes, want %d", level, index, len(t.Nodes), want)
	}
	row := make([]byte, 0, want*32)
	for _, h := range t.Nodes[:want] {
		row = append(row, h...)
	}
	pyr[0] = row
	for k := 1; k <= layout.TileHeight; k++ {
		below := pyr[k-1]
		above := make([]byte, 0, len(below)/64*32)
		for i := 0; i+64 <= len(below); i += 64 {
			above = append(above, rfc6962.DefaultHasher.HashChildren(below[i:i+32], below[i+32:i+64])...)
		}
		pyr[k] = above
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p == 0 {
		key := [2]uint64{level, index}
		if _, dup := n.full[key]; !dup {
			if len(n.order) >= maxFullPyramids {
				delete(n.full, n.order[0])
				n.order = n.order[1:]
			}
			n.full[key] = pyr
			n.order = append(n.order, key)
		}
	} else {
		if len(n.partial) >= maxPartialPyramids {
			clear(n.partial)
		}
		n.partial[[3]uint64{level, index, uint64(p)}] = pyr
	}
	return pyr, nil
}

// node returns the hash of a perfect subtree of the tree of size.
func (n *nodes) node(ctx context.Context, level, index, size uint64) ([]byte, error) {
	tl, ti, nl, ni := layout.NodeCoordsToTileAddress(level, index)
	pyr, err := n.pyramid(ctx, tl, ti, layout.PartialTileSize(tl, ti, size))
	if err != nil {
		return nil, err
	}
	row := pyr[nl]
	if (ni+1)*32 > uint64(len(row)) {
		return nil, fmt.Errorf("node %d/%d is not in the tree of size %d", level, index, size)
	}
	return row[ni*32 : (ni+1)*32 : (ni+1)*32], nil
}

func (n *nodes) build(ctx context.Context, ns proof.Nodes, size uint64) ([][]byte, error) {
	hashes := make([][]byte, len(ns.IDs))
	for i, id := range ns.IDs {
		h, err := n.node(ctx, uint64(id.Level), id.Index, size)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return ns.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}

// inclusion proves the entry at index in the tree of size, reading the
// tiles of the tree of size tiles (at least size): the nodes of a proof are
// perfect subtrees, the same in every larger tree, and only the tiles of
// the trees Tessera integrated exist.
func (n *nodes) inclusion(ctx context.Context, index, size, tiles uint64) ([][]byte, error) {
	ns, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return n.build(ctx, ns, max(size, tiles))
}

// consistency proves that the tree of size to extends that of size from,
// reading the tiles of the tree of size tiles (see inclusion).
func (n *nodes) consistency(ctx context.Context, from, to, tiles uint64) ([][]byte, error) {
	ns, err := proof.Consistency(from, to)
	if err != nil {
		return nil, err
	}
	return n.build(ctx, ns, max(to, tiles))
}

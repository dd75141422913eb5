// Package tileproofs answers inclusion and consistency proofs from the
// tiles of a tlog-tiles log, for the engines that keep such tiles: the
// embedded engine's Tessera log, and the Trillian engine's tile builder.
//
// A tile holds one row of 256 hashes; the seven rows above it inside the
// tile are computed once per tile and kept (a pyramid), so that the
// receipts of one checkpoint, which share most of their nodes, cost a few
// lookups each rather than rehashing the tile for every node.
package tileproofs

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/sync/singleflight"
)

// Nodes answers proofs from a log's tiles, keeping the pyramids of the
// last tiles read. It is safe for concurrent use.
type Nodes struct {
	fetch tclient.TileFetcherFunc
	// building builds each pyramid once, however many ask for it at once.
	building singleflight.Group

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

// New returns Nodes that read tiles with f: a full tile when p is 0, else
// the first p hashes of a partial one.
func New(f tclient.TileFetcherFunc) *Nodes {
	return &Nodes{fetch: f, full: map[[2]uint64]pyramid{}, partial: map[[3]uint64]pyramid{}}
}

func (n *Nodes) pyramid(ctx context.Context, level, index uint64, p uint8) (pyramid, error) {
	if pyr, ok := n.cached(level, index, p); ok {
		return pyr, nil
	}
	// The receipts of a new checkpoint all ask at once for the pyramids
	// of its new partial tiles: one of them builds each, the others wait
	// for it (the build was a tenth of the Trillian engine's CPU when
	// each built its own).
	key := strconv.FormatUint(level, 10) + "/" + strconv.FormatUint(index, 10) + "/" + strconv.FormatUint(uint64(p), 10)
	v, err, _ := n.building.Do(key, func() (any, error) {
		if pyr, ok := n.cached(level, index, p); ok {
			return pyr, nil
		}
		return n.build(context.WithoutCancel(ctx), level, index, p)
	})
	if err != nil {
		return pyramid{}, err
	}
	return v.(pyramid), nil
}

// cached returns a pyramid already built.
func (n *Nodes) cached(level, index uint64, p uint8) (pyramid, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p == 0 {
		pyr, ok := n.full[[2]uint64{level, index}]
		return pyr, ok
	}
	pyr, ok := n.partial[[3]uint64{level, index, uint64(p)}]
	return pyr, ok
}

// build reads a tile, computes its pyramid and keeps it.
func (n *Nodes) build(ctx context.Context, level, index uint64, p uint8) (pyramid, error) {
	var pyr pyramid
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
			above = appendNode(above, below[i:i+64])
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

// Node returns the hash of a perfect subtree of the tree of size: the
// subtree of 2^level entries starting at entry index << level.
func (n *Nodes) Node(ctx context.Context, level, index, size uint64) ([]byte, error) {
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

func (n *Nodes) prove(ctx context.Context, ns proof.Nodes, size uint64) ([][]byte, error) {
	hashes := make([][]byte, len(ns.IDs))
	for i, id := range ns.IDs {
		h, err := n.Node(ctx, uint64(id.Level), id.Index, size)
		if err != nil {
			return nil, err
		}
		hashes[i] = h
	}
	return ns.Rehash(hashes, Hasher.HashChildren)
}

// Inclusion proves the entry at index in the tree of size, reading the
// tiles of the tree of size tiles (size when tiles is smaller): the nodes
// of a proof are perfect subtrees, the same in every larger tree, and a
// log may keep only the tiles of the trees it integrated.
func (n *Nodes) Inclusion(ctx context.Context, index, size, tiles uint64) ([][]byte, error) {
	ns, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return n.prove(ctx, ns, max(size, tiles))
}

// Consistency proves that the tree of size to extends that of size from,
// reading the tiles of the tree of size tiles (see [Nodes.Inclusion]).
func (n *Nodes) Consistency(ctx context.Context, from, to, tiles uint64) ([][]byte, error) {
	ns, err := proof.Consistency(from, to)
	if err != nil {
		return nil, err
	}
	return n.prove(ctx, ns, max(to, tiles))
}

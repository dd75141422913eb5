package trillianlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// builder reproduces the tree from its leaves: a compact range gives the
// root at any size, and the nodes it visits on the way are the rows of the
// tlog-tiles tiles. It keeps the incomplete tile of each level and the
// incomplete entry bundle, and collects the full ones until they are
// stored.
type builder struct {
	rng *compact.Range
	// rows[L] holds the hashes of the incomplete tile of tile level L.
	rows [][][]byte
	// entries holds the entries of the incomplete entry bundle.
	entries [][]byte
	// tiles and bundles are the full ones made since the last take.
	tiles   []Tile
	bundles []Bundle
	err     error
}

func newBuilder() *builder {
	return &builder{rng: rangeFactory.NewEmptyRange(0)}
}

// size is the number of leaves the builder has seen.
func (b *builder) size() uint64 { return b.rng.End() }

// visit receives every node the compact range creates; those on a level
// that is a multiple of the tile height are the rows of tiles.
func (b *builder) visit(id compact.NodeID, hash []byte) {
	if id.Level%layout.TileHeight != 0 {
		return
	}
	level := uint64(id.Level / layout.TileHeight)
	for uint64(len(b.rows)) <= level {
		b.rows = append(b.rows, nil)
	}
	row := b.rows[level]
	if id.Index%layout.TileWidth != uint64(len(row)) {
		b.err = fmt.Errorf("tile builder: node %d at level %d arrives at position %d of its tile", id.Index, id.Level, len(row))
		return
	}
	row = append(row, hash)
	if len(row) == layout.TileWidth {
		data := bytes.Join(row, nil)
		b.tiles = append(b.tiles, Tile{Level: level, Index: id.Index / layout.TileWidth, Data: data})
		row = nil
	}
	b.rows[level] = row
}

// add appends one entry.
func (b *builder) add(entry []byte) error {
	index := b.size()
	if err := b.rng.Append(rfc6962.DefaultHasher.HashLeaf(entry), b.visit); err != nil {
		return fmt.Errorf("tile builder: %w", err)
	}
	if b.err != nil {
		return b.err
	}
	b.entries = append(b.entries, entry)
	if len(b.entries) == layout.EntryBundleWidth {
		var data []byte
		for _, e := range b.entries {
			data = appendBundleEntry(data, e)
		}
		b.bundles = append(b.bundles, Bundle{Index: index / layout.EntryBundleWidth, Data: data})
		b.entries = nil
	}
	return nil
}

// root returns the root hash of the tree of b.size() leaves.
func (b *builder) root() []byte {
	if b.size() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	h, err := b.rng.GetRootHash(nil)
	if err != nil {
		// A range that starts at 0 always has a root.
		panic(err)
	}
	return h
}

// take returns the full tiles and bundles made since the last take.
func (b *builder) take() ([]Tile, []Bundle) {
	t, bs := b.tiles, b.bundles
	b.tiles, b.bundles = nil, nil
	return t, bs
}

// atBoundary reports whether the builder ends at a full entry bundle,
// where its state can be stored.
func (b *builder) atBoundary() bool { return len(b.entries) == 0 }

// state encodes the builder at a bundle boundary: the compact range's
// hashes, then the rows of the levels above 0, each a 2-byte count and its
// hashes.
func (b *builder) state() []byte {
	hashes := b.rng.Hashes()
	out := []byte{byte(len(hashes))}
	for _, h := range hashes {
		out = append(out, h...)
	}
	levels := max(len(b.rows), 1)
	out = append(out, byte(levels-1))
	for _, row := range b.rows[min(1, len(b.rows)):] {
		out = binary.BigEndian.AppendUint16(out, uint16(len(row)))
		for _, h := range row {
			out = append(out, h...)
		}
	}
	return out
}

// restoreBuilder rebuilds a builder from its state at size, a multiple of
// the entry bundle width.
func restoreBuilder(size uint64, state []byte) (*builder, error) {
	if size == 0 {
		return newBuilder(), nil
	}
	if size%layout.EntryBundleWidth != 0 {
		return nil, fmt.Errorf("tile builder state at size %d: not at a bundle boundary", size)
	}
	bad := errors.New("tile builder state is corrupt")
	take := func(n int) ([]byte, error) {
		if len(state) < n {
			return nil, bad
		}
		v := state[:n:n]
		state = state[n:]
		return v, nil
	}
	n, err := take(1)
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, n[0])
	for i := range hashes {
		if hashes[i], err = take(32); err != nil {
			return nil, err
		}
	}
	rng, err := rangeFactory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("tile builder state: %w", err)
	}
	b := &builder{rng: rng, rows: [][][]byte{nil}}
	levels, err := take(1)
	if err != nil {
		return nil, err
	}
	for range levels[0] {
		c, err := take(2)
		if err != nil {
			return nil, err
		}
		row := make([][]byte, binary.BigEndian.Uint16(c))
		for i := range row {
			if row[i], err = take(32); err != nil {
				return nil, err
			}
		}
		b.rows = append(b.rows, row)
	}
	if len(state) != 0 {
		return nil, bad
	}
	return b, nil
}

// view is what a published checkpoint serves beyond the stored full tiles:
// the incomplete tile of each level and the incomplete entry bundle, as
// the builder had them at the checkpoint's size. The builder only appends
// to these slices, so the view shares them without copying.
type view struct {
	size    uint64
	rows    [][][]byte
	entries [][]byte
}

// tile returns the first p hashes of the view's incomplete tile at level
// and index; ok is false for a tile the view does not hold as incomplete
// (a full one, in the tile store).
func (v *view) tile(level, index uint64, p uint8) (b []byte, ok bool, err error) {
	if index != v.size>>(layout.TileHeight*(level+1)) {
		return nil, false, nil
	}
	if level >= uint64(len(v.rows)) || p == 0 || int(p) > len(v.rows[level]) {
		return nil, true, fmt.Errorf("tile %d/%d.p/%d: %w", level, index, p, os.ErrNotExist)
	}
	return bytes.Join(v.rows[level][:p], nil), true, nil
}

func (b *builder) view() *view {
	v := &view{size: b.size(), entries: b.entries[:len(b.entries):len(b.entries)]}
	for _, r := range b.rows {
		v.rows = append(v.rows, r[:len(r):len(r)])
	}
	return v
}

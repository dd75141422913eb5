package trillianlog

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// treeHash is the RFC 6962 hash of the leaves, computed the slow, obvious
// way, to check the builder against.
func treeHash(leaves [][]byte) []byte {
	switch n := len(leaves); n {
	case 0:
		return rfc6962.DefaultHasher.EmptyRoot()
	case 1:
		return rfc6962.DefaultHasher.HashLeaf(leaves[0])
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		return rfc6962.DefaultHasher.HashChildren(treeHash(leaves[:k]), treeHash(leaves[k:]))
	}
}

func testLeaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		h := sha256.Sum256(fmt.Appendf(nil, "leaf %d", i))
		out[i] = h[:i%32+1]
	}
	return out
}

// TestBuilder checks the tiles, bundles and roots the builder makes
// against an independent computation, with and without a save and restore
// at each bundle boundary.
func TestBuilder(t *testing.T) {
	const n = 65536 + 3*256 + 17 // a full level-1 tile, and more
	leaves := testLeaves(n)
	for _, tc := range []struct {
		name    string
		restore bool
	}{
		{"straight", false},
		{"restored at every bundle boundary", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder()
			tiles := map[[2]uint64][]byte{}
			bundles := map[uint64][]byte{}
			for i, leaf := range leaves {
				if err := b.add(leaf); err != nil {
					t.Fatal(err)
				}
				if b.atBoundary() {
					ts, bs := b.take()
					for _, tl := range ts {
						tiles[[2]uint64{tl.Level, tl.Index}] = tl.Data
					}
					for _, bu := range bs {
						bundles[bu.Index] = bu.Data
					}
					if tc.restore {
						var err error
						if b, err = restoreBuilder(b.size(), b.state()); err != nil {
							t.Fatalf("restore at %d: %v", i+1, err)
						}
					}
				}
				if size := i + 1; size == 1 || size == 256 || size == 1000 || size == n {
					if got, want := b.root(), treeHash(leaves[:size]); !bytes.Equal(got, want) {
						t.Fatalf("root at %d: %x, want %x", size, got, want)
					}
				}
			}
			if len(bundles) != n/256 || len(tiles) != n/256+1 {
				t.Fatalf("%d bundles and %d tiles, want %d and %d", len(bundles), len(tiles), n/256, n/256+1)
			}
			for k, data := range bundles {
				entries, err := bundleEntries(data)
				if err != nil || len(entries) != 256 || !bytes.Equal(entries[17], leaves[k*256+17]) {
					t.Fatalf("bundle %d: %d entries, %v", k, len(entries), err)
				}
			}
			// Level-0 tiles hold leaf hashes; level-1 tiles the roots of
			// 256-leaf subtrees.
			for _, at := range [][3]uint64{{0, 0, 0}, {0, 255, 255}, {0, 256, 3}, {1, 0, 0}, {1, 0, 255}} {
				level, index, node := at[0], at[1], at[2]
				tile := tiles[[2]uint64{level, index}]
				got := tile[node*32 : node*32+32]
				width := uint64(1) << (layout.TileHeight * level)
				first := (index*layout.TileWidth + node) * width
				if want := treeHash(leaves[first : first+width]); !bytes.Equal(got, want) {
					t.Errorf("tile %d/%d node %d is not the hash of leaves [%d, %d)", level, index, node, first, first+width)
				}
			}
			// The view serves the incomplete tiles.
			v := b.view()
			if len(v.entries) != n%256 || len(v.rows[0]) != n%256 || len(v.rows[1]) != (n/256)%256 {
				t.Errorf("view: %d entries, rows of %d and %d", len(v.entries), len(v.rows[0]), len(v.rows[1]))
			}
		})
	}
}

func TestRestoreBuilderRefusesCorruptState(t *testing.T) {
	b := newBuilder()
	for _, leaf := range testLeaves(512) {
		b.add(leaf)
	}
	state := b.state()
	for _, tc := range []struct {
		name  string
		size  uint64
		state []byte
	}{
		{"not at a boundary", 500, state},
		{"truncated", 512, state[:len(state)-1]},
		{"trailing bytes", 512, append(bytes.Clone(state), 0)},
		{"wrong size for its hashes", 768, state},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := restoreBuilder(tc.size, tc.state); err == nil {
				t.Error("restoreBuilder accepted it")
			}
		})
	}
}

func TestPrefixes(t *testing.T) {
	var bundle []byte
	for _, e := range testLeaves(10) {
		bundle = appendBundleEntry(bundle, e)
	}
	for _, width := range []uint64{1, 5, 10} {
		p, err := bundlePrefix(bundle, width)
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := bundleEntries(p)
		if uint64(len(entries)) != width {
			t.Errorf("bundle prefix of %d has %d entries", width, len(entries))
		}
	}
	if _, err := bundlePrefix(bundle, 11); err == nil {
		t.Error("a bundle prefix wider than the bundle")
	}
	tile := make([]byte, 32*256)
	if p, err := tilePrefix(tile, 7); err != nil || len(p) != 7*32 {
		t.Errorf("tile prefix of 7: %d bytes, %v", len(p), err)
	}
}

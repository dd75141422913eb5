package tesseralog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"

	"github.com/undersigned/undersigned/internal/atomicfile"
)

// ErrCorrupt is wrapped by every error of a check that found the log's
// files inconsistent.
var ErrCorrupt = errors.New("the log is corrupt")

var rangeFactory = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// Verified is the state of the log as last verified: the compact range of
// its first Size entries, enough to extend the check to later entries
// without reading the earlier ones again.
type Verified struct {
	Size   uint64   `json:"size"`
	Hashes [][]byte `json:"hashes"`
}

// LoadVerified reads a verified state saved by SaveVerified; a missing file
// is the empty log.
func LoadVerified(path string) (*Verified, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Verified{}, nil
	}
	if err != nil {
		return nil, err
	}
	v := new(Verified)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := rangeFactory.NewRange(0, v.Size, v.Hashes); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// SaveVerified writes a verified state atomically.
func SaveVerified(path string, v *Verified) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o644)
}

// CheckOptions say what a check covers.
type CheckOptions struct {
	// Tiles also compares every stored tile the range touches with the
	// tree recomputed from the entries.
	Tiles bool
	// Progress, when set, is called now and then with the entries checked.
	Progress func(done, total uint64)
}

// Check extends the verified state from over the entries up to the
// integrated size: it reads the entry bundles, recomputes the tree, and
// compares its root with the tree state Tessera keeps (and, with
// opts.Tiles, every tile on the way). It returns the new verified state,
// or an error wrapping ErrCorrupt that names the first inconsistency.
func (l *Log) Check(ctx context.Context, from *Verified, opts CheckOptions) (*Verified, error) {
	size, root, err := l.treeState(ctx)
	if err != nil {
		return nil, err
	}
	if size < from.Size {
		return nil, fmt.Errorf("%w: the tree has %d entries, fewer than the %d verified before", ErrCorrupt, size, from.Size)
	}
	r, err := rangeFactory.NewRange(0, from.Size, from.Hashes)
	if err != nil {
		return nil, err
	}
	tc := &tileChecker{l: l, size: size}
	var visit compact.VisitFn
	if opts.Tiles {
		visit = tc.visit
	}
	for i := from.Size; i < size; {
		b, err := tclient.GetEntryBundle(ctx, l.reader.ReadEntryBundle, i/layout.EntryBundleWidth, size)
		if err != nil {
			return nil, fmt.Errorf("%w: entry bundle %d: %v", ErrCorrupt, i/layout.EntryBundleWidth, err)
		}
		want := layout.EntryBundleWidth
		if p := layout.PartialTileSize(0, i/layout.EntryBundleWidth, size); p != 0 {
			want = int(p)
		}
		if len(b.Entries) != want {
			return nil, fmt.Errorf("%w: entry bundle %d holds %d entries, want %d", ErrCorrupt, i/layout.EntryBundleWidth, len(b.Entries), want)
		}
		for _, e := range b.Entries[i%layout.EntryBundleWidth:] {
			if err := r.Append(rfc6962.DefaultHasher.HashLeaf(e), visit); err != nil {
				return nil, err
			}
			if tc.err != nil {
				return nil, tc.err
			}
			i++
		}
		if opts.Progress != nil {
			opts.Progress(i, size)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	got, err := r.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		got = rfc6962.DefaultHasher.EmptyRoot()
	}
	if !bytes.Equal(got, root) {
		return nil, fmt.Errorf("%w: the entries give the root %x at size %d, the tree state says %x", ErrCorrupt, got, size, root)
	}
	if opts.Tiles {
		if err := tc.checkPartials(); err != nil {
			return nil, err
		}
	}
	return &Verified{Size: size, Hashes: r.Hashes()}, nil
}

// TreeState returns the integrated size and root Tessera keeps.
func (l *Log) TreeState(ctx context.Context) (uint64, []byte, error) { return l.treeState(ctx) }

// treeState reads the integrated size and root Tessera keeps.
func (l *Log) treeState(ctx context.Context) (uint64, []byte, error) {
	b, err := os.ReadFile(l.cfg.Dir + "/.state/treeState")
	if err != nil {
		return 0, nil, fmt.Errorf("read the tree state: %w", err)
	}
	var ts struct {
		Size uint64 `json:"size"`
		Root []byte `json:"root"`
	}
	if err := json.Unmarshal(b, &ts); err != nil {
		return 0, nil, fmt.Errorf("%w: the tree state: %v", ErrCorrupt, err)
	}
	return ts.Size, ts.Root, nil
}

// tileChecker compares recomputed nodes with the stored tiles: full tiles
// as the nodes come, the partial tiles of the right edge at the end.
type tileChecker struct {
	l    *Log
	size uint64
	err  error

	level, index uint64
	tile         []byte
	loaded       bool

	partial map[[2]uint64]map[uint64][]byte
}

func (tc *tileChecker) visit(id compact.NodeID, hash []byte) {
	if tc.err != nil || id.Level%layout.TileHeight != 0 {
		return
	}
	level := uint64(id.Level / layout.TileHeight)
	index, pos := id.Index/layout.TileWidth, id.Index%layout.TileWidth
	if layout.PartialTileSize(level, index, tc.size) != 0 {
		if tc.partial == nil {
			tc.partial = map[[2]uint64]map[uint64][]byte{}
		}
		key := [2]uint64{level, index}
		if tc.partial[key] == nil {
			tc.partial[key] = map[uint64][]byte{}
		}
		tc.partial[key][pos] = hash
		return
	}
	if !tc.loaded || tc.level != level || tc.index != index {
		t, err := tc.read(level, index, 0)
		if err != nil {
			tc.err = err
			return
		}
		tc.tile, tc.level, tc.index, tc.loaded = t, level, index, true
	}
	if !bytes.Equal(tc.tile[pos*32:pos*32+32], hash) {
		tc.err = fmt.Errorf("%w: tile %d/%d node %d differs from the tree recomputed from the entries", ErrCorrupt, level, index, pos)
	}
}

// read returns a tile's hashes, concatenated, checking its width.
func (tc *tileChecker) read(level, index uint64, p uint8) ([]byte, error) {
	raw, err := tc.l.reader.ReadTile(context.Background(), level, index, p)
	if err != nil {
		return nil, fmt.Errorf("%w: tile %d/%d: %v", ErrCorrupt, level, index, err)
	}
	var t api.HashTile
	want := int(p)
	if p == 0 {
		want = layout.TileWidth
	}
	if err := t.UnmarshalText(raw); err != nil || len(t.Nodes) < want {
		return nil, fmt.Errorf("%w: tile %d/%d.p/%d holds fewer than %d hashes", ErrCorrupt, level, index, p, want)
	}
	return bytes.Join(t.Nodes[:want], nil), nil
}

// checkPartials compares the partial tiles of the right edge with the
// nodes recomputed for them.
func (tc *tileChecker) checkPartials() error {
	for key, nodes := range tc.partial {
		p := layout.PartialTileSize(key[0], key[1], tc.size)
		t, err := tc.read(key[0], key[1], p)
		if err != nil {
			return err
		}
		for pos, h := range nodes {
			if pos >= uint64(p) || !bytes.Equal(t[pos*32:pos*32+32], h) {
				return fmt.Errorf("%w: tile %d/%d.p/%d node %d differs from the tree recomputed from the entries", ErrCorrupt, key[0], key[1], p, pos)
			}
		}
	}
	return nil
}

// Range returns the compact range of a verified state.
func (v *Verified) Range() (*compact.Range, error) {
	return rangeFactory.NewRange(0, v.Size, v.Hashes)
}

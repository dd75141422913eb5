package trillianlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"github.com/transparency-dev/tessera/api/layout"
)

// Tile is a full tile of the tlog-tiles layout: 256 hashes of one level.
type Tile struct {
	Level, Index uint64
	Data         []byte
}

// Bundle is a full entry bundle: 256 entries, each with its 2-byte length.
type Bundle struct {
	Index uint64
	Data  []byte
}

// ErrTileMismatch is wrapped by the error of a [TileStore] asked to store a
// tile or bundle that differs from the one it holds at the same place: two
// builders reproduced different trees.
var ErrTileMismatch = errors.New("a different tile is already stored at this place")

// TileStore keeps what the tile builder produces: each full tile and entry
// bundle, stored once, and the builder's state at the end of the last full
// entry bundle, so that a restarted builder continues from there. Several
// builders (frontends) may share one store. Implementations: PostgreSQL
// (package pgstore), and memory for tests (package trillianmem).
type TileStore interface {
	// TileState returns the size the builder reached and its state there,
	// or 0 and nil when nothing was stored.
	TileState(ctx context.Context) (size uint64, state []byte, err error)
	// PutTiles stores full tiles and bundles, keeping any already stored
	// (an error wrapping [ErrTileMismatch] if one differs), and the
	// builder's state at size unless a larger size is stored.
	PutTiles(ctx context.Context, tiles []Tile, bundles []Bundle, size uint64, state []byte) error
	// Tile returns a full tile, or an error wrapping os.ErrNotExist.
	Tile(ctx context.Context, level, index uint64) ([]byte, error)
	// EntryBundle returns a full entry bundle, or an error wrapping
	// os.ErrNotExist.
	EntryBundle(ctx context.Context, index uint64) ([]byte, error)
}

// appendBundleEntry appends one entry to an entry bundle.
func appendBundleEntry(b, data []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

// bundleEntries splits an entry bundle into its entries.
func bundleEntries(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("entry bundle: a dangling byte")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, errors.New("entry bundle: an entry runs past the end")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out, nil
}

// prefix returns the first width hashes of a tile, or the first width
// entries of a bundle.
func tilePrefix(tile []byte, width uint64) ([]byte, error) {
	if width == 0 {
		return tile, nil
	}
	if uint64(len(tile)) < width*32 {
		return nil, fmt.Errorf("tile has %d hashes, want %d: %w", len(tile)/32, width, os.ErrNotExist)
	}
	return tile[:width*32], nil
}

func bundlePrefix(bundle []byte, width uint64) ([]byte, error) {
	if width == 0 || width == layout.EntryBundleWidth {
		return bundle, nil
	}
	off := 0
	for range width {
		if off+2 > len(bundle) {
			return nil, fmt.Errorf("bundle is shorter than %d entries: %w", width, os.ErrNotExist)
		}
		off += 2 + int(binary.BigEndian.Uint16(bundle[off:]))
	}
	if off > len(bundle) {
		return nil, fmt.Errorf("bundle is shorter than %d entries: %w", width, os.ErrNotExist)
	}
	return bundle[:off], nil
}

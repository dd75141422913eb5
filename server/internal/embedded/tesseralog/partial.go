package tesseralog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	tclient "github.com/transparency-dev/tessera/client"
)

// Tessera removes the partial tiles and entry bundles below the
// checkpoint it published once the full ones exist (its garbage
// collection), and then answers a request for a partial resource with the
// full one. The checkpoint this server publishes can be an older one:
// with witnesses, the last one they cosigned. The readers below cut such
// an answer to the width asked, as the tlog-tiles API promises: a partial
// resource of width p is the prefix of the full one.

// partialTiles returns read, with a partial tile cut to its width.
func partialTiles(read tclient.TileFetcherFunc) tclient.TileFetcherFunc {
	return func(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
		b, err := read(ctx, level, index, p)
		if err != nil || p == 0 || len(b) <= int(p)*32 {
			return b, err
		}
		return b[:int(p)*32], nil
	}
}

// partialBundles returns read, with a partial entry bundle cut to its
// width.
func partialBundles(read tclient.EntryBundleFetcherFunc) tclient.EntryBundleFetcherFunc {
	return func(ctx context.Context, index uint64, p uint8) ([]byte, error) {
		b, err := read(ctx, index, p)
		if err != nil || p == 0 {
			return b, err
		}
		return bundlePrefix(b, int(p))
	}
}

// bundlePrefix returns the first n entries of an entry bundle, each a
// 2-byte big-endian length and the entry.
func bundlePrefix(b []byte, n int) ([]byte, error) {
	off := 0
	for range n {
		if len(b)-off < 2 {
			return nil, fmt.Errorf("entry bundle: fewer than %d entries", n)
		}
		l := int(binary.BigEndian.Uint16(b[off:]))
		if len(b)-off-2 < l {
			return nil, errors.New("entry bundle: an entry runs past its end")
		}
		off += 2 + l
	}
	return b[:off], nil
}

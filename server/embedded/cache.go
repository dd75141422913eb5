package embedded

import (
	"context"
	"sync"

	tclient "github.com/transparency-dev/tessera/client"
)

// tileCache keeps full tiles, which never change, in memory.
type tileCache struct {
	fetch tclient.TileFetcherFunc

	mu    sync.Mutex
	tiles map[[2]uint64][]byte
}

// maxCachedTiles bounds the cache: a full tile is 8 KiB.
const maxCachedTiles = 4096

func newTileCache(f tclient.TileFetcherFunc) *tileCache {
	return &tileCache{fetch: f, tiles: map[[2]uint64][]byte{}}
}

func (c *tileCache) read(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	if p != 0 {
		return c.fetch(ctx, level, index, p)
	}
	key := [2]uint64{level, index}
	c.mu.Lock()
	t, ok := c.tiles[key]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := c.fetch(ctx, level, index, 0)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.tiles) >= maxCachedTiles {
		for k := range c.tiles {
			delete(c.tiles, k)
			break
		}
	}
	c.tiles[key] = t
	c.mu.Unlock()
	return t, nil
}

// proofCache keeps a proof builder for the few most recent tree sizes, so
// that the receipts of one checkpoint read each tile once.
type proofCache struct {
	mu       sync.Mutex
	builders []*proofBuilder
}

const maxProofBuilders = 4

type proofBuilder struct {
	size uint64
	mu   sync.Mutex
	pb   *tclient.ProofBuilder
	err  error
}

func (c *proofCache) get(ctx context.Context, size uint64, f tclient.TileFetcherFunc) *proofBuilder {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.builders {
		if b.size == size {
			return b
		}
	}
	b := &proofBuilder{size: size}
	b.pb, b.err = tclient.NewProofBuilder(ctx, size, f)
	c.builders = append(c.builders, b)
	if len(c.builders) > maxProofBuilders {
		c.builders = c.builders[1:]
	}
	return b
}

func (b *proofBuilder) inclusion(ctx context.Context, index uint64) ([][]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pb.InclusionProof(ctx, index)
}

func (b *proofBuilder) consistency(ctx context.Context, from, to uint64) ([][]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pb.ConsistencyProof(ctx, from, to)
}

package trillianmem

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// Tiles is a trillianlog.TileStore in memory, for a Trillian that keeps
// its own tree in memory. The zero value is ready to use.
type Tiles struct {
	mu      sync.Mutex
	tiles   map[[2]uint64][]byte
	bundles map[uint64][]byte
	size    uint64
	state   []byte
}

var _ trillianlog.TileStore = (*Tiles)(nil)

// TileState returns the stored state.
func (m *Tiles) TileState(context.Context) (uint64, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size, bytes.Clone(m.state), nil
}

// PutTiles stores tiles, bundles and the state.
func (m *Tiles) PutTiles(_ context.Context, tiles []trillianlog.Tile, bundles []trillianlog.Bundle, size uint64, state []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tiles == nil {
		m.tiles, m.bundles = map[[2]uint64][]byte{}, map[uint64][]byte{}
	}
	for _, t := range tiles {
		k := [2]uint64{t.Level, t.Index}
		if old, ok := m.tiles[k]; ok && !bytes.Equal(old, t.Data) {
			return fmt.Errorf("tile %d/%d: %w", t.Level, t.Index, trillianlog.ErrTileMismatch)
		}
		m.tiles[k] = bytes.Clone(t.Data)
	}
	for _, b := range bundles {
		if old, ok := m.bundles[b.Index]; ok && !bytes.Equal(old, b.Data) {
			return fmt.Errorf("entry bundle %d: %w", b.Index, trillianlog.ErrTileMismatch)
		}
		m.bundles[b.Index] = bytes.Clone(b.Data)
	}
	if size > m.size {
		m.size, m.state = size, bytes.Clone(state)
	}
	return nil
}

// Tile returns a stored tile.
func (m *Tiles) Tile(_ context.Context, level, index uint64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.tiles[[2]uint64{level, index}]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("tile %d/%d: %w", level, index, os.ErrNotExist)
}

// EntryBundle returns a stored bundle.
func (m *Tiles) EntryBundle(_ context.Context, index uint64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b, ok := m.bundles[index]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("entry bundle %d: %w", index, os.ErrNotExist)
}

package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// TileState returns the tile builder's stored state.
func (s *Store) TileState(ctx context.Context) (uint64, []byte, error) {
	var size int64
	var state []byte
	err := s.pool.QueryRow(ctx, `SELECT size, state FROM tile_state WHERE id = 1`).Scan(&size, &state)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("tile state: %w", err)
	}
	return uint64(size), state, nil
}

// PutTiles stores full tiles and bundles once, and the builder's state
// unless a larger one is stored, in one transaction.
func (s *Store) PutTiles(ctx context.Context, tiles []trillianlog.Tile, bundles []trillianlog.Bundle, size uint64, state []byte) error {
	levels := make([]int32, len(tiles))
	idxs := make([]int64, len(tiles))
	datas := make([][]byte, len(tiles))
	for i, t := range tiles {
		levels[i], idxs[i], datas[i] = int32(t.Level), int64(t.Index), t.Data
	}
	bIdxs := make([]int64, len(bundles))
	bDatas := make([][]byte, len(bundles))
	for i, b := range bundles {
		bIdxs[i], bDatas[i] = int64(b.Index), b.Data
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		var mismatches int64
		if len(tiles) > 0 {
			b.Queue(`INSERT INTO tiles (level, idx, data) SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[]) ON CONFLICT DO NOTHING`, levels, idxs, datas)
			b.Queue(`SELECT COUNT(*) FROM tiles t JOIN unnest($1::int[], $2::bigint[], $3::bytea[]) AS v(level, idx, data)
				ON t.level = v.level AND t.idx = v.idx WHERE t.data <> v.data`, levels, idxs, datas).QueryRow(func(row pgx.Row) error {
				var n int64
				err := row.Scan(&n)
				mismatches += n
				return err
			})
		}
		if len(bundles) > 0 {
			b.Queue(`INSERT INTO bundles (idx, data) SELECT * FROM unnest($1::bigint[], $2::bytea[]) ON CONFLICT DO NOTHING`, bIdxs, bDatas)
			b.Queue(`SELECT COUNT(*) FROM bundles t JOIN unnest($1::bigint[], $2::bytea[]) AS v(idx, data)
				ON t.idx = v.idx WHERE t.data <> v.data`, bIdxs, bDatas).QueryRow(func(row pgx.Row) error {
				var n int64
				err := row.Scan(&n)
				mismatches += n
				return err
			})
		}
		b.Queue(`INSERT INTO tile_state (id, size, state) VALUES (1, $1, $2)
			ON CONFLICT (id) DO UPDATE SET size = EXCLUDED.size, state = EXCLUDED.state WHERE tile_state.size < EXCLUDED.size`,
			int64(size), state)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("store tiles: %w", err)
		}
		if mismatches > 0 {
			return fmt.Errorf("store tiles up to size %d: %w", size, trillianlog.ErrTileMismatch)
		}
		return nil
	})
}

// Tile returns a full tile.
func (s *Store) Tile(ctx context.Context, level, index uint64) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM tiles WHERE level = $1 AND idx = $2`, int32(level), int64(index)).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("tile %d/%d: %w", level, index, os.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("tile %d/%d: %w", level, index, err)
	}
	return data, nil
}

// EntryBundle returns a full entry bundle.
func (s *Store) EntryBundle(ctx context.Context, index uint64) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM bundles WHERE idx = $1`, int64(index)).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("entry bundle %d: %w", index, os.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d: %w", index, err)
	}
	return data, nil
}

// Checkpoints returns the last signed checkpoint's row, which the
// frontends of one tree share: a guard.Persister that stores by
// compare-and-swap.
func (s *Store) Checkpoints() guard.Persister { return checkpointRow{s} }

type checkpointRow struct{ s *Store }

// Load returns the last signed checkpoint, or nil.
func (c checkpointRow) Load(ctx context.Context) ([]byte, error) {
	var raw []byte
	err := c.s.pool.QueryRow(ctx, `SELECT raw FROM checkpoint WHERE id = 1`).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load the checkpoint: %w", err)
	}
	return raw, nil
}

// Store replaces prev with next, only if prev is still the last one.
func (c checkpointRow) Store(ctx context.Context, prev, next []byte) error {
	var q string
	args := []any{next}
	if prev == nil {
		q = `INSERT INTO checkpoint (id, raw) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`
	} else {
		q = `UPDATE checkpoint SET raw = $1 WHERE id = 1 AND raw = $2`
		args = append(args, prev)
	}
	tag, err := c.s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store the checkpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		cur, err := c.Load(ctx)
		if err == nil && bytes.Equal(cur, next) {
			return nil // another frontend stored the same bytes
		}
		return fmt.Errorf("store the checkpoint: %w", guard.ErrConflict)
	}
	return nil
}

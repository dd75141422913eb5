package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/undersigned/undersigned/server/internal/witnessing"
)

// CosignedCheckpoints returns the row of the last checkpoint cosigned by
// the witnesses, which the frontends of one tree share: a
// witnessing.Store that stores by compare-and-swap, so that the
// frontends publish one cosigned checkpoint for each size.
func (s *Store) CosignedCheckpoints() witnessing.Store { return cosignedRow{s} }

type cosignedRow struct{ s *Store }

// Load returns the last cosigned checkpoint, or nil.
func (c cosignedRow) Load(ctx context.Context) ([]byte, error) {
	var raw []byte
	err := c.s.pool.QueryRow(ctx, `SELECT raw FROM cosigned_checkpoint WHERE id = 1`).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load the cosigned checkpoint: %w", err)
	}
	return raw, nil
}

// Store replaces prev with next, only if prev is still the last one.
func (c cosignedRow) Store(ctx context.Context, prev, next []byte) error {
	q := `UPDATE cosigned_checkpoint SET raw = $1 WHERE id = 1 AND raw = $2`
	args := []any{next, prev}
	if prev == nil {
		q, args = `INSERT INTO cosigned_checkpoint (id, raw) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, args[:1]
	}
	tag, err := c.s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("store the cosigned checkpoint: %w", err)
	}
	if tag.RowsAffected() == 0 {
		if cur, err := c.Load(ctx); err == nil && bytes.Equal(cur, next) {
			return nil
		}
		return fmt.Errorf("store the cosigned checkpoint: %w", witnessing.ErrConflict)
	}
	return nil
}

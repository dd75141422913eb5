package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TakeLetterToken takes one token from a letter's bucket, which every
// server of the tree shares: it refills at rate tokens a second up to
// burst. It returns 0 when a token was taken, or the wait before one will
// be.
func (s *Store) TakeLetterToken(ctx context.Context, letterID string, rate float64, burst int) (time.Duration, error) {
	// One statement: refill, and take a token if there is one.
	var left float64
	err := s.pool.QueryRow(ctx, `INSERT INTO letter_rates (letter_id, tokens, updated) VALUES ($1, $3 - 1, clock_timestamp())
		ON CONFLICT (letter_id) DO UPDATE SET
			tokens = LEAST($3, letter_rates.tokens + EXTRACT(EPOCH FROM clock_timestamp() - letter_rates.updated) * $2) - 1,
			updated = clock_timestamp()
		WHERE LEAST($3, letter_rates.tokens + EXTRACT(EPOCH FROM clock_timestamp() - letter_rates.updated) * $2) >= 1
		RETURNING tokens`, letterID, rate, float64(burst)).Scan(&left)
	if err == nil {
		return 0, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("rate of letter %q: %w", letterID, err)
	}
	// Empty: how long until a token is there.
	var now float64
	err = s.pool.QueryRow(ctx, `SELECT LEAST($3, tokens + EXTRACT(EPOCH FROM clock_timestamp() - updated) * $2)
		FROM letter_rates WHERE letter_id = $1`, letterID, rate, float64(burst)).Scan(&now)
	if err != nil {
		return 0, fmt.Errorf("rate of letter %q: %w", letterID, err)
	}
	return time.Duration((1 - now) / rate * float64(time.Second)), nil
}

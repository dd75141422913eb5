package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Tokens returns the token store.
func (s *Store) Tokens() ledger.TokenStore { return tokenStore{s} }

type tokenStore struct{ s *Store }

// Create stores a new token.
func (t tokenStore) Create(ctx context.Context, tok ledger.Token) error {
	_, err := t.s.pool.Exec(ctx, `INSERT INTO tokens (id, hash, name, letters, created) VALUES ($1, $2, $3, $4, $5)`,
		tok.ID, tok.Hash, tok.Name, strings.Join(tok.Letters, ","), tok.Created)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

func scanToken(row pgx.Row) (*ledger.Token, error) {
	var tok ledger.Token
	var letters string
	if err := row.Scan(&tok.ID, &tok.Hash, &tok.Name, &letters, &tok.Created, &tok.Revoked); err != nil {
		return nil, err
	}
	if letters != "" {
		tok.Letters = strings.Split(letters, ",")
	}
	return &tok, nil
}

// ByHash returns the unrevoked token with this hash, or nil.
func (t tokenStore) ByHash(ctx context.Context, hash []byte) (*ledger.Token, error) {
	tok, err := scanToken(t.s.pool.QueryRow(ctx, `SELECT id, hash, name, letters, created, revoked FROM tokens WHERE hash = $1 AND revoked = 0`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return tok, nil
}

// List returns every token.
func (t tokenStore) List(ctx context.Context) ([]ledger.Token, error) {
	rows, err := t.s.pool.Query(ctx, `SELECT id, hash, name, letters, created, revoked FROM tokens ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	var out []ledger.Token
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		out = append(out, *tok)
	}
	return out, rows.Err()
}

// Revoke revokes a token by id.
func (t tokenStore) Revoke(ctx context.Context, id string, at int64) (bool, error) {
	tag, err := t.s.pool.Exec(ctx, `UPDATE tokens SET revoked = $1 WHERE id = $2 AND revoked = 0`, at, id)
	if err != nil {
		return false, fmt.Errorf("revoke token: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Tokens returns the token store.
func (s *Store) Tokens() ledger.TokenStore { return tokenStore{s} }

type tokenStore struct{ s *Store }

func (t tokenStore) Create(ctx context.Context, tok ledger.Token) error {
	_, err := t.s.w.ExecContext(ctx, `INSERT INTO tokens (id, hash, name, letters, created) VALUES (?, ?, ?, ?, ?)`,
		tok.ID, tok.Hash, tok.Name, strings.Join(tok.Letters, ","), tok.Created)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

func scanToken(row interface{ Scan(...any) error }) (*ledger.Token, error) {
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

func (t tokenStore) ByHash(ctx context.Context, hash []byte) (*ledger.Token, error) {
	tok, err := scanToken(t.s.queryRow(ctx, `SELECT id, hash, name, letters, created, revoked FROM tokens WHERE hash = ? AND revoked = 0`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return tok, nil
}

func (t tokenStore) List(ctx context.Context) ([]ledger.Token, error) {
	rows, err := t.s.query(ctx, `SELECT id, hash, name, letters, created, revoked FROM tokens ORDER BY created, id`)
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

func (t tokenStore) Revoke(ctx context.Context, id string, at int64) (bool, error) {
	res, err := t.s.w.ExecContext(ctx, `UPDATE tokens SET revoked = ? WHERE id = ? AND revoked = 0`, at, id)
	if err != nil {
		return false, fmt.Errorf("revoke token: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// The store also serves the Trillian engine in one process (Trillian's
// memory storage in tests): it matches log entries to intents by leaf hash.
var _ ledger.UnorderedStore = (*Store)(nil)

// ServeUnordered makes the indexes that the ledger.UnorderedStore methods
// need: entries by leaf hash, and by letter. A store that serves a log
// that orders entries itself (Trillian in one process, in tests) calls it
// after [Open]; the embedded engine does not, and Open drops them, so that
// admitting an entry writes no page of a random-keyed index.
func (s *Store) ServeUnordered(ctx context.Context) error {
	for _, q := range []string{
		`CREATE INDEX IF NOT EXISTS entries_by_leaf_hash ON entries(leaf_hash)`,
		`CREATE INDEX IF NOT EXISTS entries_by_letter ON entries(letter_id, seq)`,
	} {
		if _, err := s.w.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("unordered indexes: %w", err)
		}
	}
	return nil
}

// LeafEntries returns the entry of each leaf hash.
func (s *Store) LeafEntries(ctx context.Context, leafHashes [][]byte) ([]ledger.LeafEntry, error) {
	out := make([]ledger.LeafEntry, len(leafHashes))
	for i, h := range leafHashes {
		err := s.queryRow(ctx, `SELECT seq, COALESCE(idx, -1) FROM entries WHERE leaf_hash = ? ORDER BY seq LIMIT 1`, h).
			Scan(&out[i].Seq, &out[i].Index)
		if errors.Is(err, sql.ErrNoRows) {
			out[i] = ledger.LeafEntry{Index: ledger.NoIndex}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("entry of leaf %x: %w", h, err)
		}
	}
	return out, nil
}

// UnindexedBefore reports whether an entry of the letter admitted before
// seq has no index.
func (s *Store) UnindexedBefore(ctx context.Context, letterID string, seq int64) (bool, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM entries WHERE letter_id = ? AND seq < ? AND idx IS NULL`, letterID, seq).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("entries of %q without an index: %w", letterID, err)
	}
	return n > 0, nil
}

// Unindexed returns the entries without an index, in seq order.
func (s *Store) Unindexed(ctx context.Context) ([]ledger.Entry, error) {
	rows, err := s.query(ctx, `SELECT `+entryColumns+` FROM entries WHERE idx IS NULL ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("entries without an index: %w", err)
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("entries without an index: %w", err)
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

// LetterByID returns a letter.
func (s *Store) LetterByID(ctx context.Context, id string) (*ledger.LetterRow, error) {
	l, err := scanLetter(s.queryRow(ctx, `SELECT `+letterColumns+` FROM letters l JOIN entries x ON x.seq = l.seq `+keysJoin+`
		WHERE l.letter_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("letter %q: %w", id, err)
	}
	return l, nil
}

// AddForeign records leaves of the log no frontend admitted.
func (s *Store) AddForeign(ctx context.Context, leaves []ledger.ForeignLeaf) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record foreign leaves: %w", err)
	}
	defer tx.Rollback()
	for _, l := range leaves {
		if _, err := tx.ExecContext(ctx, `INSERT INTO foreign_leaves (idx, leaf_hash) VALUES (?, ?) ON CONFLICT (idx) DO NOTHING`, int64(l.Index), l.LeafHash); err != nil {
			return fmt.Errorf("record foreign leaves: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record foreign leaves: %w", err)
	}
	return nil
}

// Foreign returns the indexes of the foreign leaves in [from, to).
func (s *Store) Foreign(ctx context.Context, from, to uint64) (map[uint64]bool, error) {
	rows, err := s.query(ctx, `SELECT idx FROM foreign_leaves WHERE idx >= ? AND idx < ?`, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("foreign leaves: %w", err)
	}
	defer rows.Close()
	out := map[uint64]bool{}
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			return nil, fmt.Errorf("foreign leaves: %w", err)
		}
		out[uint64(i)] = true
	}
	return out, rows.Err()
}

package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Importer loads the state of a migrated log into an empty database,
// within one transaction.
type Importer struct {
	tx pgx.Tx
}

// Empty reports whether the database holds no entry, token or log
// binding.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var used bool
	if err := s.pool.QueryRow(ctx, usedQuery).Scan(&used); err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	return !used, nil
}

const usedQuery = `SELECT EXISTS (SELECT 1 FROM entries) OR EXISTS (SELECT 1 FROM tokens) OR EXISTS (SELECT 1 FROM log_binding)`

// Import runs fn with an Importer and commits what it loaded. It refuses a
// database that holds any entry, token or log binding: a migration fills a
// new database.
func (s *Store) Import(ctx context.Context, fn func(*Importer) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var used bool
		err := tx.QueryRow(ctx, usedQuery).Scan(&used)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		if used {
			return errors.New("import: the database is not empty: a migration needs a new database")
		}
		return fn(&Importer{tx: tx})
	})
}

// boolColumns are the columns the SQLite store keeps as 0 or 1.
var boolColumns = map[string]bool{"secret_spent": true}

// Copy loads rows into a table; columns name the values of each row, as
// sqlitestore.Export gives them.
func (i *Importer) Copy(ctx context.Context, table string, columns []string, rows [][]any) error {
	for c, name := range columns {
		if !boolColumns[name] {
			continue
		}
		for _, r := range rows {
			if v, ok := r[c].(int64); ok {
				r[c] = v != 0
			}
		}
	}
	n, err := i.tx.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromRows(rows))
	if err != nil {
		return fmt.Errorf("import %s: %w", table, err)
	}
	if n != int64(len(rows)) {
		return fmt.Errorf("import %s: copied %d rows of %d", table, n, len(rows))
	}
	return nil
}

// Finish records the watermark, the log binding and the last signed
// checkpoint of the migrated log.
func (i *Importer) Finish(ctx context.Context, watermark uint64, origin string, treeID int64, checkpoint []byte) error {
	b := &pgx.Batch{}
	b.Queue(`UPDATE meta SET value = $1 WHERE key = 'watermark'`, int64(watermark))
	b.Queue(`INSERT INTO log_binding (id, origin, tree_id) VALUES (1, $1, $2)`, origin, treeID)
	if checkpoint != nil {
		b.Queue(`INSERT INTO checkpoint (id, raw) VALUES (1, $1)`, checkpoint)
	}
	if err := i.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

package sqlitestore

import (
	"context"
	"fmt"
	"strings"
)

// Table is a table of the store, named as both stores name it, with its
// columns.
type Table struct {
	Name    string
	Columns []string
}

// Tables are the tables [Store.Export] reads, in an order that a copy can
// load them in. The PostgreSQL store has the same tables and columns.
var Tables = []Table{
	{"entries", []string{"seq", "idx", "leaf_hash", "kind", "letter_id", "record", "principal"}},
	{"endorsements", []string{"seq", "letter_id", "visibility", "verification", "signer_key", "withdrawn_by", "redacted_by", "superseded_by", "secret_spent", "dedup_keys"}},
	{"disclosures", []string{"seq", "salt", "name", "affiliation", "country", "folded"}},
	{"dedup", []string{"key", "seq"}},
	{"letters", []string{"letter_id", "seq", "closed_seq", "delivered_seq"}},
	{"tokens", []string{"id", "hash", "name", "letters", "created", "revoked"}},
}

// Export calls fn with the rows of each of [Tables], in pages of at most
// 10,000, in key order. Values are int64, string, []byte or nil.
func (s *Store) Export(ctx context.Context, fn func(t Table, rows [][]any) error) error {
	for _, t := range Tables {
		q := `SELECT ` + strings.Join(t.Columns, ", ") + ` FROM ` + t.Name + ` ORDER BY ` + t.Columns[0]
		rows, err := s.r.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("export %s: %w", t.Name, err)
		}
		var page [][]any
		for rows.Next() {
			row := make([]any, len(t.Columns))
			ptrs := make([]any, len(row))
			for i := range row {
				ptrs[i] = &row[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return fmt.Errorf("export %s: %w", t.Name, err)
			}
			page = append(page, row)
			if len(page) == 10000 {
				if err := fn(t, page); err != nil {
					rows.Close()
					return err
				}
				page = nil
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("export %s: %w", t.Name, err)
		}
		if len(page) > 0 {
			if err := fn(t, page); err != nil {
				return err
			}
		}
	}
	return nil
}

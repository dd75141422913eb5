package sqlitestore

import (
	"context"
	"fmt"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Table is a table of the store as a migration carries it to PostgreSQL
// (package pgstore), which has tables of these names and columns.
type Table struct {
	Name    string
	Columns []string
	// query selects the columns from this store, in key order.
	query string
}

// Tables are the tables [Store.Export] gives, in an order a copy can load
// them in. Most are this store's own; where the layouts differ the export
// converts: an endorsement carries the dedup keys it still holds (here
// they are in entry_keys), and the dedup table (here an index in memory,
// rebuilt from the entries) maps each key to the entry holding it.
var Tables = []Table{
	{"entries", []string{"seq", "idx", "leaf_hash", "kind", "letter_id", "record", "principal"},
		`SELECT seq, idx, leaf_hash, kind, letter_id, record, principal FROM entries ORDER BY seq`},
	{"endorsements", []string{"seq", "letter_id", "visibility", "verification", "signer_key", "withdrawn_by", "redacted_by", "superseded_by", "secret_spent", "dedup_keys"},
		`SELECT e.seq, e.letter_id, e.visibility, e.verification, e.signer_key, e.withdrawn_by, e.redacted_by, e.superseded_by, e.secret_spent, k.dedup_keys
		FROM endorsements e LEFT JOIN entry_keys k ON k.seq = e.seq ORDER BY e.seq`},
	{"disclosures", []string{"seq", "salt", "name", "affiliation", "country", "folded"},
		`SELECT seq, salt, name, affiliation, country, folded FROM disclosures ORDER BY seq`},
	{"dedup", []string{"key", "seq"}, ""},
	{"letters", []string{"letter_id", "seq", "closed_seq", "delivered_seq"},
		`SELECT letter_id, seq, closed_seq, delivered_seq FROM letters ORDER BY letter_id`},
	{"letter_keys", []string{"letter_id", "seq", "organiser_keys", "revoked_keys"},
		`SELECT letter_id, seq, organiser_keys, revoked_keys FROM letter_keys ORDER BY letter_id`},
	{"tokens", []string{"id", "hash", "name", "letters", "created", "revoked"},
		`SELECT id, hash, name, letters, created, revoked FROM tokens ORDER BY id`},
}

// exportPage is the most rows given at once.
const exportPage = 10000

// Export calls fn with the rows of each of [Tables], in pages of at most
// 10,000. Values are int64, string, []byte or nil. The store must not be
// written meanwhile (a migration copies a stopped log).
func (s *Store) Export(ctx context.Context, fn func(t Table, rows [][]any) error) error {
	for _, t := range Tables {
		var err error
		if t.Name == "dedup" {
			err = s.exportDedup(ctx, t, fn)
		} else {
			err = s.exportTable(ctx, t, fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) exportTable(ctx context.Context, t Table, fn func(Table, [][]any) error) error {
	rows, err := s.r.QueryContext(ctx, t.query)
	if err != nil {
		return fmt.Errorf("export %s: %w", t.Name, err)
	}
	defer rows.Close()
	var page [][]any
	for rows.Next() {
		row := make([]any, len(t.Columns))
		ptrs := make([]any, len(row))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("export %s: %w", t.Name, err)
		}
		page = append(page, row)
		if len(page) == exportPage {
			if err := fn(t, page); err != nil {
				return err
			}
			page = nil
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export %s: %w", t.Name, err)
	}
	if len(page) > 0 {
		return fn(t, page)
	}
	return nil
}

// exportDedup gives each dedup key with the entry that holds it: the keys
// every entry still holds, and those it holds for good, a later entry
// taking a key over from an earlier one (a correction), as the index is
// rebuilt at open.
func (s *Store) exportDedup(ctx context.Context, t Table, fn func(Table, [][]any) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, dedup_keys, permanent_keys FROM entry_keys ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("export dedup: %w", err)
	}
	holder := map[string]int64{}
	var order []string
	for rows.Next() {
		var seq int64
		var keys, permanent []byte
		if err := rows.Scan(&seq, &keys, &permanent); err != nil {
			rows.Close()
			return fmt.Errorf("export dedup: %w", err)
		}
		for _, blob := range [][]byte{keys, permanent} {
			for ; len(blob) >= ledger.DedupKeySize; blob = blob[ledger.DedupKeySize:] {
				k := string(blob[:ledger.DedupKeySize])
				if _, seen := holder[k]; !seen {
					order = append(order, k)
				}
				holder[k] = seq
			}
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("export dedup: %w", err)
	}
	var page [][]any
	for _, k := range order {
		page = append(page, []any{[]byte(k), holder[k]})
		if len(page) == exportPage {
			if err := fn(t, page); err != nil {
				return err
			}
			page = nil
		}
	}
	if len(page) > 0 {
		return fn(t, page)
	}
	return nil
}

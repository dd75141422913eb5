package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// IntegrityCheck runs SQLite's integrity check and returns its complaints,
// none for a sound database.
func (s *Store) IntegrityCheck(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" {
			out = append(out, line)
		}
	}
	return out, rows.Err()
}

// IndexedEntry is an entry with its log index, for checks.
type IndexedEntry struct {
	Index    uint64
	LeafHash []byte
	Record   []byte
}

// ForEachIndexed calls fn with every entry that has an index, in index
// order.
func (s *Store) ForEachIndexed(ctx context.Context, fn func(IndexedEntry) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT idx, leaf_hash, record FROM entries WHERE idx IS NOT NULL ORDER BY idx`)
	if err != nil {
		return fmt.Errorf("entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e IndexedEntry
		if err := rows.Scan(&e.Index, &e.LeafHash, &e.Record); err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// EndorsementRow is an endorsement as the store indexes it, with its
// disclosure if the store keeps one.
type EndorsementRow struct {
	Index      int64 // -1 while pending
	Record     []byte
	Visibility pb.Visibility
	Redacted   bool
	Disclosure *pb.Disclosure
}

// ForEachEndorsement calls fn with every endorsement, in admission order.
func (s *Store) ForEachEndorsement(ctx context.Context, fn func(EndorsementRow) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT COALESCE(x.idx, -1), x.record, e.visibility, e.redacted_by != 0,
		d.salt, d.name, d.affiliation, d.country
		FROM endorsements e JOIN entries x ON x.seq = e.seq LEFT JOIN disclosures d ON d.seq = e.seq ORDER BY e.seq`)
	if err != nil {
		return fmt.Errorf("endorsements: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r EndorsementRow
		var salt []byte
		var name, affiliation, country sql.NullString
		if err := rows.Scan(&r.Index, &r.Record, &r.Visibility, &r.Redacted, &salt, &name, &affiliation, &country); err != nil {
			return err
		}
		if name.Valid {
			r.Disclosure = &pb.Disclosure{Salt: salt, Name: name.String, Affiliation: affiliation.String, Country: country.String}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ApplyRedactions deletes the disclosure of every endorsement the store
// marks redacted and of every endorsement at the given indexes (the
// targets of the log's redaction records), and returns how many it
// deleted: a store restored from a copy must not bring a redacted name
// back.
func (s *Store) ApplyRedactions(ctx context.Context, targets []uint64) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("apply redactions: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM disclosures WHERE seq IN (SELECT seq FROM endorsements WHERE redacted_by != 0)`)
	if err != nil {
		return 0, fmt.Errorf("apply redactions: %w", err)
	}
	n, _ := res.RowsAffected()
	for _, idx := range targets {
		res, err := tx.ExecContext(ctx, `DELETE FROM disclosures WHERE seq = (SELECT seq FROM entries WHERE idx = ?)`, int64(idx))
		if err != nil {
			return n, fmt.Errorf("apply redactions: %w", err)
		}
		m, _ := res.RowsAffected()
		n += m
	}
	if err := tx.Commit(); err != nil {
		return n, fmt.Errorf("apply redactions: %w", err)
	}
	if n > 0 {
		if err := s.Purge(ctx); err != nil {
			return n, err
		}
	}
	return n, nil
}

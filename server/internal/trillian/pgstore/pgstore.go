// Package pgstore keeps the Trillian engine's state beside the log in
// undersigned's own PostgreSQL database (not Trillian's): admitted entries
// (the intents), the dedup index, public disclosures, the indexes that
// answer reads, API tokens, the tile builder's tiles and the last signed
// checkpoint.
//
// Several frontends share one database. Admission takes a
// transaction-scoped advisory lock, so that its checks (dedup, a closed
// letter, a live target, a spent withdrawal secret) are serialised across
// frontends; each batch is admitted in a few round trips (the rows it
// will read are fetched at once, its writes sent as one pipeline). The
// last signed checkpoint is a row replaced by compare-and-swap
// ([Store.Checkpoints]).
//
// The server creates and versions the schema: [Open] creates the tables
// of a new database and refuses a database of another schema version.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/names"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// SchemaVersion is the version of the schema this package creates. Open
// refuses a database of another version.
const SchemaVersion = 1

// Advisory lock keys: one for the schema, one for admission.
const (
	schemaLock int64 = 0x756e64657273_01 // "unders" 1
	admitLock  int64 = 0x756e64657273_02
)

var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value bigint NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS log_binding (
		id int PRIMARY KEY CHECK (id = 1),
		origin text NOT NULL,
		tree_id bigint NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS entries (
		seq bigint PRIMARY KEY,
		idx bigint UNIQUE,
		leaf_hash bytea NOT NULL UNIQUE,
		kind smallint NOT NULL,
		letter_id text NOT NULL,
		record bytea NOT NULL,
		principal text NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS entries_without_index ON entries (seq) WHERE idx IS NULL`,
	`CREATE INDEX IF NOT EXISTS entries_by_letter ON entries (letter_id, seq)`,
	`CREATE TABLE IF NOT EXISTS endorsements (
		seq bigint PRIMARY KEY,
		letter_id text NOT NULL,
		visibility smallint NOT NULL,
		verification smallint NOT NULL,
		signer_key bytea,
		withdrawn_by bigint NOT NULL DEFAULT 0,
		redacted_by bigint NOT NULL DEFAULT 0,
		superseded_by bigint NOT NULL DEFAULT 0,
		secret_spent boolean NOT NULL DEFAULT false,
		dedup_keys bytea
	)`,
	`CREATE INDEX IF NOT EXISTS endorsements_by_letter ON endorsements (letter_id, seq)`,
	`CREATE TABLE IF NOT EXISTS disclosures (
		seq bigint PRIMARY KEY,
		salt bytea NOT NULL,
		name text NOT NULL,
		affiliation text NOT NULL,
		country text NOT NULL,
		folded text NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS dedup (key bytea PRIMARY KEY, seq bigint NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS letters (
		letter_id text PRIMARY KEY,
		seq bigint NOT NULL,
		closed_seq bigint NOT NULL DEFAULT 0,
		delivered_seq bigint NOT NULL DEFAULT 0
	)`,
	// The organiser keys of the letters that had organiser changes, after
	// the last one (seq): each column holds 32-byte keys one after the
	// other.
	`CREATE TABLE IF NOT EXISTS letter_keys (
		letter_id text PRIMARY KEY,
		seq bigint NOT NULL,
		organiser_keys bytea NOT NULL,
		revoked_keys bytea NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS tokens (
		id text PRIMARY KEY,
		hash bytea NOT NULL UNIQUE,
		name text NOT NULL,
		letters text NOT NULL,
		created bigint NOT NULL,
		revoked bigint NOT NULL DEFAULT 0
	)`,
	`CREATE TABLE IF NOT EXISTS tiles (
		level int NOT NULL,
		idx bigint NOT NULL,
		data bytea NOT NULL,
		PRIMARY KEY (level, idx)
	)`,
	`CREATE TABLE IF NOT EXISTS bundles (idx bigint PRIMARY KEY, data bytea NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS tile_state (
		id int PRIMARY KEY CHECK (id = 1),
		size bigint NOT NULL,
		state bytea NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS checkpoint (
		id int PRIMARY KEY CHECK (id = 1),
		raw bytea NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS letter_rates (
		letter_id text PRIMARY KEY,
		tokens double precision NOT NULL,
		updated timestamptz NOT NULL
	)`,
}

// Store is a ledger.UnorderedStore and a trillianlog.TileStore in a
// PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

var (
	_ ledger.UnorderedStore = (*Store)(nil)
	_ trillianlog.TileStore = (*Store)(nil)
)

// Open connects to the database at uri (a PostgreSQL URI; pool settings
// such as pool_max_conns are honoured) and creates or checks its schema.
func Open(ctx context.Context, uri string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(uri)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if !strings.Contains(uri, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, log: logger}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// migrate creates the schema of a new database, or checks its version.
// Frontends starting together take turns.
func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLock); err != nil {
			return fmt.Errorf("postgres: schema: %w", err)
		}
		for _, q := range schema {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("postgres: schema: %w", err)
			}
		}
		var v int64
		err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', $1), ('watermark', 0)`, SchemaVersion)
			if err != nil {
				return fmt.Errorf("postgres: schema: %w", err)
			}
		case err != nil:
			return fmt.Errorf("postgres: schema: %w", err)
		case v != SchemaVersion:
			return fmt.Errorf("postgres: the database has schema version %d, this server knows %d", v, SchemaVersion)
		}
		return refold(ctx, tx)
	})
}

// refold folds the disclosures' names again when names.Fold changed since
// they were stored (meta's fold_version), so that search finds names
// stored before and after alike.
func refold(ctx context.Context, tx pgx.Tx) error {
	var v int64
	err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'fold_version'`).Scan(&v)
	if err == nil && v == names.FoldVersion {
		return nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: fold version: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT seq, name, folded FROM disclosures`)
	if err != nil {
		return fmt.Errorf("postgres: refold: %w", err)
	}
	var seqs []int64
	var folds []string
	for rows.Next() {
		var seq int64
		var name, old string
		if err := rows.Scan(&seq, &name, &old); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: refold: %w", err)
		}
		if f := names.Fold(name); f != old {
			seqs, folds = append(seqs, seq), append(folds, f)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: refold: %w", err)
	}
	if len(seqs) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE disclosures d SET folded = u.folded FROM unnest($1::bigint[], $2::text[]) AS u(seq, folded) WHERE d.seq = u.seq`, seqs, folds); err != nil {
			return fmt.Errorf("postgres: refold: %w", err)
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('fold_version', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, names.FoldVersion)
	if err != nil {
		return fmt.Errorf("postgres: fold version: %w", err)
	}
	return nil
}

// Bind fixes the database to one log: its origin and Trillian tree. A
// database bound to another log is refused.
func (s *Store) Bind(ctx context.Context, origin string, treeID int64) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO log_binding (id, origin, tree_id) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING`, origin, treeID); err != nil {
		return fmt.Errorf("postgres: bind the log: %w", err)
	}
	var o string
	var t int64
	if err := s.pool.QueryRow(ctx, `SELECT origin, tree_id FROM log_binding WHERE id = 1`).Scan(&o, &t); err != nil {
		return fmt.Errorf("postgres: bind the log: %w", err)
	}
	if o != origin || t != treeID {
		return fmt.Errorf("postgres: the database holds the log %q on tree %d, not %q on tree %d", o, t, origin, treeID)
	}
	return nil
}

// Close closes the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

const entryColumns = `seq, COALESCE(idx, -1), leaf_hash, kind, letter_id, record, principal`

func scanEntry(row pgx.Row) (*ledger.Entry, error) {
	e := new(ledger.Entry)
	var kind int16
	if err := row.Scan(&e.Seq, &e.Index, &e.LeafHash, &kind, &e.LetterID, &e.Record, &e.Principal); err != nil {
		return nil, err
	}
	e.Kind = ledger.Kind(kind)
	return e, nil
}

// Assign records log indexes, each only once, and raises the watermark.
func (s *Store) Assign(ctx context.Context, as []ledger.Assignment, watermark uint64) error {
	seqs := make([]int64, len(as))
	idxs := make([]int64, len(as))
	for i, a := range as {
		seqs[i], idxs[i] = a.Seq, int64(a.Index)
	}
	b := &pgx.Batch{}
	if len(as) > 0 {
		b.Queue(`UPDATE entries SET idx = v.idx FROM unnest($1::bigint[], $2::bigint[]) AS v(seq, idx)
			WHERE entries.seq = v.seq AND entries.idx IS NULL`, seqs, idxs)
	}
	b.Queue(`UPDATE meta SET value = GREATEST(value, $1) WHERE key = 'watermark'`, int64(watermark))
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("assign indexes: %w", err)
	}
	return nil
}

// Watermark returns the indexed prefix of the log.
func (s *Store) Watermark(ctx context.Context) (uint64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'watermark'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("watermark: %w", err)
	}
	return uint64(v), nil
}

// Unassigned returns the entries without an index, or with one at least
// from, in seq order.
func (s *Store) Unassigned(ctx context.Context, from uint64) ([]ledger.Entry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+entryColumns+` FROM entries WHERE idx IS NULL OR idx >= $1 ORDER BY seq`, int64(from))
	if err != nil {
		return nil, fmt.Errorf("unassigned: %w", err)
	}
	defer rows.Close()
	var out []ledger.Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("unassigned: %w", err)
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

// Unindexed returns the entries without an index, in seq order.
func (s *Store) Unindexed(ctx context.Context) ([]ledger.Entry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+entryColumns+` FROM entries WHERE idx IS NULL ORDER BY seq`)
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

// letterColumns are the columns of a letter row, with its keys (see
// keyColumns): read them with scanLetter.
const letterColumns = `l.seq, COALESCE(x.idx, -1), x.record, l.closed_seq, l.delivered_seq, ` + keyColumns

// keyColumns and keysJoin read a letter's organiser keys with its row.
const (
	keyColumns = `COALESCE(k.seq, 0), COALESCE(k.organiser_keys, ''::bytea), COALESCE(k.revoked_keys, ''::bytea)`
	keysJoin   = `LEFT JOIN letter_keys k ON k.letter_id = l.letter_id`
)

// scanKeys scans keyColumns, after the columns in dest, into l.
func scanKeys(row pgx.Row, l *ledger.LetterRow, dest ...any) error {
	var keys, revoked []byte
	if err := row.Scan(append(dest, &l.KeysSeq, &keys, &revoked)...); err != nil {
		return err
	}
	if l.KeysSeq == 0 {
		return nil
	}
	var err error
	if l.OrganiserKeys, err = ledger.DecodeKeys(keys); err != nil {
		return err
	}
	l.RevokedKeys, err = ledger.DecodeKeys(revoked)
	return err
}

func scanLetter(row pgx.Row) (*ledger.LetterRow, error) {
	var l ledger.LetterRow
	return &l, scanKeys(row, &l, &l.Seq, &l.Index, &l.Record, &l.ClosedSeq, &l.DeliveredSeq)
}

// Letters returns every letter.
func (s *Store) Letters(ctx context.Context) ([]ledger.LetterRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+letterColumns+` FROM letters l JOIN entries x ON x.seq = l.seq `+keysJoin+` ORDER BY l.seq`)
	if err != nil {
		return nil, fmt.Errorf("letters: %w", err)
	}
	defer rows.Close()
	var out []ledger.LetterRow
	for rows.Next() {
		l, err := scanLetter(rows)
		if err != nil {
			return nil, fmt.Errorf("letters: %w", err)
		}
		out = append(out, *l)
	}
	return out, rows.Err()
}

// LetterByID returns a letter, or nil.
func (s *Store) LetterByID(ctx context.Context, id string) (*ledger.LetterRow, error) {
	l, err := scanLetter(s.pool.QueryRow(ctx, `SELECT `+letterColumns+` FROM letters l JOIN entries x ON x.seq = l.seq `+keysJoin+`
		WHERE l.letter_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("letter %q: %w", id, err)
	}
	return l, nil
}

// EntryByIndex returns the entry at index, or nil.
func (s *Store) EntryByIndex(ctx context.Context, index uint64) (*ledger.Entry, error) {
	e, err := scanEntry(s.pool.QueryRow(ctx, `SELECT `+entryColumns+` FROM entries WHERE idx = $1`, int64(index)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("entry at %d: %w", index, err)
	}
	return e, nil
}

// IndexOfSeq returns the index of seq, or NoIndex.
func (s *Store) IndexOfSeq(ctx context.Context, seq int64) (int64, error) {
	var idx int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(idx, -1) FROM entries WHERE seq = $1`, seq).Scan(&idx); err != nil {
		return 0, fmt.Errorf("index of %d: %w", seq, err)
	}
	return idx, nil
}

// LeafEntries returns the entry of each leaf hash.
func (s *Store) LeafEntries(ctx context.Context, leafHashes [][]byte) ([]ledger.LeafEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT leaf_hash, seq, COALESCE(idx, -1) FROM entries WHERE leaf_hash = ANY($1)`, leafHashes)
	if err != nil {
		return nil, fmt.Errorf("entries by leaf hash: %w", err)
	}
	defer rows.Close()
	found := make(map[string]ledger.LeafEntry, len(leafHashes))
	for rows.Next() {
		var h []byte
		var e ledger.LeafEntry
		if err := rows.Scan(&h, &e.Seq, &e.Index); err != nil {
			return nil, fmt.Errorf("entries by leaf hash: %w", err)
		}
		found[string(h)] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("entries by leaf hash: %w", err)
	}
	out := make([]ledger.LeafEntry, len(leafHashes))
	for i, h := range leafHashes {
		e, ok := found[string(h)]
		if !ok {
			e = ledger.LeafEntry{Index: ledger.NoIndex}
		}
		out[i] = e
	}
	return out, nil
}

// UnindexedBefore reports whether an entry of the letter admitted before
// seq has no index.
func (s *Store) UnindexedBefore(ctx context.Context, letterID string, seq int64) (bool, error) {
	var busy bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM entries WHERE letter_id = $1 AND seq < $2 AND idx IS NULL)`, letterID, seq).Scan(&busy)
	if err != nil {
		return false, fmt.Errorf("entries of %q without an index: %w", letterID, err)
	}
	return busy, nil
}

// Disclosures returns the public disclosures in [from, to).
func (s *Store) Disclosures(ctx context.Context, from, to uint64) ([]ledger.DisclosureRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT x.idx, d.salt, d.name, d.affiliation, d.country
		FROM entries x JOIN disclosures d ON d.seq = x.seq
		WHERE x.idx >= $1 AND x.idx < $2 ORDER BY x.idx`, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("disclosures: %w", err)
	}
	defer rows.Close()
	var out []ledger.DisclosureRow
	for rows.Next() {
		var idx int64
		d := new(pb.Disclosure)
		if err := rows.Scan(&idx, &d.Salt, &d.Name, &d.Affiliation, &d.Country); err != nil {
			return nil, fmt.Errorf("disclosures: %w", err)
		}
		out = append(out, ledger.DisclosureRow{Index: uint64(idx), Disclosure: d})
	}
	return out, rows.Err()
}

// Redacted returns the redacted endorsements in [from, to).
func (s *Store) Redacted(ctx context.Context, from, to uint64) (map[uint64]bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT x.idx FROM entries x JOIN endorsements e ON e.seq = x.seq
		WHERE x.idx >= $1 AND x.idx < $2 AND e.redacted_by != 0`, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("redacted: %w", err)
	}
	defer rows.Close()
	out := map[uint64]bool{}
	for rows.Next() {
		var i int64
		if err := rows.Scan(&i); err != nil {
			return nil, fmt.Errorf("redacted: %w", err)
		}
		out[uint64(i)] = true
	}
	return out, rows.Err()
}

// rosterFrom selects a letter's endorsements with the indexes of what
// withdrew and superseded them; $1 is the letter and $2 the tree size.
const rosterFrom = ` FROM endorsements e
	JOIN entries x ON x.seq = e.seq
	LEFT JOIN entries w ON w.seq = e.withdrawn_by
	LEFT JOIN entries s ON s.seq = e.superseded_by
	WHERE e.letter_id = $1 AND x.idx IS NOT NULL AND x.idx < $2`

// counted holds for an endorsement that counts at tree size $2.
const counted = ` (w.idx IS NULL OR w.idx >= $2) AND (s.idx IS NULL OR s.idx >= $2)`

// Roster returns a page of a letter's roster at size.
func (s *Store) Roster(ctx context.Context, letterID string, size uint64, after int64, limit int) ([]ledger.RosterRow, ledger.Counts, error) {
	var c ledger.Counts
	var public, private, redacted, withdrawn, superseded int64
	err := s.pool.QueryRow(ctx, `SELECT
		COALESCE(SUM(CASE WHEN `+counted+` AND e.visibility = 1 AND e.redacted_by = 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN `+counted+` AND e.visibility = 2 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN `+counted+` AND e.visibility = 1 AND e.redacted_by != 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN w.idx IS NOT NULL AND w.idx < $2 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN (w.idx IS NULL OR w.idx >= $2) AND s.idx IS NOT NULL AND s.idx < $2 THEN 1 ELSE 0 END), 0)`+
		rosterFrom, letterID, int64(size)).Scan(&public, &private, &redacted, &withdrawn, &superseded)
	if err != nil {
		return nil, c, fmt.Errorf("roster counts: %w", err)
	}
	c = ledger.Counts{Public: uint64(public), Private: uint64(private), Redacted: uint64(redacted), Withdrawn: uint64(withdrawn), Superseded: uint64(superseded)}
	if limit <= 0 {
		return nil, c, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT x.idx, x.record, e.redacted_by != 0, d.salt, d.name, d.affiliation, d.country`+
		strings.Replace(rosterFrom, "WHERE", "LEFT JOIN disclosures d ON d.seq = e.seq WHERE", 1)+
		` AND `+counted+` AND x.idx > $3 ORDER BY x.idx LIMIT $4`,
		letterID, int64(size), after, limit)
	if err != nil {
		return nil, c, fmt.Errorf("roster: %w", err)
	}
	out, err := scanRoster(rows)
	return out, c, err
}

func scanRoster(rows pgx.Rows) ([]ledger.RosterRow, error) {
	defer rows.Close()
	var out []ledger.RosterRow
	for rows.Next() {
		var r ledger.RosterRow
		var idx int64
		var salt []byte
		var name, affiliation, country *string
		if err := rows.Scan(&idx, &r.Record, &r.Redacted, &salt, &name, &affiliation, &country); err != nil {
			return nil, fmt.Errorf("roster: %w", err)
		}
		r.Index = uint64(idx)
		if name != nil {
			r.Disclosure = &pb.Disclosure{Salt: salt, Name: *name, Affiliation: *affiliation, Country: *country}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Find searches a letter's public endorsements by folded name.
func (s *Store) Find(ctx context.Context, letterID, folded string, size uint64, limit int) ([]ledger.RosterRow, error) {
	pattern := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(folded) + "%"
	rows, err := s.pool.Query(ctx, `SELECT x.idx, x.record, e.redacted_by != 0, d.salt, d.name, d.affiliation, d.country
		FROM endorsements e
		JOIN entries x ON x.seq = e.seq
		JOIN disclosures d ON d.seq = e.seq
		LEFT JOIN entries w ON w.seq = e.withdrawn_by
		LEFT JOIN entries s ON s.seq = e.superseded_by
		WHERE e.letter_id = $1 AND x.idx IS NOT NULL AND x.idx < $2 AND `+counted+`
		AND d.folded LIKE $3 ESCAPE '\' ORDER BY x.idx LIMIT $4`, letterID, int64(size), pattern, limit)
	if err != nil {
		return nil, fmt.Errorf("find: %w", err)
	}
	return scanRoster(rows)
}

// Endorsement returns the state of the endorsement at index as of size.
func (s *Store) Endorsement(ctx context.Context, index, size uint64) (*ledger.EndorsementState, error) {
	st := &ledger.EndorsementState{Index: index}
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(w.idx, -1), COALESCE(r.idx, -1), COALESCE(s.idx, -1)
		FROM entries x JOIN endorsements e ON e.seq = x.seq
		LEFT JOIN entries w ON w.seq = e.withdrawn_by
		LEFT JOIN entries r ON r.seq = e.redacted_by
		LEFT JOIN entries s ON s.seq = e.superseded_by
		WHERE x.idx = $1 AND x.idx < $2`, int64(index), int64(size)).Scan(&st.WithdrawnBy, &st.RedactedBy, &st.SupersededBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("endorsement %d: %w", index, err)
	}
	for _, p := range []*int64{&st.WithdrawnBy, &st.RedactedBy, &st.SupersededBy} {
		if *p >= int64(size) {
			*p = -1
		}
	}
	return st, nil
}

// Purge vacuums the tables a redaction deletes from, so that PostgreSQL
// reclaims the dead rows. What VACUUM cannot reach (the write-ahead log
// until it is recycled, base backups, replicas) is the operator's to
// handle: see deploy/README.md.
func (s *Store) Purge(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, `VACUUM disclosures, dedup`); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	return nil
}

// decodeEndorsement parses the endorsement in a record.
func decodeEndorsement(record []byte) (*pb.Endorsement, error) {
	r := new(pb.Record)
	if err := proto.Unmarshal(record, r); err != nil {
		return nil, err
	}
	return r.GetEndorsement(), nil
}

// Unassign forgets the indexes from from on and moves the watermark back
// to from. The Trillian engine does not call it (Trillian does not lose
// entries it integrated), but a store must offer it.
func (s *Store) Unassign(ctx context.Context, from uint64) error {
	b := &pgx.Batch{}
	b.Queue(`UPDATE entries SET idx = NULL WHERE idx >= $1`, int64(from))
	b.Queue(`UPDATE meta SET value = $1 WHERE key = 'watermark'`, int64(from))
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("unassign from %d: %w", from, err)
	}
	return nil
}

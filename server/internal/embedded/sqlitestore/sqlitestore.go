// Package sqlitestore keeps the embedded engine's state beside the log in a
// SQLite database (pure Go, modernc.org/sqlite): admitted entries, the dedup
// index, public disclosures, the indexes that answer reads, and API tokens.
//
// The database runs in WAL mode with synchronous=FULL, so that an admitted
// entry survives a crash, and with secure_delete, so that a redacted name is
// overwritten rather than left in free pages; [Store.Purge] also truncates
// the WAL after a redaction.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite"

	"github.com/undersigned/undersigned/client/names"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// schemaVersion is the version of the schema below. Open refuses a database
// of another version.
const schemaVersion = 1

var schema = []string{
	`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS entries (
		seq INTEGER PRIMARY KEY,
		idx INTEGER UNIQUE,
		leaf_hash BLOB NOT NULL,
		kind INTEGER NOT NULL,
		letter_id TEXT NOT NULL,
		record BLOB NOT NULL,
		principal TEXT NOT NULL
	)`,
	// The dedup keys of the entries that have some, apart from the wide
	// entries rows so that the index is rebuilt at open by reading little.
	`CREATE TABLE IF NOT EXISTS entry_keys (
		seq INTEGER PRIMARY KEY,
		dedup_keys BLOB,
		permanent_keys BLOB
	)`,
	`CREATE TABLE IF NOT EXISTS endorsements (
		seq INTEGER PRIMARY KEY,
		letter_id TEXT NOT NULL,
		visibility INTEGER NOT NULL,
		verification INTEGER NOT NULL,
		signer_key BLOB,
		withdrawn_by INTEGER NOT NULL DEFAULT 0,
		redacted_by INTEGER NOT NULL DEFAULT 0,
		superseded_by INTEGER NOT NULL DEFAULT 0,
		secret_spent INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX IF NOT EXISTS endorsements_by_letter ON endorsements(letter_id, seq)`,
	// The indexes of a log that orders entries itself are made by
	// ServeUnordered; a store of the embedded engine goes without them
	// (one of them is on random leaf hashes: a page written per entry).
	`DROP INDEX IF EXISTS entries_by_leaf_hash`,
	`DROP INDEX IF EXISTS entries_by_letter`,
	`CREATE TABLE IF NOT EXISTS disclosures (
		seq INTEGER PRIMARY KEY,
		salt BLOB NOT NULL,
		name TEXT NOT NULL,
		affiliation TEXT NOT NULL,
		country TEXT NOT NULL,
		folded TEXT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS letters (
		letter_id TEXT PRIMARY KEY,
		seq INTEGER NOT NULL,
		closed_seq INTEGER NOT NULL DEFAULT 0,
		delivered_seq INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID`,
	// The organiser keys of the letters that had organiser changes, after
	// the last one (seq): each column holds 32-byte keys one after the
	// other.
	`CREATE TABLE IF NOT EXISTS letter_keys (
		letter_id TEXT PRIMARY KEY,
		seq INTEGER NOT NULL,
		organiser_keys BLOB NOT NULL,
		revoked_keys BLOB NOT NULL
	) WITHOUT ROWID`,
	// For the Trillian engine: the leaves of the log no frontend admitted.
	`CREATE TABLE IF NOT EXISTS foreign_leaves (idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS tokens (
		id TEXT PRIMARY KEY,
		hash BLOB NOT NULL UNIQUE,
		name TEXT NOT NULL,
		letters TEXT NOT NULL,
		created INTEGER NOT NULL,
		revoked INTEGER NOT NULL DEFAULT 0
	)`,
}

// The statements of admission, prepared once on the writer connection
// when the store opens: a transaction cannot prepare on another connection.
const (
	qEntryBySeq         = `SELECT ` + entryColumns + ` FROM entries WHERE seq = ?`
	qDedupKeysOf        = `SELECT COALESCE((SELECT dedup_keys FROM entry_keys WHERE seq = ?), x'')`
	qFreeDedupKeys      = `UPDATE entry_keys SET dedup_keys = NULL WHERE seq = ?`
	qDeleteDisclosure   = `DELETE FROM disclosures WHERE seq = ?`
	qEndorsementByIndex = `SELECT x.seq, x.idx, x.leaf_hash, x.kind, x.letter_id, x.record, x.principal,
		e.withdrawn_by, e.redacted_by, e.superseded_by, e.secret_spent
		FROM entries x JOIN endorsements e ON e.seq = x.seq WHERE x.idx = ?`
	qLetterState = `SELECT l.seq, COALESCE(x.idx, -1), l.closed_seq, l.delivered_seq, ` + keyColumns + `
		FROM letters l JOIN entries x ON x.seq = l.seq ` + keysJoin + ` WHERE l.letter_id = ?`
	qSetOrganiserKeys = `INSERT INTO letter_keys (letter_id, seq, organiser_keys, revoked_keys) VALUES (?, ?, ?, ?)
		ON CONFLICT (letter_id) DO UPDATE SET seq = excluded.seq, organiser_keys = excluded.organiser_keys, revoked_keys = excluded.revoked_keys`
)

// keyColumns and keysJoin read a letter's organiser keys with its row:
// scan them with keysScanner.
const (
	keyColumns = `COALESCE(k.seq, 0), COALESCE(k.organiser_keys, x''), COALESCE(k.revoked_keys, x'')`
	keysJoin   = `LEFT JOIN letter_keys k ON k.letter_id = l.letter_id`
)

// keysScanner scans keyColumns into a letter row.
type keysScanner struct {
	row           *ledger.LetterRow
	keys, revoked []byte
}

func (k *keysScanner) dest() []any { return []any{&k.row.KeysSeq, &k.keys, &k.revoked} }

func (k *keysScanner) decode() (err error) {
	if k.row.KeysSeq == 0 {
		return nil
	}
	if k.row.OrganiserKeys, err = ledger.DecodeKeys(k.keys); err != nil {
		return err
	}
	k.row.RevokedKeys, err = ledger.DecodeKeys(k.revoked)
	return err
}

// writeQueries lists the statements prepared at open.
var writeQueries = []string{
	qEntryBySeq,
	qDedupKeysOf,
	qFreeDedupKeys,
	qDeleteDisclosure,
	qEndorsementByIndex,
	qLetterState,
	qSetOrganiserKeys,
}

func init() {
	for _, column := range []string{"withdrawn_by", "redacted_by", "superseded_by"} {
		for _, spent := range []bool{false, true} {
			writeQueries = append(writeQueries, markQuery(column, spent))
		}
	}
}

// markQuery is the statement that marks an endorsement.
func markQuery(column string, spent bool) string {
	q := `UPDATE endorsements SET ` + column + ` = ?`
	if spent {
		q += `, secret_spent = 1`
	}
	return q + ` WHERE seq = ?`
}

// Store is a [ledger.Store] in one SQLite file.
type Store struct {
	w *sql.DB // the one writer connection
	r *sql.DB // readers

	// Prepared statements by query text: parsing SQL costs more than
	// running these small statements.
	wstmts, rstmts sync.Map

	// dedup is the dedup index, in memory: its keys are random, and a
	// B-tree of random keys would cost a page written per key. It is
	// rebuilt at open from the keys each entry row carries.
	dedup *dedupIndex

	purgeMu sync.Mutex
}

// prepared returns the statement for q prepared on db, from cache.
func prepared(ctx context.Context, db *sql.DB, cache *sync.Map, q string) (*sql.Stmt, error) {
	if st, ok := cache.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if old, loaded := cache.LoadOrStore(q, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

// query runs a read query with a prepared statement.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := prepared(ctx, s.r, &s.rstmts, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a one-row read query with a prepared statement.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	st, err := prepared(ctx, s.r, &s.rstmts, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

type rowScanner interface{ Scan(...any) error }

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

var _ ledger.Store = (*Store)(nil)

// Open opens or creates the database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	pragmas := "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=secure_delete(ON)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	w, err := sql.Open("sqlite", "file:"+path+"?"+pragmas)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if s.dedup, err = loadDedup(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	for _, q := range writeQueries {
		if _, err := prepared(ctx, w, &s.wstmts, q); err != nil {
			w.Close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(ON)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	s.r = r
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	for _, q := range schema {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	var v int64
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('watermark', 0)`, schemaVersion); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate: %w", err)
	case v != schemaVersion:
		return fmt.Errorf("migrate: database schema version %d, this server knows %d", v, schemaVersion)
	}
	if err := refold(ctx, tx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return tx.Commit()
}

// refold folds the disclosures' names again when names.Fold changed since
// they were stored (meta's fold_version), so that search finds names
// stored before and after alike.
func refold(ctx context.Context, tx *sql.Tx) error {
	var v int64
	err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'fold_version'`).Scan(&v)
	if err == nil && v == names.FoldVersion {
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("fold version: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, name, folded FROM disclosures`)
	if err != nil {
		return fmt.Errorf("refold: %w", err)
	}
	type change struct {
		seq    int64
		folded string
	}
	var changes []change
	for rows.Next() {
		var c change
		var name, old string
		if err := rows.Scan(&c.seq, &name, &old); err != nil {
			rows.Close()
			return fmt.Errorf("refold: %w", err)
		}
		if c.folded = names.Fold(name); c.folded != old {
			changes = append(changes, c)
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("refold: %w", err)
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, `UPDATE disclosures SET folded = ? WHERE seq = ?`, c.folded, c.seq); err != nil {
			return fmt.Errorf("refold: %w", err)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('fold_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, names.FoldVersion)
	return err
}

// Close closes the database.
func (s *Store) Close() error {
	for _, m := range []*sync.Map{&s.wstmts, &s.rstmts} {
		m.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	}
	return errors.Join(s.r.Close(), s.w.Close())
}

// Admit runs fn in one immediate transaction.
func (s *Store) Admit(ctx context.Context, fn func(ledger.AdmitTx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("admit: %w", err)
	}
	defer tx.Rollback()
	a := &admitTx{tx: tx, s: s, dedup: map[string]int64{}, freed: map[string]int64{}, entries: map[int64]*ledger.Entry{}, letters: map[string]ledger.LetterRow{}}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) + 1 FROM entries`).Scan(&a.nextSeq); err != nil {
		return fmt.Errorf("admit: %w", err)
	}
	if err := fn(a); err != nil {
		return err
	}
	if err := a.flush(ctx); err != nil {
		return fmt.Errorf("admit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("admit: commit: %w", err)
	}
	s.dedup.apply(a.freed, a.dedup)
	return nil
}

// admitTx buffers the rows it inserts and writes them with multi-row
// statements when the batch commits (or before a statement that must see
// them): a batch of a thousand endorsements costs tens of statements, not
// thousands. Reads look at the buffer first.
type admitTx struct {
	tx *sql.Tx
	s  *Store

	nextSeq int64
	// dedup and entries are the buffered dedup keys and entries, for reads;
	// freed, the keys freed from the entries they point at. The index
	// takes them once the transaction commits.
	dedup   map[string]int64
	freed   map[string]int64
	entries map[int64]*ledger.Entry
	// letters are the letters' states read in this transaction: nothing
	// but the transaction changes them until it ends, and it forgets a
	// letter it changes.
	letters map[string]ledger.LetterRow
	// rows are the buffered rows of each table, in insertion order.
	rows [numTables][][]any
}

// The buffered tables, in the order they are written.
const (
	tEntries = iota
	tKeys
	tLetters
	tEndorsements
	tDisclosures
	numTables
)

var bufferedInserts = [numTables]string{
	tEntries:      `INSERT INTO entries (seq, leaf_hash, kind, letter_id, record, principal) VALUES `,
	tKeys:         `INSERT INTO entry_keys (seq, dedup_keys, permanent_keys) VALUES `,
	tLetters:      `INSERT INTO letters (letter_id, seq) VALUES `,
	tEndorsements: `INSERT INTO endorsements (seq, letter_id, visibility, verification, signer_key) VALUES `,
	tDisclosures:  `INSERT INTO disclosures (seq, salt, name, affiliation, country, folded) VALUES `,
}

// bufferedColumns is the number of columns of each buffered table.
var bufferedColumns = [numTables]int{tEntries: 6, tKeys: 3, tLetters: 2, tEndorsements: 5, tDisclosures: 6}

// maxFlushRows is the most rows one statement inserts. A flush writes its
// rows with statements of 2^k rows, each prepared once at open: parsing a
// statement of a hundred rows cost as much as running it.
const maxFlushRows = 128

// insertQuery is the statement that inserts n rows into table t.
func insertQuery(t, n int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", bufferedColumns[t]), ", ") + ")"
	return bufferedInserts[t] + strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}

func init() {
	for t := range numTables {
		for n := 1; n <= maxFlushRows; n *= 2 {
			writeQueries = append(writeQueries, insertQuery(t, n))
		}
	}
}

// flush writes the buffered rows.
func (a *admitTx) flush(ctx context.Context) error {
	var args []any
	for t, rows := range a.rows {
		for len(rows) > 0 {
			n := maxFlushRows
			for n > len(rows) {
				n /= 2
			}
			args = args[:0]
			for _, r := range rows[:n] {
				if len(r) != bufferedColumns[t] {
					return fmt.Errorf("insert: %d values for the %d columns of %q", len(r), bufferedColumns[t], bufferedInserts[t])
				}
				args = append(args, r...)
			}
			st, err := a.stmt(ctx, insertQuery(t, n))
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			if _, err := st.ExecContext(ctx, args...); err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			rows = rows[n:]
		}
		a.rows[t] = nil
	}
	return nil
}

func (a *admitTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := a.s.wstmts.Load(q); ok {
		return a.tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	return a.tx.PrepareContext(ctx, q)
}

// exec runs a statement after writing the buffered rows, which it may need
// to see.
func (a *admitTx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if err := a.flush(ctx); err != nil {
		return nil, err
	}
	st, err := a.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (a *admitTx) queryRow(ctx context.Context, q string, args ...any) rowScanner {
	st, err := a.stmt(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

func (a *admitTx) LookupDedup(ctx context.Context, key []byte) (int64, bool, error) {
	if seq, ok := a.dedup[string(key)]; ok {
		return seq, true, nil
	}
	seq, ok := a.s.dedup.get(key)
	if ok {
		if by, freed := a.freed[string(key)]; freed && by == seq {
			return 0, false, nil
		}
	}
	return seq, ok, nil
}

const entryColumns = `seq, COALESCE(idx, -1), leaf_hash, kind, letter_id, record, principal`

func scanEntry(row interface{ Scan(...any) error }) (*ledger.Entry, error) {
	e := new(ledger.Entry)
	err := row.Scan(&e.Seq, &e.Index, &e.LeafHash, &e.Kind, &e.LetterID, &e.Record, &e.Principal)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (a *admitTx) EntryBySeq(ctx context.Context, seq int64) (*ledger.Entry, error) {
	if e, ok := a.entries[seq]; ok {
		c := *e
		return &c, nil
	}
	e, err := scanEntry(a.queryRow(ctx, qEntryBySeq, seq))
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", seq, err)
	}
	return e, nil
}

// EndorsementByIndex reads an endorsement with an index, which was
// admitted by an earlier transaction: never a buffered one.
func (a *admitTx) EndorsementByIndex(ctx context.Context, index uint64) (*ledger.Endorsement, error) {
	row := a.queryRow(ctx, qEndorsementByIndex, int64(index))
	var e ledger.Endorsement
	err := row.Scan(&e.Seq, &e.Index, &e.LeafHash, &e.Kind, &e.LetterID, &e.Record, &e.Principal,
		&e.WithdrawnBy, &e.RedactedBy, &e.SupersededBy, &e.SecretSpent)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("endorsement at %d: %w", index, err)
	}
	r := new(pb.Record)
	if err := proto.Unmarshal(e.Record, r); err != nil {
		return nil, fmt.Errorf("endorsement at %d: %w", index, err)
	}
	e.Endorsement = r.GetEndorsement()
	return &e, nil
}

func (a *admitTx) Insert(ctx context.Context, n *ledger.NewEntry) (int64, error) {
	seq := a.nextSeq
	a.nextSeq++
	e := n.Entry
	e.Seq, e.Index = seq, ledger.NoIndex
	a.entries[seq] = &e
	a.rows[tEntries] = append(a.rows[tEntries], []any{seq, n.LeafHash, n.Kind, n.LetterID, n.Record, n.Principal})
	if len(n.DedupKeys)+len(n.PermanentKeys) > 0 {
		a.rows[tKeys] = append(a.rows[tKeys], []any{seq, joinKeys(n.DedupKeys), joinKeys(n.PermanentKeys)})
	}
	// A key held by the endorsement a correction supersedes passes to the
	// correction; the ledger looked up every other key first.
	for _, k := range append(append([][]byte(nil), n.DedupKeys...), n.PermanentKeys...) {
		a.dedup[string(k)] = seq
	}
	switch n.Kind {
	case ledger.KindLetter:
		delete(a.letters, n.LetterID)
		a.rows[tLetters] = append(a.rows[tLetters], []any{n.LetterID, seq})
	case ledger.KindEndorsement:
		a.rows[tEndorsements] = append(a.rows[tEndorsements],
			[]any{seq, n.LetterID, int32(n.Visibility), int32(n.Verification), n.SignerKey})
		if d := n.Disclosure; d != nil {
			a.rows[tDisclosures] = append(a.rows[tDisclosures],
				[]any{seq, d.GetSalt(), d.GetName(), d.GetAffiliation(), d.GetCountry(), n.FoldedName})
		}
	}
	return seq, nil
}

// joinKeys packs dedup keys, all of one length, into one blob.
func joinKeys(keys [][]byte) []byte {
	var b []byte
	for _, k := range keys {
		b = append(b, k...)
	}
	return b
}

func (a *admitTx) Mark(ctx context.Context, seq int64, what ledger.Target, bySeq int64, spent bool) error {
	column := map[ledger.Target]string{
		ledger.TargetWithdrawn:  "withdrawn_by",
		ledger.TargetRedacted:   "redacted_by",
		ledger.TargetSuperseded: "superseded_by",
	}[what]
	if column == "" {
		return fmt.Errorf("mark %d: unknown target %d", seq, what)
	}
	var keys []byte
	if err := a.queryRow(ctx, qDedupKeysOf, seq).Scan(&keys); err != nil {
		return fmt.Errorf("mark %d: %w", seq, err)
	}
	for ; len(keys) >= ledger.DedupKeySize; keys = keys[ledger.DedupKeySize:] {
		k := keys[:ledger.DedupKeySize]
		// Free the key only where it still points at seq: a correction
		// may have taken it over.
		if now, found, _ := a.LookupDedup(ctx, k); found && now == seq {
			a.freed[string(k)] = seq
			delete(a.dedup, string(k))
		}
	}
	if _, err := a.exec(ctx, qFreeDedupKeys, seq); err != nil {
		return fmt.Errorf("mark %d: %w", seq, err)
	}
	if _, err := a.exec(ctx, markQuery(column, spent), bySeq, seq); err != nil {
		return fmt.Errorf("mark %d: %w", seq, err)
	}
	if what == ledger.TargetRedacted {
		if _, err := a.exec(ctx, qDeleteDisclosure, seq); err != nil {
			return fmt.Errorf("redact %d: %w", seq, err)
		}
	}
	return nil
}

// Letter returns a letter's state as this transaction sees it.
func (a *admitTx) Letter(ctx context.Context, id string) (*ledger.LetterRow, error) {
	if r, ok := a.letters[id]; ok {
		return &r, nil
	}
	// A letter admitted earlier in the batch may still be buffered.
	if len(a.rows[tLetters]) > 0 {
		if err := a.flush(ctx); err != nil {
			return nil, err
		}
	}
	var r ledger.LetterRow
	k := keysScanner{row: &r}
	err := a.queryRow(ctx, qLetterState, id).Scan(append([]any{&r.Seq, &r.Index, &r.ClosedSeq, &r.DeliveredSeq}, k.dest()...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err == nil {
		err = k.decode()
	}
	if err != nil {
		return nil, fmt.Errorf("letter %q: %w", id, err)
	}
	a.letters[id] = r
	return &r, nil
}

func (a *admitTx) SetOrganiserKeys(ctx context.Context, letterID string, keys, revoked [][]byte, seq int64) error {
	delete(a.letters, letterID)
	if _, err := a.exec(ctx, qSetOrganiserKeys, letterID, seq, ledger.EncodeKeys(keys), ledger.EncodeKeys(revoked)); err != nil {
		return fmt.Errorf("organiser keys: %w", err)
	}
	return nil
}

func (a *admitTx) SetLetterStatus(ctx context.Context, letterID string, status pb.Status, seq int64) error {
	var q string
	switch status {
	case pb.Status_STATUS_CLOSED:
		q = `UPDATE letters SET closed_seq = ? WHERE letter_id = ? AND closed_seq = 0`
	case pb.Status_STATUS_DELIVERED:
		q = `UPDATE letters SET delivered_seq = ? WHERE letter_id = ? AND delivered_seq = 0`
	default:
		return fmt.Errorf("letter status %v", status)
	}
	delete(a.letters, letterID)
	if _, err := a.exec(ctx, q, seq, letterID); err != nil {
		return fmt.Errorf("letter status: %w", err)
	}
	return nil
}

// Purge makes deleted rows unrecoverable from the files: secure_delete has
// overwritten them in the database pages, and a truncating checkpoint
// removes the WAL frames that still held them. It fails if readers kept
// the checkpoint from completing within the busy timeout.
func (s *Store) Purge(ctx context.Context) error {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	// The checkpoint waits for readers up to the busy timeout; if they
	// still hold old pages it reports busy rather than an error, and the
	// deleted rows may still be in the files.
	var busy, frames, checkpointed int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &checkpointed); err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("purge: readers kept the WAL from being checkpointed and truncated (%d of %d frames copied)", checkpointed, frames)
	}
	return nil
}

// Assign records log indexes; the watermark never moves back. Entries
// admitted together sit at consecutive seqs and get consecutive indexes,
// so each such run is one statement. The commit is not synced on its own:
// indexes can be recovered from the log, and the next synced commit makes
// it durable.
func (s *Store) Assign(ctx context.Context, as []ledger.Assignment, watermark uint64) error {
	if _, err := s.w.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return fmt.Errorf("assign: %w", err)
	}
	defer s.w.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = FULL`)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("assign: %w", err)
	}
	defer tx.Rollback()
	for i := 0; i < len(as); {
		j := i + 1
		for j < len(as) && as[j].Seq == as[j-1].Seq+1 && as[j].Index == as[j-1].Index+1 {
			j++
		}
		first, last := as[i], as[j-1]
		res, err := tx.ExecContext(ctx, `UPDATE entries SET idx = seq + ? WHERE seq BETWEEN ? AND ?`,
			int64(first.Index)-first.Seq, first.Seq, last.Seq)
		if err != nil {
			return fmt.Errorf("assign %d.. to %d..: %w", first.Index, first.Seq, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(j-i) {
			return fmt.Errorf("assign %d.. to %d..: %d rows changed, want %d", first.Index, first.Seq, n, j-i)
		}
		i = j
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = max(value, ?) WHERE key = 'watermark'`, int64(watermark)); err != nil {
		return fmt.Errorf("assign: %w", err)
	}
	return tx.Commit()
}

// Unassign forgets the indexes from from on.
func (s *Store) Unassign(ctx context.Context, from uint64) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("unassign: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE entries SET idx = NULL WHERE idx >= ?`, int64(from)); err != nil {
		return fmt.Errorf("unassign: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'watermark'`, int64(from)); err != nil {
		return fmt.Errorf("unassign: %w", err)
	}
	return tx.Commit()
}

// Watermark returns the indexed prefix of the log.
func (s *Store) Watermark(ctx context.Context) (uint64, error) {
	var v int64
	if err := s.queryRow(ctx, `SELECT value FROM meta WHERE key = 'watermark'`).Scan(&v); err != nil {
		return 0, fmt.Errorf("watermark: %w", err)
	}
	return uint64(v), nil
}

// Unassigned returns the entries without an index, or with one at least
// from, in seq order.
func (s *Store) Unassigned(ctx context.Context, from uint64) ([]ledger.Entry, error) {
	// Two selects, each on the index of idx: with an OR, SQLite would read
	// the whole table.
	rows, err := s.query(ctx, `SELECT * FROM (SELECT `+entryColumns+` FROM entries WHERE idx IS NULL
		UNION ALL SELECT `+entryColumns+` FROM entries WHERE idx >= ?) ORDER BY 1`, int64(from))
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

// Letters returns every letter.
func (s *Store) Letters(ctx context.Context) ([]ledger.LetterRow, error) {
	rows, err := s.query(ctx, `SELECT `+letterColumns+` FROM letters l JOIN entries x ON x.seq = l.seq `+keysJoin+` ORDER BY l.seq`)
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

// letterColumns are the columns of a letter row, with its keys: read them
// with scanLetter.
const letterColumns = `l.seq, COALESCE(x.idx, -1), x.record, l.closed_seq, l.delivered_seq, ` + keyColumns

func scanLetter(row interface{ Scan(...any) error }) (*ledger.LetterRow, error) {
	var l ledger.LetterRow
	k := keysScanner{row: &l}
	if err := row.Scan(append([]any{&l.Seq, &l.Index, &l.Record, &l.ClosedSeq, &l.DeliveredSeq}, k.dest()...)...); err != nil {
		return nil, err
	}
	return &l, k.decode()
}

// EntryByIndex returns the entry at index.
func (s *Store) EntryByIndex(ctx context.Context, index uint64) (*ledger.Entry, error) {
	e, err := scanEntry(s.queryRow(ctx, `SELECT `+entryColumns+` FROM entries WHERE idx = ?`, int64(index)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("entry at %d: %w", index, err)
	}
	return e, nil
}

// IndexOfSeq returns the index of seq.
func (s *Store) IndexOfSeq(ctx context.Context, seq int64) (int64, error) {
	var idx int64
	err := s.queryRow(ctx, `SELECT COALESCE(idx, -1) FROM entries WHERE seq = ?`, seq).Scan(&idx)
	if err != nil {
		return 0, fmt.Errorf("index of %d: %w", seq, err)
	}
	return idx, nil
}

// Disclosures returns public disclosures in [from, to).
func (s *Store) Disclosures(ctx context.Context, from, to uint64) ([]ledger.DisclosureRow, error) {
	rows, err := s.query(ctx, `SELECT x.idx, d.salt, d.name, d.affiliation, d.country
		FROM entries x JOIN disclosures d ON d.seq = x.seq
		WHERE x.idx >= ? AND x.idx < ? ORDER BY x.idx`, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("disclosures: %w", err)
	}
	defer rows.Close()
	var out []ledger.DisclosureRow
	for rows.Next() {
		var r ledger.DisclosureRow
		d := new(pb.Disclosure)
		if err := rows.Scan(&r.Index, &d.Salt, &d.Name, &d.Affiliation, &d.Country); err != nil {
			return nil, fmt.Errorf("disclosures: %w", err)
		}
		r.Disclosure = d
		out = append(out, r)
	}
	return out, rows.Err()
}

// Redacted returns the redacted endorsements in [from, to).
func (s *Store) Redacted(ctx context.Context, from, to uint64) (map[uint64]bool, error) {
	rows, err := s.query(ctx, `SELECT x.idx FROM entries x JOIN endorsements e ON e.seq = x.seq
		WHERE x.idx >= ? AND x.idx < ? AND e.redacted_by != 0`, int64(from), int64(to))
	if err != nil {
		return nil, fmt.Errorf("redacted: %w", err)
	}
	defer rows.Close()
	out := map[uint64]bool{}
	for rows.Next() {
		var i uint64
		if err := rows.Scan(&i); err != nil {
			return nil, fmt.Errorf("redacted: %w", err)
		}
		out[i] = true
	}
	return out, rows.Err()
}

// rosterFrom selects a letter's endorsements with the indexes of what
// withdrew and superseded them; ?1 is the letter and ?2 the tree size.
const rosterFrom = ` FROM endorsements e
	JOIN entries x ON x.seq = e.seq
	LEFT JOIN entries w ON w.seq = e.withdrawn_by
	LEFT JOIN entries s ON s.seq = e.superseded_by
	WHERE e.letter_id = ?1 AND x.idx IS NOT NULL AND x.idx < ?2`

// counted holds for an endorsement that counts at tree size ?2.
const counted = ` (w.idx IS NULL OR w.idx >= ?2) AND (s.idx IS NULL OR s.idx >= ?2)`

// Roster returns a page of a letter's roster at size.
func (s *Store) Roster(ctx context.Context, letterID string, size uint64, after int64, limit int) ([]ledger.RosterRow, ledger.Counts, error) {
	var c ledger.Counts
	err := s.queryRow(ctx, `SELECT
		COALESCE(SUM(CASE WHEN `+counted+` AND e.visibility = 1 AND e.redacted_by = 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN `+counted+` AND e.visibility = 2 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN `+counted+` AND e.visibility = 1 AND e.redacted_by != 0 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN w.idx IS NOT NULL AND w.idx < ?2 THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN (w.idx IS NULL OR w.idx >= ?2) AND s.idx IS NOT NULL AND s.idx < ?2 THEN 1 ELSE 0 END), 0)`+
		rosterFrom, letterID, int64(size)).Scan(&c.Public, &c.Private, &c.Redacted, &c.Withdrawn, &c.Superseded)
	if err != nil {
		return nil, c, fmt.Errorf("roster counts: %w", err)
	}
	if limit <= 0 {
		return nil, c, nil
	}
	rows, err := s.query(ctx, `SELECT x.idx, x.record, e.redacted_by != 0, d.salt, d.name, d.affiliation, d.country`+
		strings.Replace(rosterFrom, "WHERE", "LEFT JOIN disclosures d ON d.seq = e.seq WHERE", 1)+
		` AND `+counted+` AND x.idx > ?3 ORDER BY x.idx LIMIT ?4`,
		letterID, int64(size), after, limit)
	if err != nil {
		return nil, c, fmt.Errorf("roster: %w", err)
	}
	out, err := scanRoster(rows)
	return out, c, err
}

func scanRoster(rows *sql.Rows) ([]ledger.RosterRow, error) {
	defer rows.Close()
	var out []ledger.RosterRow
	for rows.Next() {
		var r ledger.RosterRow
		var salt []byte
		var name, affiliation, country sql.NullString
		if err := rows.Scan(&r.Index, &r.Record, &r.Redacted, &salt, &name, &affiliation, &country); err != nil {
			return nil, fmt.Errorf("roster: %w", err)
		}
		if name.Valid {
			r.Disclosure = &pb.Disclosure{Salt: salt, Name: name.String, Affiliation: affiliation.String, Country: country.String}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Find searches a letter's public endorsements by folded name.
func (s *Store) Find(ctx context.Context, letterID, folded string, size uint64, limit int) ([]ledger.RosterRow, error) {
	pattern := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(folded) + "%"
	rows, err := s.query(ctx, `SELECT x.idx, x.record, e.redacted_by != 0, d.salt, d.name, d.affiliation, d.country
		FROM endorsements e
		JOIN entries x ON x.seq = e.seq
		JOIN disclosures d ON d.seq = e.seq
		LEFT JOIN entries w ON w.seq = e.withdrawn_by
		LEFT JOIN entries s ON s.seq = e.superseded_by
		WHERE e.letter_id = ?1 AND x.idx IS NOT NULL AND x.idx < ?2 AND `+counted+`
		AND d.folded LIKE ?3 ESCAPE '\' ORDER BY x.idx LIMIT ?4`, letterID, int64(size), pattern, limit)
	if err != nil {
		return nil, fmt.Errorf("find: %w", err)
	}
	return scanRoster(rows)
}

// Endorsement returns the state of the endorsement at index as of size.
func (s *Store) Endorsement(ctx context.Context, index, size uint64) (*ledger.EndorsementState, error) {
	st := &ledger.EndorsementState{Index: index}
	err := s.queryRow(ctx, `SELECT COALESCE(w.idx, -1), COALESCE(r.idx, -1), COALESCE(s.idx, -1)
		FROM entries x JOIN endorsements e ON e.seq = x.seq
		LEFT JOIN entries w ON w.seq = e.withdrawn_by
		LEFT JOIN entries r ON r.seq = e.redacted_by
		LEFT JOIN entries s ON s.seq = e.superseded_by
		WHERE x.idx = ? AND x.idx < ?`, int64(index), int64(size)).Scan(&st.WithdrawnBy, &st.RedactedBy, &st.SupersededBy)
	if errors.Is(err, sql.ErrNoRows) {
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

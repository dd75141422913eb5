package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Admit runs fn in one transaction that holds the admission lock, so that
// frontends admit one batch at a time, and commits it. The transaction
// reads through to the database and keeps its own writes in memory, which
// later reads see, until it sends them all at once before committing.
func (s *Store) Admit(ctx context.Context, fn func(ledger.AdmitTx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("admit: %w", err)
	}
	defer tx.Rollback(ctx)
	// Two statements: the second sees every admission committed before
	// the lock was granted.
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, admitLock)
	b.Queue(`SELECT COALESCE(MAX(seq), 0) FROM entries`)
	br := tx.SendBatch(ctx, b)
	_, err = br.Exec()
	var last int64
	if err == nil {
		err = br.QueryRow().Scan(&last)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("admit: take the admission lock: %w", err)
	}
	a := newAdmitTx(tx, last+1)
	if err := fn(a); err != nil {
		return err
	}
	if err := a.flush(ctx); err != nil {
		return fmt.Errorf("admit: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("admit: commit: %w", err)
	}
	return nil
}

// endorsementRow is an endorsement as admission sees it.
type endorsementRow struct {
	ledger.Endorsement
	dedupKeys []byte
	// isNew: inserted by this transaction; changed: marked by it;
	// dropDisclosure: redacted by it.
	isNew, changed, dropDisclosure bool
}

// letterRow is a letter as admission sees it: changed is set when its
// status changed, keysChanged when its organiser keys did.
type letterRow struct {
	ledger.LetterRow
	isNew, changed, keysChanged bool
}

type newEntry struct {
	*ledger.NewEntry
	seq int64
}

// admitTx is a ledger.AdmitTx: reads go to the database once and are
// kept; writes are kept and sent by flush.
type admitTx struct {
	tx      pgx.Tx
	nextSeq int64

	// What was read or written. A dedup key mapped to 0, or a letter or
	// index mapped to nil, is known to be absent.
	dedup   map[string]int64
	entries map[int64]*ledger.Entry
	letters map[string]*letterRow
	byIndex map[uint64]*endorsementRow
	bySeq   map[int64]*endorsementRow

	inserted []newEntry
	touched  map[string]bool // dedup keys whose final value flush writes
}

var _ ledger.Prefetcher = (*admitTx)(nil)

func newAdmitTx(tx pgx.Tx, next int64) *admitTx {
	return &admitTx{
		tx: tx, nextSeq: next,
		dedup:   map[string]int64{},
		entries: map[int64]*ledger.Entry{},
		letters: map[string]*letterRow{},
		byIndex: map[uint64]*endorsementRow{},
		bySeq:   map[int64]*endorsementRow{},
		touched: map[string]bool{},
	}
}

const endorsementColumns = `x.seq, COALESCE(x.idx, -1), x.leaf_hash, x.kind, x.letter_id, x.record, x.principal,
	e.withdrawn_by, e.redacted_by, e.superseded_by, e.secret_spent, e.dedup_keys`

func scanEndorsement(row pgx.Row) (*endorsementRow, error) {
	e := new(endorsementRow)
	var kind int16
	if err := row.Scan(&e.Seq, &e.Index, &e.LeafHash, &kind, &e.LetterID, &e.Record, &e.Principal,
		&e.WithdrawnBy, &e.RedactedBy, &e.SupersededBy, &e.SecretSpent, &e.dedupKeys); err != nil {
		return nil, err
	}
	e.Kind = ledger.Kind(kind)
	en, err := decodeEndorsement(e.Record)
	if err != nil {
		return nil, err
	}
	e.Endorsement.Endorsement = en
	return e, nil
}

func (a *admitTx) keepEndorsement(e *endorsementRow) *endorsementRow {
	if old := a.bySeq[e.Seq]; old != nil {
		return old
	}
	a.bySeq[e.Seq] = e
	if e.Index != ledger.NoIndex {
		a.byIndex[uint64(e.Index)] = e
	}
	a.entries[e.Seq] = &e.Entry
	return e
}

// The queries of Prefetch (see there why they are lateral).
const (
	prefetchDedup = `SELECT d.key, x.seq, COALESCE(x.idx, -1), x.leaf_hash, x.kind, x.letter_id, x.record, x.principal
		FROM dedup d CROSS JOIN LATERAL (SELECT * FROM entries x WHERE x.seq = d.seq LIMIT 1) x
		WHERE d.key = ANY($1)`
	prefetchLetters = `SELECT l.letter_id, l.seq, COALESCE(x.idx, -1), l.closed_seq, l.delivered_seq, ` + keyColumns + `
		FROM letters l CROSS JOIN LATERAL (SELECT idx FROM entries x WHERE x.seq = l.seq LIMIT 1) x ` + keysJoin + `
		WHERE l.letter_id = ANY($1)`
	prefetchTargets = `SELECT ` + endorsementColumns + ` FROM unnest($1::bigint[]) AS t(idx)
		CROSS JOIN LATERAL (SELECT * FROM entries x WHERE x.idx = t.idx LIMIT 1) x
		CROSS JOIN LATERAL (SELECT * FROM endorsements e WHERE e.seq = x.seq LIMIT 1) e`
)

// Prefetch reads at once the dedup keys, letters and targets a batch will
// look up.
//
// Each query reaches entries by a lateral lookup of one row on a unique
// index, so that its plan stays an index lookup per key whatever the
// statistics say: pgx prepares statements once per connection, and a
// generic plan made while a new database's tables were small (a hash join
// over a scan of every entry) is kept, until autovacuum next analyzes them,
// as they grow: up to a second per batch at a few ten thousand entries
// (reproduced by hand: the same generic plan hash-joins 40,000 entries where
// the lateral form looks up the 2,000 keys). A list with
// nothing to look up sends no query.
func (a *admitTx) Prefetch(ctx context.Context, p ledger.Prefetch) error {
	b := &pgx.Batch{}
	keys := make([][]byte, 0, len(p.DedupKeys))
	for _, k := range p.DedupKeys {
		if _, ok := a.dedup[string(k)]; !ok {
			keys = append(keys, k)
			a.dedup[string(k)] = 0
		}
	}
	queue := func(n int, sql string, arg any, scan func(pgx.Rows) error) {
		if n > 0 {
			b.Queue(sql, arg).Query(scan)
		}
	}
	queue(len(keys), prefetchDedup, keys, func(rows pgx.Rows) error {
		for rows.Next() {
			var key []byte
			e := new(ledger.Entry)
			var kind int16
			if err := rows.Scan(&key, &e.Seq, &e.Index, &e.LeafHash, &kind, &e.LetterID, &e.Record, &e.Principal); err != nil {
				return err
			}
			e.Kind = ledger.Kind(kind)
			a.dedup[string(key)] = e.Seq
			if a.entries[e.Seq] == nil {
				a.entries[e.Seq] = e
			}
		}
		return rows.Err()
	})
	var ids []string
	for _, id := range p.Letters {
		if _, ok := a.letters[id]; !ok && id != "" {
			ids = append(ids, id)
			a.letters[id] = nil
		}
	}
	queue(len(ids), prefetchLetters, ids, func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			l := new(letterRow)
			if err := scanKeys(rows, &l.LetterRow, &id, &l.Seq, &l.Index, &l.ClosedSeq, &l.DeliveredSeq); err != nil {
				return err
			}
			a.letters[id] = l
		}
		return rows.Err()
	})
	var targets []int64
	for _, t := range p.Targets {
		if _, ok := a.byIndex[t]; !ok {
			targets = append(targets, int64(t))
			a.byIndex[t] = nil
		}
	}
	queue(len(targets), prefetchTargets, targets, func(rows pgx.Rows) error {
		for rows.Next() {
			e, err := scanEndorsement(rows)
			if err != nil {
				return err
			}
			a.keepEndorsement(e)
		}
		return rows.Err()
	})
	if b.Len() == 0 {
		return nil
	}
	if err := a.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("prefetch: %w", err)
	}
	return nil
}

// LookupDedup returns the seq stored under key.
func (a *admitTx) LookupDedup(ctx context.Context, key []byte) (int64, bool, error) {
	seq, ok := a.dedup[string(key)]
	if !ok {
		err := a.tx.QueryRow(ctx, `SELECT seq FROM dedup WHERE key = $1`, key).Scan(&seq)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, false, fmt.Errorf("lookup dedup: %w", err)
		}
		a.dedup[string(key)] = seq
	}
	return seq, seq != 0, nil
}

// EntryBySeq returns an admitted entry.
func (a *admitTx) EntryBySeq(ctx context.Context, seq int64) (*ledger.Entry, error) {
	if e := a.entries[seq]; e != nil {
		return e, nil
	}
	e, err := scanEntry(a.tx.QueryRow(ctx, `SELECT `+entryColumns+` FROM entries WHERE seq = $1`, seq))
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", seq, err)
	}
	a.entries[seq] = e
	return e, nil
}

// EndorsementByIndex returns the endorsement at index, or nil.
func (a *admitTx) EndorsementByIndex(ctx context.Context, index uint64) (*ledger.Endorsement, error) {
	e, ok := a.byIndex[index]
	if !ok {
		var err error
		e, err = scanEndorsement(a.tx.QueryRow(ctx, `SELECT `+endorsementColumns+` FROM entries x JOIN endorsements e ON e.seq = x.seq WHERE x.idx = $1`, int64(index)))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			a.byIndex[index] = nil
		case err != nil:
			return nil, fmt.Errorf("endorsement at %d: %w", index, err)
		default:
			e = a.keepEndorsement(e)
		}
	}
	if e == nil {
		return nil, nil
	}
	return &e.Endorsement, nil
}

// endorsementBySeq returns an endorsement admission has seen or made.
func (a *admitTx) endorsementBySeq(ctx context.Context, seq int64) (*endorsementRow, error) {
	if e := a.bySeq[seq]; e != nil {
		return e, nil
	}
	e, err := scanEndorsement(a.tx.QueryRow(ctx, `SELECT `+endorsementColumns+` FROM entries x JOIN endorsements e ON e.seq = x.seq WHERE x.seq = $1`, seq))
	if err != nil {
		return nil, fmt.Errorf("endorsement %d: %w", seq, err)
	}
	return a.keepEndorsement(e), nil
}

// Letter returns a letter's state, or nil.
func (a *admitTx) Letter(ctx context.Context, id string) (*ledger.LetterRow, error) {
	l, ok := a.letters[id]
	if !ok {
		l = new(letterRow)
		err := scanKeys(a.tx.QueryRow(ctx, `SELECT l.seq, COALESCE(x.idx, -1), l.closed_seq, l.delivered_seq, `+keyColumns+`
			FROM letters l JOIN entries x ON x.seq = l.seq `+keysJoin+` WHERE l.letter_id = $1`, id),
			&l.LetterRow, &l.Seq, &l.Index, &l.ClosedSeq, &l.DeliveredSeq)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			l = nil
		case err != nil:
			return nil, fmt.Errorf("letter %q: %w", id, err)
		}
		a.letters[id] = l
	}
	if l == nil {
		return nil, nil
	}
	row := l.LetterRow
	return &row, nil
}

// Insert admits an entry and returns its seq.
func (a *admitTx) Insert(_ context.Context, n *ledger.NewEntry) (int64, error) {
	seq := a.nextSeq
	a.nextSeq++
	n.Seq, n.Index = seq, ledger.NoIndex
	a.inserted = append(a.inserted, newEntry{NewEntry: n, seq: seq})
	a.entries[seq] = &n.Entry
	for _, k := range n.DedupKeys {
		a.dedup[string(k)] = seq
		a.touched[string(k)] = true
	}
	for _, k := range n.PermanentKeys {
		a.dedup[string(k)] = seq
		a.touched[string(k)] = true
	}
	switch n.Kind {
	case ledger.KindLetter:
		a.letters[n.LetterID] = &letterRow{LetterRow: ledger.LetterRow{Seq: seq, Index: ledger.NoIndex}, isNew: true}
	case ledger.KindEndorsement:
		var keys []byte
		for _, k := range n.DedupKeys {
			keys = append(keys, k...)
		}
		a.bySeq[seq] = &endorsementRow{Endorsement: ledger.Endorsement{Entry: n.Entry}, dedupKeys: keys, isNew: true}
	}
	return seq, nil
}

// Mark records what happened to the endorsement at seq and frees its dedup
// keys.
func (a *admitTx) Mark(ctx context.Context, seq int64, what ledger.Target, bySeq int64, spent bool) error {
	e, err := a.endorsementBySeq(ctx, seq)
	if err != nil {
		return fmt.Errorf("mark %d: %w", seq, err)
	}
	for keys := e.dedupKeys; len(keys) >= ledger.DedupKeySize; keys = keys[ledger.DedupKeySize:] {
		k := keys[:ledger.DedupKeySize]
		held, _, err := a.LookupDedup(ctx, k)
		if err != nil {
			return fmt.Errorf("mark %d: %w", seq, err)
		}
		if held == seq {
			a.dedup[string(k)] = 0
			a.touched[string(k)] = true
		}
	}
	e.dedupKeys = nil
	switch what {
	case ledger.TargetWithdrawn:
		e.WithdrawnBy = bySeq
	case ledger.TargetRedacted:
		e.RedactedBy = bySeq
		e.dropDisclosure = true
	case ledger.TargetSuperseded:
		e.SupersededBy = bySeq
	default:
		return fmt.Errorf("mark %d: unknown target %d", seq, what)
	}
	if spent {
		e.SecretSpent = true
	}
	e.changed = true
	return nil
}

// SetLetterStatus records a status of a letter.
func (a *admitTx) SetLetterStatus(ctx context.Context, letterID string, status pb.Status, seq int64) error {
	if _, err := a.Letter(ctx, letterID); err != nil {
		return err
	}
	l := a.letters[letterID]
	if l == nil {
		return fmt.Errorf("letter status: no letter %q", letterID)
	}
	switch status {
	case pb.Status_STATUS_CLOSED:
		if l.ClosedSeq == 0 {
			l.ClosedSeq = seq
		}
	case pb.Status_STATUS_DELIVERED:
		if l.DeliveredSeq == 0 {
			l.DeliveredSeq = seq
		}
	default:
		return fmt.Errorf("letter status %v", status)
	}
	l.changed = true
	return nil
}

// SetOrganiserKeys records a letter's organiser keys after the change at
// seq.
func (a *admitTx) SetOrganiserKeys(ctx context.Context, letterID string, keys, revoked [][]byte, seq int64) error {
	if _, err := a.Letter(ctx, letterID); err != nil {
		return err
	}
	l := a.letters[letterID]
	if l == nil {
		return fmt.Errorf("organiser keys: no letter %q", letterID)
	}
	l.KeysSeq, l.OrganiserKeys, l.RevokedKeys = seq, keys, revoked
	l.keysChanged = true
	return nil
}

// queueKeys queues the organiser keys of the letters whose keys changed.
func (a *admitTx) queueKeys(b *pgx.Batch) {
	var ids []string
	var seqs []int64
	var keys, revoked [][]byte
	for id, l := range a.letters {
		if l == nil || !l.keysChanged {
			continue
		}
		ids, seqs = append(ids, id), append(seqs, l.KeysSeq)
		keys, revoked = append(keys, ledger.EncodeKeys(l.OrganiserKeys)), append(revoked, ledger.EncodeKeys(l.RevokedKeys))
	}
	if len(ids) > 0 {
		b.Queue(`INSERT INTO letter_keys (letter_id, seq, organiser_keys, revoked_keys)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bytea[])
			ON CONFLICT (letter_id) DO UPDATE SET seq = EXCLUDED.seq, organiser_keys = EXCLUDED.organiser_keys,
			revoked_keys = EXCLUDED.revoked_keys`, ids, seqs, keys, revoked)
	}
}

// flush sends the transaction's writes as one pipeline.
func (a *admitTx) flush(ctx context.Context) error {
	b := &pgx.Batch{}
	if len(a.inserted) > 0 {
		var rows insertedRows
		for _, ne := range a.inserted {
			rows.add(a, ne)
		}
		rows.queue(b)
	}
	a.queueMarks(b)
	a.queueStatuses(b)
	a.queueKeys(b)
	a.queueDedup(b)
	if b.Len() == 0 {
		return nil
	}
	if err := a.tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write the batch: %w", err)
	}
	return nil
}

// insertedRows are the rows of the entries a transaction inserted, column
// by column, as unnest takes them.
type insertedRows struct {
	seqs                  []int64
	hashes, recs          [][]byte
	kinds                 []int16
	letterIDs, principals []string

	eSeq              []int64
	eLetter           []string
	eVis, eVer        []int16
	eSigner, eKeys    [][]byte
	eWith, eRed, eSup []int64
	eSpent            []bool

	dSeq                       []int64
	dSalt                      [][]byte
	dName, dAff, dCtry, dFolds []string

	lID                       []string
	lSeq, lClosed, lDelivered []int64
}

// add adds the rows of an inserted entry: its entry, and its endorsement
// (with its disclosure, unless redacted in the same transaction) or its
// letter.
func (r *insertedRows) add(a *admitTx, ne newEntry) {
	r.seqs = append(r.seqs, ne.seq)
	r.hashes = append(r.hashes, ne.LeafHash)
	r.recs = append(r.recs, ne.Record)
	r.kinds = append(r.kinds, int16(ne.Kind))
	r.letterIDs = append(r.letterIDs, ne.LetterID)
	r.principals = append(r.principals, ne.Principal)
	switch ne.Kind {
	case ledger.KindLetter:
		l := a.letters[ne.LetterID]
		r.lID = append(r.lID, ne.LetterID)
		r.lSeq = append(r.lSeq, ne.seq)
		r.lClosed = append(r.lClosed, l.ClosedSeq)
		r.lDelivered = append(r.lDelivered, l.DeliveredSeq)
	case ledger.KindEndorsement:
		e := a.bySeq[ne.seq]
		r.eSeq = append(r.eSeq, ne.seq)
		r.eLetter = append(r.eLetter, ne.LetterID)
		r.eVis = append(r.eVis, int16(ne.Visibility))
		r.eVer = append(r.eVer, int16(ne.Verification))
		r.eSigner = append(r.eSigner, ne.SignerKey)
		r.eKeys = append(r.eKeys, e.dedupKeys)
		r.eWith = append(r.eWith, e.WithdrawnBy)
		r.eRed = append(r.eRed, e.RedactedBy)
		r.eSup = append(r.eSup, e.SupersededBy)
		r.eSpent = append(r.eSpent, e.SecretSpent)
		if d := ne.Disclosure; d != nil && !e.dropDisclosure {
			r.dSeq = append(r.dSeq, ne.seq)
			r.dSalt = append(r.dSalt, d.GetSalt())
			r.dName = append(r.dName, d.GetName())
			r.dAff = append(r.dAff, d.GetAffiliation())
			r.dCtry = append(r.dCtry, d.GetCountry())
			r.dFolds = append(r.dFolds, ne.FoldedName)
		}
	}
}

// queue queues the inserts of the rows.
func (r *insertedRows) queue(b *pgx.Batch) {
	b.Queue(`INSERT INTO entries (seq, leaf_hash, kind, letter_id, record, principal)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::smallint[], $4::text[], $5::bytea[], $6::text[])`,
		r.seqs, r.hashes, r.kinds, r.letterIDs, r.recs, r.principals)
	if len(r.eSeq) > 0 {
		b.Queue(`INSERT INTO endorsements (seq, letter_id, visibility, verification, signer_key,
			withdrawn_by, redacted_by, superseded_by, secret_spent, dedup_keys)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::smallint[], $5::bytea[],
			$6::bigint[], $7::bigint[], $8::bigint[], $9::boolean[], $10::bytea[])`,
			r.eSeq, r.eLetter, r.eVis, r.eVer, r.eSigner, r.eWith, r.eRed, r.eSup, r.eSpent, r.eKeys)
	}
	if len(r.dSeq) > 0 {
		b.Queue(`INSERT INTO disclosures (seq, salt, name, affiliation, country, folded)
			SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::text[])`,
			r.dSeq, r.dSalt, r.dName, r.dAff, r.dCtry, r.dFolds)
	}
	if len(r.lID) > 0 {
		b.Queue(`INSERT INTO letters (letter_id, seq, closed_seq, delivered_seq)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])`,
			r.lID, r.lSeq, r.lClosed, r.lDelivered)
	}
}

// queueMarks queues the marks of endorsements admitted before, and the
// deletion of the disclosures a redaction removed.
func (a *admitTx) queueMarks(b *pgx.Batch) {
	var (
		uSeq              []int64
		uWith, uRed, uSup []int64
		uSpent            []bool
		uKeys             [][]byte
		dropSeq           []int64
	)
	for seq, e := range a.bySeq {
		if e.isNew || !e.changed {
			continue
		}
		uSeq = append(uSeq, seq)
		uWith, uRed, uSup = append(uWith, e.WithdrawnBy), append(uRed, e.RedactedBy), append(uSup, e.SupersededBy)
		uSpent = append(uSpent, e.SecretSpent)
		uKeys = append(uKeys, e.dedupKeys)
		if e.dropDisclosure {
			dropSeq = append(dropSeq, seq)
		}
	}
	if len(uSeq) > 0 {
		b.Queue(`UPDATE endorsements SET withdrawn_by = v.w, redacted_by = v.r, superseded_by = v.s,
			secret_spent = v.spent, dedup_keys = v.k
			FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::boolean[], $6::bytea[]) AS v(seq, w, r, s, spent, k)
			WHERE endorsements.seq = v.seq`, uSeq, uWith, uRed, uSup, uSpent, uKeys)
	}
	if len(dropSeq) > 0 {
		b.Queue(`DELETE FROM disclosures WHERE seq = ANY($1)`, dropSeq)
	}
}

// queueStatuses queues the status changes of letters admitted before.
func (a *admitTx) queueStatuses(b *pgx.Batch) {
	var lID []string
	var lClosed, lDelivered []int64
	for id, l := range a.letters {
		if l == nil || l.isNew || !l.changed {
			continue
		}
		lID = append(lID, id)
		lClosed, lDelivered = append(lClosed, l.ClosedSeq), append(lDelivered, l.DeliveredSeq)
	}
	if len(lID) > 0 {
		b.Queue(`UPDATE letters SET closed_seq = v.c, delivered_seq = v.d
			FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(id, c, d) WHERE letters.letter_id = v.id`,
			lID, lClosed, lDelivered)
	}
}

// queueDedup queues the final value of every dedup key the transaction
// touched: the entry it finds, or none.
func (a *admitTx) queueDedup(b *pgx.Batch) {
	var putKeys, dropKeys [][]byte
	var putSeqs []int64
	for k := range a.touched {
		if seq := a.dedup[k]; seq != 0 {
			putKeys, putSeqs = append(putKeys, []byte(k)), append(putSeqs, seq)
		} else {
			dropKeys = append(dropKeys, []byte(k))
		}
	}
	if len(dropKeys) > 0 {
		b.Queue(`DELETE FROM dedup WHERE key = ANY($1)`, dropKeys)
	}
	if len(putKeys) > 0 {
		b.Queue(`INSERT INTO dedup (key, seq) SELECT * FROM unnest($1::bytea[], $2::bigint[])
			ON CONFLICT (key) DO UPDATE SET seq = EXCLUDED.seq`, putKeys, putSeqs)
	}
}

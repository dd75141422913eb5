package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// dedupKeyLen is how much of a dedup key the index keeps: 128 bits of an
// HMAC-SHA256 make a collision between two keys of one log as likely as
// guessing a random 128-bit value.
const dedupKeyLen = 16

// dedupIndex maps dedup keys to the seq of the entry that holds them.
type dedupIndex struct {
	mu sync.RWMutex
	m  map[[dedupKeyLen]byte]int64
}

func short(k []byte) (out [dedupKeyLen]byte) {
	copy(out[:], k)
	return out
}

// loadDedup rebuilds the index from the keys each entry row carries.
func loadDedup(ctx context.Context, db *sql.DB) (*dedupIndex, error) {
	d := &dedupIndex{m: map[[dedupKeyLen]byte]int64{}}
	rows, err := db.QueryContext(ctx, `SELECT seq, dedup_keys, permanent_keys FROM entry_keys ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("load the dedup index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var keys, permanent []byte
		if err := rows.Scan(&seq, &keys, &permanent); err != nil {
			return nil, fmt.Errorf("load the dedup index: %w", err)
		}
		for _, blob := range [][]byte{keys, permanent} {
			for ; len(blob) >= ledger.DedupKeySize; blob = blob[ledger.DedupKeySize:] {
				d.m[short(blob)] = seq
			}
		}
	}
	return d, rows.Err()
}

func (d *dedupIndex) get(k []byte) (int64, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	seq, ok := d.m[short(k)]
	return seq, ok
}

// apply takes the changes of a committed transaction: the keys freed from
// the entries they pointed at, then the keys added.
func (d *dedupIndex) apply(freed, added map[string]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, seq := range freed {
		if d.m[short([]byte(k))] == seq {
			delete(d.m, short([]byte(k)))
		}
	}
	for k, seq := range added {
		d.m[short([]byte(k))] = seq
	}
}

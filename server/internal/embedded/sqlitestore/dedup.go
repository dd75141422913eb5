package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// dedupPrefixLen is how much of a dedup key the index keeps: 96 bits of an
// HMAC-SHA256. A new key's prefix matches one of n held keys' with
// probability n/2^96; with a billion keys that is about 1e-20 a lookup,
// and about 6e-12 that any of a billion lookups ever meets one.
const dedupPrefixLen = 12

// dedupPrefix is a key's identity in the index: its first 96 bits.
type dedupPrefix [dedupPrefixLen]byte

func prefixOf(k []byte) (p dedupPrefix) {
	copy(p[:], k)
	return p
}

// cmpPrefix orders keys as their bytes do.
func cmpPrefix(a, b dedupPrefix) int {
	ah, bh := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	if ah != bh {
		if ah < bh {
			return -1
		}
		return 1
	}
	al, bl := binary.BigEndian.Uint32(a[8:]), binary.BigEndian.Uint32(b[8:])
	switch {
	case al < bl:
		return -1
	case al > bl:
		return 1
	}
	return 0
}

// dedupRecord is a key of the sorted part of the index: 16 bytes.
type dedupRecord struct {
	key dedupPrefix
	seq uint32 // the entry holding the key; 0 once the key is freed
}

// The index merges the keys it gathers in its map into its sorted slice
// once they are more than minRecent and more than 1/recentShare of the
// slice's. The map costs about 36 bytes a key at its fullest (a sixteenth
// keeps it near 2 bytes a key held); a merge copies the slice, 16 record
// copies a key added, amortised.
const (
	minRecent   = 1024
	recentShare = 16
)

// dedupIndex maps dedup keys to the seq of the entry that holds them.
//
// Most keys are in sorted, 16 bytes each, found by scanning the bucket of
// their first bits in order (keys are uniform: a bucket holds 16 to 32, a
// few cache lines read in sequence, faster than a binary search's jumps).
// Keys added since the last merge and absent from sorted are in recent;
// once recent holds more than a sixteenth of sorted, a merge writes both
// into a new sorted slice, dropping the freed keys. Seqs that do not fit
// in 32 bits (an embedded log of four billion entries) are in wide.
//
// A key is live in one place at most: recent never holds a key sorted
// holds (freed or not), and a key in wide is live nowhere else.
type dedupIndex struct {
	mu     sync.RWMutex
	sorted []dedupRecord
	// start[b] is the first record of sorted whose key's first bits,
	// shifted right by shift, are b or more; start has 2^(64-shift)+1
	// elements.
	start     []int
	shift     uint
	recent    map[dedupPrefix]uint32
	wide      map[dedupPrefix]int64
	minRecent int
}

// newDedupIndex makes an index of sorted, which must be sorted by key
// with each key once, and of wide, whose keys sorted must not hold live.
func newDedupIndex(sorted []dedupRecord, wide map[dedupPrefix]int64) *dedupIndex {
	d := &dedupIndex{sorted: sorted, recent: map[dedupPrefix]uint32{}, wide: wide, minRecent: minRecent}
	if d.wide == nil {
		d.wide = map[dedupPrefix]int64{}
	}
	d.index()
	return d
}

// bucketShift is how far a key's first 64 bits are shifted right to give
// its bucket among n keys: 2^k buckets of 16 to 32 keys.
func bucketShift(n int) uint {
	return uint(64 - max(bits.Len(uint(n))-5, 0))
}

// bucket is the bucket of key p.
func bucket(p dedupPrefix, shift uint) int {
	return int(binary.BigEndian.Uint64(p[:8]) >> shift)
}

// index builds start for sorted.
func (d *dedupIndex) index() {
	d.shift = bucketShift(len(d.sorted))
	start := make([]int, 1<<(64-d.shift)+1)
	next := 0
	for i, r := range d.sorted {
		for b := bucket(r.key, d.shift); next <= b; next++ {
			start[next] = i
		}
	}
	for ; next < len(start); next++ {
		start[next] = len(d.sorted)
	}
	d.start = start
}

// sortRecords sorts records by key, then seq, in place. Keys are uniform,
// so it moves each record into one of 256 parts by its first byte,
// following the permutation's cycles (256 places written in sequence,
// which the cache holds), then sorts each part, a few hundred kilobytes
// at most, with sortPart: several times faster than comparisons alone.
func sortRecords(records []dedupRecord) {
	var start [257]int
	for _, r := range records {
		start[int(r.key[0])+1]++
	}
	for b := 1; b < len(start); b++ {
		start[b] += start[b-1]
	}
	next := start
	for b := range 256 {
		for next[b] < start[b+1] {
			r := records[next[b]]
			for to := int(r.key[0]); to != b; to = int(r.key[0]) {
				r, records[next[to]] = records[next[to]], r
				next[to]++
			}
			records[next[b]] = r
			next[b]++
		}
	}
	var spare []dedupRecord
	for b := range 256 {
		spare = sortPart(records[start[b]:start[b+1]], spare)
	}
}

// sortPart sorts records whose keys share their first byte: it scatters
// them by the bits after it into spare (grown to their number, and
// returned for the next part), sorts each bucket's few records by
// comparison, and copies them back.
func sortPart(records, spare []dedupRecord) []dedupRecord {
	shift := bucketShift(len(records))
	part := func(r dedupRecord) int { return int(binary.BigEndian.Uint64(r.key[:8]) << 8 >> shift) }
	next := make([]int, 1<<(64-shift)+1)
	for _, r := range records {
		next[part(r)+1]++
	}
	for b := 1; b < len(next); b++ {
		next[b] += next[b-1]
	}
	spare = slices.Grow(spare[:0], len(records))[:len(records)]
	for _, r := range records {
		b := part(r)
		spare[next[b]] = r
		next[b]++
	}
	// Each next[b] is now where bucket b ends.
	lo := 0
	for _, hi := range next[:len(next)-1] {
		slices.SortFunc(spare[lo:hi], cmpRecord)
		lo = hi
	}
	copy(records, spare)
	return spare
}

// cmpRecord orders records by key, then seq.
func cmpRecord(x, y dedupRecord) int {
	if c := cmpPrefix(x.key, y.key); c != 0 {
		return c
	}
	return int(int64(x.seq) - int64(y.seq))
}

// find returns the place of p in sorted (where it is or would go), and
// whether sorted holds it.
func (d *dedupIndex) find(p dedupPrefix) (int, bool) {
	b := bucket(p, d.shift)
	lo, hi := d.start[b], d.start[b+1]
	i := lo
	for i < hi && cmpPrefix(d.sorted[i].key, p) < 0 {
		i++
	}
	return i, i < hi && d.sorted[i].key == p
}

// narrow reports whether seq fits in a record.
func narrow(seq int64) bool { return seq > 0 && seq <= math.MaxUint32 }

// get returns the seq of the entry holding key k, if one does.
func (d *dedupIndex) get(k []byte) (int64, bool) {
	p := prefixOf(k)
	d.mu.RLock()
	defer d.mu.RUnlock()
	if seq, ok := d.wide[p]; ok {
		return seq, true
	}
	if seq, ok := d.recent[p]; ok {
		return int64(seq), true
	}
	if i, ok := d.find(p); ok && d.sorted[i].seq != 0 {
		return int64(d.sorted[i].seq), true
	}
	return 0, false
}

// apply takes the changes of a committed transaction: the keys freed from
// the entries they pointed at, then the keys added.
func (d *dedupIndex) apply(freed, added map[string]int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, seq := range freed {
		d.free(prefixOf([]byte(k)), seq)
	}
	for k, seq := range added {
		d.set(prefixOf([]byte(k)), seq)
	}
	if len(d.recent) > max(len(d.sorted)/recentShare, d.minRecent) {
		d.merge()
	}
}

// free forgets p where it points at seq.
func (d *dedupIndex) free(p dedupPrefix, seq int64) {
	if !narrow(seq) {
		if now, ok := d.wide[p]; ok && now == seq {
			delete(d.wide, p)
		}
		return
	}
	if now, ok := d.recent[p]; ok && int64(now) == seq {
		delete(d.recent, p)
	} else if i, ok := d.find(p); ok && int64(d.sorted[i].seq) == seq {
		d.sorted[i].seq = 0
	}
}

// set points p at seq, wherever p was before.
func (d *dedupIndex) set(p dedupPrefix, seq int64) {
	i, inSorted := d.find(p)
	if !narrow(seq) {
		delete(d.recent, p)
		if inSorted {
			d.sorted[i].seq = 0
		}
		d.wide[p] = seq
		return
	}
	delete(d.wide, p)
	if inSorted {
		d.sorted[i].seq = uint32(seq)
	} else {
		d.recent[p] = uint32(seq)
	}
}

// merge moves recent's keys into sorted, dropping sorted's freed keys,
// in place where sorted has room (it grows by an eighth more than it
// needs: room for about two merges), and empties recent.
func (d *dedupIndex) merge() {
	added := make([]dedupRecord, 0, len(d.recent))
	for p, seq := range d.recent {
		added = append(added, dedupRecord{p, seq})
	}
	sortRecords(added)
	live := slices.DeleteFunc(d.sorted, func(r dedupRecord) bool { return r.seq == 0 })
	need := len(live) + len(added)
	if cap(live) < need {
		live = append(make([]dedupRecord, 0, need+need/8), live...)
	}
	// Merge from the ends: a record is written where a read one was.
	merged := live[:need]
	i, j := len(live)-1, len(added)-1
	for w := need - 1; j >= 0; w-- {
		if i >= 0 && cmpPrefix(live[i].key, added[j].key) > 0 {
			merged[w] = live[i]
			i--
		} else {
			merged[w] = added[j]
			j--
		}
	}
	d.sorted = merged
	d.index()
	clear(d.recent)
}

// dedupBuilder builds an index from the keys of the entry rows, given in
// the order of their seqs: a key held by two rows is the later row's.
type dedupBuilder struct {
	sorted []dedupRecord
	wide   map[dedupPrefix]int64
}

// add takes key k of the entry at seq.
func (b *dedupBuilder) add(k []byte, seq int64) {
	if narrow(seq) {
		b.sorted = append(b.sorted, dedupRecord{prefixOf(k), uint32(seq)})
		return
	}
	if b.wide == nil {
		b.wide = map[dedupPrefix]int64{}
	}
	b.wide[prefixOf(k)] = seq
}

// index sorts the keys, keeps each one's highest seq (a wide seq is
// higher than any other), and returns the index.
func (b *dedupBuilder) index() *dedupIndex {
	all := b.sorted
	b.sorted = nil
	sortRecords(all)
	sorted := all[:0]
	for i, r := range all {
		if i+1 < len(all) && all[i+1].key == r.key {
			continue
		}
		if _, ok := b.wide[r.key]; ok {
			continue
		}
		sorted = append(sorted, r)
	}
	return newDedupIndex(sorted, b.wide)
}

// loadDedup rebuilds the index from the keys each entry row carries.
func loadDedup(ctx context.Context, db *sql.DB) (*dedupIndex, error) {
	var b dedupBuilder
	var n int64
	err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(LENGTH(dedup_keys)), 0) + COALESCE(SUM(LENGTH(permanent_keys)), 0) FROM entry_keys`).Scan(&n)
	if err != nil {
		return nil, fmt.Errorf("load the dedup index: %w", err)
	}
	b.sorted = make([]dedupRecord, 0, n/ledger.DedupKeySize)
	rows, err := db.QueryContext(ctx, `SELECT seq, dedup_keys, permanent_keys FROM entry_keys ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("load the dedup index: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var keys, permanent sql.RawBytes
		if err := rows.Scan(&seq, &keys, &permanent); err != nil {
			return nil, fmt.Errorf("load the dedup index: %w", err)
		}
		for _, blob := range [][]byte{keys, permanent} {
			for ; len(blob) >= ledger.DedupKeySize; blob = blob[ledger.DedupKeySize:] {
				b.add(blob, seq)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load the dedup index: %w", err)
	}
	return b.index(), nil
}

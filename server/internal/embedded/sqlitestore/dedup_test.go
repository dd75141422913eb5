package sqlitestore

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// dedupModel is what the index must behave as: a plain map from keys to
// seqs, and the keys each entry row carries for a reload.
type dedupModel struct {
	m    map[string]int64
	rows map[int64][]string
	// was is the seq a key pointed at before an entry took it over.
	was map[string]int64
}

func (m *dedupModel) apply(freed, added map[string]int64) {
	for k, seq := range freed {
		if m.m[k] == seq {
			delete(m.m, k)
		}
		m.rows[seq] = slices.DeleteFunc(m.rows[seq], func(r string) bool { return r == k })
	}
	for k, seq := range added {
		if now, held := m.m[k]; held && now != seq {
			m.was[k] = now
		}
		m.m[k] = seq
		m.rows[seq] = append(m.rows[seq], k)
	}
}

// reload rebuilds the model as loadDedup reads the rows (later seqs win)
// and returns the index the builder makes of the same rows.
func (m *dedupModel) reload() *dedupIndex {
	var b dedupBuilder
	m.m = map[string]int64{}
	for _, seq := range slices.Sorted(maps.Keys(m.rows)) {
		for _, k := range m.rows[seq] {
			m.m[k] = seq
			b.add([]byte(k), seq)
		}
	}
	return b.index()
}

// dedupCoverage counts the cases a run went through, so that the test
// knows it tried them.
type dedupCoverage struct {
	merges, reloads, readds, staleFrees, takenOverFrees, wide int
}

// TestDedupIndexAgainstAMap drives random gets, applies (frees of keys
// that still point at the entry freeing them and of keys taken over since,
// keys taken over by a correction, seqs past 32 bits) and reloads against
// a plain map, merging often, and checks every answer and the index's
// own invariants.
func TestDedupIndexAgainstAMap(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 16))
			universe := make([]string, 2000)
			for i := range universe {
				k := make([]byte, 32)
				for j := range k {
					k[j] = byte(rng.UintN(256))
				}
				universe[i] = string(k)
			}
			m := &dedupModel{m: map[string]int64{}, rows: map[int64][]string{}, was: map[string]int64{}}
			d := newDedupIndex(nil, nil)
			d.minRecent = 16
			var cov dedupCoverage
			seq, wideSeq := int64(1), int64(math.MaxUint32)
			for step := range 3000 {
				if rng.IntN(200) == 0 {
					d = m.reload()
					d.minRecent = 16
					cov.reloads++
					checkDedup(t, step, d, m, universe)
					checkInvariants(t, step, d)
					continue
				}
				freed, added := randomChanges(rng, m, d, universe, &seq, &wideSeq, &cov)
				before := len(d.sorted)
				m.apply(freed, added)
				d.apply(freed, added)
				merged := len(d.recent) == 0 && len(d.sorted) != before
				if merged {
					cov.merges++
					if slices.ContainsFunc(d.sorted, func(r dedupRecord) bool { return r.seq == 0 }) {
						t.Fatalf("step %d: a merge kept freed keys", step)
					}
				}
				if merged || step%50 == 0 || step == 2999 {
					checkDedup(t, step, d, m, universe)
					checkInvariants(t, step, d)
				} else {
					checkDedup(t, step, d, m, slices.Collect(maps.Keys(added)))
					checkDedup(t, step, d, m, slices.Collect(maps.Keys(freed)))
				}
			}
			t.Logf("%+v", cov)
			if cov.merges < 10 || cov.reloads < 5 || cov.readds < 100 || cov.staleFrees < 10 || cov.takenOverFrees < 10 || cov.wide < 50 {
				t.Errorf("the run did not try every case: %+v", cov)
			}
		})
	}
}

// randomChanges makes one transaction's changes: frees first (most of
// keys the model holds, some stale), then keys added by a few entries,
// some of them held already (a correction taking them over) or just freed.
func randomChanges(rng *rand.Rand, m *dedupModel, d *dedupIndex, universe []string, seq, wideSeq *int64, cov *dedupCoverage) (freed, added map[string]int64) {
	freed, added = map[string]int64{}, map[string]int64{}
	for range rng.IntN(6) {
		k := universe[rng.IntN(len(universe))]
		now, held := m.m[k]
		switch {
		case held && rng.IntN(4) > 0:
			freed[k] = now
		case held && m.was[k] != 0 && m.was[k] != now:
			freed[k] = m.was[k]
			cov.takenOverFrees++
		case held:
			freed[k] = now + 1 + rng.Int64N(3)
			cov.staleFrees++
		default:
			freed[k] = 1 + rng.Int64N(*seq)
		}
	}
	for range rng.IntN(4) {
		s := *seq
		if rng.IntN(8) == 0 {
			*wideSeq++
			s = *wideSeq
			cov.wide++
		} else {
			*seq++
		}
		for range 1 + rng.IntN(3) {
			k := universe[rng.IntN(len(universe))]
			if _, inSorted := d.find(prefixOf([]byte(k))); inSorted {
				cov.readds++
			}
			added[k] = s
		}
	}
	return freed, added
}

// checkDedup compares the index with the model on keys.
func checkDedup(t *testing.T, step int, d *dedupIndex, m *dedupModel, keys []string) {
	t.Helper()
	for _, k := range keys {
		want, wantOK := m.m[k]
		got, ok := d.get([]byte(k))
		if got != want || ok != wantOK {
			t.Fatalf("step %d: key %x: index says %d, %v; the map %d, %v", step, k[:4], got, ok, want, wantOK)
		}
	}
}

// checkInvariants checks the index's own invariants: sorted in order, a
// key live in one place at most, the buckets' starts right.
func checkInvariants(t *testing.T, step int, d *dedupIndex) {
	t.Helper()
	for i := 1; i < len(d.sorted); i++ {
		if cmpPrefix(d.sorted[i-1].key, d.sorted[i].key) >= 0 {
			t.Fatalf("step %d: sorted is out of order at %d", step, i)
		}
	}
	for p := range d.recent {
		if _, ok := d.find(p); ok {
			t.Fatalf("step %d: key %x is both in recent and in sorted", step, p[:4])
		}
	}
	for p := range d.wide {
		if _, ok := d.recent[p]; ok {
			t.Fatalf("step %d: key %x is both in wide and in recent", step, p[:4])
		}
		if i, ok := d.find(p); ok && d.sorted[i].seq != 0 {
			t.Fatalf("step %d: key %x is both in wide and live in sorted", step, p[:4])
		}
	}
	for b := range len(d.start) - 1 {
		i := d.start[b]
		if i < len(d.sorted) && bucket(d.sorted[i].key, d.shift) < b || i > 0 && bucket(d.sorted[i-1].key, d.shift) >= b {
			t.Fatalf("step %d: bucket %d starts at the wrong record %d", step, b, i)
		}
	}
}

// benchKeys are n random keys, each held by its own seq.
func benchKeys(n int) ([]string, *dedupIndex) {
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, n)
	var b dedupBuilder
	for i := range keys {
		k := make([]byte, 32)
		for j := 0; j < len(k); j += 8 {
			binary.LittleEndian.PutUint64(k[j:], rng.Uint64())
		}
		keys[i] = string(k)
		b.add(k, int64(i+1))
	}
	return keys, b.index()
}

// BenchmarkDedupIndex measures the index at 3,000,000 keys (a log of
// about 1,000,000 endorsements): lookups of held and of new keys, and
// transactions of 1,000 new keys (merges included).
func BenchmarkDedupIndex(b *testing.B) {
	const n = 3_000_000
	keys, d := benchKeys(n)
	others, _ := benchKeys(1)
	b.Run("get held", func(b *testing.B) {
		for i := range b.N {
			if _, ok := d.get([]byte(keys[i%n])); !ok {
				b.Fatal("a held key is missing")
			}
		}
	})
	b.Run("get new", func(b *testing.B) {
		k := []byte(others[0])
		for i := range b.N {
			binary.LittleEndian.PutUint64(k, uint64(i))
			if _, ok := d.get(k); ok {
				b.Fatal("a new key is held")
			}
		}
	})
	b.Run("apply 1000 new keys", func(b *testing.B) {
		k := []byte(others[0])
		seq := int64(n)
		for i := range b.N {
			added := make(map[string]int64, 1000)
			for j := range 1000 {
				binary.LittleEndian.PutUint64(k, uint64(i*1000+j))
				seq++
				added[string(k)] = seq
			}
			d.apply(nil, added)
		}
	})
}

// BenchmarkDedupLoad measures building the index of 3,000,000 keys from
// rows in seq order, as a restart does.
func BenchmarkDedupLoad(b *testing.B) {
	keys, _ := benchKeys(3_000_000)
	b.ReportAllocs()
	for b.Loop() {
		bd := dedupBuilder{sorted: make([]dedupRecord, 0, len(keys))}
		for i, k := range keys {
			bd.add([]byte(k), int64(i+1))
		}
		bd.index()
	}
}

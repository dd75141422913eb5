package witnessing_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/witnessing"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

// innerLog is an engine's log for the tests: a witnesstest.Log whose
// checkpoints it publishes when the test says.
type innerLog struct {
	t  testing.TB
	lg *witnesstest.Log

	mu        sync.Mutex
	published ledger.Checkpoint
	changed   chan struct{}
}

func newInner(t testing.TB, lg *witnesstest.Log) *innerLog {
	in := &innerLog{t: t, lg: lg, changed: make(chan struct{})}
	in.grow(0)
	return in
}

// grow appends n entries and publishes the checkpoint of the new size.
func (in *innerLog) grow(n int) uint64 {
	size := in.lg.Grow(in.t, n)
	raw := in.lg.Checkpoint(in.t, size)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.published = ledger.Checkpoint{Raw: raw, Size: size, Hash: in.lg.Root(in.t, size)}
	close(in.changed)
	in.changed = make(chan struct{})
	return size
}

func (in *innerLog) Append(context.Context, []byte) func() (uint64, error) {
	return func() (uint64, error) { return 0, errors.New("not in these tests") }
}

func (in *innerLog) AwaitCheckpoint(ctx context.Context, index uint64) (ledger.Checkpoint, error) {
	for {
		in.mu.Lock()
		cp, ch := in.published, in.changed
		in.mu.Unlock()
		if cp.Size > index {
			return cp, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ledger.Checkpoint{}, ctx.Err()
		}
	}
}

func (in *innerLog) Checkpoint(context.Context) (ledger.Checkpoint, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.published, nil
}

func (in *innerLog) InclusionProof(context.Context, uint64, uint64) ([][]byte, error) {
	return nil, errors.New("not in these tests")
}

func (in *innerLog) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return in.lg.ConsistencyProof(ctx, from, to)
}

func (in *innerLog) ReadLeaves(context.Context, uint64, uint64) ([][]byte, error) {
	return nil, errors.New("not in these tests")
}

func (in *innerLog) IntegratedSize(context.Context) (uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.published.Size, nil
}

func (in *innerLog) Healthy() error { return nil }

// memoryStore is a witnessing.Store that several Logs share, with
// compare-and-swap, as the servers of one Trillian tree share a row.
type memoryStore struct {
	mu     sync.Mutex
	raw    []byte
	stores int
	sizes  map[string]int // stores of each tree size
}

func (m *memoryStore) Load(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.raw), nil
}

func (m *memoryStore) Store(_ context.Context, prev, next []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.Equal(prev, m.raw) {
		return fmt.Errorf("store: %w", witnessing.ErrConflict)
	}
	m.raw = bytes.Clone(next)
	m.stores++
	if m.sizes == nil {
		m.sizes = map[string]int{}
	}
	m.sizes[string(bytes.SplitN(next, []byte("\n"), 3)[1])]++
	return nil
}

// witnessed is a witnessed log on fakes for a test.
type witnessed struct {
	lg     *witnesstest.Log
	inner  *innerLog
	fakes  []*witnesstest.Fake
	policy *policy.Policy
	store  witnessing.Store
	reg    *prometheus.Registry
}

func newWitnessed(t *testing.T, quorum string, names ...string) *witnessed {
	t.Helper()
	lg := witnesstest.NewLog(t, "example.test/witnessed")
	w := &witnessed{lg: lg, inner: newInner(t, lg), store: witnessing.File(t.TempDir() + "/cosigned")}
	lines := []string{"log " + lg.VerifierKey}
	for _, n := range names {
		f := witnesstest.NewFake(t, n, lg.VerifierKey)
		w.fakes = append(w.fakes, f)
		lines = append(lines, f.PolicyLine())
	}
	p, err := policy.Parse([]byte(strings.Join(append(lines, quorum), "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	w.policy = p
	return w
}

// open opens a witnessed log over w.inner (or over inner, when given) on
// w.store, waiting wait for cosignatures.
func (w *witnessed) open(t *testing.T, wait time.Duration, inner ledger.Log) *witnessing.Log {
	t.Helper()
	if inner == nil {
		inner = w.inner
	}
	w.reg = prometheus.NewRegistry()
	l, err := witnessing.NewLog(context.Background(), inner, witnessing.LogConfig{
		Witnesses: witnessing.Config{Policy: w.policy, Registerer: w.reg, RequestTimeout: 200 * time.Millisecond,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		Wait:          wait,
		RetryInterval: 20 * time.Millisecond,
		Store:         w.store,
		VerifierKey:   w.lg.VerifierKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// await waits for a published checkpoint that covers index.
func await(t *testing.T, l ledger.Log, index uint64) (ledger.Checkpoint, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return l.AwaitCheckpoint(ctx, index)
}

// TestLogPublishesCosigned: the log publishes, serves and stores its
// checkpoints only with the quorum's cosignatures, including the empty
// tree's.
func TestLogPublishesCosigned(t *testing.T) {
	w := newWitnessed(t, "group both all a b\nquorum both", "a", "b")
	l := w.open(t, 5*time.Second, nil)
	for _, grow := range []int{1, 4, 300} {
		size := w.inner.grow(grow)
		cp, err := await(t, l, size-1)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != size {
			t.Fatalf("published size %d, want %d", cp.Size, size)
		}
		for _, raw := range [][]byte{cp.Raw, latest(t, l).Raw, load(t, w.store)} {
			if r, err := w.policy.Check(raw); err != nil || !r.Met {
				t.Fatalf("size %d: %v %v\n%s", size, err, r, raw)
			}
		}
	}
	if got := gauge(t, w.reg, "undersigned_witness_published_size"); got != 305 {
		t.Errorf("published size metric %v, want 305", got)
	}
}

func latest(t *testing.T, l ledger.Log) ledger.Checkpoint {
	t.Helper()
	cp, err := l.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func load(t *testing.T, s witnessing.Store) []byte {
	t.Helper()
	b, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gauge returns the value of a metric without labels.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestLogWitnessDown: with quorum 2 of 2 and one witness down, a wait for
// a checkpoint fails after the bound with a PendingError that names it
// (and not the other, nor any address), the log publishes nothing new,
// and once the witness is back the waits under way and new ones complete.
func TestLogWitnessDown(t *testing.T) {
	w := newWitnessed(t, "group both 2 a b\nquorum both", "a", "b")
	const wait = 400 * time.Millisecond
	l := w.open(t, wait, nil)
	if _, err := await(t, l, w.inner.grow(2)-1); err != nil {
		t.Fatal(err)
	}
	w.fakes[1].SetFault(witnesstest.Unavailable, 0)
	size := w.inner.grow(3)
	start := time.Now()
	_, err := await(t, l, size-1)
	var pe *witnessing.PendingError
	if !errors.As(err, &pe) || !errors.Is(err, witnessing.ErrQuorum) {
		t.Fatalf("await with a witness down = %v, want a PendingError", err)
	}
	if took := time.Since(start); took < wait || took > wait+2*time.Second {
		t.Errorf("the wait failed after %v, want about %v", took, wait)
	}
	msg := err.Error()
	if !strings.Contains(msg, "b did not answer") || strings.Contains(msg, "a did not") || strings.Contains(msg, "127.0.0.1") {
		t.Errorf("the error %q should name b alone, without addresses", msg)
	}
	if cp := latest(t, l); cp.Size != 2 {
		t.Errorf("published size %d while a witness of the quorum is down, want 2", cp.Size)
	}
	if got := gauge(t, w.reg, "undersigned_witness_wait_timeouts_total"); got != 1 {
		t.Errorf("wait timeouts metric %v, want 1", got)
	}

	// A write that waits while the witness comes back completes.
	waiting := make(chan error, 1)
	go func() {
		_, err := l.AwaitCheckpoint(context.Background(), size-1)
		waiting <- err
	}()
	w.fakes[1].SetFault(witnesstest.Honest, 0)
	if err := <-waiting; err != nil {
		t.Fatalf("a wait under way when the witness came back: %v", err)
	}
	if cp, err := await(t, l, size-1); err != nil || cp.Size < size {
		t.Fatalf("after the witness came back: %v, size %d", err, cp.Size)
	}
}

// TestLogFailsBeforeAnyRoundEnds: a wait shorter than a round still names
// the witness that has not cosigned.
func TestLogFailsBeforeAnyRoundEnds(t *testing.T) {
	w := newWitnessed(t, "group both 2 a b\nquorum both", "a", "b")
	first := w.open(t, 10*time.Second, nil)
	if _, err := await(t, first, w.inner.grow(1)-1); err != nil {
		t.Fatal(err)
	}
	first.Close()
	w.fakes[0].SetFault(witnesstest.Silent, 0)
	l := w.open(t, 300*time.Millisecond, nil)
	_, err := await(t, l, w.inner.grow(1)-1)
	if err == nil || !strings.Contains(err.Error(), "a did not answer") || strings.Contains(err.Error(), "b did not") {
		t.Fatalf("await = %v, want a naming a alone", err)
	}
}

// TestLogRestart: a new Log publishes the stored cosigned checkpoint at
// once, and its cosigner starts from its size.
func TestLogRestart(t *testing.T) {
	w := newWitnessed(t, "group both all a b\nquorum both", "a", "b")
	l := w.open(t, 5*time.Second, nil)
	size := w.inner.grow(40)
	first, err := await(t, l, size-1)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	for _, f := range w.fakes {
		f.SetFault(witnesstest.Silent, 0) // nothing new is cosigned
	}
	again := w.open(t, 5*time.Second, nil)
	if cp := latest(t, again); !bytes.Equal(cp.Raw, first.Raw) {
		t.Fatalf("after a restart the log serves\n%s\nwant\n%s", cp.Raw, first.Raw)
	}
	if s := again.Cosigner().Sizes(); s["a"] != size || s["b"] != size {
		t.Errorf("the sizes after a restart are %v, want %d", s, size)
	}
}

// TestLogRefuses: a policy that lists another log, and a stored
// checkpoint not signed by the log's key, stop the Log from opening.
func TestLogRefuses(t *testing.T) {
	w := newWitnessed(t, "group both all a b\nquorum both", "a", "b")
	other := witnesstest.NewLog(t, "example.test/other")
	cfg := witnessing.LogConfig{Witnesses: witnessing.Config{Policy: w.policy}, Store: w.store, VerifierKey: other.VerifierKey}
	if _, err := witnessing.NewLog(context.Background(), w.inner, cfg); err == nil || !strings.Contains(err.Error(), "does not list the log") {
		t.Errorf("a policy for another log: %v", err)
	}
	other.Grow(t, 1)
	if err := w.store.Store(context.Background(), nil, other.Checkpoint(t, 1)); err != nil {
		t.Fatal(err)
	}
	cfg.VerifierKey = w.lg.VerifierKey
	if _, err := witnessing.NewLog(context.Background(), w.inner, cfg); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("a stored checkpoint of another key: %v", err)
	}
}

// TestLogSharedStore: two Logs (the frontends of one Trillian tree) over
// one log and one store: both publish every size's cosigned checkpoint
// with the same bytes, and mostly the one the other stored rather than
// cosigning it again.
func TestLogSharedStore(t *testing.T) {
	w := newWitnessed(t, "group both all a b\nquorum both", "a", "b")
	store := &memoryStore{}
	w.store = store
	innerB := &innerLog{t: t, lg: w.lg, changed: make(chan struct{}), published: w.inner.published}
	a := w.open(t, 5*time.Second, nil)
	b := w.open(t, 5*time.Second, innerB)
	seen := map[uint64][]byte{}
	for i := range 30 {
		size := w.inner.grow(1 + i%3)
		// B's log follows A's a little later.
		innerB.mu.Lock()
		innerB.published = w.inner.published
		close(innerB.changed)
		innerB.changed = make(chan struct{})
		innerB.mu.Unlock()
		for _, l := range []*witnessing.Log{a, b} {
			cp, err := await(t, l, size-1)
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := seen[cp.Size]; ok && !bytes.Equal(prev, cp.Raw) {
				t.Fatalf("two cosigned checkpoints of size %d:\n%s\n%s", cp.Size, prev, cp.Raw)
			}
			seen[cp.Size] = cp.Raw
		}
	}
	// The empty tree's checkpoint may be stored too, when a round starts
	// before the log first grows.
	for size, n := range store.sizes {
		if n > 1 {
			t.Errorf("the checkpoint of size %s was stored %d times, want once (%d stores in all)", size, n, store.stores)
		}
	}
	if r, err := w.policy.Check(load(t, store)); err != nil || !r.Met {
		t.Fatalf("the store holds a checkpoint without the quorum: %v %v", err, r)
	}
}

// TestPendingErrorSafe: the message of a PendingError is the quorum's,
// which names witnesses and no address.
func TestPendingErrorSafe(t *testing.T) {
	err := &witnessing.PendingError{Index: 7, Wait: time.Second, Quorum: &witnessing.QuorumError{
		Required: "2 of (a, b)", Cosigned: []string{"a"}, Failures: []witnessing.Failure{{Witness: "b", Kind: witnessing.Unanswered}}}}
	want := "entry 7 is in the log, but no checkpoint that covers it was cosigned by the witnesses within 1s: the witness quorum was not met (2 of (a, b)): b did not answer; cosigned by a"
	if err.Error() != want {
		t.Errorf("%q\nwant %q", err, want)
	}
}

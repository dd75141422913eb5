package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/embedded/tesseralog"
	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// lyingLog is a log whose proofs can be spoilt, and which can be stopped
// for good, as a Trillian replaced under a frontend or a refusal to sign
// would.
type lyingLog struct {
	*tesseralog.Log
	spoilInclusion, spoilConsistency atomic.Bool
	stopped                          atomic.Bool
}

func spoil(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i, h := range p {
		out[i] = append([]byte(nil), h...)
	}
	if len(out) > 0 {
		out[0][0] ^= 1
	}
	return out
}

func (l *lyingLog) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	p, err := l.Log.InclusionProof(ctx, index, size)
	if err == nil && l.spoilInclusion.Load() {
		p = spoil(p)
	}
	return p, err
}

func (l *lyingLog) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	p, err := l.Log.ConsistencyProof(ctx, from, to)
	if err == nil && l.spoilConsistency.Load() {
		p = spoil(p)
	}
	return p, err
}

func (l *lyingLog) Healthy() error {
	if l.stopped.Load() {
		return fmt.Errorf("%w: refusing to sign: a test says so", ledger.ErrStopped)
	}
	return l.Log.Healthy()
}

// TestProofsCheckedAndStoppedLogsServeNothing: a proof from the log is
// checked against the published checkpoint before it is served or put
// into a receipt (a frontend served proofs from a Trillian that did not
// verify against its own checkpoint, issue 17, item 4), and a log that
// stopped for good serves no checkpoint, proof or roster.
func TestProofsCheckedAndStoppedLogsServeNothing(t *testing.T) {
	dir := t.TempDir()
	k := newKeys(t)
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g, err := guard.New(ctx, k.signer, k.verifier, guard.File(filepath.Join(dir, "checkpoint.signed")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := tesseralog.Open(ctx, tesseralog.Config{Dir: filepath.Join(dir, "log"), Signer: g, Verifier: k.verifier, BatchMaxAge: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close(ctx)
	log := &lyingLog{Log: tl}
	l, err := ledger.New(ctx, ledger.Config{
		Origin: testOrigin, Verifier: k.verifier, VerifierKey: k.verifierKey, Engine: "embedded",
		Log: log, Store: store, DedupSecret: k.secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lt := publish(t, k, l, "proofs")
	endorse := func(name string) error {
		e := client.NewEndorsement(testOrigin, lt, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: k.organiser})
		_, err := l.Endorse(testContext(t), organiser, e.Endorsement, e.Disclosure, ledger.EndorseOptions{})
		return err
	}
	for i := range 4 {
		if err := endorse(fmt.Sprintf("Proved Signer %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Honest proofs are served, at the latest size and at an earlier one.
	if _, _, _, _, err := l.InclusionProof(ctx, 1, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := l.InclusionProof(ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := l.ConsistencyProof(ctx, 2, 0); err != nil {
		t.Fatal(err)
	}

	log.spoilInclusion.Store(true)
	for _, size := range []uint64{0, 3} {
		if _, _, _, _, err := l.InclusionProof(ctx, 1, size); !errors.Is(err, ledger.ErrUnavailable) {
			t.Errorf("a spoilt inclusion proof in the tree of size %d: %v, want ErrUnavailable", size, err)
		}
	}
	if err := endorse("Not Given A Spoilt Receipt"); !errors.Is(err, ledger.ErrUnavailable) {
		t.Errorf("a write whose receipt would hold a spoilt proof: %v, want ErrUnavailable", err)
	}
	log.spoilInclusion.Store(false)
	log.spoilConsistency.Store(true)
	if _, _, _, err := l.ConsistencyProof(ctx, 2, 0); !errors.Is(err, ledger.ErrUnavailable) {
		t.Errorf("a spoilt consistency proof: %v, want ErrUnavailable", err)
	}
	log.spoilConsistency.Store(false)
	if _, _, _, err := l.ConsistencyProof(ctx, 2, 0); err != nil {
		t.Fatal(err)
	}

	log.stopped.Store(true)
	if err := l.Stopped(); !errors.Is(err, ledger.ErrStopped) {
		t.Errorf("Stopped: %v", err)
	}
	for what, call := range map[string]func() error{
		"Checkpoint":       func() error { _, err := l.Checkpoint(ctx); return err },
		"Info":             func() error { _, err := l.Info(ctx); return err },
		"InclusionProof":   func() error { _, _, _, _, err := l.InclusionProof(ctx, 0, 0); return err },
		"ConsistencyProof": func() error { _, _, _, err := l.ConsistencyProof(ctx, 1, 0); return err },
		"Roster":           func() error { _, _, _, err := l.Roster(ctx, "proofs", 0, -1, 10); return err },
		"Endorse":          func() error { return endorse("Not While Stopped") },
	} {
		if err := call(); !errors.Is(err, ledger.ErrUnavailable) {
			t.Errorf("%s of a stopped log: %v, want ErrUnavailable", what, err)
		}
	}
}

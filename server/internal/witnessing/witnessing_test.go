package witnessing_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/server/internal/witnessing"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

// setup returns a log, fakes named after names, and a cosigner whose
// policy has them with the quorum line given.
func setup(t *testing.T, quorum string, names ...string) (*witnesstest.Log, []*witnesstest.Fake, *witnessing.Cosigner, *prometheus.Registry) {
	t.Helper()
	lg := witnesstest.NewLog(t, "example.test/witnessing")
	var fakes []*witnesstest.Fake
	lines := []string{"log " + lg.VerifierKey}
	for _, n := range names {
		f := witnesstest.NewFake(t, n, lg.VerifierKey)
		fakes = append(fakes, f)
		lines = append(lines, f.PolicyLine())
	}
	lines = append(lines, quorum)
	p, err := policy.Parse([]byte(strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c, err := witnessing.New(witnessing.Config{Policy: p, Registerer: reg, RequestTimeout: 300 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return lg, fakes, c, reg
}

// check asserts that cp meets the quorum of the policy of fakes.
func met(t *testing.T, lg *witnesstest.Log, cp []byte, quorum string, fakes ...*witnesstest.Fake) *policy.Result {
	t.Helper()
	lines := []string{"log " + lg.VerifierKey}
	for _, f := range fakes {
		lines = append(lines, f.PolicyLine())
	}
	p, err := policy.Parse([]byte(strings.Join(append(lines, quorum), "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := p.Check(cp)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCosign: two honest witnesses cosign a first checkpoint, then a larger
// one, each time after a consistency proof from the size they cosigned; the
// metrics say what each cosigned.
func TestCosign(t *testing.T) {
	lg, fakes, c, reg := setup(t, "group both all a b\nquorum both", "a", "b")
	ctx := context.Background()
	for _, grow := range []int{5, 3, 300} {
		size := lg.Grow(t, grow)
		cp, err := c.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if r := met(t, lg, cp, "group both all a b\nquorum both", fakes...); !r.Met {
			t.Fatalf("size %d: %s", size, r)
		}
		for _, f := range fakes {
			if f.Size() != size {
				t.Errorf("witness %s is at size %d, want %d", f.Name, f.Size(), size)
			}
			if got := metric(t, reg, "undersigned_witness_cosigned_size", f.Name); got != float64(size) {
				t.Errorf("cosigned size metric of %s = %v, want %d", f.Name, got, size)
			}
		}
	}
	// The same checkpoint again is cosigned again (same size, same root).
	size := lg.Grow(t, 0)
	if _, err := c.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof); err != nil {
		t.Fatalf("the same checkpoint again: %v", err)
	}
}

// metric returns the sum of the values of a metric for a witness.
func metric(t *testing.T, reg *prometheus.Registry, name, witness string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "witness" && l.GetValue() == witness {
					sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestLearnsSizeFrom409: a new cosigner (after a restart) does not know what
// the witnesses cosigned; they answer 409 with their size and it submits
// again with the right proof.
func TestLearnsSizeFrom409(t *testing.T) {
	lg, fakes, c, _ := setup(t, "group both all a b\nquorum both", "a", "b")
	ctx := context.Background()
	size := lg.Grow(t, 17)
	if _, err := c.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Parse([]byte(strings.Join([]string{fakes[0].PolicyLine(), fakes[1].PolicyLine(), "group both all a b", "quorum both"}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := witnessing.New(witnessing.Config{Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	restarted.Seed(3) // a wrong guess
	before := fakes[0].Requests()
	size = lg.Grow(t, 40)
	if _, err := restarted.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof); err != nil {
		t.Fatal(err)
	}
	if got := fakes[0].Requests() - before; got != 2 {
		t.Errorf("%d requests to learn the size and cosign, want 2 (one 409, one 200)", got)
	}
	if s := restarted.Sizes(); s["a"] != size || s["b"] != size {
		t.Errorf("Sizes() = %v, want %d each", s, size)
	}
}

// TestFaults: witnesses that loop on 409, never answer, sign with the
// wrong key, are down, or are slow. Cosign meets the quorum when the
// others can, and otherwise fails with a QuorumError that names each
// witness and what became of it, without addresses, before its deadline.
func TestFaults(t *testing.T) {
	cases := []struct {
		name   string
		quorum string
		faults map[string]witnesstest.Fault
		ok     bool
		says   []string
	}{
		{"409 loop, quorum 2", "group q 2 a b\nquorum q", map[string]witnesstest.Fault{"b": witnesstest.Loop}, false, []string{"b did not answer"}},
		{"silent, quorum 2", "group q 2 a b\nquorum q", map[string]witnesstest.Fault{"b": witnesstest.Silent}, false, []string{"b did not answer", "cosigned by a"}},
		{"silent, quorum 1 of 2", "group q any a b\nquorum q", map[string]witnesstest.Fault{"b": witnesstest.Silent}, true, nil},
		{"wrong key", "group q all a b\nquorum q", map[string]witnesstest.Fault{"a": witnesstest.WrongKey}, false, []string{"a answered without a valid cosignature"}},
		{"down", "group q all a b\nquorum q", map[string]witnesstest.Fault{"a": witnesstest.Unavailable, "b": witnesstest.Unavailable}, false, []string{"a did not answer", "b did not answer"}},
		{"slow but in time", "group q all a b\nquorum q", map[string]witnesstest.Fault{"a": witnesstest.Slow}, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lg, fakes, c, reg := setup(t, tc.quorum, "a", "b")
			for _, f := range fakes {
				f.SetFault(tc.faults[f.Name], 100*time.Millisecond)
			}
			size := lg.Grow(t, 9)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			cp, err := c.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if r := met(t, lg, cp, tc.quorum, fakes...); !r.Met {
					t.Fatal(r)
				}
				return
			}
			var qe *witnessing.QuorumError
			if !errors.As(err, &qe) || !errors.Is(err, witnessing.ErrQuorum) {
				t.Fatalf("Cosign = %v, want a QuorumError", err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error %q does not say %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("the error names an address: %v", err)
			}
			for name, fault := range tc.faults {
				if fault == witnesstest.Honest || fault == witnesstest.Slow {
					continue
				}
				if got := metric(t, reg, "undersigned_witness_failures_total", name); got == 0 {
					t.Errorf("no failure counted for %s", name)
				}
			}
		})
	}
}

// TestForkRefused: after cosigning a checkpoint, both witnesses refuse a
// second checkpoint of the same size with another root, and one that does
// not extend it; Cosign gives up at once, naming both as refusing.
func TestForkRefused(t *testing.T) {
	lg, fakes, c, _ := setup(t, "group both all a b\nquorum both", "a", "b")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	size := lg.Grow(t, 12)
	if _, err := c.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof); err != nil {
		t.Fatal(err)
	}
	forged := lg.Root(t, size-1)
	for _, tc := range []struct {
		name string
		cp   []byte
	}{
		{"same size, another root", lg.Sign(t, size, forged)},
		{"larger, not an extension", lg.Sign(t, size+5, forged)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name != "same size, another root" {
				lg.Grow(t, 5)
			}
			_, err := c.Cosign(ctx, tc.cp, lg.ConsistencyProof)
			var qe *witnessing.QuorumError
			if !errors.As(err, &qe) {
				t.Fatalf("Cosign of a fork = %v", err)
			}
			for _, f := range qe.Failures {
				if f.Kind != witnessing.Refused {
					t.Errorf("%s: %v, want refused", f.Witness, f.Kind)
				}
			}
			if len(qe.Failures) != 2 || !strings.Contains(err.Error(), "a refused") || !strings.Contains(err.Error(), "b refused") {
				t.Fatalf("Cosign of a fork: %v", err)
			}
			for _, f := range fakes {
				if f.Size() != size {
					t.Errorf("witness %s moved to %d", f.Name, f.Size())
				}
			}
		})
	}
}

// TestUnknownLog: witnesses that do not know the log reject it, and
// Cosign fails at once rather than retrying until its deadline.
func TestUnknownLog(t *testing.T) {
	_, fakes, c, _ := setup(t, "group both all a b\nquorum both", "a", "b")
	other := witnesstest.NewLog(t, "example.test/another-log")
	size := other.Grow(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Cosign(ctx, other.Checkpoint(t, size), other.ConsistencyProof)
	if !errors.Is(err, witnessing.ErrQuorum) || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("Cosign for a log the witnesses do not know = %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Cosign waited for its deadline though the quorum was out of reach")
	}
	_ = fakes
}

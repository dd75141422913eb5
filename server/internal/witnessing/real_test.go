package witnessing_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/server/internal/witnessing"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

// TestRealWitnesses runs the cosigner against the two witness
// implementations of deploy/witness (omniwitness and litewitness), for a
// synthetic log: checkpoints of a growing tree are cosigned by both; a
// restarted cosigner learns their sizes from 409 answers; a second
// checkpoint of a size they cosigned, with another root, is refused by
// both; and the cosigned checkpoint meets the policy up.sh wrote, but not a
// policy that also requires a third witness, which the check names.
func TestRealWitnesses(t *testing.T) {
	lg := witnesstest.NewLog(t, "example.test/real-witnesses")
	real := witnesstest.StartReal(t, lg.WriteKey(t, t.TempDir()))
	p, err := policy.Parse([]byte(real.PolicyText))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	newCosigner := func() *witnessing.Cosigner {
		c, err := witnessing.New(witnessing.Config{Policy: p})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	c := newCosigner()
	var cp []byte
	for _, grow := range []int{1, 4, 700} {
		size := lg.Grow(t, grow)
		if cp, err = c.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		r, err := p.Check(cp)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Met || len(r.Cosigned) != 2 {
			t.Fatalf("size %d: %s\n%s", size, r, cp)
		}
	}

	restarted := newCosigner()
	size := lg.Grow(t, 33)
	if cp, err = restarted.Cosign(ctx, lg.Checkpoint(t, size), lg.ConsistencyProof); err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if s := restarted.Sizes(); s["omniwitness"] != size || s["litewitness"] != size {
		t.Fatalf("after a restart the sizes are %v, want %d", s, size)
	}

	fork := lg.Sign(t, size, lg.Root(t, size-1))
	_, err = c.Cosign(ctx, fork, lg.ConsistencyProof)
	var qe *witnessing.QuorumError
	if !errors.As(err, &qe) || len(qe.Failures) != 2 {
		t.Fatalf("a fork was not refused by both: %v", err)
	}
	for _, f := range qe.Failures {
		if f.Kind != witnessing.Refused {
			t.Errorf("%s on a fork: %v, want refused", f.Witness, f.Kind)
		}
	}

	third := witnesstest.NewFake(t, "third", lg.VerifierKey)
	withThird := strings.Replace(real.PolicyText, "group local 2 omniwitness litewitness", third.PolicyLine()+"\ngroup local all omniwitness litewitness third", 1)
	p3, err := policy.Parse([]byte(withThird))
	if err != nil {
		t.Fatal(err)
	}
	r, err := p3.Check(cp)
	if err != nil {
		t.Fatal(err)
	}
	if r.Met || strings.Join(r.Missing, ",") != "third" || !strings.Contains(r.Err().Error(), "missing: third") {
		t.Fatalf("a policy requiring a third witness: %s", r)
	}
}

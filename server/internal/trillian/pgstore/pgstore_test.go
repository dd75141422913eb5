package pgstore_test

import (
	"context"
	"testing"

	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/ledger/storetest"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// TestLetterRateIsShared checks that two stores on one database, as two
// servers of one tree have, draw from one bucket per letter.
func TestLetterRateIsShared(t *testing.T) {
	env := trilliantest.Need(t)
	uri := env.NewDatabase(t)
	ctx := context.Background()
	a, err := pgstore.Open(ctx, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pgstore.Open(ctx, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const rate, burst = 0.01, 5 // one token every 100 s: no refill during the test
	taken := 0
	for i := range 10 {
		st := a
		if i%2 == 1 {
			st = b
		}
		wait, err := st.TakeLetterToken(ctx, "shared", rate, burst)
		if err != nil {
			t.Fatal(err)
		}
		if wait == 0 {
			taken++
		} else if wait < 50e9 {
			t.Errorf("the wait for a token is %v, want close to 100 s", wait)
		}
	}
	if taken != burst {
		t.Fatalf("two servers took %d tokens from a bucket of %d", taken, burst)
	}
	if wait, err := a.TakeLetterToken(ctx, "another letter", rate, burst); err != nil || wait != 0 {
		t.Fatalf("another letter's bucket: %v %v", wait, err)
	}
}

// TestContract runs the contract of a ledger.Store on PostgreSQL, each test
// on a new database.
func TestContract(t *testing.T) {
	env := trilliantest.Need(t)
	storetest.Run(t, func(t *testing.T) ledger.Store {
		s, err := pgstore.Open(context.Background(), env.NewDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

package webcheck_test

import (
	"fmt"
	"testing"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/signing"
	"github.com/undersigned/undersigned/client/webcheck"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// benchLog is a log of n endorsements (unsigned: the page does not check
// the signatures of other people's endorsements) and the receipt of one in
// the middle.
func benchLog(b *testing.B, n int) (*testLog, []byte) {
	t := &testing.T{}
	l := newTestLog(t)
	l.t = t
	var rcpt []byte
	for i := 0; i < n; i++ {
		e := signing.NewEndorsement(origin, l.letter, signing.Signer{Fields: records.Fields{Name: fmt.Sprintf("Signer %d", i)}})
		idx := l.add(&pb.Record{AcceptedAt: 1_800_000_000, Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
		if i == n/2 {
			rcpt = l.receipt(idx, idx+1, &pb.ReceiptExtra{Disclosure: e.Disclosure, WithdrawalSecret: e.WithdrawalSecret})
		}
	}
	return l, rcpt
}

// BenchmarkVerify is the time to check one receipt once the page has
// loaded a log of 100,000 entries: run it as WebAssembly under Node (see
// BENCHMARKS.md) for the page's figure.
func BenchmarkVerify(b *testing.B) {
	l, rcpt := benchLog(b, 100_000)
	wl := l.load(&testing.T{})
	b.ResetTimer()
	for b.Loop() {
		if r := webcheck.Verify(l.v, rcpt, wl); r.State != webcheck.Counted {
			b.Fatalf("%+v", r)
		}
	}
}

// BenchmarkLoad is the time the page spends on a log of 100,000 entries
// once its bundles are fetched.
func BenchmarkLoad(b *testing.B) {
	l, _ := benchLog(b, 100_000)
	bundles := l.bundles()
	cp := l.checkpoint(uint64(len(l.entries)))
	b.ResetTimer()
	for b.Loop() {
		wl, err := webcheck.NewLog(l.v, cp)
		if err != nil {
			b.Fatal(err)
		}
		for _, bd := range bundles {
			if err := wl.AddBundle(bd, []byte("[]")); err != nil {
				b.Fatal(err)
			}
		}
		if err := wl.Complete(); err != nil {
			b.Fatal(err)
		}
	}
	size := 0
	for _, bd := range bundles {
		size += len(bd)
	}
	b.ReportMetric(float64(size), "log-bytes")
}

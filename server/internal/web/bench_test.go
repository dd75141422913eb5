package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// memorySource is a log kept in memory: a letter and its endorsements.
type memorySource struct {
	entries []*pb.Entry
}

func (m *memorySource) Checkpoint(context.Context) ([]byte, uint64, error) {
	return []byte("memory\n"), uint64(len(m.entries)), nil
}

func (m *memorySource) Entries(_ context.Context, start, end uint64, fn func([]*pb.Entry) error) error {
	for from := start; from < end; from += 256 {
		if err := fn(m.entries[from:min(from+256, end)]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memorySource) Origin() string      { return "example.org/memory" }
func (m *memorySource) VerifierKey() string { return "example.org/memory+00000000+AQ==" }
func (m *memorySource) Endorse(context.Context, net.Addr, *pb.EndorseRequest) (*pb.EndorseResponse, error) {
	return nil, fmt.Errorf("not in memory")
}

func (m *memorySource) add(tb testing.TB, r *pb.Record, d *pb.Disclosure) uint64 {
	r.Version = 1
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		tb.Fatal(err)
	}
	i := uint64(len(m.entries))
	m.entries = append(m.entries, &pb.Entry{Index: i, Record: b, Disclosure: d})
	return i
}

// bigLetter is a letter with n endorsements over a month: one in ten
// private, one in a hundred withdrawn.
func bigLetter(tb testing.TB, n int) *memorySource {
	m := &memorySource{}
	m.add(tb, &pb.Record{AcceptedAt: 1_800_000_000, Kind: &pb.Record_Letter{Letter: &pb.Letter{Id: "big", Title: "A big letter", Text: "Text.\n",
		Policy: pb.Policy_POLICY_OPEN}}}, nil)
	for i := 0; i < n; i++ {
		at := int64(1_800_000_000 + i*26)
		vis := pb.Visibility_VISIBILITY_PUBLIC
		var d *pb.Disclosure
		if i%10 == 9 {
			vis = pb.Visibility_VISIBILITY_PRIVATE
		} else {
			d = &pb.Disclosure{Salt: make([]byte, 32), Name: fmt.Sprintf("Łapińska Signer %d", i), Affiliation: "Library"}
		}
		idx := m.add(tb, &pb.Record{AcceptedAt: at, Kind: &pb.Record_Endorsement{Endorsement: &pb.Endorsement{LetterId: "big", Visibility: vis}}}, d)
		if i%100 == 50 {
			m.add(tb, &pb.Record{AcceptedAt: at, Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: idx,
				Reason: pb.Reason_REASON_SIGNER_REQUEST}}}, nil)
		}
	}
	return m
}

// BenchmarkLetterPage is the server's time for a letter's page with
// 100,000 endorsements, once the view has caught up with the log.
func BenchmarkLetterPage(b *testing.B) {
	h, err := New(Config{Source: bigLetter(b, 100_000)})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, path string }{
		{"first page", "/letters/big?lang=en"},
		{"page 500", "/letters/big?lang=be&page=500"},
		{"search", "/letters/big?lang=ru&q=lapinska+signer+4242"},
		{"index", "/?lang=en"},
	} {
		b.Run(c.name, func(b *testing.B) {
			get := func() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, c.path, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", c.path, w.Code, w.Body)
				}
			}
			get() // the view catches up with the log
			b.ResetTimer()
			for b.Loop() {
				get()
			}
		})
	}
}

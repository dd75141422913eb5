package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"flag"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

var (
	benchEntries = flag.Int("audit.entries", 20000, "entries in the log BenchmarkAudit audits")
	benchRuns    = flag.Int("audit.runs", 3, "runs of each measure in BenchmarkAudit; medians are reported")
)

// benchLog is a log generated in memory: a curated letter and endorsements
// signed by its organiser, one in ten also by a signer key, one in ten
// private.
type benchLog struct {
	origin  string
	key     string
	raw     []byte // signed checkpoint
	entries []*pb.Entry
	size    uint64
}

func generate(b *testing.B, n int) *benchLog {
	b.Helper()
	origin := "bench.example/audit"
	skey, vkey, _ := note.GenerateKey(rand.Reader, origin)
	signer, _ := note.NewSigner(skey)
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	text := "We, the undersigned, ask for longer library hours.\n"
	lt := &pb.Letter{Id: "bench", Title: "Bench", Text: text, TextDigest: records.TextDigest(text),
		Policy: pb.Policy_POLICY_CURATED, OrganiserKeys: [][]byte{org.Public().(ed25519.PublicKey)}}
	records.SignLetter(org, origin, lt)
	l := &benchLog{origin: origin, key: vkey, entries: make([]*pb.Entry, n), size: uint64(n)}
	enc := func(r *pb.Record) []byte {
		r.Version, r.AcceptedAt = 1, 1_790_000_000
		bs, err := records.Encode(r)
		if err != nil {
			b.Fatal(err)
		}
		return bs
	}
	l.entries[0] = &pb.Entry{Index: 0, Record: enc(&pb.Record{Kind: &pb.Record_Letter{Letter: lt}})}
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			salt, secret := make([]byte, 32), make([]byte, 32)
			for i := 1 + w; i < n; i += workers {
				rand.Read(salt)
				rand.Read(secret)
				f := records.Fields{Name: fmt.Sprintf("Signer %07d Łapińska", i), Affiliation: "Bench"}
				e := &pb.Endorsement{LetterId: "bench", LetterDigest: lt.GetTextDigest(), Commitment: records.Commitment(salt, f),
					WithdrawalLock: records.WithdrawalLock(secret), Verification: pb.Verification_VERIFICATION_NONE,
					Visibility: pb.Visibility_VISIBILITY_PUBLIC}
				if i%10 == 3 {
					e.Visibility = pb.Visibility_VISIBILITY_PRIVATE
				}
				if i%10 == 7 {
					_, sk, _ := ed25519.GenerateKey(rand.Reader)
					e.Verification = pb.Verification_VERIFICATION_SIGNER_KEY
					records.SignEndorsementAsSigner(sk, origin, e)
				}
				records.SignEndorsementAsOrganiser(org, origin, e)
				en := &pb.Entry{Index: uint64(i), Record: enc(&pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e}})}
				if e.GetVisibility() == pb.Visibility_VISIBILITY_PUBLIC {
					en.Disclosure = &pb.Disclosure{Salt: slices.Clone(salt), Name: f.Name, Affiliation: f.Affiliation}
				}
				l.entries[i] = en
			}
		}()
	}
	wg.Wait()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, e := range l.entries {
		r.Append(rfc6962.DefaultHasher.HashLeaf(e.GetRecord()), nil)
	}
	root, _ := r.GetRootHash(nil)
	raw, err := note.Sign(&note.Note{Text: string(log.Checkpoint{Origin: origin, Size: l.size, Hash: root}.Marshal())}, signer)
	if err != nil {
		b.Fatal(err)
	}
	l.raw = raw
	return l
}

// benchServer serves a benchLog over gRPC the way the server does: entries
// streamed in batches of 256 with their disclosures.
type benchServer struct {
	pb.UnimplementedLedgerServiceServer
	l *benchLog
}

func (s *benchServer) GetCheckpoint(context.Context, *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	return &pb.GetCheckpointResponse{Checkpoint: s.l.raw, Size: s.l.size}, nil
}

func (s *benchServer) GetEntries(req *pb.GetEntriesRequest, stream pb.LedgerService_GetEntriesServer) error {
	end := req.GetEnd()
	if end == 0 || end > s.l.size {
		end = s.l.size
	}
	for from := req.GetStart(); from < end; from += 256 {
		to := min(from+256, end)
		if err := stream.Send(&pb.GetEntriesResponse{Entries: s.l.entries[from:to]}); err != nil {
			return err
		}
	}
	return nil
}

func serveBench(b *testing.B, l *benchLog) pb.LedgerServiceClient {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterLedgerServiceServer(srv, &benchServer{l: l})
	go srv.Serve(lis)
	b.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return pb.NewLedgerServiceClient(conn)
}

// BenchmarkAudit measures a full audit of a generated log over gRPC
// against, in the same run, its two parts done alone: the same checks on
// records already in memory (decoding, leaf hashes, rules, signatures and
// disclosures, on every core, without the tree and the state), and
// draining GetEntries without checks. It reports the medians of
// -audit.runs runs of each, as entries/s, and the ratio of the audit's time
// to the sum of the parts'. Run it as:
//
//	go test -run '^$' -bench BenchmarkAudit -benchtime 1x ./client/audit -args -audit.entries 1000000
func BenchmarkAudit(b *testing.B) {
	ctx := context.Background()
	start := time.Now()
	l := generate(b, *benchEntries)
	api := serveBench(b, l)
	b.Logf("generated %d entries in %v; GOMAXPROCS %d", l.size, time.Since(start).Round(time.Millisecond), runtime.GOMAXPROCS(0))
	inMemory := make([]Entry, len(l.entries))
	for i, e := range l.entries {
		inMemory[i] = Entry{Index: e.GetIndex(), Record: e.GetRecord(), Disclosure: e.GetDisclosure()}
	}
	var drain, checks, full []time.Duration
	var cpuDrain, cpuChecks, cpuFull []time.Duration
	var ratios []float64
	b.ResetTimer()
	for range b.N {
		for run := range *benchRuns {
			// Drain GetEntries.
			t0, c0 := time.Now(), cpuTime()
			n := 0
			if err := NewGRPCSource(api).Entries(ctx, 0, l.size, func(es []Entry) error { n += len(es); return nil }); err != nil || n != int(l.size) {
				b.Fatalf("drain: %d entries, %v", n, err)
			}
			drain, cpuDrain = append(drain, time.Since(t0)), append(cpuDrain, cpuTime()-c0)

			// The checks on records in memory.
			t0, c0 = time.Now(), cpuTime()
			ap := &applier{m: newModel(l.origin)}
			p := newPipeline(runtime.GOMAXPROCS(0))
			err := p.run(ctx, func(emit func([]Entry) error) error {
				for i := 0; i < len(inMemory); i += 256 {
					if err := emit(inMemory[i:min(i+256, len(inMemory))]); err != nil {
						return err
					}
				}
				return nil
			}, func(items []*item) error {
				for _, it := range items {
					ap.apply(it, 0)
				}
				return nil
			})
			if err != nil || len(ap.violations)+len(p.violations) > 0 {
				b.Fatalf("checks: %v %v %v", err, ap.violations, p.violations)
			}
			checks, cpuChecks = append(checks, time.Since(t0)), append(cpuChecks, cpuTime()-c0)

			// The full audit, into a new state.
			t0, c0 = time.Now(), cpuTime()
			st, err := OpenState(b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			a, err := New(Config{Source: NewGRPCSource(api), VerifierKey: l.key, State: st})
			if err != nil {
				b.Fatal(err)
			}
			rep, err := a.Run(ctx)
			if err != nil || !rep.OK() || rep.To != l.size {
				b.Fatalf("audit: %v %+v", err, rep)
			}
			full, cpuFull = append(full, time.Since(t0)), append(cpuFull, cpuTime()-c0)
			st.Close()
			ratios = append(ratios, full[run].Seconds()/(drain[run]+checks[run]).Seconds())
			b.Logf("run %d: drain %v, checks %v, audit %v; audit / (checks + drain) = %.2f; CPU time: drain %v, checks %v, audit %v, ratio %.2f",
				run+1, drain[run].Round(time.Millisecond), checks[run].Round(time.Millisecond), full[run].Round(time.Millisecond), ratios[run],
				cpuDrain[run].Round(time.Millisecond), cpuChecks[run].Round(time.Millisecond), cpuFull[run].Round(time.Millisecond),
				cpuFull[run].Seconds()/(cpuDrain[run]+cpuChecks[run]).Seconds())
		}
	}
	b.StopTimer()
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	rate := func(d time.Duration) float64 { return float64(l.size) / d.Seconds() }
	md, mc, mf := med(drain), med(checks), med(full)
	b.ReportMetric(rate(md), "drain-entries/s")
	b.ReportMetric(rate(mc), "checks-entries/s")
	b.ReportMetric(rate(mf), "audit-entries/s")
	slices.Sort(ratios)
	cd, cc, cf := med(cpuDrain), med(cpuChecks), med(cpuFull)
	if cd+cc > 0 {
		b.ReportMetric(cf.Seconds()/(cd+cc).Seconds(), "cpu-ratio")
		b.Logf("CPU time, medians: drain %v, checks %v, audit %v; audit / (checks + drain) = %.2f",
			cd.Round(time.Millisecond), cc.Round(time.Millisecond), cf.Round(time.Millisecond), cf.Seconds()/(cd+cc).Seconds())
	}
	b.ReportMetric(mf.Seconds()/(md+mc).Seconds(), "ratio")
	b.ReportMetric(ratios[len(ratios)/2], "median-run-ratio")
	b.Logf("medians of %d runs, %d entries: drain %v (%.0f/s), checks %v (%.0f/s), audit %v (%.0f/s); audit / (checks + drain) = %.2f; median of the runs' ratios %.2f",
		len(full), l.size, md.Round(time.Millisecond), rate(md), mc.Round(time.Millisecond), rate(mc), mf.Round(time.Millisecond), rate(mf),
		mf.Seconds()/(md+mc).Seconds(), ratios[len(ratios)/2])
}

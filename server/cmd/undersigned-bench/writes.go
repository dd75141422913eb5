package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

const (
	nameRaw       = "raw Tessera POSIX, awaited publication"
	nameFull      = "Endorse over gRPC, receipt returned"
	nameWitnessed = "Endorse over gRPC, receipt cosigned by the witnesses"
)

func benchWrites(ctx context.Context, o options, res *results) error {
	if o.witnessPolicy != "" || o.witnessData != "" {
		return benchWitnessed(ctx, o, res)
	}
	size, err := endorsementSize()
	if err != nil {
		return err
	}
	res.Extra["entry_size_bytes"] = size
	for i := range o.runs {
		m, err := benchTessera(ctx, o, filepath.Join(o.dir, fmt.Sprintf("tessera-%d", i)), size)
		if err != nil {
			return fmt.Errorf("raw tessera: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: %s %.0f/s\n", i+1, nameRaw, m.Rate)
		res.record(m)
		profile := ""
		if i == 0 {
			profile = o.cpuProfile
		}
		m, err = benchEndorse(ctx, o, nameFull, filepath.Join(o.dir, fmt.Sprintf("server-%d", i)), profile)
		if err != nil {
			return fmt.Errorf("full path: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: %s %.0f/s\n", i+1, nameFull, m.Rate)
		res.record(m)
	}
	med := res.finish(nameRaw, nameFull)
	res.Ratio = med[nameFull].Rate / med[nameRaw].Rate
	return nil
}

// endorsementSize is the size of a typical endorsement record, so that raw
// Tessera appends entries of the same size.
func endorsementSize() (int, error) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	origin := "bench.example/undersigned"
	l := client.NewLetter(origin, client.LetterDraft{ID: "bench", Title: "Bench", Text: "Text.\n"}, key)
	e := client.NewEndorsement(origin, l, client.Signer{Fields: records.Fields{Name: "Signer 000000 Łapińska", Affiliation: "Bench"}, OrganiserKey: key})
	b, err := records.Encode(&pb.Record{Version: 1, AcceptedAt: time.Now().Unix(), Kind: &pb.Record_Endorsement{Endorsement: e.Endorsement}})
	return len(b), err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadResult is what a closed-loop load saw in its measured window.
type loadResult struct {
	ops, errs int64
	elapsed   time.Duration
	lat       []time.Duration // sorted
}

// quantile returns the p-quantile of the latencies.
func (r loadResult) quantile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

// runLoad runs op on c goroutines, each calling it again as soon as it
// returns: unmeasured for the warm-up, then measured for the duration.
// begin runs as the measured window opens and end as it closes, to sample
// the CPU of the processes involved.
func runLoad(ctx context.Context, name string, o options, c int, begin, end func(), op func(ctx context.Context, seq int64) error) loadResult {
	var measuring atomic.Bool
	var ops, errs atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	var lat []time.Duration
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for range c {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				start := time.Now()
				err := op(ctx, seq.Add(1))
				if !measuring.Load() || ctx.Err() != nil {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ops.Add(1)
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	time.Sleep(o.warmup)
	measuring.Store(true)
	begin()
	t0 := time.Now()
	time.Sleep(o.duration)
	n, elapsed := ops.Load(), time.Since(t0)
	end()
	measuring.Store(false)
	cancel()
	wg.Wait()
	if v := firstErr.Load(); v != nil {
		fmt.Fprintf(os.Stderr, "%s: %d errors, the first: %s\n", name, errs.Load(), v)
	}
	slices.Sort(lat)
	return loadResult{ops: n, errs: errs.Load(), elapsed: elapsed, lat: lat}
}

// drive runs op on c goroutines (see runLoad) and measures the CPU of this
// process and, when serverCPU is set, of the server's.
func drive(ctx context.Context, name, unit string, o options, c int, serverCPU func() time.Duration, op func(ctx context.Context, seq int64) error) measurement {
	var cpu0, cpu1, s0, s1 time.Duration
	r := runLoad(ctx, name, o, c, func() {
		if serverCPU != nil {
			s0 = serverCPU()
		}
		cpu0 = cpuTime()
	}, func() {
		cpu1 = cpuTime()
		if serverCPU != nil {
			s1 = serverCPU()
		}
	}, op)
	n := r.ops
	m := measurement{Name: name, Unit: unit, Ops: n, Seconds: r.elapsed.Seconds(), Rate: float64(n) / r.elapsed.Seconds(),
		P50: r.quantile(0.5), P95: r.quantile(0.95), P99: r.quantile(0.99), Errors: r.errs}
	if n > 0 {
		m.CPUPerOp = (cpu1 - cpu0) / time.Duration(n)
		if serverCPU != nil {
			m.ServerCPUPerOp = (s1 - s0) / time.Duration(n)
		}
	}
	return m
}

// benchTessera measures raw Tessera POSIX with awaited publication, in
// this process.
func benchTessera(ctx context.Context, o options, dir string, size int) (measurement, error) {
	skey, _, err := note.GenerateKey(rand.Reader, "bench.example/tessera")
	if err != nil {
		return measurement{}, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return measurement{}, err
	}
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return measurement{}, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	appender, shutdown, reader, err := tessera.NewAppender(rctx, driver, tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(o.batchSize, o.batchAge).
		WithCheckpointInterval(o.checkpointInterval).
		WithPushback(4*o.batchSize))
	if err != nil {
		return measurement{}, err
	}
	// The same poll interval as the embedded engine's.
	awaiter := tessera.NewPublicationAwaiter(rctx, reader.ReadCheckpoint, 5*time.Millisecond)
	m := drive(ctx, nameRaw, "entries/s", o, o.concurrency, nil, func(ctx context.Context, _ int64) error {
		data := make([]byte, size)
		rand.Read(data)
		_, _, err := awaiter.Await(ctx, appender.Add(ctx, tessera.NewEntry(data)))
		return err
	})
	m.ServerCPUPerOp = m.CPUPerOp
	m.CPUPerOp = 0
	m.Note = "one process: the CPU is Tessera's and the load generator's"
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	shutdown(sctx)
	return m, nil
}

// organiserClient dials a child server with its token and publishes a
// letter.
// The letter is published once per server; later calls reuse it.
func organiserClient(ctx context.Context, srv *child) (*client.Client, *pb.Letter, ed25519.PrivateKey, error) {
	cl, err := client.Dial(ctx, client.Config{Addr: srv.grpcAddr, Token: srv.token})
	if err != nil {
		return nil, nil, nil, err
	}
	if srv.letter == nil {
		// A letter of its own for each server: the witnessed runs serve
		// one log, one run after the other.
		_, srv.key, _ = ed25519.GenerateKey(rand.Reader)
		id := fmt.Sprintf("bench-%d", time.Now().UnixNano())
		srv.letter = client.NewLetter(cl.Origin(), client.LetterDraft{ID: id, Title: "Bench", Text: "Text.\n"}, srv.key)
		if _, err := cl.PublishLetter(ctx, srv.letter, ""); err != nil {
			cl.Close()
			return nil, nil, nil, err
		}
	}
	return cl, srv.letter, srv.key, nil
}

// endorsements pre-builds signed endorsements, so that signing is not
// measured as the load generator's work; more are built on demand.
type endorsements struct {
	origin string
	letter *pb.Letter
	key    ed25519.PrivateKey
	pool   []*client.Endorsement
	next   atomic.Int64
}

func newEndorsements(origin string, l *pb.Letter, key ed25519.PrivateKey, n int) *endorsements {
	e := &endorsements{origin: origin, letter: l, key: key, pool: make([]*client.Endorsement, n)}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				e.pool[i] = e.build(int64(i))
			}
		}()
	}
	wg.Wait()
	return e
}

func (e *endorsements) build(i int64) *client.Endorsement {
	return client.NewEndorsement(e.origin, e.letter, client.Signer{
		Fields:       records.Fields{Name: fmt.Sprintf("Signer %07d Łapińska", i), Affiliation: "Bench"},
		OrganiserKey: e.key,
	})
}

func (e *endorsements) get() *client.Endorsement {
	i := e.next.Add(1) - 1
	if int(i) < len(e.pool) {
		return e.pool[i]
	}
	return e.build(i)
}

// benchEndorse measures gRPC Endorse, with an organiser signature and the
// receipt returned, against an embedded server in a process of its own
// with the flags extra.
func benchEndorse(ctx context.Context, o options, name, dir, profile string, extra ...string) (measurement, error) {
	if profile != "" {
		extra = append(extra, "--cpuprofile", profile)
	}
	srv, err := startChild(ctx, o, dir, extra...)
	if err != nil {
		return measurement{}, err
	}
	defer srv.stop()
	cl, l, key, err := organiserClient(ctx, srv)
	if err != nil {
		return measurement{}, err
	}
	defer cl.Close()
	// A connection carries at most 512 calls at once (the server's
	// MaxStreamsPerConnection): one connection per 256 writers.
	conns := []*client.Client{cl}
	for len(conns)*256 < o.concurrency {
		c, err := client.Dial(ctx, client.Config{Addr: srv.grpcAddr, Token: srv.token})
		if err != nil {
			return measurement{}, err
		}
		defer c.Close()
		conns = append(conns, c)
	}
	expected := int(float64(o.concurrency) / 0.2 * (o.warmup + o.duration).Seconds())
	pool := newEndorsements(cl.Origin(), l, key, min(expected, 200_000))
	if profile != "" {
		time.AfterFunc(o.warmup, func() { srv.profile(true) })
		defer srv.profile(false)
	}
	return drive(ctx, name, "endorsements/s", o, o.concurrency, srv.cpu, func(ctx context.Context, seq int64) error {
		e := pool.get()
		c := conns[int(seq)%len(conns)]
		_, err := c.API().Endorse(c.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
		return err
	}), nil
}

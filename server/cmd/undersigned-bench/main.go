// Command undersigned-bench measures undersigned against the engine
// underneath, in one run on one machine.
//
// The writes part measures, at the same concurrency and with the same
// Tessera options and entry size:
//
//   - raw Tessera POSIX: an appender with awaited publication, each writer
//     adding an entry and waiting for a checkpoint that includes it;
//   - the full path: gRPC Endorse with an organiser signature against an
//     embedded server, each writer waiting for its receipt.
//
// Runs alternate between the two and the medians are reported, with the
// line "ratio X" (full path over raw Tessera). Usage:
//
//	undersigned-bench [--concurrency 1000] [--duration 20s] [--runs 3] [--json FILE]
//
// With --engine trillian it measures the Trillian engine instead (see
// trillian.go), on the Trillian and PostgreSQL that deploy/trillian/up.sh
// started in DIR:
//
//	undersigned-bench --engine trillian --trillian-dir DIR [--concurrency 256]
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
)

type options struct {
	concurrency        int
	duration           time.Duration
	warmup             time.Duration
	runs               int
	batchSize          uint
	batchAge           time.Duration
	checkpointInterval time.Duration
	dir                string
	jsonOut            string
	cpuProfile         string
	engine             string
	trillianDir        string
}

// measurement is one timed run.
type measurement struct {
	Name      string        `json:"name"`
	Ops       int64         `json:"ops"`
	Seconds   float64       `json:"seconds"`
	Rate      float64       `json:"rate"`
	P50       time.Duration `json:"p50_ns"`
	P95       time.Duration `json:"p95_ns"`
	P99       time.Duration `json:"p99_ns"`
	CPUPerOp  time.Duration `json:"cpu_per_op_ns"`
	Errors    int64         `json:"errors"`
	EntrySize int           `json:"entry_size"`
}

func main() {
	var o options
	flag.IntVar(&o.concurrency, "concurrency", 1000, "concurrent writers")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured time per run")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured time before each run")
	flag.IntVar(&o.runs, "runs", 3, "runs of each; the medians are reported")
	flag.UintVar(&o.batchSize, "batch-size", 1024, "Tessera batch size, both sides")
	flag.DurationVar(&o.batchAge, "batch-age", 50*time.Millisecond, "Tessera batch age, both sides")
	flag.DurationVar(&o.checkpointInterval, "checkpoint-interval", 100*time.Millisecond, "Tessera checkpoint interval, both sides")
	flag.StringVar(&o.dir, "dir", "", "a folder for the logs (default a temporary folder)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the full-path runs to this file")
	flag.StringVar(&o.engine, "engine", "embedded", "the engine to measure: embedded (against raw Tessera) or trillian (against raw Trillian)")
	flag.StringVar(&o.trillianDir, "trillian-dir", "", "with --engine trillian: the folder deploy/trillian/up.sh was given")
	flag.Parse()
	klog.SetSlogLogger(slog.New(slog.DiscardHandler))
	measure := run
	if o.engine == "trillian" {
		measure = runTrillian
	}
	if err := measure(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "undersigned-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "undersigned-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	size, err := endorsementSize()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "machine: %d CPUs, GOMAXPROCS %d; concurrency %d, %v per run, %d runs, entries of %d bytes\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), o.concurrency, o.duration, o.runs, size)
	var raw, full []measurement
	for i := range o.runs {
		m, err := benchTessera(ctx, o, filepath.Join(o.dir, fmt.Sprintf("tessera-%d", i)), size)
		if err != nil {
			return fmt.Errorf("raw tessera: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: raw tessera %.0f/s\n", i+1, m.Rate)
		raw = append(raw, m)
		m, err = benchEndorse(ctx, o, filepath.Join(o.dir, fmt.Sprintf("server-%d", i)))
		if err != nil {
			return fmt.Errorf("full path: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: full path %.0f/s\n", i+1, m.Rate)
		full = append(full, m)
	}
	mr, mf := median(raw), median(full)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "measure\tconcurrency\tops/s (median)\tp50\tp95\tp99\tCPU/op\terrors\t")
	for _, m := range []measurement{mr, mf} {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%v\t%v\t%v\t%v\t%d\t\n", m.Name, o.concurrency, m.Rate,
			m.P50.Round(time.Millisecond), m.P95.Round(time.Millisecond), m.P99.Round(time.Millisecond), m.CPUPerOp.Round(time.Microsecond), m.Errors)
	}
	w.Flush()
	ratio := mf.Rate / mr.Rate
	fmt.Printf("ratio %.2f\n", ratio)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{
			"concurrency": o.concurrency, "duration_s": o.duration.Seconds(), "runs": o.runs, "cpus": runtime.NumCPU(),
			"raw_tessera": raw, "full_path": full, "median_raw": mr, "median_full": mf, "ratio": ratio,
		}, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func median(ms []measurement) measurement {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measurement) int {
		switch {
		case a.Rate < b.Rate:
			return -1
		case a.Rate > b.Rate:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// endorsementSize is the size of a typical endorsement record, so that raw
// Tessera appends entries of the same size.
func endorsementSize() (int, error) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	origin := "bench.example/log"
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

// drive runs op on c goroutines: unmeasured for warmup, then measured for
// d. It returns the count, the latencies and the CPU of the process.
func drive(ctx context.Context, name string, o options, op func(ctx context.Context, worker int, seq int64) error) measurement {
	if o.cpuProfile != "" && strings.HasPrefix(name, "undersigned") {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	var measuring atomic.Bool
	var ops, errs atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				start := time.Now()
				err := op(ctx, w, seq.Add(1))
				if !measuring.Load() || ctx.Err() != nil {
					continue
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				ops.Add(1)
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	time.Sleep(o.warmup)
	measuring.Store(true)
	cpu0, t0 := cpuTime(), time.Now()
	time.Sleep(o.duration)
	n, cpu1, elapsed := ops.Load(), cpuTime(), time.Since(t0)
	measuring.Store(false)
	cancel()
	wg.Wait()
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	m := measurement{Name: name, Ops: n, Seconds: elapsed.Seconds(), Rate: float64(n) / elapsed.Seconds(),
		P50: q(0.5), P95: q(0.95), P99: q(0.99), Errors: errs.Load()}
	if n > 0 {
		m.CPUPerOp = (cpu1 - cpu0) / time.Duration(n)
	}
	return m
}

// benchTessera measures raw Tessera POSIX with awaited publication.
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
	m := drive(ctx, "raw tessera posix, awaited publication", o, func(ctx context.Context, _ int, seq int64) error {
		data := make([]byte, size)
		rand.Read(data)
		_, _, err := awaiter.Await(ctx, appender.Add(ctx, tessera.NewEntry(data)))
		return err
	})
	m.EntrySize = size
	sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
	defer scancel()
	shutdown(sctx)
	return m, nil
}

// benchEndorse measures gRPC Endorse, with an organiser signature and the
// receipt returned, against an embedded server in this process.
func benchEndorse(ctx context.Context, o options, dir string) (measurement, error) {
	srv, err := server.New(ctx, server.Config{
		DataDir: dir, Origin: "bench.example/undersigned",
		BatchMaxSize: o.batchSize, BatchMaxAge: o.batchAge, CheckpointInterval: o.checkpointInterval,
	})
	if err != nil {
		return measurement{}, err
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return measurement{}, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return measurement{}, err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, gl, hl) }()
	defer func() { stop(); <-served }()
	tok, err := os.ReadFile(srv.TokenPath)
	if err != nil {
		return measurement{}, err
	}
	cl, err := client.Dial(ctx, client.Config{Addr: gl.Addr().String(), Token: string(tok[:len(tok)-1])})
	if err != nil {
		return measurement{}, err
	}
	defer cl.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "bench", Title: "Bench", Text: "Text.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		return measurement{}, err
	}
	api, origin := cl.API(), cl.Origin()
	var size atomic.Int64
	m := drive(ctx, "undersigned Endorse over gRPC, receipt returned", o, func(ctx context.Context, _ int, seq int64) error {
		e := client.NewEndorsement(origin, l, client.Signer{
			Fields:       records.Fields{Name: fmt.Sprintf("Signer %06d Łapińska", seq), Affiliation: "Bench"},
			OrganiserKey: key,
		})
		resp, err := api.Endorse(cl.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
		if err == nil && size.Load() == 0 {
			size.Store(int64(len(resp.GetResult().GetReceipt())))
		}
		return err
	})
	return m, nil
}

// Command undersigned-bench measures undersigned against the engine
// underneath, in one run on one machine, and prints a table, writes JSON,
// and ends with the line "ratio X" whenever the writes were measured.
//
// The parts (all by default; --only picks one):
//
//   - writes: raw Tessera POSIX (an appender with awaited publication, each
//     writer adding an entry of an endorsement's size and waiting for a
//     checkpoint that includes it) beside the full path (gRPC Endorse with an
//     organiser signature against an embedded server in its own process,
//     each writer waiting for its receipt), at the same concurrency and with
//     the same Tessera options. Runs alternate; medians are reported, with
//     latency percentiles and the CPU each process spends per write. "ratio"
//     is full path over raw Tessera.
//   - reads: GetInclusionProof and GetEntries over gRPC, and full tiles
//     over HTTP, against a server holding --read-entries entries.
//   - letters: GetLetter by 64 readers without a token on a letter of
//     --letter-entries endorsements, and the latency of endorsements
//     (16 organisers) without and with those readers looping, with the
//     read limits off and with the defaults.
//   - verify: client-side receipt verification per second on one core.
//   - memory: server RSS and cold restart time with --memory-entries
//     entries, against an empty server.
//   - import: --import-rows rows imported through client/importer (the
//     package behind `undersigned import`: signing, the journal, the
//     streams, the receipts checked and written) into a server in its own
//     process, beside Endorse at C = 4,096 against a server started the
//     same way; runs alternate. "ratio" is the import's rows per second over
//     the endorsements per second.
//
// Usage:
//
//	undersigned-bench [--only writes|reads|letters|verify|memory|import] [--concurrency 1000] [--duration 20s] [--runs 3] [--json FILE]
//
// With --witness-policy FILE --witness-data DIR the writes part measures a
// server whose checkpoints the policy's witnesses cosign against the same
// server without witnesses ("ratio" is witnessed over plain); see
// BENCHMARKS.md for starting the witnesses for DIR's key.
//
// With --engine trillian it measures the Trillian engine instead (see
// trillian.go), on the Trillian and PostgreSQL that deploy/trillian/up.sh
// started in DIR:
//
//	undersigned-bench --engine trillian --trillian-dir DIR [--concurrency 256]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/klog/v2"
)

type options struct {
	only               string
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
	readEntries        int
	letterEntries      int
	memoryEntries      int
	importRows         int
	engine             string
	trillianDir        string
	witnessPolicy      string
	witnessData        string
}

// measurement is one timed run of one thing.
type measurement struct {
	Name    string        `json:"name"`
	Unit    string        `json:"unit"`
	Ops     int64         `json:"ops"`
	Seconds float64       `json:"seconds"`
	Rate    float64       `json:"rate"`
	P50     time.Duration `json:"p50_ns,omitempty"`
	P95     time.Duration `json:"p95_ns,omitempty"`
	P99     time.Duration `json:"p99_ns,omitempty"`
	// CPUPerOp is the load generator's CPU per operation (this process);
	// ServerCPUPerOp the server process's, when it runs apart.
	CPUPerOp       time.Duration `json:"cpu_per_op_ns,omitempty"`
	ServerCPUPerOp time.Duration `json:"server_cpu_per_op_ns,omitempty"`
	Errors         int64         `json:"errors"`
	Note           string        `json:"note,omitempty"`
}

// results collects what a run measured.
type results struct {
	Machine string                   `json:"machine"`
	Options map[string]any           `json:"options"`
	Runs    map[string][]measurement `json:"runs"`
	Medians []measurement            `json:"medians"`
	Ratio   float64                  `json:"ratio,omitempty"`
	Extra   map[string]any           `json:"extra,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		if err := runChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "undersigned-bench child:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.only, "only", "", "measure only this part: writes, reads, letters, verify, memory or import (default all)")
	flag.IntVar(&o.concurrency, "concurrency", 1000, "concurrent writers (writes) or readers (reads)")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured time per run")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "unmeasured time before each run")
	flag.IntVar(&o.runs, "runs", 3, "runs of each; the medians are reported")
	flag.UintVar(&o.batchSize, "batch-size", 1024, "Tessera batch size, both sides")
	flag.DurationVar(&o.batchAge, "batch-age", 50*time.Millisecond, "Tessera batch age, both sides")
	flag.DurationVar(&o.checkpointInterval, "checkpoint-interval", 100*time.Millisecond, "Tessera checkpoint interval, both sides")
	flag.StringVar(&o.dir, "dir", "", "a folder for the logs (default a temporary folder)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "collect a CPU profile of the server during the first full-path run into this file")
	flag.IntVar(&o.readEntries, "read-entries", 100_000, "entries in the log the reads part reads")
	flag.IntVar(&o.letterEntries, "letter-entries", 100_000, "endorsements of the letter the letters part reads")
	flag.IntVar(&o.importRows, "import-rows", 100_000, "rows the import part imports")
	flag.IntVar(&o.memoryEntries, "memory-entries", 1_000_000, "entries in the log the memory part measures")
	flag.StringVar(&o.engine, "engine", "embedded", "the engine to measure: embedded (against raw Tessera) or trillian (against raw Trillian)")
	flag.StringVar(&o.trillianDir, "trillian-dir", "", "with --engine trillian: the folder deploy/trillian/up.sh was given")
	flag.StringVar(&o.witnessPolicy, "witness-policy", "", "writes: measure a server whose checkpoints this witness policy's quorum cosigns against one without witnesses (needs --witness-data)")
	flag.StringVar(&o.witnessData, "witness-data", "", "with --witness-policy: the data folder of the witnessed log, whose log.pub the witnesses were started for (made, with a hint, when missing: then the bench stops)")
	flag.Parse()
	klog.SetSlogLogger(slog.New(slog.DiscardHandler))
	measure := func(ctx context.Context, o options) error { return run(ctx, o, os.Stdout) }
	if o.engine == "trillian" {
		measure = runTrillian
	}
	if err := measure(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "undersigned-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.dir == "" {
		d, err := os.MkdirTemp("", "undersigned-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		o.dir = d
	}
	res := &results{
		Machine: fmt.Sprintf("%d CPUs, GOMAXPROCS %d, %s/%s, %s", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, runtime.Version()),
		Options: map[string]any{"concurrency": o.concurrency, "duration": o.duration.String(), "runs": o.runs,
			"batch_size": o.batchSize, "batch_age": o.batchAge.String(), "checkpoint_interval": o.checkpointInterval.String(),
			"witnessed": o.witnessPolicy != ""},
		Runs:  map[string][]measurement{},
		Extra: map[string]any{},
	}
	fmt.Fprintf(os.Stderr, "machine: %s\n", res.Machine)
	parts := []struct {
		name string
		fn   func(context.Context, options, *results) error
	}{
		{"writes", benchWrites},
		{"reads", benchReads},
		{"letters", benchLetters},
		{"verify", benchVerify},
		{"memory", benchMemory},
		{"import", benchImport},
	}
	for _, p := range parts {
		if o.only != "" && o.only != p.name {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", p.name)
		if err := p.fn(ctx, o, res); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	printTable(out, res)
	if res.Ratio != 0 {
		fmt.Fprintf(out, "ratio %.2f\n", res.Ratio)
	}
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// record adds a run and, once all runs are in, its median.
func (r *results) record(m measurement) {
	r.Runs[m.Name] = append(r.Runs[m.Name], m)
}

// finish computes the medians of the runs named.
func (r *results) finish(names ...string) map[string]measurement {
	out := map[string]measurement{}
	for _, n := range names {
		med := median(r.Runs[n])
		r.Medians = append(r.Medians, med)
		out[n] = med
	}
	return out
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

func printTable(out io.Writer, res *results) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "measure\trate (median)\tunit\tp50\tp95\tp99\tclient CPU/op\tserver CPU/op\terrors\t")
	d := func(x time.Duration, r time.Duration) string {
		if x == 0 {
			return "-"
		}
		return x.Round(r).String()
	}
	for _, m := range res.Medians {
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", m.Name, m.Rate, m.Unit,
			d(m.P50, time.Millisecond/10), d(m.P95, time.Millisecond/10), d(m.P99, time.Millisecond/10),
			d(m.CPUPerOp, time.Microsecond), d(m.ServerCPUPerOp, time.Microsecond), m.Errors)
	}
	w.Flush()
	for k, v := range res.Extra {
		if !strings.HasPrefix(k, "_") {
			fmt.Fprintf(out, "%s: %v\n", k, v)
		}
	}
}

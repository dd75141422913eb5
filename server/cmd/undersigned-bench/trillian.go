package main

// The Trillian part of the benchmark (--engine trillian): undersigned on
// Trillian and PostgreSQL against raw Trillian on the same PostgreSQL, in
// the same run, with the CPU each process spends per write.
//
//   - raw Trillian: each writer queues a leaf with QueueLeaf, then waits
//     until the tree holds as many leaves as had been queued when its own
//     was: one poller of the signed root (GetLatestSignedLogRoot every
//     10 ms) measures integration for all writers, and nothing else loads
//     Trillian (the fair baseline: undersigned's own reads are its cost);
//   - undersigned: gRPC Endorse with an organiser signature against an
//     undersigned-server process on the Trillian engine, each writer
//     waiting for its receipt.
//
// Trillian and PostgreSQL are those deploy/trillian/up.sh started in
// --trillian-dir; each run gets a new tree (and, for undersigned, a new
// database). CPU is read from /proc/PID/stat: the undersigned server,
// trillian_log_server, trillian_log_signer, and the postmaster with all
// its children (the reaped ones through its cutime and cstime).

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	trillianengine "github.com/undersigned/undersigned/server/internal/trillian"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// childEnv, when set, makes this program an undersigned-server on the
// Trillian engine (its value is the JSON of serverChild) instead of the
// benchmark, so that the server runs in a process of its own whose CPU can
// be read apart from the load generator's.
const childEnv = "UNDERSIGNED_BENCH_SERVER"

type serverChild struct {
	Dir, GRPC, HTTP, Origin, Trillian, Postgres string
	TreeID                                      int64
	// Profile, when set, is where the server writes a CPU profile.
	Profile string
}

func init() {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(serveChild(v))
	}
}

func serveChild(v string) int {
	var c serverChild
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.Profile != "" {
		if f, err := os.Create(c.Profile); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	err := server.Run(ctx, server.Config{
		DataDir: c.Dir, GRPCAddr: c.GRPC, HTTPAddr: c.HTTP, Origin: c.Origin, Logger: logger, Registry: reg,
		Engine: func(ctx context.Context, f *datadir.Folder) (server.Engine, error) {
			return trillianengine.Open(ctx, trillianengine.Config{
				Folder: f, Addr: c.Trillian, TreeID: c.TreeID, PostgresURI: c.Postgres, Logger: logger, Registry: reg,
			})
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		return 1
	}
	return 0
}

// trillianEnv is what up.sh started.
type trillianEnv struct {
	addr, postgres string
	// trillianPostgres is Trillian's own database.
	trillianPostgres string
	serverPID        int
	signerPID        int
	postmasterPID    int
	log              trillian.TrillianLogClient
	admin            trillian.TrillianAdminClient
}

func readTrillianEnv(dir string) (*trillianEnv, error) {
	if dir == "" {
		return nil, errors.New("--engine trillian needs --trillian-dir, the folder deploy/trillian/up.sh was given")
	}
	vars := map[string]string{}
	f, err := os.Open(filepath.Join(dir, "env"))
	if err != nil {
		return nil, fmt.Errorf("is Trillian up? %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	pid := func(path string) (int, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		first, _, _ := strings.Cut(string(b), "\n")
		return strconv.Atoi(strings.TrimSpace(first))
	}
	e := &trillianEnv{addr: vars["TRILLIAN_ADDR"], postgres: vars["POSTGRES_URI"], trillianPostgres: vars["TRILLIAN_POSTGRES_URI"]}
	if e.serverPID, err = pid(filepath.Join(dir, "run", "trillian_log_server.pid")); err != nil {
		return nil, err
	}
	if e.signerPID, err = pid(filepath.Join(dir, "run", "trillian_log_signer.pid")); err != nil {
		return nil, err
	}
	if e.postmasterPID, err = pid(filepath.Join(dir, "pg", "data", "postmaster.pid")); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	e.log, e.admin = trillian.NewTrillianLogClient(conn), trillian.NewTrillianAdminClient(conn)
	return e, nil
}

// deleteTree deletes a tree a run created: the signer visits every active
// tree at each of its runs, and the trees of earlier runs, left active,
// made it spend more per write in each later one.
func (e *trillianEnv) deleteTree(ctx context.Context, tree int64) {
	if _, err := e.admin.DeleteTree(context.WithoutCancel(ctx), &trillian.DeleteTreeRequest{TreeId: tree}); err != nil {
		fmt.Fprintln(os.Stderr, "bench: delete the tree of the run:", err)
	}
}

// clockTicks is the clock tick of /proc/PID/stat (USER_HZ).
const clockTicks = 100

// procStatCPU returns a process's CPU time: its own, and with reaped children
// (cutime and cstime) when children is set.
func procStatCPU(pid int, children bool) (time.Duration, int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
	ppid, _ := strconv.Atoi(f[1])
	var sum int64
	fields := []int{11, 12}
	if children {
		fields = append(fields, 13, 14)
	}
	for _, i := range fields {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		sum += v
	}
	return time.Duration(sum) * time.Second / clockTicks, ppid, nil
}

// postgresCPU is the CPU of the postmaster and every backend, live or
// reaped, and of it the CPU of the live backends of undersigned's own
// databases (PostgreSQL names a backend's database in its process title:
// "postgres: USER DATABASE HOST ACTIVITY").
func postgresCPU(postmaster int) (total, undersigned time.Duration) {
	total, _, _ = procStatCPU(postmaster, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		cpu, ppid, err := procStatCPU(pid, true)
		if err != nil || ppid != postmaster {
			continue
		}
		total += cpu
		title, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if f := strings.Fields(string(title)); len(f) >= 3 && strings.HasPrefix(f[2], "undersigned") {
			undersigned += cpu
		}
	}
	return total, undersigned
}

// cpuSample is the CPU of each process at one moment.
type cpuSample struct {
	undersigned, logServer, logSigner, postgres, postgresUndersigned time.Duration
	// loadGenerator is this process's.
	loadGenerator time.Duration
}

func (e *trillianEnv) sample(undersignedPID int) cpuSample {
	s := cpuSample{loadGenerator: cpuTime()}
	if undersignedPID != 0 {
		s.undersigned, _, _ = procStatCPU(undersignedPID, true)
	}
	s.logServer, _, _ = procStatCPU(e.serverPID, true)
	s.logSigner, _, _ = procStatCPU(e.signerPID, true)
	s.postgres, s.postgresUndersigned = postgresCPU(e.postmasterPID)
	return s
}

// trillianMeasurement is one timed run with the CPU per write of each
// process.
type trillianMeasurement struct {
	Name        string        `json:"name"`
	Ops         int64         `json:"ops"`
	Seconds     float64       `json:"seconds"`
	Rate        float64       `json:"rate"`
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	Errors      int64         `json:"errors"`
	Undersigned time.Duration `json:"undersigned_cpu_per_op_ns"`
	LogServer   time.Duration `json:"trillian_log_server_cpu_per_op_ns"`
	LogSigner   time.Duration `json:"trillian_log_signer_cpu_per_op_ns"`
	Postgres    time.Duration `json:"postgres_cpu_per_op_ns"`
	// PostgresUndersigned is the part of Postgres spent by the backends
	// of undersigned's own database.
	PostgresUndersigned time.Duration `json:"postgres_undersigned_db_cpu_per_op_ns"`
	// LoadGenerator is the benchmark's own process: the writers.
	LoadGenerator time.Duration `json:"load_generator_cpu_per_op_ns"`
	// Stages are the means of the server's stage histograms over the
	// window (undersigned only).
	Stages []stageMean `json:"stages,omitempty"`
}

// share is undersigned's CPU per write over that of Trillian and
// PostgreSQL: the measure of the goal.
func (m trillianMeasurement) share() float64 {
	below := m.LogServer + m.LogSigner + m.Postgres
	if below == 0 {
		return 0
	}
	return float64(m.Undersigned) / float64(below)
}

// strictShare counts PostgreSQL's work for undersigned's own database as
// undersigned's: (undersigned + its database) over (Trillian + the rest
// of PostgreSQL).
func (m trillianMeasurement) strictShare() float64 {
	below := m.LogServer + m.LogSigner + m.Postgres - m.PostgresUndersigned
	if below == 0 {
		return 0
	}
	return float64(m.Undersigned+m.PostgresUndersigned) / float64(below)
}

// driveMeasured runs op like drive, sampling the processes' CPU over the
// measured window.
// When metricsAddr is set, the server's stage histograms are read there
// before and after the window.
func driveMeasured(ctx context.Context, name string, o options, e *trillianEnv, pid int, metricsAddr string, op func(ctx context.Context, seq int64) error) trillianMeasurement {
	var before, after cpuSample
	var stagesBefore, stagesAfter histogramSums
	scrape := func(into *histogramSums) {
		if metricsAddr == "" {
			return
		}
		var err error
		if *into, err = scrapeStages(ctx, metricsAddr); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
	}
	r := runLoad(ctx, name, o, o.concurrency,
		func() { before = e.sample(pid); scrape(&stagesBefore) },
		func() { after = e.sample(pid); scrape(&stagesAfter) }, op)
	n := r.ops
	m := trillianMeasurement{Name: name, Ops: n, Seconds: r.elapsed.Seconds(), Rate: float64(n) / r.elapsed.Seconds(),
		P50: r.quantile(0.5), P99: r.quantile(0.99), Errors: r.errs, Stages: stageMeans(stagesBefore, stagesAfter)}
	if n > 0 {
		per := func(a, b time.Duration) time.Duration { return (b - a) / time.Duration(n) }
		m.Undersigned = per(before.undersigned, after.undersigned)
		m.LogServer = per(before.logServer, after.logServer)
		m.LogSigner = per(before.logSigner, after.logSigner)
		m.Postgres = per(before.postgres, after.postgres)
		m.PostgresUndersigned = per(before.postgresUndersigned, after.postgresUndersigned)
		m.LoadGenerator = per(before.loadGenerator, after.loadGenerator)
	}
	return m
}

// rootWatcher polls a tree's size and wakes those waiting for it to grow.
type rootWatcher struct {
	mu      sync.Mutex
	size    uint64
	changed chan struct{}
}

func watchRoot(ctx context.Context, lc trillian.TrillianLogClient, tree int64) *rootWatcher {
	w := &rootWatcher{changed: make(chan struct{})}
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			resp, err := lc.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: tree})
			if err != nil {
				continue
			}
			var root types.LogRootV1
			if root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()) != nil {
				continue
			}
			w.mu.Lock()
			if root.TreeSize > w.size {
				w.size = root.TreeSize
				close(w.changed)
				w.changed = make(chan struct{})
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// after waits for the tree to grow beyond size and returns its new size.
func (w *rootWatcher) after(ctx context.Context, size uint64) (uint64, error) {
	for {
		w.mu.Lock()
		s, ch := w.size, w.changed
		w.mu.Unlock()
		if s > size {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// benchRawTrillian measures raw Trillian: writers that only call
// QueueLeaf, each then waiting, through one poller of the signed root,
// until the tree is as large as the number of leaves queued when its own
// QueueLeaf returned. Leaves are integrated about in the order they were
// queued, so that this is the integration of its leaf, give or take a
// batch, and the rate is Trillian's and PostgreSQL's integration rate.
func benchRawTrillian(ctx context.Context, o options, e *trillianEnv, size int) (trillianMeasurement, error) {
	tree, err := trillianlog.CreateTree(ctx, e.admin, e.log, trillian.TreeType_LOG, "bench-raw")
	if err != nil {
		return trillianMeasurement{}, err
	}
	defer e.deleteTree(ctx, tree)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := watchRoot(wctx, e.log, tree)
	var queued atomic.Uint64
	return driveMeasured(ctx, "raw Trillian: QueueLeaf, integration seen in the signed root", o, e, 0, "", func(ctx context.Context, _ int64) error {
		data := make([]byte, size)
		rand.Read(data)
		id := sha256.Sum256(data)
		if _, err := e.log.QueueLeaf(ctx, &trillian.QueueLeafRequest{LogId: tree, Leaf: &trillian.LogLeaf{LeafValue: data, LeafIdentityHash: id[:]}}); err != nil {
			return err
		}
		_, err := w.after(ctx, queued.Add(1)-1)
		return err
	}), nil
}

// newDatabase creates a database beside the one of uri and returns its
// URI.
func newDatabase(ctx context.Context, uri, name string) (string, error) {
	c, err := pgx.Connect(ctx, uri)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// benchUndersignedTrillian measures gRPC Endorse with receipts against an
// undersigned-server process on the Trillian engine.
func benchUndersignedTrillian(ctx context.Context, o options, e *trillianEnv, dir string, run int) (trillianMeasurement, error) {
	tree, err := trillianlog.CreateTree(ctx, e.admin, e.log, trillian.TreeType_LOG, "bench-undersigned")
	if err != nil {
		return trillianMeasurement{}, err
	}
	defer e.deleteTree(ctx, tree)
	db, err := newDatabase(ctx, e.postgres, fmt.Sprintf("undersigned_bench_%d", run))
	if err != nil {
		return trillianMeasurement{}, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return trillianMeasurement{}, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return trillianMeasurement{}, err
	}
	cfg, _ := json.Marshal(serverChild{Dir: dir, GRPC: grpcAddr, HTTP: httpAddr, Origin: "bench.example/undersigned",
		Trillian: e.addr, Postgres: db, TreeID: tree, Profile: o.cpuProfile})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return trillianMeasurement{}, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	cl, token, err := dialChild(ctx, grpcAddr, dir)
	if err != nil {
		return trillianMeasurement{}, err
	}
	defer cl.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "bench", Title: "Bench", Text: "Text.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		return trillianMeasurement{}, err
	}
	// The endorsements are made before the run, all of them, so that the
	// load generator spends little CPU while it is measured (a generator
	// running beside the writers signed each endorsement on the cores
	// the server and Trillian were measured on); more are made on demand.
	expected := int(4000 * (o.warmup + o.duration).Seconds())
	pool := newEndorsements(cl.Origin(), l, key, min(expected, 200_000))
	// A connection carries at most 512 calls at once (the server's
	// MaxStreamsPerConnection): one connection per 256 writers.
	conns := []*client.Client{cl}
	for len(conns)*256 < o.concurrency {
		c, err := client.Dial(ctx, client.Config{Addr: grpcAddr, Token: token, KnownLogs: filepath.Join(dir, "known_logs")})
		if err != nil {
			return trillianMeasurement{}, err
		}
		defer c.Close()
		conns = append(conns, c)
	}
	actx, stopAnalyze := context.WithCancel(ctx)
	defer stopAnalyze()
	go analyzeInWarmup(actx, o, e.trillianPostgres, db)
	return driveMeasured(ctx, "undersigned on Trillian: Endorse over gRPC, receipt returned", o, e, cmd.Process.Pid, httpAddr, func(ctx context.Context, seq int64) error {
		en := pool.get()
		c := conns[int(seq)%len(conns)]
		_, err := c.API().Endorse(c.Context(ctx), &pb.EndorseRequest{Endorsement: en.Endorsement, Disclosure: en.Disclosure})
		return err
	}), nil
}

// dialChild waits for the server child in dir to answer on grpcAddr and
// returns a client with its first token.
func dialChild(ctx context.Context, grpcAddr, dir string) (*client.Client, string, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		tok, err := os.ReadFile(filepath.Join(dir, datadir.TokenFile))
		if err == nil {
			token := strings.TrimSpace(string(tok))
			dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var cl *client.Client
			cl, err = client.Dial(dctx, client.Config{Addr: grpcAddr, Token: token, KnownLogs: filepath.Join(dir, "known_logs")})
			cancel()
			if err == nil {
				return cl, token, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("the server did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// analyzeInWarmup analyzes Trillian's leaf tables and undersigned's
// database half-way through the warm-up. A new tree in a database that
// holds the leaves of earlier runs' trees is one PostgreSQL's statistics do
// not know until autovacuum analyzes the leaf tables again (after 10% of
// them changed): until then it may read a range of the new tree's leaves
// by a plan that visits the whole tree, seconds per GetLeavesByRange.
// undersigned's new database was never analyzed either (its admission's
// plans no longer depend on it: see pgstore's Prefetch). A log that lives
// is in the statistics; so that each run measures that, both are analyzed
// once they hold entries.
func analyzeInWarmup(ctx context.Context, o options, trillianDB, undersignedDB string) {
	select {
	case <-time.After(o.warmup / 2):
	case <-ctx.Done():
		return
	}
	if err := analyze(ctx, trillianDB, "leafdata, sequencedleafdata"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: analyze Trillian's leaf tables:", err)
	}
	if err := analyze(ctx, undersignedDB, ""); err != nil {
		fmt.Fprintln(os.Stderr, "bench: analyze undersigned's database:", err)
	}
}

// analyze updates PostgreSQL's statistics of the tables of the database
// at uri (all of them when tables is empty).
func analyze(ctx context.Context, uri, tables string) error {
	if uri == "" {
		return errors.New("no database (is TRILLIAN_POSTGRES_URI in the env file?)")
	}
	c, err := pgx.Connect(ctx, uri)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, strings.TrimSpace("ANALYZE "+tables))
	return err
}

func medianOf(ms []trillianMeasurement) trillianMeasurement {
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b trillianMeasurement) int {
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

// runTrillian runs the Trillian benchmark.
func runTrillian(ctx context.Context, o options) error {
	e, err := readTrillianEnv(o.trillianDir)
	if err != nil {
		return err
	}
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
	fmt.Fprintf(os.Stderr, "machine: %d CPUs; Trillian at %s; concurrency %d, %v per run, %d runs, entries of %d bytes\n",
		runtime.NumCPU(), e.addr, o.concurrency, o.duration, o.runs, size)
	var raw, full []trillianMeasurement
	for i := range o.runs {
		m, err := benchRawTrillian(ctx, o, e, size)
		if err != nil {
			return fmt.Errorf("raw Trillian: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: raw Trillian %.0f/s\n", i+1, m.Rate)
		raw = append(raw, m)
		m, err = benchUndersignedTrillian(ctx, o, e, filepath.Join(o.dir, fmt.Sprintf("server-%d", i)), i)
		if err != nil {
			return fmt.Errorf("undersigned on Trillian: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: undersigned on Trillian %.0f/s, its CPU %.0f%% of Trillian's and PostgreSQL's (%.0f%% counting its database as its own)\n",
			i+1, m.Rate, 100*m.share(), 100*m.strictShare())
		fmt.Fprintf(os.Stderr, "run %d: the server's stages (means over the window):\n%s", i+1, formatStages(m.Stages))
		full = append(full, m)
	}
	mr, mf := medianOf(raw), medianOf(full)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "measure\tconcurrency\tops/s (median)\tp50\tp99\tCPU/op undersigned\ttrillian_log_server\ttrillian_log_signer\tpostgres\t(of which undersigned's db)\tload generator\terrors\t")
	for _, m := range []trillianMeasurement{mr, mf} {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\t%d\t\n", m.Name, o.concurrency, m.Rate,
			m.P50.Round(time.Millisecond), m.P99.Round(time.Millisecond),
			m.Undersigned.Round(time.Microsecond), m.LogServer.Round(time.Microsecond), m.LogSigner.Round(time.Microsecond),
			m.Postgres.Round(time.Microsecond), m.PostgresUndersigned.Round(time.Microsecond), m.LoadGenerator.Round(time.Microsecond), m.Errors)
	}
	w.Flush()
	fmt.Printf("ratio %.2f (undersigned over raw Trillian, writes per second)\n", mf.Rate/mr.Rate)
	fmt.Printf("cpu share %.2f (undersigned's CPU per endorsement over Trillian's and PostgreSQL's)\n", mf.share())
	fmt.Printf("strict cpu share %.2f (undersigned's CPU and its database's over Trillian's and the rest of PostgreSQL's)\n", mf.strictShare())
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{
			"engine": "trillian", "concurrency": o.concurrency, "duration_s": o.duration.Seconds(), "runs": o.runs, "cpus": runtime.NumCPU(),
			"raw_trillian": raw, "undersigned": full, "median_raw": mr, "median_undersigned": mf,
			"ratio": mf.Rate / mr.Rate, "cpu_share": mf.share(), "strict_cpu_share": mf.strictShare(),
		}, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

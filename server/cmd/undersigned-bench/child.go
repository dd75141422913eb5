package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/policy"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded"
	"github.com/undersigned/undersigned/server/internal/witnessing"
)

// benchOrigin is the origin of the logs the benchmark writes to.
const benchOrigin = "bench.example/undersigned"

// childCommand runs the server inside this binary, so that the benchmark
// can measure its CPU and memory apart from the load generator's.
const childCommand = "serve-child"

func runChild(args []string) error {
	fs := flag.NewFlagSet(childCommand, flag.ContinueOnError)
	var cfg server.Config
	var ec embedded.Config
	fs.StringVar(&cfg.DataDir, "data", "", "")
	fs.StringVar(&cfg.GRPCAddr, "grpc", "", "")
	fs.StringVar(&cfg.HTTPAddr, "http", "", "")
	fs.StringVar(&cfg.Origin, "origin", "", "")
	fs.UintVar(&ec.BatchMaxSize, "batch-size", 0, "")
	fs.DurationVar(&ec.BatchMaxAge, "batch-age", 0, "")
	fs.DurationVar(&ec.CheckpointInterval, "checkpoint-interval", 0, "")
	fs.IntVar(&cfg.MaxInflightWrites, "max-inflight-writes", 0, "")
	fs.Float64Var(&cfg.ReadRate.PerAddress, "read-rate", 0, "")
	fs.IntVar(&cfg.ReadRate.AddressBurst, "read-burst", 0, "")
	profile := fs.String("cpuprofile", "", "profile the CPU into this file between SIGUSR1 and SIGUSR2, and write the heap's profile at each signal into FILE.heap0 and FILE.heap")
	witnessPolicy := fs.String("witness-policy", "", "a witness policy: checkpoints cosigned by its quorum")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *witnessPolicy != "" {
		b, err := os.ReadFile(*witnessPolicy)
		if err != nil {
			return err
		}
		p, err := policy.Parse(b)
		if err != nil {
			return err
		}
		cfg.WitnessPolicy = p
		ec.Witnesses = &witnessing.LogConfig{Witnesses: witnessing.Config{Policy: p}}
	}
	if *profile != "" {
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
		go func() {
			var f *os.File
			for s := range sigs {
				switch {
				case s == syscall.SIGUSR1 && f == nil:
					writeHeapProfile(*profile + ".heap0")
					if f, _ = os.Create(*profile); f != nil {
						pprof.StartCPUProfile(f)
					}
				case s == syscall.SIGUSR2 && f != nil:
					pprof.StopCPUProfile()
					f.Close()
					f = nil
					writeHeapProfile(*profile + ".heap")
				}
			}
		}()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	klog.SetSlogLogger(cfg.Logger.With(slog.String("component", "tessera")))
	ec.Logger = cfg.Logger
	if ec.Witnesses != nil {
		ec.Witnesses.Witnesses.Logger = cfg.Logger
	}
	cfg.Engine = func(ctx context.Context, f *datadir.Folder) (server.Engine, error) {
		ec.Folder = f
		return embedded.Open(ctx, ec)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return server.Run(ctx, cfg)
}

// writeHeapProfile writes the heap's profile: what is live at the last
// collection, and what was allocated since the start (pprof's -base with
// the profile of the first signal gives what was allocated between them).
func writeHeapProfile(name string) {
	f, err := os.Create(name)
	if err != nil {
		return
	}
	defer f.Close()
	pprof.Lookup("heap").WriteTo(f, 0)
}

// child is a server process.
type child struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	token    string
	dir      string
	done     chan error

	// The letter the benchmark endorses, and its organiser key.
	letter *pb.Letter
	key    ed25519.PrivateKey
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startChild starts a server on dir and waits until it answers. extra are
// more flags for the child.
func startChild(ctx context.Context, o options, dir string, extra ...string) (*child, error) {
	g, err := freeAddr()
	if err != nil {
		return nil, err
	}
	h, err := freeAddr()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append([]string{childCommand, "--data", dir, "--grpc", g, "--http", h, "--origin", benchOrigin,
		"--batch-size", fmt.Sprint(o.batchSize), "--batch-age", o.batchAge.String(),
		"--checkpoint-interval", o.checkpointInterval.String(),
		// Room for every writer: the benchmark measures throughput, not
		// pushback.
		"--max-inflight-writes", fmt.Sprint(2 * max(o.concurrency, 1024))}, extra...)
	c := &child{cmd: exec.Command(self, args...), grpcAddr: g, httpAddr: h, dir: dir, done: make(chan error, 1)}
	logf, err := os.Create(filepath.Join(filepath.Dir(dir), filepath.Base(dir)+".log"))
	if err != nil {
		return nil, err
	}
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { c.done <- c.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		tok, err := os.ReadFile(filepath.Join(dir, datadir.TokenFile))
		if err == nil {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			cl, err := client.Dial(dctx, client.Config{Addr: g})
			cancel()
			if err == nil {
				cl.Close()
				c.token = strings.TrimSpace(string(tok))
				return c, nil
			}
		}
		select {
		case err := <-c.done:
			return nil, fmt.Errorf("the server exited: %v (see %s)", err, logf.Name())
		default:
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, errors.New("the server did not answer")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop stops the server gracefully and waits for it.
func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		return err
	case <-time.After(2 * time.Minute):
		c.cmd.Process.Kill()
		return errors.New("the server did not stop")
	}
}

// procStat reads a process's CPU time from /proc.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// procRSS reads a process's resident memory from /proc, in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// profile starts (on) or stops the child's CPU profile, if it has one.
func (c *child) profile(on bool) {
	if on {
		c.cmd.Process.Signal(syscall.SIGUSR1)
	} else {
		c.cmd.Process.Signal(syscall.SIGUSR2)
	}
}

func (c *child) cpu() time.Duration {
	d, _ := procCPU(c.cmd.Process.Pid)
	return d
}

func (c *child) rss() int64 {
	n, _ := procRSS(c.cmd.Process.Pid)
	return n
}

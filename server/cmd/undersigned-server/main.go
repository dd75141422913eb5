// Command undersigned-server runs the undersigned ledger.
//
// Usage:
//
//	undersigned-server [serve] [flags]      serve the ledger (the default)
//	undersigned-server token create|list|revoke [flags]
//	undersigned-server fsck --data DIR      check a stopped data folder in full
//	undersigned-server backup --data DIR --out DIR2   a consistent copy, while serving
//	undersigned-server restore --from DIR2 --data DIR  a new data folder from a copy
//	undersigned-server migrate --from DIR --data DIR2 --trillian ADDR --postgres URI
//	                                        an embedded log into a new Trillian tree
//
// On first start, serve creates in the data folder the log key (log.key),
// the verifier key operators publish (log.pub), the secrets, and a first
// organiser token written once to organiser.token (mode 0600).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/klog/v2"

	"github.com/undersigned/undersigned/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // the flag set printed its help
		}
		fmt.Fprintln(os.Stderr, "undersigned-server:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// subcommands are the server's commands, for help.
var subcommands = []struct{ name, does string }{
	{"serve", "serve the ledger (the default): --data DIR --grpc ADDR --http ADDR [--origin O], TLS and Trillian flags"},
	{"token", "create, list or revoke organiser tokens: token create|list|revoke --data DIR"},
	{"fsck", "check a stopped data folder in full: every entry, tile, checkpoint, record and disclosure"},
	{"backup", "copy a data folder consistently while it serves: backup --data DIR --out COPY"},
	{"restore", "restore a copy, re-applying the log's redactions: restore --from COPY --data NEW"},
	{"migrate", "move an embedded log to a new Trillian tree under the same origin and key"},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: undersigned-server [COMMAND] [flags]")
	fmt.Fprintln(w)
	for _, c := range subcommands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.does)
	}
	fmt.Fprintln(w, "\n\"undersigned-server COMMAND -h\" (or \"undersigned-server help COMMAND\") lists a command's flags.")
}

func run(args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		if len(args) == 1 {
			usage(os.Stdout)
			return nil
		}
		return run([]string{args[1], "-h"})
	}
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args)
	case "token":
		return token(args)
	case "fsck":
		return fsck(args)
	case "backup":
		return backup(args)
	case "restore":
		return restore(args)
	case "migrate":
		return migrateCommand(args)
	}
	return usageError{fmt.Errorf("unknown command %q (want serve, token, fsck, backup, restore or migrate)", cmd)}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg server.Config
	fs.StringVar(&cfg.DataDir, "data", "undersigned-data", "the data folder")
	fs.StringVar(&cfg.GRPCAddr, "grpc", "127.0.0.1:7420", "the gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:7421", "the HTTP listen address (tlog-tiles under /log/, /metrics)")
	fs.StringVar(&cfg.Origin, "origin", "", "the log's origin, fixed at first start (default localhost/undersigned/<random>)")
	fs.UintVar(&cfg.BatchMaxSize, "batch-size", 1024, "the most entries Tessera sequences at once")
	fs.DurationVar(&cfg.BatchMaxAge, "batch-age", 50*time.Millisecond, "the longest an entry waits for its batch")
	fs.DurationVar(&cfg.CheckpointInterval, "checkpoint-interval", 100*time.Millisecond, "how often a checkpoint is published while the log grows")
	fs.Float64Var(&cfg.OpenRate.PerAddress, "open-rate", 1, "writes per second per address that need no token")
	fs.Float64Var(&cfg.OpenRate.PerLetter, "open-rate-letter", 50, "writes per second per letter that need no token")
	maxStreams := fs.Uint("max-streams-per-connection", 512, "calls one connection may have open at once")
	fs.IntVar(&cfg.MaxInflightWrites, "max-inflight-writes", 4096, "writes in progress at once; more are refused with a retry hint (ResourceExhausted)")
	fs.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "serve both ports with TLS: the certificate chain (PEM)")
	fs.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "with --tls-cert: the private key (PEM)")
	fs.StringVar(&cfg.TLS.ClientCAFile, "tls-client-ca", "", "verify client certificates against this CA bundle (PEM): mutual TLS for organisers")
	fs.BoolVar(&cfg.TLS.RequireClientCertForTokens, "require-client-cert", false, "with --tls-client-ca: accept a token only with a verified client certificate")
	debugAddr := fs.String("debug-addr", "", "serve Go's profiles (net/http/pprof) on this address, for operators; off by default")
	verbose := fs.Bool("v", false, "log debug messages")
	tf := addTrillianFlags(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	var err error
	if cfg.Trillian, err = tf.config(); err != nil {
		return usageError{err}
	}
	cfg.MaxStreamsPerConnection = uint32(*maxStreams)
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(logger.With(slog.String("component", "tessera")))
	cfg.Logger = logger
	cfg.AfterAdmit = killSwitch()
	if *debugAddr != "" {
		go func() {
			logger.Info("serving profiles", slog.String("debug", *debugAddr))
			if err := http.ListenAndServe(*debugAddr, nil); err != nil {
				logger.Error("profiles", slog.Any("error", err))
			}
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return server.Run(ctx, cfg)
}

// killSwitch returns, when UNDERSIGNED_TEST_KILL_AFTER_ADMIT=N is set, a
// hook that kills the process with SIGKILL after the Nth admitted batch,
// between the intent and the append. Crash tests use it; nothing else
// should.
func killSwitch() func() {
	v := os.Getenv("UNDERSIGNED_TEST_KILL_AFTER_ADMIT")
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return nil
	}
	var count atomic.Int64
	return func() {
		if count.Add(1) == int64(n) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}

func token(args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("token: want create, list or revoke")}
	}
	sub, args := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "-help" {
		sub, args = "create|list|revoke", []string{"-h"}
	}
	fs := flag.NewFlagSet("token "+sub, flag.ContinueOnError)
	data := fs.String("data", "undersigned-data", "the data folder")
	name := fs.String("name", "", "create: a name to recognise the token by")
	letters := fs.String("letters", "", "create: comma-separated letter ids the token may write to (default: all)")
	postgres := fs.String("postgres", "", "the Trillian engine's PostgreSQL database, which holds its tokens")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	ctx := context.Background()
	ts, closeTokens, err := openTokens(ctx, *data, *postgres)
	if err != nil {
		return err
	}
	defer closeTokens()
	switch sub {
	case "create":
		var ls []string
		if *letters != "" {
			ls = strings.Split(*letters, ",")
		}
		tok, t, err := server.NewToken(ctx, ts, *name, ls)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "created token %s; it is shown once:\n", t.ID)
		fmt.Println(tok)
	case "list":
		all, err := ts.List(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tLETTERS\tCREATED\tREVOKED")
		for _, t := range all {
			revoked := "-"
			if t.Revoked != 0 {
				revoked = time.Unix(t.Revoked, 0).UTC().Format(time.RFC3339)
			}
			letters := strings.Join(t.Letters, ",")
			if letters == "" {
				letters = "*"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, letters, time.Unix(t.Created, 0).UTC().Format(time.RFC3339), revoked)
		}
		w.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return usageError{errors.New("token revoke: want one token id")}
		}
		ok, err := ts.Revoke(ctx, fs.Arg(0), time.Now().Unix())
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no unrevoked token %q", fs.Arg(0))
		}
		fmt.Fprintf(os.Stderr, "revoked token %s\n", fs.Arg(0))
	default:
		return usageError{fmt.Errorf("token: unknown command %q", sub)}
	}
	return nil
}

// fsck checks a stopped data folder in full; exit 1 when it finds a
// problem.
func fsck(args []string) error {
	fs := flag.NewFlagSet("fsck", flag.ContinueOnError)
	data := fs.String("data", "undersigned-data", "the data folder (the server must be stopped)")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	n, err := server.Fsck(context.Background(), *data, os.Stdout)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d problems found", n)
	}
	return nil
}

// backup copies a data folder, while it may be served.
func backup(args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	data := fs.String("data", "undersigned-data", "the data folder")
	out := fs.String("out", "", "the new folder for the copy")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *out == "" {
		return usageError{errors.New("backup: --out is required")}
	}
	if err := server.Backup(context.Background(), *data, *out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "backed up %s to %s\n", *data, *out)
	return nil
}

// restore makes a new data folder from a copy.
func restore(args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	from := fs.String("from", "", "the copy made by backup")
	data := fs.String("data", "undersigned-data", "the new data folder")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *from == "" {
		return usageError{errors.New("restore: --from is required")}
	}
	n, err := server.Restore(context.Background(), *from, *data)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "restored %s into %s; %d redacted disclosures deleted again; the server appends the admitted writes the copy's log lacks when it starts\n", *from, *data, n)
	return nil
}

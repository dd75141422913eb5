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
//	undersigned-server unmigrate --data DIR --tree-id N
//	                                        serve a migrated (retired) folder again
//	undersigned-server recover --data DIR --trillian ADDR --tree-id N --postgres URI [--receipts DIR]
//	                                        a Trillian log back to what its key signed, after a restore
//	undersigned-server create-tree --trillian ADDR [--trillian-tls-ca FILE]
//	undersigned-server health [--url http://127.0.0.1:7421/healthz]
//
// On first start, serve creates in the data folder the log key (log.key),
// the verifier key operators publish (log.pub), the secrets, and a first
// organiser token written once to organiser.token (mode 0600).
//
// The program picks the engine and hands it to the service (package
// server): the embedded engine (package embedded) by default, a Trillian
// tree (package trillian) with --trillian, --tree-id and --postgres.
// With --witness-policy FILE either engine publishes only checkpoints that
// the policy's witnesses cosigned (package witnessing).
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
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian"
	"github.com/undersigned/undersigned/server/internal/witnessing"
)

func main() {
	os.Exit(runMain(nil))
}

// runMain runs the command line until SIGINT or SIGTERM, prints its error
// and returns the exit code: 2 for a usage error, 1 for any other. wrap,
// when set, wraps the engine the server is given: a test seam (see
// servertest.RunChild), nil in production.
func runMain(wrap func(server.Engine) server.Engine) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], wrap)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0 // with flag.ErrHelp, the flag set printed its help
	}
	fmt.Fprintln(os.Stderr, "undersigned-server:", err)
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

// subcommands are the server's commands, for help.
var subcommands = []struct{ name, does string }{
	{"serve", "serve the ledger (the default): --data DIR --grpc ADDR --http ADDR [--origin O] [--witness-policy FILE], TLS and Trillian flags"},
	{"token", "create, list or revoke organiser tokens: token create|list|revoke --data DIR"},
	{"fsck", "check a stopped data folder in full: every entry, tile, checkpoint, record and disclosure"},
	{"backup", "copy a data folder consistently while it serves: backup --data DIR --out COPY"},
	{"restore", "restore a copy, re-applying the log's redactions: restore --from COPY --data NEW"},
	{"migrate", "move an embedded log to a new Trillian tree under the same origin and key; retires the old folder"},
	{"unmigrate", "undo the retirement of a migrated folder, abandoning the migration: unmigrate --data DIR --tree-id N"},
	{"recover", "bring a Trillian log back to the checkpoint its key signed, after a restore of its databases"},
	{"create-tree", "create a Trillian LOG tree, over TLS if asked, and print its id"},
	{"health", "exit 0 when a running server's /healthz answers 200 (a health check for images without a shell)"},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: undersigned-server [COMMAND] [flags]")
	fmt.Fprintln(w)
	for _, c := range subcommands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.does)
	}
	fmt.Fprintln(w, "\n\"undersigned-server COMMAND -h\" (or \"undersigned-server help COMMAND\") lists a command's flags.")
}

// run runs one command of the program.
func run(ctx context.Context, args []string, wrap func(server.Engine) server.Engine) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help") {
		if len(args) == 1 {
			usage(os.Stdout)
			return nil
		}
		return run(ctx, []string{args[1], "-h"}, wrap)
	}
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseServe(args)
		if err != nil {
			return err
		}
		cfg.wrapEngine = wrap
		return cfg.run(ctx)
	case "token":
		return token(ctx, args)
	case "fsck":
		return fsck(ctx, args)
	case "backup":
		return backup(ctx, args)
	case "restore":
		return restore(ctx, args)
	case "migrate":
		return migrateCommand(ctx, args)
	case "unmigrate":
		return unmigrateCommand(args)
	case "recover":
		return recoverCommand(ctx, args)
	case "create-tree":
		return createTree(ctx, args)
	case "health":
		return health(ctx, args)
	}
	return usageError{fmt.Errorf("unknown command %q (want serve, token, fsck, backup, restore, migrate, unmigrate, recover, create-tree or health)", cmd)}
}

// Config is the configuration of `undersigned-server serve`, from its
// flags.
type Config struct {
	// Server configures the service. Its Engine, Logger and Registry are
	// set by run.
	Server server.Config
	// Embedded tunes the embedded engine, the default. Its Folder and
	// Logger are set when it opens.
	Embedded embedded.Config
	// Trillian, when its Addr is set, serves the log as a Trillian
	// personality instead (--trillian, --tree-id, --postgres).
	Trillian trillian.Config
	// Witnesses, when set (--witness-policy, --witness-timeout), has
	// every checkpoint cosigned by the policy's witnesses before it is
	// published, on either engine. Its Logger and Registerer are set by
	// run.
	Witnesses *witnessing.LogConfig

	// NewTree starts a new Trillian tree under a key that signed another
	// log, renaming the key to the new origin (--new-tree, with --origin).
	NewTree bool
	// DebugAddr, when set, serves Go's profiles (net/http/pprof) there.
	DebugAddr string
	// Verbose logs debug messages.
	Verbose bool

	// wrapEngine, when set, wraps the engine: a test seam, which no flag
	// reaches.
	wrapEngine func(server.Engine) server.Engine
}

// parseServe turns the flags of serve into a Config.
func parseServe(args []string) (*Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg := &Config{}
	sc, ec, tc := &cfg.Server, &cfg.Embedded, &cfg.Trillian
	fs.StringVar(&sc.DataDir, "data", "undersigned-data", "the data folder")
	fs.StringVar(&sc.GRPCAddr, "grpc", "127.0.0.1:7420", "the gRPC listen address")
	fs.StringVar(&sc.HTTPAddr, "http", "127.0.0.1:7421", "the HTTP listen address (tlog-tiles under /log/, /metrics)")
	fs.StringVar(&sc.Origin, "origin", "", "the log's origin, fixed at first start (default localhost/undersigned/<random>)")
	fs.UintVar(&ec.BatchMaxSize, "batch-size", 1024, "the most entries Tessera sequences at once")
	fs.DurationVar(&ec.BatchMaxAge, "batch-age", 50*time.Millisecond, "the longest an entry waits for its batch")
	fs.DurationVar(&ec.CheckpointInterval, "checkpoint-interval", 100*time.Millisecond, "how often a checkpoint is published while the log grows")
	fs.Float64Var(&sc.OpenRate.PerAddress, "open-rate", 1, "endorsements of open letters without a token, per second per address")
	fs.Float64Var(&sc.OpenRate.PerLetter, "open-rate-letter", 50, "endorsements of open letters without a token, per second per letter (all frontends)")
	fs.Float64Var(&sc.SignerRate.PerAddress, "signer-rate", 1, "withdrawals and redactions by signers (no token), per second per address; buckets apart from --open-rate's")
	fs.Float64Var(&sc.SignerRate.PerLetter, "signer-rate-letter", 50, "withdrawals and redactions by signers (no token), per second per letter (all frontends)")
	fs.Float64Var(&sc.ReadRate.PerAddress, "read-rate", 500, "gRPC reads without a token, per second per address")
	fs.IntVar(&sc.ReadRate.AddressBurst, "read-burst", 5000, "gRPC reads without a token an address may make at once before --read-rate applies")
	fs.IntVar(&sc.MaxInflightReads, "max-inflight-reads", 512, "gRPC reads without a token in progress at once; more are refused with a retry hint (ResourceExhausted)")
	maxStreams := fs.Uint("max-streams-per-connection", 512, "calls one connection may have open at once")
	fs.DurationVar(&sc.MaxConnectionAge, "max-connection-age", time.Hour, "how long a gRPC connection may live before its client is asked to reconnect (calls still open get 10 more minutes)")
	fs.IntVar(&sc.MaxInflightWrites, "max-inflight-writes", 4096, "writes in progress at once; more are refused with a retry hint (ResourceExhausted)")
	cc := &sc.Connections
	fs.IntVar(&cc.PerAddress, "max-connections-per-address", 512, "connections one client address may have open to each port; more are closed as they are accepted")
	fs.IntVar(&cc.Max, "max-connections", 8192, "connections open to each port from all addresses; more are closed as they are accepted")
	fs.DurationVar(&cc.IdleTimeout, "idle-timeout", 2*time.Minute, "close a connection with nothing in progress for this long (HTTP keep-alive, gRPC without calls)")
	fs.DurationVar(&cc.HandshakeTimeout, "handshake-timeout", 10*time.Second, "close a connection that has not sent its first request (HTTP headers; gRPC TLS and preface) within this long")
	fs.DurationVar(&cc.ReadTimeout, "http-read-timeout", 30*time.Second, "the longest the reading of an HTTP request may take, its body included")
	fs.DurationVar(&cc.WriteTimeout, "http-write-timeout", 5*time.Minute, "the longest the writing of an HTTP response may take")
	fs.IntVar(&cc.MaxHeaderBytes, "max-header-bytes", 64<<10, "the largest HTTP request headers and gRPC header list, in bytes")
	fs.StringVar(&sc.TLS.CertFile, "tls-cert", "", "serve both ports with TLS: the certificate chain (PEM)")
	fs.StringVar(&sc.TLS.KeyFile, "tls-key", "", "with --tls-cert: the private key (PEM)")
	fs.StringVar(&sc.TLS.ClientCAFile, "tls-client-ca", "", "verify client certificates against this CA bundle (PEM): mutual TLS for organisers")
	fs.BoolVar(&sc.TLS.RequireClientCertForTokens, "require-client-cert", false, "with --tls-client-ca: accept a token only with a verified client certificate")
	registerTrillian(fs, tc)
	fs.StringVar(&tc.StateDir, "state", "", "Trillian engine: this frontend's own writable folder for what a restore of the databases must not roll back, the last checkpoint the key signed (default the data folder)")
	fs.BoolVar(&cfg.NewTree, "new-tree", false, "Trillian engine: sign a new tree with a key that signed another log, under a new --origin (the key is renamed)")
	witnessPolicy := fs.String("witness-policy", "", "a C2SP tlog-policy file: publish, serve and put into receipts only checkpoints cosigned by its quorum of witnesses")
	witnessWait := fs.Duration("witness-timeout", witnessing.DefaultWait, "with --witness-policy: how long a write waits for its checkpoint's cosignatures before it fails with Unavailable")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve Go's profiles (net/http/pprof) on this address, for operators; off by default")
	fs.BoolVar(&cfg.Verbose, "v", false, "log debug messages")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return nil, err
	}
	sc.MaxStreamsPerConnection = uint32(*maxStreams)
	switch {
	case tc.Addr == "" && (tc.TreeID != 0 || tc.PostgresURI != ""):
		return nil, usageError{errors.New("--tree-id and --postgres go with --trillian")}
	case tc.Addr != "" && (tc.TreeID == 0 || tc.PostgresURI == ""):
		return nil, usageError{errors.New("--trillian needs --tree-id and --postgres")}
	case tc.Addr == "" && (tc.StateDir != "" || cfg.NewTree):
		return nil, usageError{errors.New("--state and --new-tree go with --trillian")}
	case cfg.NewTree && sc.Origin == "":
		return nil, usageError{errors.New("--new-tree needs the new log's --origin")}
	case *witnessWait <= 0:
		return nil, usageError{errors.New("--witness-timeout must be positive")}
	}
	if *witnessPolicy != "" {
		p, err := readPolicy(*witnessPolicy)
		if err != nil {
			return nil, err
		}
		cfg.Witnesses = &witnessing.LogConfig{Witnesses: witnessing.Config{Policy: p}, Wait: *witnessWait}
	}
	return cfg, nil
}

// readPolicy reads and parses a witness policy file.
func readPolicy(path string) (*policy.Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--witness-policy: %w", err)
	}
	p, err := policy.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("--witness-policy %s: %w", path, err)
	}
	return p, nil
}

// run serves the ledger until ctx is done.
func (c *Config) run(ctx context.Context) error {
	level := slog.LevelInfo
	if c.Verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	klog.SetSlogLogger(logger.With(slog.String("component", "tessera")))
	reg := prometheus.NewRegistry()
	sc := c.Server
	if c.NewTree {
		if err := trillian.StartNewTree(sc.DataDir, c.Trillian.StateDir, sc.Origin, c.Trillian.TreeID); err != nil {
			return err
		}
		logger.Warn("the log's key now signs a new tree under a new origin: publish the new log.pub", slog.String("origin", sc.Origin),
			slog.Int64("tree_id", c.Trillian.TreeID))
	}
	sc.Logger, sc.Registry, sc.Engine = logger, reg, c.openEngine(logger, reg)
	if c.Witnesses != nil {
		sc.WitnessPolicy = c.Witnesses.Witnesses.Policy
	}
	if c.DebugAddr != "" {
		go func() {
			logger.Info("serving profiles", slog.String("debug", c.DebugAddr))
			if err := http.ListenAndServe(c.DebugAddr, nil); err != nil {
				logger.Error("profiles", slog.Any("error", err))
			}
		}()
	}
	return server.Run(ctx, sc)
}

// openEngine returns the function that opens the engine the configuration
// names on the data folder: Trillian when --trillian is given, else the
// embedded engine.
func (c *Config) openEngine(logger *slog.Logger, reg prometheus.Registerer) server.OpenEngine {
	var witnesses *witnessing.LogConfig
	if c.Witnesses != nil {
		w := *c.Witnesses
		w.Witnesses.Logger, w.Witnesses.Registerer = logger.With(slog.String("component", "witnessing")), reg
		witnesses = &w
	}
	return func(ctx context.Context, f *datadir.Folder) (server.Engine, error) {
		var e server.Engine
		if c.Trillian.Addr != "" {
			tc := c.Trillian
			tc.Folder, tc.Logger, tc.Registry, tc.Witnesses = f, logger, reg, witnesses
			te, err := trillian.Open(ctx, tc)
			if err != nil {
				return nil, err
			}
			e = te
		} else {
			ec := c.Embedded
			ec.Folder, ec.Logger, ec.Witnesses = f, logger, witnesses
			ee, err := embedded.Open(ctx, ec)
			if err != nil {
				return nil, err
			}
			e = ee
		}
		if c.wrapEngine != nil {
			e = c.wrapEngine(e)
		}
		return e, nil
	}
}

func token(ctx context.Context, args []string) error {
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
	want := 0
	if sub == "revoke" {
		want = 1
	}
	positional, err := parseFlags(fs, args, want)
	if err != nil {
		return err
	}
	switch {
	case sub != "create" && sub != "list" && sub != "revoke":
		return usageError{fmt.Errorf("token: unknown command %q (want create, list or revoke)", sub)}
	case sub == "revoke" && len(positional) != 1:
		return usageError{errors.New("token revoke: want one token id")}
	}
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
		tok, t, err := ledger.NewToken(ctx, ts, *name, ls)
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
		ok, err := ts.Revoke(ctx, positional[0], time.Now().Unix())
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no unrevoked token %q", positional[0])
		}
		fmt.Fprintf(os.Stderr, "revoked token %s\n", positional[0])
	}
	return nil
}

// fsck checks a stopped data folder of the embedded engine in full; exit
// 1 when it finds a problem.
func fsck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fsck", flag.ContinueOnError)
	data := fs.String("data", "undersigned-data", "the data folder (the server must be stopped)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	n, err := embedded.Fsck(ctx, *data, os.Stdout)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d problems found", n)
	}
	return nil
}

// backup copies a data folder, while it may be served.
func backup(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	data := fs.String("data", "undersigned-data", "the data folder")
	out := fs.String("out", "", "the new folder for the copy")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *out == "" {
		return usageError{errors.New("backup: --out is required")}
	}
	if err := embedded.Backup(ctx, *data, *out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "backed up %s to %s\n", *data, *out)
	return nil
}

// restore makes a new data folder from a copy.
func restore(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	from := fs.String("from", "", "the copy made by backup")
	data := fs.String("data", "undersigned-data", "the new data folder")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *from == "" {
		return usageError{errors.New("restore: --from is required")}
	}
	n, err := embedded.Restore(ctx, *from, *data)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "restored %s into %s; %d redacted disclosures deleted again; the server appends the admitted writes the copy's log lacks when it starts\n", *from, *data, n)
	return nil
}

// openTokens opens the token store: in the data folder, or in PostgreSQL
// for the Trillian engine.
func openTokens(ctx context.Context, dataDir, postgres string) (ledger.TokenStore, func() error, error) {
	if postgres != "" {
		return trillian.OpenTokens(ctx, postgres)
	}
	return embedded.OpenTokens(ctx, dataDir)
}

// registerTrillian registers the flags that reach Trillian and
// undersigned's PostgreSQL database into c. The database's password is
// best kept out of the URI (a command line is visible to every user of
// the machine): PostgreSQL's PGPASSFILE or PGPASSWORD is read instead, and
// its TLS settings (sslmode=verify-full, sslrootcert, sslcert, sslkey) go in
// the URI.
func registerTrillian(fs *flag.FlagSet, c *trillian.Config) {
	fs.StringVar(&c.Addr, "trillian", "", "the gRPC address of trillian_log_server: serve as a Trillian personality (with --tree-id and --postgres)")
	fs.Int64Var(&c.TreeID, "tree-id", 0, "the Trillian tree to serve (a LOG tree)")
	fs.StringVar(&c.PostgresURI, "postgres", "", "undersigned's own PostgreSQL database, a postgresql:// URI without its password (PGPASSFILE or PGPASSWORD has it), with sslmode=verify-full&sslrootcert=... for TLS (Trillian engine)")
	fs.StringVar(&c.TLS.CAFile, "trillian-tls-ca", "", "dial trillian_log_server with TLS, verifying its certificate with these CA certificates (PEM)")
	fs.StringVar(&c.TLS.CertFile, "trillian-tls-cert", "", "with --trillian-tls-ca: a client certificate (PEM) to present to trillian_log_server")
	fs.StringVar(&c.TLS.KeyFile, "trillian-tls-key", "", "with --trillian-tls-cert: its private key (PEM)")
	fs.StringVar(&c.TLS.ServerName, "trillian-tls-server-name", "", "with --trillian-tls-ca: the name trillian_log_server's certificate must carry, if not the host of --trillian")
}

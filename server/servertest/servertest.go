// Package servertest starts undersigned servers for tests: in the test's
// process, served on loopback, or as a child process that a test can kill,
// on any engine:
//
//   - [Embedded]: Tessera and SQLite in the data folder;
//   - [TrillianMemory]: Trillian in the process on its memory storage,
//     with the store in the data folder's SQLite file and the tiles in
//     memory, a combination that exists for tests only (one server, no
//     database);
//   - [TrillianPostgres]: the Trillian and PostgreSQL that
//     deploy/trillian/up.sh starts (see package trilliantest), a new tree
//     and a new database for each log.
//
// A [Log] is a data folder (and a tree) that servers are started on one at
// a time, to test what survives a restart; [Start] starts one server on a
// new log. Servers are stopped and their logs shown, when a test fails, at
// the end of the test.
package servertest

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
	trillianengine "github.com/undersigned/undersigned/server/internal/trillian"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianmem"
	"github.com/undersigned/undersigned/server/internal/witnessing"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// Timeout bounds each call a helper makes: tests fail rather than hang.
const Timeout = time.Minute

// Engine is what a server runs on.
type Engine int

// The engines.
const (
	// Embedded is the embedded engine, Tessera and SQLite.
	Embedded Engine = iota
	// TrillianMemory is Trillian in the process, on its memory storage,
	// with the store in SQLite and the tiles in memory.
	TrillianMemory
	// TrillianPostgres is Trillian and PostgreSQL from
	// deploy/trillian/up.sh; a test on it skips, or fails under CI=true,
	// when they are not running (see trilliantest.Need).
	TrillianPostgres
)

// String returns the engine's name as GetLogInfo reports it.
func (e Engine) String() string {
	if e == Embedded {
		return embedded.Name
	}
	return trillianengine.Name
}

// Options configure the servers of a log. The zero value serves a new
// data folder on the embedded engine.
type Options struct {
	// Engine is the engine.
	Engine Engine
	// Dir is the data folder; default a new temporary folder.
	Dir string
	// Origin is the log's origin; default a random one.
	Origin string
	// OpenRate and SignerRate limit the writes that need no token, and
	// ReadRate the reads (see server.Config).
	OpenRate   server.RateLimits
	SignerRate server.RateLimits
	ReadRate   server.ReadLimits
	// TLS serves both ports with TLS.
	TLS server.TLSConfig
	// MaxConnectionAge and MaxConnectionAgeGrace bound a gRPC
	// connection's life (see server.Config); 0 means the server's default.
	MaxConnectionAge, MaxConnectionAgeGrace time.Duration
	// AfterAdmit, when set, is called after each batch of writes is
	// admitted and before it is appended (see [AfterAdmit]).
	AfterAdmit func()
	// Tampered says the test alters the server's files behind its back:
	// the error the server gives when it stops (the check of the log at a
	// clean stop fails) is expected, and not reported.
	Tampered bool
	// WitnessPolicy, when set, is the path of a witness policy (C2SP
	// tlog-policy): checkpoints are published once cosigned by its quorum
	// (undersigned-server's --witness-policy). [NewFolder] makes the data
	// folder first, for the log's key the witnesses need.
	WitnessPolicy string
	// WitnessWait is how long a write waits for its checkpoint's
	// cosignatures (--witness-timeout); 0 means 30 s.
	WitnessWait time.Duration
	// TrillianConn, when set, wraps the connection to Trillian of
	// TrillianMemory: a test cuts it to see how the server rides out an
	// outage.
	TrillianConn func(grpc.ClientConnInterface) grpc.ClientConnInterface
}

// Log is a data folder, and for Trillian a tree, that servers are started
// on, one at a time.
type Log struct {
	opts Options

	// For TrillianMemory: the Trillian every server of the log uses.
	// For TrillianPostgres: its environment, and the log's database.
	trillian *trillianmem.Trillian
	env      *trilliantest.Env
	tree     int64
	postgres string
}

// NewLog makes a new log; its servers are stopped, and what it made
// removed, at the end of the test.
func NewLog(t testing.TB, o Options) *Log {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	l := &Log{opts: o}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	switch o.Engine {
	case TrillianMemory:
		tr, err := trillianmem.Start(ctx, trillianmem.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.Close)
		if l.tree, err = tr.CreateTree(ctx); err != nil {
			t.Fatal(err)
		}
		l.trillian = tr
	case TrillianPostgres:
		l.env = trilliantest.Need(t)
		l.tree, l.postgres = l.env.NewTree(t, trillian.TreeType_LOG), l.env.NewDatabase(t)
	}
	return l
}

// Dir returns the log's data folder.
func (l *Log) Dir() string { return l.opts.Dir }

// Start starts a server on a new log.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	return NewLog(t, o).Start(t)
}

// Server is a server serving in the test's process on loopback.
type Server struct {
	// Srv is the server itself.
	Srv *server.Server
	// Dir is its data folder.
	Dir string
	// Engine is the name of its engine.
	Engine string
	// Addr is its gRPC address (host:port) and HTTP the base URL of its
	// HTTP API (http://host:port, or https:// with TLS).
	Addr string
	HTTP string
	// Token is the first organiser token, from the data folder.
	Token string
	// VerifierKey is the log's verifier key, and VerifierKeyFile the file
	// that holds it (log.pub), as operators publish it.
	VerifierKey     string
	VerifierKeyFile string
	// LogDir is the folder of Tessera's files on the embedded engine;
	// empty on Trillian.
	LogDir string
	// Logs is what the server logged.
	Logs *Logs

	tampered bool
	cancel   context.CancelFunc
	served   chan error
	stopOnce sync.Once
}

// Start starts a server on the log and serves it on loopback until
// [Server.Stop] or the end of the test.
func (l *Log) Start(t testing.TB) *Server {
	t.Helper()
	logs, reg := &Logs{}, prometheus.NewRegistry()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	witnesses, err := l.witnesses(nil, nil)
	if err != nil {
		t.Fatalf("the witness policy: %v", err)
	}
	var witnessPolicy *policy.Policy
	if witnesses != nil {
		witnessPolicy = witnesses.Witnesses.Policy
	}
	s, err := server.New(ctx, server.Config{
		WitnessPolicy: witnessPolicy,
		DataDir:       l.opts.Dir,
		Origin:        l.opts.Origin,
		Engine:        l.engine(logs.Logger(), reg),
		Logger:        logs.Logger(),
		Registry:      reg,
		OpenRate:      l.opts.OpenRate,
		SignerRate:    l.opts.SignerRate,
		ReadRate:      l.opts.ReadRate,
		TLS:           l.opts.TLS,

		MaxConnectionAge:      l.opts.MaxConnectionAge,
		MaxConnectionAgeGrace: l.opts.MaxConnectionAgeGrace,
	})
	if err != nil {
		t.Fatalf("start a server on %s: %v\n%s", l.opts.Dir, err, logs)
	}
	ts := &Server{Srv: s, Dir: l.opts.Dir, Engine: l.opts.Engine.String(), Logs: logs, tampered: l.opts.Tampered, served: make(chan error, 1)}
	gl, hl := listen(t), listen(t)
	ts.Addr, ts.HTTP = gl.Addr().String(), "http://"+hl.Addr().String()
	if l.opts.TLS.CertFile != "" {
		ts.HTTP = "https://" + hl.Addr().String()
	}
	ts.Token = readFile(t, filepath.Join(l.opts.Dir, datadir.TokenFile))
	ts.VerifierKeyFile = filepath.Join(l.opts.Dir, datadir.LogPubFile)
	ts.VerifierKey = readFile(t, ts.VerifierKeyFile)
	if l.opts.Engine == Embedded {
		ts.LogDir = filepath.Join(l.opts.Dir, datadir.LogDir)
	}
	var sctx context.Context
	sctx, ts.cancel = context.WithCancel(context.Background())
	go func() { ts.served <- s.Serve(sctx, gl, hl) }()
	t.Cleanup(func() {
		ts.Stop(t)
		if t.Failed() {
			t.Logf("logs of the server on %s:\n%s", l.opts.Dir, logs)
		}
	})
	return ts
}

// engine returns the function that opens the log's engine.
func (l *Log) engine(logger *slog.Logger, reg prometheus.Registerer) server.OpenEngine {
	open := func(ctx context.Context, f *datadir.Folder) (server.Engine, error) {
		witnesses, err := l.witnesses(logger, reg)
		if err != nil {
			return nil, err
		}
		switch l.opts.Engine {
		case TrillianMemory:
			return l.trillianMemory(ctx, f, logger, reg, witnesses)
		case TrillianPostgres:
			e, err := trillianengine.Open(ctx, trillianengine.Config{
				Folder: f, Addr: l.env.TrillianAddr, TreeID: l.tree, PostgresURI: l.postgres,
				PollInterval: 20 * time.Millisecond, Logger: logger, Registry: reg, Witnesses: witnesses,
			})
			if err != nil {
				return nil, err
			}
			return e, nil
		}
		return openEmbedded(ctx, f, logger, witnesses)
	}
	if l.opts.AfterAdmit == nil {
		return open
	}
	return func(ctx context.Context, f *datadir.Folder) (server.Engine, error) {
		e, err := open(ctx, f)
		if err != nil {
			return nil, err
		}
		return AfterAdmit(e, l.opts.AfterAdmit), nil
	}
}

// EmbeddedEngine opens the embedded engine as the servers of this package
// do, with a short batch age: for a test that calls server.New itself.
func EmbeddedEngine(ctx context.Context, f *datadir.Folder) (server.Engine, error) {
	return openEmbedded(ctx, f, nil, nil)
}

// witnesses returns the witnessing of the log's servers, or nil: the
// policy of WitnessPolicy, with short retries.
func (l *Log) witnesses(logger *slog.Logger, reg prometheus.Registerer) (*witnessing.LogConfig, error) {
	if l.opts.WitnessPolicy == "" {
		return nil, nil
	}
	b, err := os.ReadFile(l.opts.WitnessPolicy)
	if err != nil {
		return nil, err
	}
	p, err := policy.Parse(b)
	if err != nil {
		return nil, err
	}
	return &witnessing.LogConfig{
		Witnesses: witnessing.Config{Policy: p, Logger: logger, Registerer: reg,
			RequestTimeout: 2 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond},
		Wait:          l.opts.WitnessWait,
		RetryInterval: 100 * time.Millisecond,
	}, nil
}

// NewFolder makes a new data folder for a log of origin (a random one
// when empty), with its keys and secrets, as a server's first start
// would, and returns it and the log's verifier key: witnesses are
// configured with the key before the server starts.
func NewFolder(t testing.TB, origin string) (dir, verifierKey string) {
	t.Helper()
	dir = t.TempDir()
	f, err := datadir.Open(dir, origin)
	if err != nil {
		t.Fatal(err)
	}
	return dir, f.VerifierKey
}

func openEmbedded(ctx context.Context, f *datadir.Folder, logger *slog.Logger, witnesses *witnessing.LogConfig) (server.Engine, error) {
	e, err := embedded.Open(ctx, embedded.Config{
		Folder: f, BatchMaxAge: 5 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond, Logger: logger,
		Witnesses: witnesses,
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// trillianMemory opens the Trillian engine on the log's in-process
// Trillian, with the store in the data folder's SQLite file, the last
// signed checkpoint in its file, and the tiles in memory.
func (l *Log) trillianMemory(ctx context.Context, f *datadir.Folder, logger *slog.Logger, reg prometheus.Registerer, witnesses *witnessing.LogConfig) (server.Engine, error) {
	st, err := sqlitestore.Open(ctx, f.Path(datadir.StateFile))
	if err != nil {
		return nil, err
	}
	if err := st.ServeUnordered(ctx); err != nil {
		st.Close()
		return nil, err
	}
	var conn grpc.ClientConnInterface = l.trillian.Conn
	if l.opts.TrillianConn != nil {
		conn = l.opts.TrillianConn(conn)
	}
	e, err := trillianengine.New(ctx, trillianengine.Config{
		Folder: f, TreeID: l.tree, PollInterval: 10 * time.Millisecond, Logger: logger, Registry: reg, Witnesses: witnesses,
	}, trillianengine.Parts{
		Conn:        conn,
		Store:       st,
		Tiles:       &trillianmem.Tiles{},
		Checkpoints: guard.File(f.Path(datadir.LastCheckpointFile)),
		Cosigned:    witnessing.File(f.Path(datadir.CosignedCheckpointFile)),
		Close:       st.Close,
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Stop stops serving and closes the server; it may be called more than
// once.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case err := <-s.served:
			if err != nil && !s.tampered {
				t.Errorf("the server on %s stopped: %v", s.Dir, err)
			}
		case <-time.After(Timeout):
			t.Errorf("the server on %s did not stop within %v", s.Dir, Timeout)
		}
	})
}

// Dial returns a client of the server that sends token with its writes
// (none when token is empty), pinned to the log's key; it is closed at the
// end of the test.
func (s *Server) Dial(t testing.TB, token string, opts ...grpc.DialOption) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: s.Addr, Token: token, LogKey: s.VerifierKey, DialOptions: opts})
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Conn returns a plain gRPC connection to the server, closed at the end of
// the test.
func (s *Server) Conn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// Logs keeps what a server logs, for a test to search and to show when it
// fails.
type Logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger returns a logger that writes to l, debug messages included.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// NewToken creates an organiser token on the server, with a name to
// recognise it by and the letters it may write to (none: every letter),
// and returns it.
func (s *Server) NewToken(t testing.TB, name string, letters ...string) string {
	t.Helper()
	tok, _, err := ledger.NewToken(context.Background(), s.Srv.Tokens(), name, letters)
	if err != nil {
		t.Fatalf("create a token: %v", err)
	}
	return tok
}

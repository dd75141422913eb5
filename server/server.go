// Package server is the undersigned service: it opens a data folder and an
// engine, and serves the ledger over gRPC (package undersigned.v1) and HTTP
// (the tlog-tiles API and disclosure bundles under /log/, /metrics and
// /healthz).
//
// The program in cmd/undersigned-server turns flags into a [Config] and
// calls [Run]; tests call [New] and serve it on listeners of their own.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/embedded"
	"github.com/undersigned/undersigned/server/guard"
	"github.com/undersigned/undersigned/server/ledger"
	"github.com/undersigned/undersigned/server/sqlitestore"
)

// Config configures a server. The zero value of each field is a sensible
// default.
type Config struct {
	// DataDir is the data folder; default ./undersigned-data.
	DataDir string
	// GRPCAddr and HTTPAddr are the listen addresses; defaults
	// 127.0.0.1:7420 and 127.0.0.1:7421.
	GRPCAddr string
	HTTPAddr string
	// Origin is the log's origin, fixed at first start; default
	// localhost/undersigned/<8 random hex digits>.
	Origin string
	// Logger receives the server's logs; default discards them.
	Logger *slog.Logger
	// Registry receives the metrics served at /metrics; default a new one.
	Registry *prometheus.Registry

	// BatchMaxSize, BatchMaxAge and CheckpointInterval tune the embedded
	// engine (see embedded.Config).
	BatchMaxSize       uint
	BatchMaxAge        time.Duration
	CheckpointInterval time.Duration

	// OpenRate limits the writes that need no token (signer-authorised
	// withdrawals and redactions, open-letter endorsements).
	OpenRate RateLimits

	// AfterAdmit, when set, is called after each batch of writes is
	// admitted and before it is appended: crash tests kill the process
	// there.
	AfterAdmit func()

	// Trillian, when set, runs the server as a Trillian personality
	// (DESIGN.md §7) instead of on the embedded engine.
	Trillian *TrillianConfig
}

// RateLimits are the limits on the writes that need no token.
type RateLimits struct {
	// PerAddress is the sustained rate per client address, per second, and
	// AddressBurst the burst; defaults 1 and 20.
	PerAddress   float64
	AddressBurst int
	// PerLetter is the sustained rate per letter, shared by every address;
	// LetterBurst the burst; defaults 50 and 500.
	PerLetter   float64
	LetterBurst int
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "undersigned-data"
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = "127.0.0.1:7420"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:7421"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.OpenRate.PerAddress == 0 {
		c.OpenRate.PerAddress = 1
	}
	if c.OpenRate.AddressBurst == 0 {
		c.OpenRate.AddressBurst = 20
	}
	if c.OpenRate.PerLetter == 0 {
		c.OpenRate.PerLetter = 50
	}
	if c.OpenRate.LetterBurst == 0 {
		c.OpenRate.LetterBurst = 500
	}
}

// engineLog is what the server needs of an engine's log: the ledger's
// Log, the tlog-tiles resources, and a way to stop it.
type engineLog interface {
	ledger.Log
	ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error)
	ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error)
	Close(ctx context.Context) error
}

// Server is an open data folder with its engine and ledger.
type Server struct {
	cfg    Config
	log    *slog.Logger
	keys   *keys
	engine string
	store  ledger.Store
	tlog   engineLog
	ledger *ledger.Ledger
	health *health.Server
	limits *limiter
	tokens *tokenCache

	// TokenPath is the file holding the first organiser token.
	TokenPath string

	closeOnce sync.Once
	closeErr  error
}

// New opens the data folder (creating the log key, the verifier key, the
// secrets and the first organiser token on first start), reconciles the
// store with the log, and returns a server ready to serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	k, first, err := openKeys(cfg.DataDir, cfg.Origin)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, keys: k}
	if first {
		s.log.Info("created a new log", slog.String("origin", k.origin),
			slog.String("key", filepath.Join(cfg.DataDir, LogKeyFile)),
			slog.String("verifier_key", filepath.Join(cfg.DataDir, LogPubFile)))
	}
	if cfg.Trillian != nil {
		err = s.openTrillian(ctx)
	} else {
		err = s.openEmbedded(ctx)
	}
	if err != nil {
		return nil, err
	}
	path, created, err := ensureFirstToken(ctx, cfg.DataDir, s.store.Tokens())
	if err != nil {
		s.tlog.Close(ctx)
		s.store.Close()
		return nil, err
	}
	s.TokenPath = path
	if created {
		s.log.Info("created the first organiser token", slog.String("file", path))
	}
	s.ledger, err = ledger.New(ctx, ledger.Config{
		Origin:      k.origin,
		Verifier:    k.verifier,
		VerifierKey: k.verifierKey,
		Engine:      s.engine,
		Log:         s.tlog,
		Store:       s.store,
		DedupSecret: k.dedupSecret,
		Logger:      s.log,
		Metrics:     ledger.NewMetrics(cfg.Registry),
		AfterAdmit:  cfg.AfterAdmit,
	})
	if err != nil {
		s.tlog.Close(ctx)
		s.store.Close()
		return nil, err
	}
	s.health = health.NewServer()
	s.limits = newLimiter(cfg.OpenRate)
	s.tokens = newTokenCache(s.store.Tokens())
	cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s, nil
}

// openEmbedded opens the embedded engine in the data folder: the SQLite
// store and the Tessera log.
func (s *Server) openEmbedded(ctx context.Context) error {
	cfg, k := s.cfg, s.keys
	var err error
	s.engine = "embedded"
	s.store, err = sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, StateFile))
	if err != nil {
		return err
	}
	g, err := guard.New(ctx, k.signer, k.verifier, guard.File(filepath.Join(cfg.DataDir, LastCheckpointFile)), nil, s.log)
	if err != nil {
		s.store.Close()
		return err
	}
	tlog, err := embedded.Open(ctx, embedded.Config{
		Dir:                filepath.Join(cfg.DataDir, LogDir),
		Signer:             g,
		Verifier:           k.verifier,
		BatchMaxSize:       cfg.BatchMaxSize,
		BatchMaxAge:        cfg.BatchMaxAge,
		CheckpointInterval: cfg.CheckpointInterval,
		Logger:             s.log,
	})
	if err != nil {
		s.store.Close()
		return err
	}
	s.tlog = tlog
	if err := checkAgainstLastSigned(ctx, tlog, g); err != nil {
		s.log.Error("the log does not extend the last checkpoint it signed: writes are refused", slog.Any("error", err))
	}
	return nil
}

// checkAgainstLastSigned checks, at start, that the log's tree extends the
// last checkpoint signed.
func checkAgainstLastSigned(ctx context.Context, tlog ledger.Log, g *guard.Signer) error {
	size, err := tlog.IntegratedSize(ctx)
	if err != nil {
		return err
	}
	cp, err := tlog.Checkpoint(ctx)
	if err != nil {
		return nil // nothing published yet
	}
	if cp.Size > size {
		return fmt.Errorf("the published checkpoint has %d entries, the tree %d", cp.Size, size)
	}
	return g.Check(ctx, cp.Size, cp.Hash)
}

// Origin returns the log's origin.
func (s *Server) Origin() string { return s.keys.origin }

// VerifierKey returns the log's verifier key.
func (s *Server) VerifierKey() string { return s.keys.verifierKey }

// Tokens returns the store of API tokens, to create, list and revoke them
// while serving.
func (s *Server) Tokens() ledger.TokenStore { return s.tokens }

// Ledger returns the server's ledger.
func (s *Server) Ledger() *ledger.Ledger { return s.ledger }

// RegisterGRPC registers the ledger, health and reflection services on g.
func (s *Server) RegisterGRPC(g *grpc.Server) {
	pb.RegisterLedgerServiceServer(g, &service{s: s})
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
}

// NewGRPCServer returns a gRPC server with the services registered.
func (s *Server) NewGRPCServer(opts ...grpc.ServerOption) *grpc.Server {
	opts = append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}, opts...)
	g := grpc.NewServer(opts...)
	s.RegisterGRPC(g)
	return g
}

// Close stops the ledger and the log and closes the store.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.health.Shutdown()
		s.closeErr = errors.Join(s.ledger.Close(), s.tlog.Close(ctx), s.store.Close())
	})
	return s.closeErr
}

// Run opens the server and serves it on cfg's addresses until ctx is done,
// then stops gracefully.
func Run(ctx context.Context, cfg Config) error {
	s, err := New(ctx, cfg)
	if err != nil {
		return err
	}
	cfg = s.cfg
	gl, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		s.Close(context.Background())
		return fmt.Errorf("listen for gRPC: %w", err)
	}
	hl, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		gl.Close()
		s.Close(context.Background())
		return fmt.Errorf("listen for HTTP: %w", err)
	}
	return s.Serve(ctx, gl, hl)
}

// Serve serves gRPC on gl and HTTP on hl until ctx is done, then stops
// gracefully and closes the server.
func (s *Server) Serve(ctx context.Context, gl, hl net.Listener) error {
	g := s.NewGRPCServer()
	h := &http.Server{Handler: s.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.log.Info("serving", slog.String("origin", s.keys.origin), slog.String("grpc", gl.Addr().String()),
		slog.String("http", hl.Addr().String()), slog.String("verifier_key", s.keys.verifierKey),
		slog.String("token_file", s.TokenPath))
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(gl) }()
	go func() {
		if err := h.Serve(hl); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.log.Info("stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-stopCtx.Done():
		g.Stop()
	}
	h.Shutdown(stopCtx)
	return errors.Join(err, s.Close(stopCtx))
}

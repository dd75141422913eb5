// Package server is the undersigned service: it serves the ledger of a data
// folder over gRPC (package undersigned.v1) and HTTP (the tlog-tiles API
// and disclosure bundles under /log/, /metrics and /healthz), on an
// [Engine] that keeps the log and everything beside it.
//
// The service holds the gRPC service, the HTTP handlers, authentication
// and rate limits, the mapping of errors to statuses, and its
// configuration. It knows no engine: the program in cmd/undersigned-server
// turns flags into a [Config] whose Engine opens the one it picked
// (package embedded or trillian), and calls [Run]. Tests start servers
// with package servertest.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/undersigned/undersigned/client/policy"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// Config configures a server. The zero value of each field but Engine is
// a sensible default.
type Config struct {
	// DataDir is the data folder; default ./undersigned-data.
	DataDir string
	// Origin is the log's origin, fixed at first start; default
	// localhost/undersigned/<8 random hex digits>.
	Origin string
	// Engine opens the engine on the data folder. Required.
	Engine OpenEngine
	// GRPCAddr and HTTPAddr are the listen addresses; defaults
	// 127.0.0.1:7420 and 127.0.0.1:7421.
	GRPCAddr string
	HTTPAddr string
	// TLS configures TLS for both ports; the zero value serves plaintext.
	TLS TLSConfig
	// Logger receives the server's logs; default discards them.
	Logger *slog.Logger
	// Registry receives the metrics served at /metrics; default a new one.
	Registry *prometheus.Registry

	// WitnessPolicy is the witness policy the engine has its checkpoints
	// cosigned by, or nil: the web page's verifier checks receipts against
	// it (its witnesses' URLs left out).
	WitnessPolicy *policy.Policy

	// OpenRate limits the endorsements of open letters sent without a
	// token (signed by their signers).
	OpenRate RateLimits
	// SignerRate limits the withdrawals and redactions signers send
	// themselves, in buckets apart from OpenRate's, so that a flood of
	// open endorsements does not delay them.
	SignerRate RateLimits
	// ReadRate limits the reads of callers without a token, per address.
	ReadRate ReadLimits
	// MaxInflightReads bounds the reads of callers without a token in
	// progress at once; more are answered ResourceExhausted with a retry
	// hint. 0 means 512.
	MaxInflightReads int

	// MaxStreamsPerConnection bounds the calls one connection has open at
	// once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): more wait on the
	// client, rather than as goroutines on the server. 0 means 512.
	MaxStreamsPerConnection uint32

	// Connections bounds the connections of both ports: caps per client
	// address and in all, timeouts for connections that do nothing, the
	// size of headers.
	Connections Connections

	// MaxInflightWrites bounds the writes in progress at once, whoever
	// sends them; more are answered ResourceExhausted with a retry hint
	// rather than queued, so that memory stays bounded under any load. 0
	// means 4,096.
	MaxInflightWrites int

	// MaxConnectionAge is how long a gRPC connection may live: then the
	// server asks the client to reconnect (GOAWAY), and ends the calls
	// still open on it after MaxConnectionAgeGrace. Clients spread over
	// the frontends again, and nothing a connection was granted outlives
	// it. 0 means an hour, and a grace of 10 minutes.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
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
	if c.MaxStreamsPerConnection == 0 {
		c.MaxStreamsPerConnection = 512
	}
	if c.MaxInflightWrites <= 0 {
		c.MaxInflightWrites = 4096
	}
	if c.MaxInflightReads <= 0 {
		c.MaxInflightReads = 512
	}
	if c.MaxConnectionAge <= 0 {
		c.MaxConnectionAge = time.Hour
	}
	if c.MaxConnectionAgeGrace <= 0 {
		c.MaxConnectionAgeGrace = 10 * time.Minute
	}
	c.Connections.setDefaults()
	c.OpenRate.setDefaults()
	c.SignerRate.setDefaults()
	c.ReadRate.setDefaults()
}

// Server is an open data folder with its engine and ledger.
type Server struct {
	cfg    Config
	log    *slog.Logger
	folder *datadir.Folder
	engine Engine
	ledger *ledger.Ledger
	health *health.Server
	limits *limiter
	tokens *tokenCache
	writes *semaphore.Weighted
	reads  *semaphore.Weighted
	conns  *connMetrics
	tls    *tls.Config

	// TokenPath is the file holding the first organiser token.
	TokenPath string

	closeOnce sync.Once
	closeErr  error
}

// New opens the data folder (creating the log key, the verifier key and
// the secrets on first start), opens the engine on it, creates the first
// organiser token on first start, reconciles the store with the log, and
// returns a server ready to serve.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Engine == nil {
		return nil, errors.New("server: no engine")
	}
	tlsConfig, err := cfg.TLS.load()
	if err != nil {
		return nil, err
	}
	f, err := datadir.Open(cfg.DataDir, cfg.Origin)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, folder: f, tls: tlsConfig}
	if f.Created {
		s.log.Info("created a new log", slog.String("origin", f.Origin),
			slog.String("key", f.Path(datadir.LogKeyFile)),
			slog.String("verifier_key", f.Path(datadir.LogPubFile)))
	}
	if s.engine, err = cfg.Engine(ctx, f); err != nil {
		return nil, err
	}
	if err := s.open(ctx); err != nil {
		s.engine.Close(ctx)
		return nil, err
	}
	return s, nil
}

// open opens the ledger on the engine, and what serves it.
func (s *Server) open(ctx context.Context) error {
	path, created, err := s.folder.EnsureFirstToken(ctx, s.engine.Store().Tokens())
	if err != nil {
		return err
	}
	s.TokenPath = path
	if created {
		s.log.Info("created the first organiser token", slog.String("file", path))
	}
	s.ledger, err = ledger.New(ctx, ledger.Config{
		Origin:      s.folder.Origin,
		Verifier:    s.folder.Verifier,
		VerifierKey: s.folder.VerifierKey,
		Engine:      s.engine.Name(),
		Log:         s.engine.Log(),
		Store:       s.engine.Store(),
		DedupSecret: s.folder.DedupSecret,
		Logger:      s.log,
		Metrics:     ledger.NewMetrics(s.cfg.Registry),
	})
	if err != nil {
		return err
	}
	if err := s.engine.Start(ctx); err != nil {
		s.ledger.Close()
		return err
	}
	s.health = health.NewServer()
	s.limits = newLimiter(s.cfg.OpenRate, s.cfg.SignerRate, s.cfg.ReadRate, s.engine.SharedLetterLimit())
	s.writes = semaphore.NewWeighted(int64(s.cfg.MaxInflightWrites))
	s.reads = semaphore.NewWeighted(int64(s.cfg.MaxInflightReads))
	s.tokens = newTokenCache(s.engine.Store().Tokens())
	s.cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.conns = newConnMetrics(s.cfg.Registry)
	return nil
}

// Origin returns the log's origin.
func (s *Server) Origin() string { return s.folder.Origin }

// VerifierKey returns the log's verifier key.
func (s *Server) VerifierKey() string { return s.folder.VerifierKey }

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
	base := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}, s.grpcConnectionOptions()...)
	if s.tls != nil {
		base = append(base, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	opts = append(base, opts...)
	g := grpc.NewServer(opts...)
	s.RegisterGRPC(g)
	return g
}

// Close stops the ledger and closes the engine.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.health.Shutdown()
		s.closeErr = errors.Join(s.ledger.Close(), s.engine.Close(ctx))
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
	c := s.cfg.Connections
	h := &http.Server{Handler: s.HTTPHandler(), TLSConfig: s.tls,
		ReadHeaderTimeout: c.HandshakeTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout,
		IdleTimeout: c.IdleTimeout, MaxHeaderBytes: c.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	gl = limitConnections(gl, c, s.conns, "grpc")
	hl = limitConnections(hl, c, s.conns, "http")
	if s.tls != nil {
		hl = tls.NewListener(hl, s.tls)
	}
	s.log.Info("serving", slog.String("origin", s.folder.Origin), slog.String("grpc", gl.Addr().String()),
		slog.String("http", hl.Addr().String()), slog.String("verifier_key", s.folder.VerifierKey),
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

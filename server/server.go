// Package server is the undersigned service: it opens a data folder and an
// engine, and serves the ledger over gRPC (package undersigned.v1) and HTTP
// (the tlog-tiles API and disclosure bundles under /log/, /metrics and
// /healthz).
//
// The program in cmd/undersigned-server turns flags into a [Config] and
// calls [Run]; tests call [New] and serve it on listeners of their own.
package server

import (
	"bytes"
	"context"
	"crypto/tls"
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
	"github.com/transparency-dev/formats/log"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/embedded/tesseralog"
	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
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
	// TLS configures TLS for both ports; the zero value serves plaintext.
	TLS TLSConfig
	// Logger receives the server's logs; default discards them.
	Logger *slog.Logger
	// Registry receives the metrics served at /metrics; default a new one.
	Registry *prometheus.Registry

	// BatchMaxSize, BatchMaxAge and CheckpointInterval tune the embedded
	// engine (see tesseralog.Config).
	BatchMaxSize       uint
	BatchMaxAge        time.Duration
	CheckpointInterval time.Duration

	// OpenRate limits the writes that need no token (signer-authorised
	// withdrawals and redactions, open-letter endorsements).
	OpenRate RateLimits

	// MaxStreamsPerConnection bounds the calls one connection has open at
	// once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS): more wait on the
	// client, rather than as goroutines on the server. 0 means 512.
	MaxStreamsPerConnection uint32

	// MaxInflightWrites bounds the writes in progress at once, whoever
	// sends them; more are answered ResourceExhausted with a retry hint
	// rather than queued, so that memory stays bounded under any load. 0
	// means 4,096.
	MaxInflightWrites int

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
	if c.MaxStreamsPerConnection == 0 {
		c.MaxStreamsPerConnection = 512
	}
	if c.MaxInflightWrites <= 0 {
		c.MaxInflightWrites = 4096
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
	keys   *datadir.Folder
	engine string
	store  ledger.Store
	tlog   engineLog
	ledger *ledger.Ledger
	health *health.Server
	limits *limiter
	tokens *tokenCache
	writes *semaphore.Weighted
	tls    *tls.Config

	// On the embedded engine: its log, its guard, and the log as checked
	// at start.
	emb      *tesseralog.Log
	guard    *guard.Signer
	verified *tesseralog.Verified

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
	tlsConfig, err := cfg.TLS.load()
	if err != nil {
		return nil, err
	}
	k, err := datadir.Open(cfg.DataDir, cfg.Origin)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, keys: k, tls: tlsConfig}
	if k.Created {
		s.log.Info("created a new log", slog.String("origin", k.Origin),
			slog.String("key", filepath.Join(cfg.DataDir, datadir.LogKeyFile)),
			slog.String("verifier_key", filepath.Join(cfg.DataDir, datadir.LogPubFile)))
	}
	if cfg.Trillian != nil {
		err = s.openTrillian(ctx)
	} else {
		err = s.openEmbedded(ctx)
	}
	if err != nil {
		return nil, err
	}
	path, created, err := k.EnsureFirstToken(ctx, s.store.Tokens())
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
		Origin:      k.Origin,
		Verifier:    k.Verifier,
		VerifierKey: k.VerifierKey,
		Engine:      s.engine,
		Log:         s.tlog,
		Store:       s.store,
		DedupSecret: k.DedupSecret,
		Logger:      s.log,
		Metrics:     ledger.NewMetrics(cfg.Registry),
		AfterAdmit:  cfg.AfterAdmit,
	})
	if err != nil {
		s.tlog.Close(ctx)
		s.store.Close()
		return nil, err
	}
	// (The Trillian engine's tile builder checks the tree against the last
	// checkpoint signed before it signs another.)
	if s.emb != nil {
		if err := s.checkEmbeddedAtStart(ctx); err != nil {
			s.ledger.Close()
			s.tlog.Close(ctx)
			s.store.Close()
			return nil, err
		}
	}
	s.health = health.NewServer()
	s.limits = newLimiter(cfg.OpenRate)
	if pg, ok := s.store.(*pgstore.Store); ok {
		s.limits.shared = pg.TakeLetterToken
	}
	s.writes = semaphore.NewWeighted(int64(cfg.MaxInflightWrites))
	s.tokens = newTokenCache(s.store.Tokens())
	cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return s, nil
}

// openEmbedded opens the embedded engine in the data folder: the SQLite
// store and the Tessera log, checked since the last clean stop.
func (s *Server) openEmbedded(ctx context.Context) error {
	cfg, k := s.cfg, s.keys
	var err error
	s.engine = "embedded"
	st, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, datadir.StateFile))
	if err != nil {
		return err
	}
	s.store = st
	g, err := guard.New(ctx, k.Signer, k.Verifier, guard.File(filepath.Join(cfg.DataDir, datadir.LastCheckpointFile)), nil, s.log)
	if err != nil {
		st.Close()
		return err
	}
	s.guard = g
	s.emb, err = tesseralog.Open(ctx, tesseralog.Config{
		Dir:                filepath.Join(cfg.DataDir, datadir.LogDir),
		Signer:             g,
		Verifier:           k.Verifier,
		BatchMaxSize:       cfg.BatchMaxSize,
		BatchMaxAge:        cfg.BatchMaxAge,
		CheckpointInterval: cfg.CheckpointInterval,
		Logger:             s.log,
	})
	if err != nil {
		st.Close()
		return err
	}
	s.tlog = s.emb
	// What changed since the last clean stop: the entries beyond the
	// verified state must give the tree Tessera keeps.
	verifiedPath := filepath.Join(cfg.DataDir, datadir.LogVerifiedFile)
	verified, err := tesseralog.LoadVerified(verifiedPath)
	if err == nil {
		start := time.Now()
		var checked *tesseralog.Verified
		if checked, err = s.emb.Check(ctx, verified, tesseralog.CheckOptions{}); err == nil {
			s.log.Info("checked the log since the last clean stop", slog.Uint64("from", verified.Size),
				slog.Uint64("to", checked.Size), slog.Duration("took", time.Since(start)))
			s.verified = checked
			err = tesseralog.SaveVerified(verifiedPath, checked)
		}
	}
	if err != nil {
		s.emb.Close(ctx)
		st.Close()
		return fmt.Errorf("refusing to serve: %w (run undersigned-server fsck --data %s)", err, cfg.DataDir)
	}
	return nil
}

// checkEmbeddedAtStart checks, once the store is reconciled, that the
// embedded log caught up with the last checkpoint it signed and extends
// it, and waits for a published checkpoint that covers it. An error means
// the server must not serve; a log that does not extend the checkpoint is
// served with writes refused.
func (s *Server) checkEmbeddedAtStart(ctx context.Context) error {
	if err := s.checkAgainstLastSigned(ctx, s.guard); err != nil {
		if errors.Is(err, guard.ErrBehind) {
			return fmt.Errorf("refusing to serve: %w, and the store holds no admitted writes to catch up with: the log lost entries it had published (restored from an older copy?)", err)
		}
		s.log.Error("the log does not extend the last checkpoint it signed: writes are refused", slog.Any("error", err))
		return nil
	}
	if err := s.awaitPublished(ctx, s.guard); err != nil {
		return fmt.Errorf("refusing to serve: %w", err)
	}
	return nil
}

// checkAgainstLastSigned checks, at start, that the log's tree extends the
// last checkpoint signed.
func (s *Server) checkAgainstLastSigned(ctx context.Context, g *guard.Signer) error {
	size, root, err := s.emb.TreeState(ctx)
	if err != nil {
		return err
	}
	return g.Check(ctx, size, root)
}

// awaitPublished waits until the published checkpoint covers the last one
// signed: a restored log must not serve a checkpoint older than one it
// handed out before.
func (s *Server) awaitPublished(ctx context.Context, g *guard.Signer) error {
	last := g.Last()
	if last == nil {
		return nil
	}
	var want log.Checkpoint
	if _, err := want.Unmarshal(firstParagraph(last)); err != nil {
		return fmt.Errorf("the last signed checkpoint: %w", err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		cp, err := s.tlog.Checkpoint(ctx)
		if err == nil && cp.Size >= want.Size {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no checkpoint covering the last one signed (size %d) was published", want.Size)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// firstParagraph returns a signed note's text: everything before the blank
// line.
func firstParagraph(n []byte) []byte {
	if i := bytes.Index(n, []byte("\n\n")); i >= 0 {
		return n[:i+1]
	}
	return n
}

// saveVerified checks, at a clean stop, the entries appended since the
// start, so that the next start checks only what changes after this stop.
// The Trillian engine has no such state in the data folder.
func (s *Server) saveVerified(ctx context.Context) error {
	if s.emb == nil {
		return nil
	}
	v, err := s.emb.Check(ctx, s.verified, tesseralog.CheckOptions{})
	if err != nil {
		return fmt.Errorf("checking the log at stop: %w", err)
	}
	return tesseralog.SaveVerified(filepath.Join(s.cfg.DataDir, datadir.LogVerifiedFile), v)
}

// Origin returns the log's origin.
func (s *Server) Origin() string { return s.keys.Origin }

// VerifierKey returns the log's verifier key.
func (s *Server) VerifierKey() string { return s.keys.VerifierKey }

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
	base := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.MaxConcurrentStreams(s.cfg.MaxStreamsPerConnection),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
	if s.tls != nil {
		base = append(base, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	opts = append(base, opts...)
	g := grpc.NewServer(opts...)
	s.RegisterGRPC(g)
	return g
}

// Close stops the ledger and the log and closes the store.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.health.Shutdown()
		s.closeErr = errors.Join(s.ledger.Close(), s.tlog.Close(ctx), s.saveVerified(ctx), s.store.Close())
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
	h := &http.Server{Handler: s.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: s.tls}
	if s.tls != nil {
		hl = tls.NewListener(hl, s.tls)
	}
	s.log.Info("serving", slog.String("origin", s.keys.Origin), slog.String("grpc", gl.Addr().String()),
		slog.String("http", hl.Addr().String()), slog.String("verifier_key", s.keys.VerifierKey),
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

package server_test

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"
	"k8s.io/klog/v2"

	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/conformance"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianmem"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

func init() {
	// Trillian logs through klog; the tests keep only the server's logs.
	klog.SetSlogLogger(slog.New(slog.DiscardHandler))
}

// TestConformanceEmbedded runs the conformance suite on the embedded
// engine.
func TestConformanceEmbedded(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Log {
		return &serverLog{dir: t.TempDir(), cfg: server.Config{BatchMaxAge: 5 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond}}
	})
}

// TestConformanceTrillianMemory runs the conformance suite on Trillian in
// this process, on its memory storage, with the store in the data folder.
func TestConformanceTrillianMemory(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Log {
		tr, err := trillianmem.Start(context.Background(), trillianmem.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tr.Close)
		tree, err := tr.CreateTree(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return &serverLog{dir: t.TempDir(), cfg: server.Config{Trillian: &server.TrillianConfig{
			Conn: tr.Conn, TreeID: tree, PollInterval: 10 * time.Millisecond,
		}}}
	})
}

// TestConformanceTrillianPostgres runs the conformance suite on Trillian
// and PostgreSQL (deploy/trillian/up.sh), each log on a new tree and a new
// database.
func TestConformanceTrillianPostgres(t *testing.T) {
	env := trilliantest.Need(t)
	conformance.Run(t, func(t *testing.T) conformance.Log {
		return &serverLog{dir: t.TempDir(), cfg: server.Config{Trillian: &server.TrillianConfig{
			Addr: env.TrillianAddr, TreeID: env.NewTree(t, trillian.TreeType_LOG), PostgresURI: env.NewDatabase(t),
			PollInterval: 20 * time.Millisecond,
		}}}
	})
}

// serverLog serves a data folder (and, for Trillian, a tree) with
// server.New, over bufconn and httptest.
type serverLog struct {
	dir        string
	cfg        server.Config
	otherToken string
}

// logBuffer keeps a server's logs for a failing test.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *serverLog) Start(t *testing.T) *conformance.Target {
	t.Helper()
	ctx := context.Background()
	logs := &logBuffer{}
	cfg := l.cfg
	cfg.DataDir = l.dir
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("start a server on %s: %v", l.dir, err)
	}
	tok, err := os.ReadFile(s.TokenPath)
	if err != nil {
		t.Fatal(err)
	}
	if l.otherToken == "" {
		if l.otherToken, _, err = server.NewToken(ctx, s.Tokens(), "second organiser", nil); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := os.ReadFile(filepath.Join(l.dir, server.LogPubFile))
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	g := s.NewGRPCServer()
	go g.Serve(lis)
	h := httptest.NewServer(s.HTTPHandler())
	engine := "embedded"
	if cfg.Trillian != nil {
		engine = "trillian"
	}
	var once sync.Once
	stop := func(t *testing.T) {
		once.Do(func() {
			h.Close()
			g.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Close(ctx); err != nil {
				t.Errorf("close the server: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		stop(t)
		if t.Failed() {
			logs.mu.Lock()
			t.Logf("logs of the server on %s:\n%s", l.dir, logs.b.String())
			logs.mu.Unlock()
		}
	})
	return &conformance.Target{
		Engine: engine,
		Addr:   "passthrough:///bufconn",
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		})},
		HTTP:        h.URL,
		Token:       strings.TrimSpace(string(tok)),
		OtherToken:  l.otherToken,
		VerifierKey: strings.TrimSpace(string(pub)),
		Stop:        stop,
	}
}

// modelRate lets the model test's writes without a token (withdrawals and
// redactions by a receipt's secret, hundreds a second from one address)
// through.
var modelRate = server.RateLimits{PerAddress: 1e6, AddressBurst: 1e6, PerLetter: 1e6, LetterBurst: 1e6}

// modelOps is the number of operations of a model test:
// UNDERSIGNED_MODEL_OPS, or def.
func modelOps(t *testing.T, def int) int {
	if v := os.Getenv("UNDERSIGNED_MODEL_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("UNDERSIGNED_MODEL_OPS=%q", v)
		}
		return n
	}
	return def
}

// modelSeed is the seed of a model test: UNDERSIGNED_MODEL_SEED, or a new
// one, logged so that a failure can be replayed.
func modelSeed(t *testing.T) uint64 {
	if v := os.Getenv("UNDERSIGNED_MODEL_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("UNDERSIGNED_MODEL_SEED=%q", v)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// TestModelEmbedded checks random sequences of operations on the embedded
// engine against the rules function (conformance.RunModel).
func TestModelEmbedded(t *testing.T) {
	l := &serverLog{dir: t.TempDir(), cfg: server.Config{BatchMaxAge: 5 * time.Millisecond, CheckpointInterval: 100 * time.Millisecond, OpenRate: modelRate}}
	conformance.RunModel(t, l, modelOps(t, 10000), modelSeed(t))
}

// TestModelTrillianMemory is TestModelEmbedded on Trillian in this process.
func TestModelTrillianMemory(t *testing.T) {
	tr, err := trillianmem.Start(context.Background(), trillianmem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	tree, err := tr.CreateTree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l := &serverLog{dir: t.TempDir(), cfg: server.Config{OpenRate: modelRate, Trillian: &server.TrillianConfig{
		Conn: tr.Conn, TreeID: tree, PollInterval: 10 * time.Millisecond,
	}}}
	conformance.RunModel(t, l, modelOps(t, 10000), modelSeed(t))
}

// TestModelTrillianPostgres is TestModelEmbedded on Trillian and
// PostgreSQL, with 1,000 operations. It runs without the race detector
// (.ci/run runs it so), which makes it too slow.
func TestModelTrillianPostgres(t *testing.T) {
	if raceEnabled {
		t.Skip("too slow under the race detector: .ci/run runs it without -race")
	}
	env := trilliantest.Need(t)
	l := &serverLog{dir: t.TempDir(), cfg: server.Config{OpenRate: modelRate, Trillian: &server.TrillianConfig{
		Addr: env.TrillianAddr, TreeID: env.NewTree(t, trillian.TreeType_LOG), PostgresURI: env.NewDatabase(t),
		PollInterval: 20 * time.Millisecond,
	}}}
	conformance.RunModel(t, l, modelOps(t, 1000), modelSeed(t))
}

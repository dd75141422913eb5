package server_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"k8s.io/klog/v2"

	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/conformance"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

func init() {
	// Trillian logs through klog; the tests keep only the server's logs.
	klog.SetSlogLogger(slog.New(slog.DiscardHandler))
}

// TestConformanceEmbedded runs the conformance suite on the embedded
// engine.
func TestConformanceEmbedded(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Log {
		return &conformanceLog{Log: servertest.NewLog(t, servertest.Options{Engine: servertest.Embedded})}
	})
}

// TestConformanceTrillianMemory runs the conformance suite on Trillian in
// this process, on its memory storage, with the store in the data folder.
func TestConformanceTrillianMemory(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Log {
		return &conformanceLog{Log: servertest.NewLog(t, servertest.Options{Engine: servertest.TrillianMemory})}
	})
}

// TestConformanceTrillianPostgres runs the conformance suite on Trillian
// and PostgreSQL (deploy/trillian/up.sh), each log on a new tree and a new
// database.
func TestConformanceTrillianPostgres(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Log {
		return &conformanceLog{Log: servertest.NewLog(t, servertest.Options{Engine: servertest.TrillianPostgres})}
	})
}

// TestConformanceWitnessed runs the conformance suite on the embedded
// engine and on Trillian in this process, with two fake witnesses whose
// cosignatures every checkpoint served, and every receipt's, carries.
func TestConformanceWitnessed(t *testing.T) {
	for _, engine := range []servertest.Engine{servertest.Embedded, servertest.TrillianMemory} {
		t.Run(engine.String(), func(t *testing.T) {
			conformance.Run(t, func(t *testing.T) conformance.Log {
				dir, key := servertest.NewFolder(t, "")
				path, _ := witnesstest.FakePolicy(t, t.TempDir(), key, "a", "b")
				p, err := policy.Parse(readFile(t, path))
				if err != nil {
					t.Fatal(err)
				}
				return &conformanceLog{Log: servertest.NewLog(t, servertest.Options{Engine: engine, Dir: dir, WitnessPolicy: path}), policy: p}
			})
		})
	}
}

// conformanceLog starts the servers of a servertest.Log for the suite,
// each with a second organiser token.
type conformanceLog struct {
	*servertest.Log
	otherToken string
	policy     *policy.Policy
}

func (l *conformanceLog) Start(t *testing.T) *conformance.Target {
	t.Helper()
	s := l.Log.Start(t)
	if l.otherToken == "" {
		var err error
		if l.otherToken, _, err = ledger.NewToken(context.Background(), s.Srv.Tokens(), "second organiser", nil); err != nil {
			t.Fatal(err)
		}
	}
	return &conformance.Target{
		Engine:      s.Engine,
		Addr:        s.Addr,
		HTTP:        s.HTTP,
		Token:       s.Token,
		OtherToken:  l.otherToken,
		VerifierKey: s.VerifierKey,
		Policy:      l.policy,
		Stop:        func(t *testing.T) { s.Stop(t) },
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

// modelLog is a log of the engine for a model test, whose writes without a
// token are not limited.
func modelLog(t *testing.T, engine servertest.Engine) *conformanceLog {
	return &conformanceLog{Log: servertest.NewLog(t, servertest.Options{Engine: engine, OpenRate: modelRate, SignerRate: modelRate,
		ReadRate: server.ReadLimits{PerAddress: 1e6, AddressBurst: 1e6}})}
}

// TestModelEmbedded checks random sequences of operations on the embedded
// engine against the rules function (conformance.RunModel).
func TestModelEmbedded(t *testing.T) {
	conformance.RunModel(t, modelLog(t, servertest.Embedded), modelOps(t, 10000), modelSeed(t))
}

// TestModelTrillianMemory is TestModelEmbedded on Trillian in this process.
func TestModelTrillianMemory(t *testing.T) {
	conformance.RunModel(t, modelLog(t, servertest.TrillianMemory), modelOps(t, 10000), modelSeed(t))
}

// TestModelTrillianPostgres is TestModelEmbedded on Trillian and
// PostgreSQL, with 1,000 operations. It runs without the race detector
// (.ci/run runs it so), which makes it too slow.
func TestModelTrillianPostgres(t *testing.T) {
	if raceEnabled {
		t.Skip("too slow under the race detector: .ci/run runs it without -race")
	}
	conformance.RunModel(t, modelLog(t, servertest.TrillianPostgres), modelOps(t, 1000), modelSeed(t))
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

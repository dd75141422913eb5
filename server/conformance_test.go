package server_test

import (
	"context"
	"log/slog"
	"testing"

	"k8s.io/klog/v2"

	"github.com/undersigned/undersigned/server/internal/conformance"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/servertest"
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

// conformanceLog starts the servers of a servertest.Log for the suite,
// each with a second organiser token.
type conformanceLog struct {
	*servertest.Log
	otherToken string
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
		Stop:        func(t *testing.T) { s.Stop(t) },
	}
}

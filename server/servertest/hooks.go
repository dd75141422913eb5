package servertest

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// AfterAdmit returns e with fn called after each batch of writes that the
// ledger admitted durably (a transaction of the store that inserted at
// least one entry committed), and before the batch is handed to the log:
// crash tests kill the server there. It is a test seam, which no
// configuration of the server reaches.
func AfterAdmit(e server.Engine, fn func()) server.Engine {
	h := &hook{fn: fn}
	if us, ok := e.Store().(ledger.UnorderedStore); ok {
		return hookedEngine{e, &hookedUnorderedStore{us, h}}
	}
	return hookedEngine{e, &hookedStore{e.Store(), h}}
}

type hookedEngine struct {
	server.Engine
	store ledger.Store
}

func (e hookedEngine) Store() ledger.Store { return e.store }

// hook calls fn after a committed admission that inserted entries.
type hook struct{ fn func() }

func (h *hook) admit(ctx context.Context, s ledger.Store, fn func(ledger.AdmitTx) error) error {
	var inserted bool
	err := s.Admit(ctx, func(tx ledger.AdmitTx) error {
		inserted = false
		return fn(&countingTx{AdmitTx: tx, inserted: &inserted})
	})
	if err == nil && inserted {
		h.fn()
	}
	return err
}

type hookedStore struct {
	ledger.Store
	h *hook
}

func (s *hookedStore) Admit(ctx context.Context, fn func(ledger.AdmitTx) error) error {
	return s.h.admit(ctx, s.Store, fn)
}

type hookedUnorderedStore struct {
	ledger.UnorderedStore
	h *hook
}

func (s *hookedUnorderedStore) Admit(ctx context.Context, fn func(ledger.AdmitTx) error) error {
	return s.h.admit(ctx, s.UnorderedStore, fn)
}

// countingTx notes whether an entry was inserted. It passes Prefetch on
// when the store's transaction offers it.
type countingTx struct {
	ledger.AdmitTx
	inserted *bool
}

func (tx *countingTx) Insert(ctx context.Context, e *ledger.NewEntry) (int64, error) {
	seq, err := tx.AdmitTx.Insert(ctx, e)
	if err == nil {
		*tx.inserted = true
	}
	return seq, err
}

func (tx *countingTx) Prefetch(ctx context.Context, p ledger.Prefetch) error {
	if pf, ok := tx.AdmitTx.(ledger.Prefetcher); ok {
		return pf.Prefetch(ctx, p)
	}
	return nil
}

// killAfterAdmitEnv, in the environment of a child process, makes it kill
// itself with SIGKILL after that many admitted batches.
const killAfterAdmitEnv = "UNDERSIGNED_TEST_KILL_AFTER_ADMIT"

// killHook returns the engine wrapper that the environment of a child
// process asks for, or nil.
func killHook() func(server.Engine) server.Engine {
	n, err := strconv.Atoi(os.Getenv(killAfterAdmitEnv))
	if err != nil || n < 1 {
		return nil
	}
	var count atomic.Int64
	kill := func() {
		if count.Add(1) == int64(n) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return func(e server.Engine) server.Engine { return AfterAdmit(e, kill) }
}

// Package trillianmem runs Trillian in the process, on its memory storage:
// a log server, an admin server and a sequencer wired to one registry, as
// Trillian's own integration tests wire them, served on an in-memory gRPC
// listener; and [Tiles], the tile builder's store in memory. They let every
// `go test` exercise the Trillian engine without a database; the trees
// live as long as the [Trillian] does.
//
// Trillian's memory storage does not implement AddSequencedLeaves, so a
// PREORDERED_LOG tree (a migration) cannot be filled here. Where it falls
// short of the SQL storages for concurrent use, an adapter stands in (see
// logStorage): read transactions start one at a time, and queued leaves
// are deduplicated by identity hash.
package trillianmem

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/extension"
	tlog "github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	tserver "github.com/google/trillian/server"
	"github.com/google/trillian/server/admin"
	"github.com/google/trillian/storage/memory"
	"github.com/google/trillian/util/clock"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// Config configures an in-process Trillian. The zero value is usable.
type Config struct {
	// SequencerInterval is how often the sequencer integrates queued
	// leaves; 0 means 10 ms.
	SequencerInterval time.Duration
	// BatchSize is the most leaves integrated per run; 0 means 1,000.
	BatchSize int
}

// Trillian is a running in-process Trillian.
type Trillian struct {
	// Conn is a client connection to its log and admin servers.
	Conn *grpc.ClientConn
	// Log and Admin are clients on Conn.
	Log   trillian.TrillianLogClient
	Admin trillian.TrillianAdminClient

	grpc   *grpc.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start starts the servers and the sequencer. Close stops them.
func Start(ctx context.Context, cfg Config) (*Trillian, error) {
	if cfg.SequencerInterval <= 0 {
		cfg.SequencerInterval = 10 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	trees := memory.NewTreeStorage()
	registry := extension.Registry{
		AdminStorage: memory.NewAdminStorage(trees),
		LogStorage:   newLogStorage(memory.NewLogStorage(trees, nil)),
		QuotaManager: quota.Noop(),
	}
	t := &Trillian{grpc: grpc.NewServer()}
	trillian.RegisterTrillianAdminServer(t.grpc, admin.New(registry, nil))
	trillian.RegisterTrillianLogServer(t.grpc, tserver.NewTrillianLogRPCServer(registry, clock.System))

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.cancel = cancel
	sequencer := tlog.NewOperationManager(tlog.OperationInfo{
		Registry:    registry,
		BatchSize:   cfg.BatchSize,
		NumWorkers:  1,
		RunInterval: cfg.SequencerInterval,
		TimeSource:  clock.System,
	}, tlog.NewSequencerManager(registry, 0))
	t.wg.Add(2)
	go func() {
		defer t.wg.Done()
		sequencer.OperationLoop(runCtx)
	}()
	lis := bufconn.Listen(1 << 20)
	go func() {
		defer t.wg.Done()
		t.grpc.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///trillianmem",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("trillianmem: dial: %w", err)
	}
	t.Conn = conn
	t.Log = trillian.NewTrillianLogClient(conn)
	t.Admin = trillian.NewTrillianAdminClient(conn)
	return t, nil
}

// CreateTree creates and initialises an active LOG tree and returns its
// id.
func (t *Trillian) CreateTree(ctx context.Context) (int64, error) {
	return trillianlog.CreateTree(ctx, t.Admin, t.Log, trillian.TreeType_LOG, "undersigned")
}

// Close stops the sequencer and the servers.
func (t *Trillian) Close() {
	t.cancel()
	if t.Conn != nil {
		t.Conn.Close()
	}
	t.grpc.Stop()
	t.wg.Wait()
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// TrillianConfig runs the server as a Trillian personality (DESIGN.md
// §7): the tree is in Trillian, everything beside it in undersigned's own
// PostgreSQL database, and several servers may serve one tree. The data
// folder still holds the log key, log.pub, the secrets and the first
// token; servers of one tree use copies of one data folder.
type TrillianConfig struct {
	// Addr is the gRPC address of trillian_log_server. Conn, when set, is
	// used instead (an in-process Trillian, see package trillianmem).
	Addr string
	Conn grpc.ClientConnInterface
	// TreeID is the tree: a LOG tree, active.
	TreeID int64
	// PostgresURI is undersigned's own database (not Trillian's). Empty
	// keeps the store in the data folder's SQLite file and the tiles in
	// memory: one server only, for tests on Trillian's memory storage.
	PostgresURI string
	// PollInterval is how often the tree's size is read; 0 means 50 ms.
	PollInterval time.Duration
}

// openTrillian opens the Trillian engine.
func (s *Server) openTrillian(ctx context.Context) (err error) {
	cfg, k := s.cfg, s.keys
	tc := cfg.Trillian
	s.engine = "trillian"
	if tc.TreeID == 0 {
		return errors.New("trillian: a tree id is required")
	}
	conn := tc.Conn
	var closeConn func() error
	if conn == nil {
		if tc.Addr == "" {
			return errors.New("trillian: the address of trillian_log_server is required")
		}
		cc, err := grpc.NewClient(tc.Addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			return fmt.Errorf("trillian: dial %s: %w", tc.Addr, err)
		}
		conn, closeConn = cc, cc.Close
	}
	var (
		persist guard.Persister
		tiles   trillianlog.TileStore
	)
	if tc.PostgresURI != "" {
		st, err := pgstore.Open(ctx, tc.PostgresURI, s.log)
		if err != nil {
			return err
		}
		if err := st.Bind(ctx, k.Origin, tc.TreeID); err != nil {
			st.Close()
			return err
		}
		s.store, persist, tiles = st, st.Checkpoints(), st
	} else {
		st, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, datadir.StateFile))
		if err != nil {
			return err
		}
		s.store, persist, tiles = st, guard.File(filepath.Join(cfg.DataDir, datadir.LastCheckpointFile)), &trillianlog.MemoryTiles{}
	}
	defer func() {
		if err != nil {
			s.store.Close()
			if closeConn != nil {
				closeConn()
			}
		}
	}()
	g, err := guard.New(ctx, k.Signer, k.Verifier, persist, nil, s.log)
	if err != nil {
		return err
	}
	tlog, err := trillianlog.Open(ctx, trillianlog.Config{
		Client:       trillian.NewTrillianLogClient(conn),
		TreeID:       tc.TreeID,
		Signer:       g,
		Verifier:     k.Verifier,
		Tiles:        tiles,
		PollInterval: tc.PollInterval,
		Logger:       s.log,
		Registry:     cfg.Registry,
	})
	if err != nil {
		return err
	}
	s.tlog = &trillianEngine{Log: tlog, closeConn: closeConn}
	s.log.Info("opened the Trillian engine", slog.Int64("tree_id", tc.TreeID), slog.Bool("postgres", tc.PostgresURI != ""))
	return nil
}

// trillianEngine closes the connection the server dialled with the log.
type trillianEngine struct {
	*trillianlog.Log
	closeConn func() error
}

// Close stops the log and closes the connection to Trillian.
func (e *trillianEngine) Close(ctx context.Context) error {
	err := e.Log.Close(ctx)
	if e.closeConn != nil {
		err = errors.Join(err, e.closeConn())
	}
	return err
}

var _ ledger.UnorderedLog = (*trillianEngine)(nil)

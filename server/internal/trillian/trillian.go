// Package trillian is the scale engine of the undersigned server: the
// server is a Trillian personality (DESIGN.md §7). The tree is kept by
// Trillian (trillian_log_server and trillian_log_signer, on a database of
// their own), everything beside it by undersigned's own PostgreSQL
// database, and several servers ("frontends") can serve one tree.
//
// The engine is one package tree: the log client and tile builder
// (package trillianlog), the PostgreSQL store, which also keeps the tiles,
// the last signed checkpoint and the per-letter rate limits every frontend
// shares (package pgstore), and, for tests, Trillian in the process
// (package trillianmem).
//
// [Open] dials Trillian and opens the PostgreSQL store; [New] makes an
// engine from parts given to it, which is how tests run the engine on
// Trillian's memory storage without PostgreSQL.
//
// # A key signs one history
//
// The last signed checkpoint in PostgreSQL is what frontends share, and
// what a restore of the database rolls back. So each frontend also keeps
// what the key signed in its state folder ([HistoryFile]): the tree, the
// database's identity and the last checkpoint it served, written before
// the checkpoint is served. At open, a tree, a database or a database
// checkpoint that disagrees with it stops the engine (an error wrapping
// [ErrRefused]): it signs, queues and serves nothing of the log until an
// operator acts. [StartNewTree] lets a key that signed one log sign a new
// tree under a new origin; [Recover] brings a log back to the checkpoint
// its key signed after a restore.
package trillian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	trillianpb "github.com/google/trillian"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	"google.golang.org/grpc"

	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
	"github.com/undersigned/undersigned/server/internal/witnessing"
)

// Name is the engine's name, as GetLogInfo reports it.
const Name = "trillian"

// Config configures the engine.
type Config struct {
	// Folder is the open data folder: the log's key, its verifier key and
	// the secrets, the same in every frontend of the tree.
	Folder *datadir.Folder
	// Addr is the gRPC address of trillian_log_server, which Open dials.
	Addr string
	// TLS configures TLS to trillian_log_server; the zero value dials in
	// plaintext.
	TLS TLSConfig
	// TreeID is the tree: a LOG tree, active.
	TreeID int64
	// PostgresURI is undersigned's own database (not Trillian's), which
	// Open opens.
	PostgresURI string
	// StateDir is this frontend's state folder, which must be writable: it
	// keeps the key's history (see [HistoryFile]) where a restore of the
	// databases cannot roll it back. Empty means the data folder.
	StateDir string
	// PollInterval is how often the tree's size is read; 0 means 50 ms.
	PollInterval time.Duration
	// Witnesses, when set, has every checkpoint cosigned by a quorum of
	// a witness policy's witnesses before it is published; the frontends
	// share the last cosigned checkpoint (Parts.Cosigned). New sets its
	// Store and VerifierKey.
	Witnesses *witnessing.LogConfig
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// Registry receives the log's metrics; nil means none.
	Registry prometheus.Registerer
}

// Parts are what an engine on a Trillian tree is made of. [Open] makes them
// on trillian_log_server and PostgreSQL.
type Parts struct {
	// Conn reaches trillian_log_server.
	Conn grpc.ClientConnInterface
	// Store keeps everything beside the log; every frontend of the tree
	// shares it.
	Store ledger.UnorderedStore
	// Tiles keeps the tile builder's full tiles and state.
	Tiles trillianlog.TileStore
	// Checkpoints keeps the last signed checkpoint, shared by every
	// frontend.
	Checkpoints guard.Persister
	// Cosigned keeps the last checkpoint cosigned by the witnesses,
	// shared by every frontend; needed with Config.Witnesses.
	Cosigned witnessing.Store
	// DatabaseID is the identity of the database that Store and
	// Checkpoints keep (see pgstore.Store.DatabaseID), recorded in the
	// key's history; empty for a store that has none.
	DatabaseID string
	// Bind, when set, binds the database to the log's origin and tree
	// (see pgstore.Store.Bind), once the key's history allows signing: a
	// refused start leaves a new database as it found it.
	Bind func(ctx context.Context) error
	// LetterLimit, when set, keeps the per-letter rate limits every
	// frontend shares (see the server's Engine.SharedLetterLimit).
	LetterLimit func(ctx context.Context, letterID string, rate float64, burst int) (time.Duration, error)
	// Close, when set, closes what the parts hold; the engine calls it
	// from its own Close.
	Close func() error
}

// Engine is the Trillian engine on one tree.
type Engine struct {
	log    *trillianlog.Log
	parts  Parts
	logger *slog.Logger
	// witnessed publishes the log's checkpoints once cosigned; nil
	// without witnesses.
	witnessed *witnessing.UnorderedLog
}

// Open dials trillian_log_server at cfg.Addr, opens undersigned's own
// PostgreSQL database at cfg.PostgresURI (creating or upgrading its
// schema), binds it to the log's origin and tree, and opens the engine on
// them.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.TreeID == 0:
		return nil, errors.New("trillian: a tree id is required")
	case cfg.Addr == "":
		return nil, errors.New("trillian: the address of trillian_log_server is required")
	case cfg.PostgresURI == "":
		return nil, errors.New("trillian: undersigned's PostgreSQL database is required")
	}
	conn, err := Dial(cfg.Addr, cfg.TLS)
	if err != nil {
		return nil, err
	}
	st, err := pgstore.Open(ctx, cfg.PostgresURI, cfg.Logger)
	if err != nil {
		conn.Close()
		return nil, err
	}
	dbID, err := st.DatabaseID(ctx)
	if err != nil {
		st.Close()
		conn.Close()
		return nil, err
	}
	e, err := New(ctx, cfg, Parts{
		Conn:        conn,
		Store:       st,
		Tiles:       st,
		Checkpoints: st.Checkpoints(),
		DatabaseID:  dbID,
		Bind:        func(ctx context.Context) error { return st.Bind(ctx, cfg.Folder.Origin, cfg.TreeID) },
		Cosigned:    st.CosignedCheckpoints(),
		LetterLimit: st.TakeLetterToken,
		Close:       func() error { return errors.Join(st.Close(), conn.Close()) },
	})
	if err != nil {
		return nil, err
	}
	cfg.Logger.Info("opened the Trillian engine", slog.Int64("tree_id", cfg.TreeID))
	return e, nil
}

// New opens the engine on its parts: the key's history (see
// [HistoryFile]), the guard of the last signed checkpoint, and the log on
// the tree, which checks that the tree answers. When the tree, the
// database or the database's last signed checkpoint disagrees with the
// key's history, the engine opens stopped, with the reason (wrapping
// [ErrRefused]) as its log's: it signs, queues and serves nothing of the
// log until an operator acts. On an error, New closes the parts.
func New(ctx context.Context, cfg Config, p Parts) (e *Engine, err error) {
	defer func() {
		if err != nil && p.Close != nil {
			p.Close()
		}
	}()
	if cfg.TreeID == 0 {
		return nil, errors.New("trillian: a tree id is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := cfg.Folder
	k, refusal, hcp, rowcp, err := openHistory(ctx, cfg, p)
	if err != nil {
		return nil, err
	}
	g, err := guard.New(ctx, f.Signer, f.Verifier, p.Checkpoints, nil, cfg.Logger)
	if err != nil {
		return nil, err
	}
	l, err := trillianlog.Open(ctx, trillianlog.Config{
		Client:       trillianpb.NewTrillianLogClient(p.Conn),
		TreeID:       cfg.TreeID,
		Signer:       g,
		Verifier:     f.Verifier,
		Tiles:        p.Tiles,
		PollInterval: cfg.PollInterval,
		Logger:       cfg.Logger,
		Registry:     cfg.Registry,
		Record:       k.record,
	})
	if err != nil {
		return nil, err
	}
	if err := settle(ctx, cfg, p, l, k, refusal, hcp, rowcp); err != nil {
		l.Close(ctx)
		return nil, err
	}
	e = &Engine{log: l, parts: p, logger: cfg.Logger}
	if cfg.Witnesses != nil {
		if p.Cosigned == nil {
			return nil, errors.New("trillian: witnesses need a store of the cosigned checkpoint")
		}
		wc := *cfg.Witnesses
		wc.Store, wc.VerifierKey = p.Cosigned, f.VerifierKey
		if e.witnessed, err = witnessing.NewUnorderedLog(ctx, l, wc); err != nil {
			l.Close(ctx)
			return nil, err
		}
	}
	return e, nil
}

// openHistory opens the key's history in the state folder and compares it
// with the database's last signed checkpoint: refusal (wrapping
// [ErrRefused]) says what disagrees, if anything.
func openHistory(ctx context.Context, cfg Config, p Parts) (k *keeper, refusal error, hcp, rowcp *log.Checkpoint, err error) {
	state := cfg.StateDir
	if state == "" {
		state = cfg.Folder.Dir
	}
	k = newKeeper(state, cfg.Folder)
	// The history is written as the log grows: a folder it cannot be
	// written in (a data folder mounted read-only) fails now, not later.
	unlock, err := lockPath(k.path + ".lock")
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("trillian: the key's history: %w (each frontend needs a writable state folder of its own: --state DIR)", err)
	}
	unlock()
	row, err := p.Checkpoints.Load(ctx)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("trillian: load the last signed checkpoint: %w", err)
	}
	refusal, hcp, rowcp, err = k.open(ctx, cfg.Folder, cfg.TreeID, p.DatabaseID, row)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("trillian: the key's history: %w", err)
	}
	return k, refusal, hcp, rowcp, nil
}

// settle checks the tree against the key's history and, when nothing
// disagrees, binds the database and saves the history; otherwise it stops
// the log with the reason, so that it signs, queues and serves nothing.
func settle(ctx context.Context, cfg Config, p Parts, l *trillianlog.Log, k *keeper, refusal error, hcp, rowcp *log.Checkpoint) error {
	if refusal == nil {
		if refusal = checkTree(ctx, l, cfg.TreeID, p.Conn, hcp, rowcp, k.path); refusal != nil && !errors.Is(refusal, ErrRefused) {
			return refusal
		}
	}
	if refusal == nil && p.Bind != nil {
		if err := p.Bind(ctx); err != nil {
			return err
		}
	}
	if refusal == nil {
		if err := k.save(); err != nil {
			return fmt.Errorf("trillian: the key's history: %w", err)
		}
		return nil
	}
	cfg.Logger.Error("the Trillian engine refuses to sign: it serves nothing of the log until an operator acts", slog.Any("reason", refusal))
	l.Stop(refusal)
	return nil
}

// OpenTokens opens the API tokens of the Trillian engine, which its
// PostgreSQL database keeps, to create, list and revoke them while
// frontends serve. close closes the database.
func OpenTokens(ctx context.Context, postgresURI string) (ts ledger.TokenStore, close func() error, err error) {
	st, err := pgstore.Open(ctx, postgresURI, nil)
	if err != nil {
		return nil, nil, err
	}
	return st.Tokens(), st.Close, nil
}

// Name returns "trillian".
func (e *Engine) Name() string { return Name }

// Log returns the log on the tree, a ledger.UnorderedLog, whose
// checkpoints are published once cosigned when the engine has witnesses.
func (e *Engine) Log() ledger.Log {
	if e.witnessed != nil {
		return e.witnessed
	}
	return e.log
}

// Store returns the shared store.
func (e *Engine) Store() ledger.Store { return e.parts.Store }

// ReadTile returns a tile of the tlog-tiles API, as the tile builder made
// it.
func (e *Engine) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return e.log.ReadTile(ctx, level, index, p)
}

// ReadEntryBundle returns an entry bundle of the tlog-tiles API.
func (e *Engine) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return e.log.ReadEntryBundle(ctx, index, p)
}

// SharedLetterLimit returns the per-letter rate limit the frontends share,
// or nil when the parts have none.
func (e *Engine) SharedLetterLimit() func(context.Context, string, float64, int) (time.Duration, error) {
	return e.parts.LetterLimit
}

// Start waits, with witnesses, for a first cosigned checkpoint (a while:
// the server serves without one when the witnesses do not answer). The
// tile builder checks the tree against the last checkpoint signed before
// it signs another.
func (e *Engine) Start(ctx context.Context) error {
	if e.witnessed != nil {
		if err := e.witnessed.AwaitPublished(ctx); err != nil {
			e.logger.Warn("serving without a checkpoint cosigned by the witnesses: writes wait for them", slog.Any("error", err))
		}
	}
	return nil
}

// Close stops following the tree and closes the parts.
func (e *Engine) Close(ctx context.Context) error {
	if e.witnessed != nil {
		e.witnessed.Close()
	}
	err := e.log.Close(ctx)
	if e.parts.Close != nil {
		err = errors.Join(err, e.parts.Close())
	}
	return err
}

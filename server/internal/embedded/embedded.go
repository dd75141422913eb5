// Package embedded is the default engine of the undersigned server: one
// process, one data folder, no other service. The log is Tessera's POSIX
// driver in the folder (package tesseralog) and everything beside it, the
// admitted writes, the disclosures, the indexes and the API tokens, is a
// SQLite database in the folder (package sqlitestore).
//
// An [Engine] owns its whole life: [Open] opens the folder's log and store
// and checks the entries written since the last clean stop; once the
// ledger has reconciled the store with the log, [Engine.Start] checks that
// the log caught up with the last checkpoint it signed; [Engine.Close]
// stops the log, checks what was appended since the start, and closes the
// store. A stopped folder is checked in full by [Fsck], copied while served
// by [Backup] and made into a new folder by [Restore].
package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/transparency-dev/formats/log"

	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/embedded/tesseralog"
	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/witnessing"
)

// Name is the engine's name, as GetLogInfo reports it.
const Name = "embedded"

// Config configures the engine.
type Config struct {
	// Folder is the open data folder.
	Folder *datadir.Folder
	// BatchMaxSize and BatchMaxAge bound Tessera's batches; 0 means 1,024
	// entries and 50 ms.
	BatchMaxSize uint
	BatchMaxAge  time.Duration
	// CheckpointInterval is how often a checkpoint is published while the
	// log grows; 0 means 100 ms, the least Tessera allows.
	CheckpointInterval time.Duration
	// Witnesses, when set, has every checkpoint cosigned by a quorum of
	// a witness policy's witnesses before it is published: served, and
	// put into receipts. Open sets its Store (the data folder's
	// checkpoint.cosigned) and VerifierKey.
	Witnesses *witnessing.LogConfig
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
}

// Engine is the embedded engine on an open data folder.
type Engine struct {
	cfg  Config
	log  *slog.Logger
	tlog *tesseralog.Log
	// witnessed publishes the log's checkpoints once cosigned; nil
	// without witnesses.
	witnessed *witnessing.Log
	store     *sqlitestore.Store
	guard     *guard.Signer
	// verified is the log as checked at start.
	verified *tesseralog.Verified
}

// Open opens the engine in the data folder: the SQLite store, the guard of
// the last signed checkpoint and the Tessera log, whose entries written
// since the last clean stop must give the tree Tessera keeps. It fails,
// and nothing must be served, when they do not.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := cfg.Folder
	e := &Engine{cfg: cfg, log: cfg.Logger}
	st, err := sqlitestore.Open(ctx, f.Path(datadir.StateFile))
	if err != nil {
		return nil, err
	}
	e.store = st
	if e.guard, err = guard.New(ctx, f.Signer, f.Verifier, guard.File(f.Path(datadir.LastCheckpointFile)), nil, e.log); err != nil {
		st.Close()
		return nil, err
	}
	e.tlog, err = tesseralog.Open(ctx, tesseralog.Config{
		Dir:                f.Path(datadir.LogDir),
		Signer:             e.guard,
		Verifier:           f.Verifier,
		BatchMaxSize:       cfg.BatchMaxSize,
		BatchMaxAge:        cfg.BatchMaxAge,
		CheckpointInterval: cfg.CheckpointInterval,
		Logger:             e.log,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	if err := e.checkSinceLastStop(ctx); err != nil {
		e.tlog.Close(ctx)
		st.Close()
		return nil, fmt.Errorf("refusing to serve: %w (run undersigned-server fsck --data %s)", err, f.Dir)
	}
	if cfg.Witnesses != nil {
		wc := *cfg.Witnesses
		wc.Store, wc.VerifierKey = witnessing.File(f.Path(datadir.CosignedCheckpointFile)), f.VerifierKey
		if e.witnessed, err = witnessing.NewLog(ctx, e.tlog, wc); err != nil {
			e.tlog.Close(ctx)
			st.Close()
			return nil, err
		}
	}
	return e, nil
}

// checkSinceLastStop checks what changed since the last clean stop: the
// entries beyond the verified state must give the tree Tessera keeps.
func (e *Engine) checkSinceLastStop(ctx context.Context) error {
	path := e.cfg.Folder.Path(datadir.LogVerifiedFile)
	verified, err := tesseralog.LoadVerified(path)
	if err != nil {
		return err
	}
	start := time.Now()
	checked, err := e.tlog.Check(ctx, verified, tesseralog.CheckOptions{})
	if err != nil {
		return err
	}
	e.log.Info("checked the log since the last clean stop", slog.Uint64("from", verified.Size),
		slog.Uint64("to", checked.Size), slog.Duration("took", time.Since(start)))
	e.verified = checked
	return tesseralog.SaveVerified(path, checked)
}

// Name returns "embedded".
func (e *Engine) Name() string { return Name }

// Log returns the Tessera log, whose checkpoints are published once
// cosigned when the engine has witnesses.
func (e *Engine) Log() ledger.Log {
	if e.witnessed != nil {
		return e.witnessed
	}
	return e.tlog
}

// Store returns the SQLite store.
func (e *Engine) Store() ledger.Store { return e.store }

// ReadTile returns a tile of the tlog-tiles API.
func (e *Engine) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return e.tlog.ReadTile(ctx, level, index, p)
}

// ReadEntryBundle returns an entry bundle of the tlog-tiles API.
func (e *Engine) ReadEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return e.tlog.ReadEntryBundle(ctx, index, p)
}

// SharedLetterLimit returns nil: one server serves the log, and keeps the
// letters' rate limits itself.
func (e *Engine) SharedLetterLimit() func(context.Context, string, float64, int) (time.Duration, error) {
	return nil
}

// Start checks, once the ledger has reconciled the store with the log,
// that the log caught up with the last checkpoint it signed and extends
// it, and waits for a published checkpoint that covers it. An error means
// the server must not serve; a log that does not extend the checkpoint is
// served with writes refused (the guard has stopped signing).
func (e *Engine) Start(ctx context.Context) error {
	size, root, err := e.tlog.TreeState(ctx)
	if err == nil {
		err = e.guard.Check(ctx, size, root)
	}
	if err != nil {
		if errors.Is(err, guard.ErrBehind) {
			return fmt.Errorf("refusing to serve: %w, and the store holds no admitted writes to catch up with: the log lost entries it had published (restored from an older copy?)", err)
		}
		e.log.Error("the log does not extend the last checkpoint it signed: writes are refused", slog.Any("error", err))
		return nil
	}
	if err := e.awaitPublished(ctx); err != nil {
		return fmt.Errorf("refusing to serve: %w", err)
	}
	if e.witnessed != nil {
		if err := e.witnessed.AwaitPublished(ctx); err != nil {
			e.log.Warn("serving without a checkpoint cosigned by the witnesses: writes wait for them", slog.Any("error", err))
		}
	}
	return nil
}

// awaitPublished waits until the published checkpoint covers the last one
// signed: a restored log must not serve a checkpoint older than one it
// handed out before.
func (e *Engine) awaitPublished(ctx context.Context) error {
	last := e.guard.Last()
	if last == nil {
		return nil
	}
	var want log.Checkpoint
	if _, err := want.Unmarshal(firstParagraph(last)); err != nil {
		return fmt.Errorf("the last signed checkpoint: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if want.Size == 0 {
		return nil
	}
	if _, err := e.tlog.AwaitCheckpoint(ctx, want.Size-1); err != nil {
		return fmt.Errorf("no checkpoint covering the last one signed (size %d) was published: %w", want.Size, err)
	}
	return nil
}

// firstParagraph returns a signed note's text: everything before the blank
// line.
func firstParagraph(n []byte) []byte {
	if i := bytes.Index(n, []byte("\n\n")); i >= 0 {
		return n[:i+1]
	}
	return n
}

// Close stops the log, checks the entries appended since the start (so
// that the next start checks only what changes after this stop), and
// closes the store. The ledger must be closed first.
func (e *Engine) Close(ctx context.Context) error {
	if e.witnessed != nil {
		e.witnessed.Close()
	}
	return errors.Join(e.tlog.Close(ctx), e.saveVerified(ctx), e.store.Close())
}

func (e *Engine) saveVerified(ctx context.Context) error {
	v, err := e.tlog.Check(ctx, e.verified, tesseralog.CheckOptions{})
	if err != nil {
		return fmt.Errorf("checking the log at stop: %w", err)
	}
	return tesseralog.SaveVerified(e.cfg.Folder.Path(datadir.LogVerifiedFile), v)
}

// OpenTokens opens the API tokens of the data folder dir, which its SQLite
// store keeps, to create, list and revoke them while a server may be
// serving the folder. close closes the store.
func OpenTokens(ctx context.Context, dir string) (ts ledger.TokenStore, close func() error, err error) {
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.StateFile))
	if err != nil {
		return nil, nil, err
	}
	return st.Tokens(), st.Close, nil
}

package trillian

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	trillianpb "github.com/google/trillian"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/undersigned/undersigned/internal/atomicfile"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// HistoryFile is the file, in a frontend's state folder (the data folder by
// default), that keeps what the log's key signed on the Trillian engine:
// the tree, the identity of undersigned's database and the last checkpoint
// the frontend served. A restore of the databases cannot roll it back, so
// a frontend refuses to sign a history that does not extend it.
const HistoryFile = "trillian.signed"

// ErrRefused is wrapped by the reason a frontend refuses to sign: the tree,
// the database or the database's last signed checkpoint disagrees with what
// the key signed before (see [HistoryFile]).
var ErrRefused = errors.New("refusing to sign")

// history is the content of the history file.
type history struct {
	Origin string `json:"origin"`
	TreeID int64  `json:"tree_id"`
	// Database is the identity of undersigned's database (see
	// pgstore.Store.DatabaseID), or empty where the store has none.
	Database string `json:"database,omitempty"`
	// Checkpoint is the last checkpoint the key signed that this frontend
	// knows of, a signed note; empty before the first.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// keeper reads and advances the history file of one frontend.
type keeper struct {
	path     string
	origin   string
	verifier note.Verifier

	mu  sync.Mutex
	cur *history
	// fresh is set when cur is not written yet (see save).
	fresh bool
}

func newKeeper(dir string, f *datadir.Folder) *keeper {
	return &keeper{path: filepath.Join(dir, HistoryFile), origin: f.Origin, verifier: f.Verifier}
}

// load reads the history file, or returns nil when there is none.
func (k *keeper) load() (*history, *log.Checkpoint, error) {
	b, err := os.ReadFile(k.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", k.path, err)
	}
	var h history
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", k.path, err)
	}
	if h.Checkpoint == "" {
		return &h, nil, nil
	}
	cp, _, _, err := log.ParseCheckpoint([]byte(h.Checkpoint), k.origin, k.verifier)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the checkpoint does not verify with the log's key: %w", k.path, err)
	}
	return &h, cp, nil
}

// write writes h durably.
func (k *keeper) write(h *history) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(k.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s (a frontend's state folder must be writable: see --state): %w", k.path, err)
	}
	return nil
}

// record advances the history to a signed checkpoint of size, unless it
// already holds one as large (another frontend sharing the folder went
// further): the file only ever grows. It is the log's Record.
func (k *keeper) record(_ context.Context, signed []byte, size uint64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	unlock, err := lockPath(k.path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	h, cp, err := k.load()
	if err != nil {
		return err
	}
	if h == nil {
		h = k.cur
	}
	if cp != nil && cp.Size >= size {
		return nil
	}
	next := *h
	next.Checkpoint = string(signed)
	return k.write(&next)
}

// check compares what the key signed before (h, with its checkpoint hcp)
// with the tree, the database and the database's last signed checkpoint
// (row) that a frontend is about to sign for. It returns an error wrapping
// [ErrRefused] that says what changed, or nil. A row larger than hcp is
// checked later, with a consistency proof from Trillian (see
// [checkExtends]).
func (h *history) check(hcp *log.Checkpoint, treeID int64, database string, row *log.Checkpoint, file string) error {
	switch {
	case h.TreeID != treeID:
		signed := "nothing yet"
		if hcp != nil {
			signed = fmt.Sprintf("up to size %d", hcp.Size)
		}
		return fmt.Errorf("%w: this key signed Trillian tree %d (%s; %s), and this is tree %d. A new tree under a key that signed another needs --new-tree and a new --origin, so that no checkpoint of one can be taken for the other",
			ErrRefused, h.TreeID, signed, file, treeID)
	case h.Database != "" && database != "" && h.Database != database:
		return fmt.Errorf("%w: undersigned's database is not the one this key signed with (its identity was %s, it is %s; %s): a new or replaced database. Restore the database the log was written to (see deploy/README.md)",
			ErrRefused, h.Database, database, file)
	case hcp == nil:
		return nil
	case row == nil:
		return fmt.Errorf("%w: undersigned's database holds no signed checkpoint, but this key signed size %d of this tree (%s): the database was emptied or replaced. Restore it, then run `undersigned-server recover` (see deploy/README.md)",
			ErrRefused, hcp.Size, file)
	case row.Size < hcp.Size:
		return fmt.Errorf("%w: undersigned's database holds a signed checkpoint of size %d, older than the size %d this key signed (%s): the databases were restored from an older copy. Nothing is queued or signed until `undersigned-server recover` brings the log back to size %d (see deploy/README.md)",
			ErrRefused, row.Size, hcp.Size, file, hcp.Size)
	case row.Size == hcp.Size && !bytes.Equal(row.Hash, hcp.Hash):
		return fmt.Errorf("%w: undersigned's database holds a signed checkpoint of size %d with root %x, but this key signed root %x at that size (%s): two histories. Keep both checkpoints as evidence",
			ErrRefused, row.Size, row.Hash, hcp.Hash, file)
	}
	return nil
}

// checkTree checks Trillian's tree against what the key signed: it must
// hold at least the entries of the database's last signed checkpoint row
// (or Trillian lost entries), and, when row is larger than the checkpoint
// the key's history holds (hcp: another frontend signed further), row must
// extend hcp, which a consistency proof from Trillian shows.
func checkTree(ctx context.Context, l *trillianlog.Log, treeID int64, conn grpc.ClientConnInterface, hcp, row *log.Checkpoint, file string) error {
	if row == nil {
		return nil
	}
	size, _, err := trillianlog.LatestRoot(ctx, trillianpb.NewTrillianLogClient(conn), treeID)
	if err != nil {
		return fmt.Errorf("open the Trillian tree %d: %w", treeID, err)
	}
	if size < row.Size {
		return fmt.Errorf("%w: Trillian's tree has %d entries, and the last checkpoint signed has %d: Trillian lost entries (its database restored from an older copy?). Nothing is queued or signed until `undersigned-server recover` queues them again (see deploy/README.md)",
			ErrRefused, size, row.Size)
	}
	return checkExtends(ctx, l.ConsistencyProof, hcp, row, file)
}

// checkExtends checks, with a consistency proof from Trillian, that the
// database's last signed checkpoint row extends the one the key's history
// holds (hcp), when it is larger: another frontend signed further.
func checkExtends(ctx context.Context, prove func(ctx context.Context, from, to uint64) ([][]byte, error), hcp, row *log.Checkpoint, file string) error {
	if hcp == nil || row == nil || row.Size <= hcp.Size || hcp.Size == 0 {
		return nil
	}
	p, err := prove(ctx, hcp.Size, row.Size)
	if err != nil {
		return fmt.Errorf("prove that the database's checkpoint extends the key's history: %w", err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, hcp.Size, row.Size, p, hcp.Hash, row.Hash); err != nil {
		return fmt.Errorf("%w: undersigned's database holds a signed checkpoint of size %d that does not extend the checkpoint of size %d this key signed (%s): two histories. Keep both checkpoints as evidence: %v",
			ErrRefused, row.Size, hcp.Size, file, err)
	}
	return nil
}

// open reads the key's history and compares it with the tree, the
// database (its identity, database, or empty) and the database's last
// signed checkpoint. It returns why the frontend must refuse to sign (an
// error wrapping [ErrRefused]), or, on a first start on this state
// folder, writes a new history; and the history's checkpoint and the
// database's. An error means the comparison could not be made.
func (k *keeper) open(ctx context.Context, f *datadir.Folder, treeID int64, database string, row []byte) (refusal error, hcp, rowcp *log.Checkpoint, err error) {
	if row != nil {
		if rowcp, _, _, err = log.ParseCheckpoint(row, k.origin, k.verifier); err != nil {
			return nil, nil, nil, fmt.Errorf("the database's last signed checkpoint does not verify with the log's key: %w", err)
		}
	}
	h, hcp, err := k.load()
	if err != nil {
		return nil, nil, nil, err
	}
	if h == nil {
		if _, err := os.Stat(f.Path(datadir.LastCheckpointFile)); err == nil && row == nil && !f.Created {
			return fmt.Errorf("%w: this data folder's key signed an embedded log (%s), and undersigned's database holds no checkpoint: move the log with `undersigned-server migrate`, or start a new tree with --new-tree and a new --origin",
				ErrRefused, f.Path(datadir.LastCheckpointFile)), nil, rowcp, nil
		}
		// A first start on this folder: what the database says is taken
		// as the history, as a new frontend of a running log must.
		// Written once the database is bound to the log (see save).
		k.cur, k.fresh = &history{Origin: k.origin, TreeID: treeID, Database: database, Checkpoint: string(row)}, true
		return nil, rowcp, rowcp, nil
	}
	if h.Origin != k.origin {
		return fmt.Errorf("%w: %s holds the history of the log %q, and this key is of %q", ErrRefused, k.path, h.Origin, k.origin), hcp, rowcp, nil
	}
	if refusal := h.check(hcp, treeID, database, rowcp, k.path); refusal != nil {
		return refusal, hcp, rowcp, nil
	}
	if h.Database == "" && database != "" {
		h.Database, k.fresh = database, true
	}
	k.cur = h
	return nil, hcp, rowcp, nil
}

// save writes the history that open made or completed, once the frontend
// may sign.
func (k *keeper) save() error {
	if !k.fresh {
		return nil
	}
	k.fresh = false
	return k.write(k.cur)
}

// StartNewTree prepares a data folder whose key signed another log to
// sign a new tree, treeID, under a new origin: the key is renamed (see
// datadir.Rename), so that no checkpoint of the old log can be taken for
// one of the new, and the key's history in stateDir (the data folder
// when empty) is kept beside, as evidence, and started afresh for the new
// tree. Running it again for the same tree and origin changes nothing.
func StartNewTree(dataDir, stateDir, origin string, treeID int64) error {
	if stateDir == "" {
		stateDir = dataDir
	}
	current, err := datadir.KeyName(dataDir)
	if err != nil {
		return err
	}
	path := filepath.Join(stateDir, HistoryFile)
	var h history
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &h); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case origin == current && (h.Origin == "" || h.Origin == origin && h.TreeID == treeID):
		return nil // done already, or nothing to do
	case origin == "" || origin == current:
		return fmt.Errorf("--new-tree needs a new --origin: the key is named %q, the origin of the log it signed", current)
	case h.TreeID == treeID && h.Origin == current:
		return fmt.Errorf("--new-tree: the key signs tree %d already, under %q; a new origin is for a new tree", treeID, current)
	}
	// The history first, so that a rerun after a crash finishes the job.
	if h.Origin != "" && h.Origin != origin {
		kept := fmt.Sprintf("%s.%d", path, h.TreeID)
		if err := os.Rename(path, kept); err != nil {
			return fmt.Errorf("keep the old history: %w", err)
		}
	}
	k := &keeper{path: path}
	if err := k.write(&history{Origin: origin, TreeID: treeID}); err != nil {
		return err
	}
	_, err = datadir.Rename(dataDir, origin)
	return err
}

package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/embedded/tesseralog"
)

// Fsck checks a stopped data folder in full and writes what it finds to w:
// the log recomputed from its entries against every tile and the tree
// state; the published and the last signed checkpoints against the tree;
// SQLite's integrity; every indexed record against the log; every kept
// disclosure against its commitment, and no disclosure kept for a private
// or redacted endorsement; no public endorsement without its disclosure.
// It returns the number of problems found; an error means the check could
// not run.
func Fsck(ctx context.Context, dir string, w io.Writer) (int, error) {
	v, err := datadir.ReadVerifier(dir)
	if err != nil {
		return 0, fmt.Errorf("fsck: %w", err)
	}
	l, err := tesseralog.OpenReadOnly(filepath.Join(dir, datadir.LogDir), v)
	if err != nil {
		return 0, fmt.Errorf("fsck: open the log: %w", err)
	}
	c := &fsck{dir: dir, w: w, log: l, verifier: v}
	fmt.Fprintf(w, "checking the log of %s in %s\n", v.Name(), dir)
	if err := c.checkLog(ctx); err != nil {
		return c.problems, fmt.Errorf("fsck: %w", err)
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.StateFile))
	if err != nil {
		return c.problems, fmt.Errorf("fsck: %w", err)
	}
	defer st.Close()
	if err := c.checkStore(ctx, st); err != nil {
		return c.problems, fmt.Errorf("fsck: %w", err)
	}
	if c.problems == 0 {
		fmt.Fprintln(w, "no problems found")
	}
	return c.problems, nil
}

// fsck is one check of a data folder.
type fsck struct {
	dir      string
	w        io.Writer
	log      *tesseralog.Log
	verifier note.Verifier
	problems int
	// size is the size of the log as recomputed from its entries.
	size uint64
}

func (c *fsck) report(format string, args ...any) {
	c.problems++
	fmt.Fprintf(c.w, "PROBLEM: "+format+"\n", args...)
}

// checkLog recomputes the tree from the entries, compares it with the tree
// state and every tile, and checks the published and the last signed
// checkpoints against it.
func (c *fsck) checkLog(ctx context.Context) error {
	full, err := c.log.Check(ctx, &tesseralog.Verified{}, tesseralog.CheckOptions{Tiles: true})
	switch {
	case errors.Is(err, tesseralog.ErrCorrupt):
		c.report("%v", err)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(c.w, "the %d entries give the tree state's root, and every tile matches them\n", full.Size)
	c.size = full.Size
	root, err := rootOf(full)
	if err != nil {
		return err
	}
	for _, f := range []string{filepath.Join(datadir.LogDir, "checkpoint"), datadir.LastCheckpointFile} {
		raw, err := os.ReadFile(filepath.Join(c.dir, f))
		if err != nil {
			c.report("%s: %v", f, err)
			continue
		}
		cp, _, _, err := log.ParseCheckpoint(raw, c.verifier.Name(), c.verifier)
		if err != nil {
			c.report("%s does not verify with %s: %v", f, datadir.LogPubFile, err)
			continue
		}
		if err := consistent(ctx, c.log, cp, full.Size, root); err != nil {
			c.report("%s (size %d) is not consistent with the log (size %d): %v", f, cp.Size, full.Size, err)
		}
	}
	return nil
}

// checkStore checks SQLite's integrity, every indexed record against the
// log, and every endorsement's disclosure.
func (c *fsck) checkStore(ctx context.Context, st *sqlitestore.Store) error {
	bad, err := st.IntegrityCheck(ctx)
	if err != nil {
		return err
	}
	for _, b := range bad {
		c.report("SQLite: %s", b)
	}
	if err := c.checkIndexed(ctx, st); err != nil {
		return err
	}
	return st.ForEachEndorsement(ctx, func(r sqlitestore.EndorsementRow) error {
		c.checkEndorsement(r)
		return nil
	})
}

// checkIndexed checks that the store indexes every entry of the log, once,
// with the log's bytes.
func (c *fsck) checkIndexed(ctx context.Context, st *sqlitestore.Store) error {
	var next, bundleStart uint64
	var bundle [][]byte
	return st.ForEachIndexed(ctx, func(e sqlitestore.IndexedEntry) error {
		if e.Index != next {
			c.report("the store has no entry at %d", next)
		}
		next = e.Index + 1
		if e.Index >= c.size {
			c.report("the store puts an entry at %d, beyond the log's %d", e.Index, c.size)
			return nil
		}
		if e.Index < bundleStart || e.Index >= bundleStart+uint64(len(bundle)) {
			bundleStart = e.Index - e.Index%256
			var err error
			if bundle, err = c.log.ReadLeaves(ctx, bundleStart, min(bundleStart+256, c.size)); err != nil {
				return err
			}
		}
		leaf := bundle[e.Index-bundleStart]
		if !bytes.Equal(leaf, e.Record) || !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(leaf), e.LeafHash) {
			c.report("entry %d differs between the store and the log", e.Index)
		}
		return nil
	})
}

// checkEndorsement checks what the store keeps of an endorsement's
// disclosure.
func (c *fsck) checkEndorsement(r sqlitestore.EndorsementRow) {
	rec, err := records.Decode(r.Record)
	if err != nil {
		c.report("endorsement at %d: %v", r.Index, err)
		return
	}
	switch {
	case r.Disclosure != nil && r.Visibility != pb.Visibility_VISIBILITY_PUBLIC:
		c.report("endorsement at %d is private but the store keeps its disclosure", r.Index)
	case r.Disclosure != nil && r.Redacted:
		c.report("endorsement at %d is redacted but the store keeps its disclosure", r.Index)
	case r.Disclosure != nil:
		if err := records.CheckDisclosure(rec.GetEndorsement(), r.Disclosure); err != nil {
			c.report("endorsement at %d: the kept disclosure does not open the commitment: %v", r.Index, err)
		}
	case r.Visibility == pb.Visibility_VISIBILITY_PUBLIC && !r.Redacted:
		c.report("endorsement at %d is public, not redacted, and has no disclosure: withheld", r.Index)
	}
}

func rootOf(v *tesseralog.Verified) ([]byte, error) {
	if v.Size == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	r, err := v.Range()
	if err != nil {
		return nil, err
	}
	return r.GetRootHash(nil)
}

// consistent checks that the checkpoint is the log's tree at its size.
func consistent(ctx context.Context, l *tesseralog.Log, cp *log.Checkpoint, size uint64, root []byte) error {
	switch {
	case cp.Size > size:
		return errors.New("the checkpoint is larger than the log")
	case cp.Size == size:
		if !bytes.Equal(cp.Hash, root) {
			return errors.New("another root at the same size")
		}
		return nil
	case cp.Size == 0:
		return nil
	}
	p, err := l.ConsistencyProof(ctx, cp.Size, size)
	if err != nil {
		return err
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, cp.Size, size, p, cp.Hash, root)
}

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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
	problems := 0
	report := func(format string, args ...any) {
		problems++
		fmt.Fprintf(w, "PROBLEM: "+format+"\n", args...)
	}
	pub, err := os.ReadFile(filepath.Join(dir, datadir.LogPubFile))
	if err != nil {
		return 0, fmt.Errorf("fsck: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		return 0, fmt.Errorf("fsck: %s: %w", datadir.LogPubFile, err)
	}
	l, err := tesseralog.OpenReadOnly(filepath.Join(dir, datadir.LogDir), v)
	if err != nil {
		return 0, fmt.Errorf("fsck: open the log: %w", err)
	}
	fmt.Fprintf(w, "checking the log of %s in %s\n", v.Name(), dir)
	full, err := l.Check(ctx, &tesseralog.Verified{}, tesseralog.CheckOptions{Tiles: true})
	switch {
	case errors.Is(err, tesseralog.ErrCorrupt):
		report("%v", err)
	case err != nil:
		return problems, fmt.Errorf("fsck: %w", err)
	default:
		fmt.Fprintf(w, "the %d entries give the tree state's root, and every tile matches them\n", full.Size)
	}
	if full != nil {
		root, _ := rootOf(full)
		for _, f := range []string{filepath.Join(datadir.LogDir, "checkpoint"), datadir.LastCheckpointFile} {
			raw, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				report("%s: %v", f, err)
				continue
			}
			cp, _, _, err := log.ParseCheckpoint(raw, v.Name(), v)
			if err != nil {
				report("%s does not verify with %s: %v", f, datadir.LogPubFile, err)
				continue
			}
			if err := consistent(ctx, l, cp, full.Size, root); err != nil {
				report("%s (size %d) is not consistent with the log (size %d): %v", f, cp.Size, full.Size, err)
			}
		}
	}

	st, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.StateFile))
	if err != nil {
		return problems, fmt.Errorf("fsck: %w", err)
	}
	defer st.Close()
	bad, err := st.IntegrityCheck(ctx)
	if err != nil {
		return problems, fmt.Errorf("fsck: %w", err)
	}
	for _, b := range bad {
		report("SQLite: %s", b)
	}
	size := uint64(0)
	if full != nil {
		size = full.Size
	}
	var next, bundleStart uint64
	var bundle [][]byte
	err = st.ForEachIndexed(ctx, func(e sqlitestore.IndexedEntry) error {
		if e.Index != next {
			report("the store has no entry at %d", next)
		}
		next = e.Index + 1
		if e.Index >= size {
			report("the store puts an entry at %d, beyond the log's %d", e.Index, size)
			return nil
		}
		if e.Index < bundleStart || e.Index >= bundleStart+uint64(len(bundle)) {
			bundleStart = e.Index - e.Index%256
			if bundle, err = l.ReadLeaves(ctx, bundleStart, min(bundleStart+256, size)); err != nil {
				return err
			}
		}
		leaf := bundle[e.Index-bundleStart]
		if !bytes.Equal(leaf, e.Record) || !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(leaf), e.LeafHash) {
			report("entry %d differs between the store and the log", e.Index)
		}
		return nil
	})
	if err != nil {
		return problems, fmt.Errorf("fsck: %w", err)
	}
	err = st.ForEachEndorsement(ctx, func(r sqlitestore.EndorsementRow) error {
		rec, err := records.Decode(r.Record)
		if err != nil {
			report("endorsement at %d: %v", r.Index, err)
			return nil
		}
		e := rec.GetEndorsement()
		switch {
		case r.Disclosure != nil && r.Visibility != pb.Visibility_VISIBILITY_PUBLIC:
			report("endorsement at %d is private but the store keeps its disclosure", r.Index)
		case r.Disclosure != nil && r.Redacted:
			report("endorsement at %d is redacted but the store keeps its disclosure", r.Index)
		case r.Disclosure != nil:
			if err := records.CheckDisclosure(e, r.Disclosure); err != nil {
				report("endorsement at %d: the kept disclosure does not open the commitment: %v", r.Index, err)
			}
		case r.Visibility == pb.Visibility_VISIBILITY_PUBLIC && !r.Redacted:
			report("endorsement at %d is public, not redacted, and has no disclosure: withheld", r.Index)
		}
		return nil
	})
	if err != nil {
		return problems, fmt.Errorf("fsck: %w", err)
	}
	if problems == 0 {
		fmt.Fprintln(w, "no problems found")
	}
	return problems, nil
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

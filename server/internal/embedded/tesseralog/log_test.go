package tesseralog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/tileproofs"
)

func openTestLog(t *testing.T) *Log {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test.example/embedded")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	dir := t.TempDir()
	g, err := guard.New(context.Background(), s, v, guard.File(filepath.Join(dir, "checkpoint.signed")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), Config{Dir: filepath.Join(dir, "log"), Signer: g, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

// TestProofs checks the log's inclusion and consistency proofs against
// Tessera's own proof builder and the RFC 6962 verifier, at tree sizes on
// both sides of tile boundaries.
func TestProofs(t *testing.T) {
	ctx := context.Background()
	l := openTestLog(t)
	var leaves [][]byte
	// Sizes to stop at: the checkpoint of each is published before going
	// on, so that its partial tiles exist.
	stops := []uint64{1, 2, 3, 255, 256, 257, 511, 513, 1000, 65535, 65536, 65537, 70001}
	var roots = map[uint64][]byte{}
	for _, stop := range stops {
		var futures []func() (uint64, error)
		for uint64(len(leaves)) < stop {
			d := []byte(fmt.Sprintf("leaf %d", len(leaves)))
			leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(d))
			futures = append(futures, l.Append(ctx, d))
		}
		for _, f := range futures {
			if _, err := f(); err != nil {
				t.Fatal(err)
			}
		}
		cp, err := l.AwaitCheckpoint(ctx, stop-1)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != stop {
			t.Fatalf("checkpoint size %d, want %d", cp.Size, stop)
		}
		roots[stop] = cp.Hash
		pick := func(n uint64) uint64 {
			r, _ := rand.Int(rand.Reader, new(big.Int).SetUint64(n))
			return r.Uint64()
		}
		ref, err := tclient.NewProofBuilder(ctx, stop, l.reader.ReadTile)
		if err != nil {
			t.Fatal(err)
		}
		indexes := []uint64{0, stop - 1, stop / 2, pick(stop), pick(stop)}
		for _, i := range indexes {
			got, err := l.InclusionProof(ctx, i, stop)
			if err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, stop, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, stop, leaves[i], got, cp.Hash); err != nil {
				t.Fatalf("inclusion %d in %d does not verify: %v", i, stop, err)
			}
			want, err := ref.InclusionProof(ctx, i)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("inclusion %d in %d differs from Tessera's", i, stop)
			}
		}
		for from, root := range roots {
			got, err := l.ConsistencyProof(ctx, from, stop)
			if err != nil {
				t.Fatalf("consistency %d to %d: %v", from, stop, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, from, stop, got, root, cp.Hash); err != nil {
				t.Fatalf("consistency %d to %d does not verify: %v", from, stop, err)
			}
		}
	}
	got, err := l.ReadLeaves(ctx, 250, 600)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range got {
		if want := fmt.Sprintf("leaf %d", 250+i); string(d) != want {
			t.Fatalf("leaf %d is %q, want %q", 250+i, d, want)
		}
	}
}

// TestCheck verifies a log from its entries, incrementally and in full with
// the tiles, and catches a changed entry bundle and a changed tile.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	l := openTestLog(t)
	add := func(n int) {
		var fs []func() (uint64, error)
		for range n {
			fs = append(fs, l.Append(ctx, []byte(fmt.Sprintf("entry %d", len(fs)))))
		}
		for _, f := range fs {
			if _, err := f(); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(700)
	full, err := l.Check(ctx, &Verified{}, CheckOptions{Tiles: true})
	if err != nil {
		t.Fatalf("a sound log fails the full check: %v", err)
	}
	if full.Size != 700 {
		t.Fatalf("verified %d entries, want 700", full.Size)
	}
	add(300)
	next, err := l.Check(ctx, full, CheckOptions{})
	if err != nil {
		t.Fatalf("the incremental check: %v", err)
	}
	again, err := l.Check(ctx, &Verified{}, CheckOptions{Tiles: true})
	if err != nil || fmt.Sprint(again.Hashes) != fmt.Sprint(next.Hashes) || again.Size != 1000 {
		t.Fatalf("the full and incremental checks disagree: %v", err)
	}
	path := filepath.Join(t.TempDir(), "verified")
	if err := SaveVerified(path, next); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadVerified(path)
	if err != nil || loaded.Size != next.Size {
		t.Fatalf("LoadVerified: %v", err)
	}

	flip := func(t *testing.T, rel string, at int) {
		t.Helper()
		p := filepath.Join(l.cfg.Dir, rel)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[at] ^= 1
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b[at] ^= 1; os.WriteFile(p, b, 0o644) })
	}
	t.Run("a changed entry", func(t *testing.T) {
		flip(t, layout.EntriesPath(1, 0), 10)
		if _, err := l.Check(ctx, &Verified{}, CheckOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a changed entry bundle passed: %v", err)
		}
		// The incremental check from a state past the change does not read
		// it: that is what fsck is for.
		if _, err := l.Check(ctx, next, CheckOptions{}); err != nil {
			t.Fatalf("the incremental check read verified entries: %v", err)
		}
	})
	t.Run("a changed tile", func(t *testing.T) {
		flip(t, layout.TilePath(0, 1, 0), 40)
		if _, err := l.Check(ctx, &Verified{}, CheckOptions{}); err != nil {
			t.Fatalf("without tiles, the check should pass: %v", err)
		}
		if _, err := l.Check(ctx, &Verified{}, CheckOptions{Tiles: true}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a changed tile passed the full check: %v", err)
		}
	})
	t.Run("a changed partial tile", func(t *testing.T) {
		flip(t, layout.TilePath(0, 3, 1000%256), 5)
		if _, err := l.Check(ctx, &Verified{}, CheckOptions{Tiles: true}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a changed partial tile passed the full check: %v", err)
		}
	})
}

// TestPartialsGone: once Tessera has removed a partial tile and entry
// bundle below a full one (its garbage collection), the log still serves
// them, cut from the full ones, and proves inclusion in their tree: a
// checkpoint the witnesses cosigned may be older than Tessera's.
func TestPartialsGone(t *testing.T) {
	ctx := context.Background()
	l := openTestLog(t)
	var leaves [][]byte
	grow := func(to int) {
		var futures []func() (uint64, error)
		for len(leaves) < to {
			d := []byte(fmt.Sprintf("leaf %d", len(leaves)))
			leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(d))
			futures = append(futures, l.Append(ctx, d))
		}
		for _, f := range futures {
			if _, err := f(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := l.AwaitCheckpoint(ctx, uint64(to-1)); err != nil {
			t.Fatal(err)
		}
	}
	grow(100)
	cp, _ := l.Checkpoint(ctx)
	tile, err := l.ReadTile(ctx, 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := l.ReadEntryBundle(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	grow(300)
	for _, p := range []string{layout.TilePath(0, 0, 100), layout.EntriesPath(0, 100)} {
		if err := os.Remove(filepath.Join(l.cfg.Dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := l.ReadTile(ctx, 0, 0, 100); err != nil || string(got) != string(tile) {
		t.Fatalf("the removed partial tile: %v, %d bytes, want %d", err, len(got), len(tile))
	}
	if got, err := l.ReadEntryBundle(ctx, 0, 100); err != nil || string(got) != string(bundle) {
		t.Fatalf("the removed partial bundle: %v, %d bytes, want %d", err, len(got), len(bundle))
	}
	p, err := tileproofs.New(partialTiles(l.reader.ReadTile)).Inclusion(ctx, 42, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 42, 100, leaves[42], p, cp.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReadTile(ctx, 0, 5, 3); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a tile that never existed: %v", err)
	}
}

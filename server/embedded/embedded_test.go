package embedded

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	tclient "github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"
)

func openTestLog(t *testing.T) *Log {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "test.example/embedded")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	l, err := Open(context.Background(), Config{Dir: t.TempDir(), Signer: s, Verifier: v})
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

package tileproofs

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
)

// TestHasherIsRFC6962 checks that Hasher gives the library's hashes, for
// nodes of this log and for inputs of other lengths.
func TestHasherIsRFC6962(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	bytesOf := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
		return b
	}
	want := rfc6962.DefaultHasher
	if !bytes.Equal(Hasher.EmptyRoot(), want.EmptyRoot()) || Hasher.Size() != want.Size() {
		t.Fatal("EmptyRoot or Size differ")
	}
	for i := range 1000 {
		l, r := bytesOf(32), bytesOf(32)
		if i%10 == 0 {
			l, r = bytesOf(rnd.IntN(70)), bytesOf(rnd.IntN(70))
		}
		if got, w := Hasher.HashChildren(l, r), want.HashChildren(l, r); !bytes.Equal(got, w) {
			t.Fatalf("HashChildren(%x, %x) = %x, want %x", l, r, got, w)
		}
		leaf := bytesOf(rnd.IntN(300))
		if got, w := Hasher.HashLeaf(leaf), want.HashLeaf(leaf); !bytes.Equal(got, w) {
			t.Fatalf("HashLeaf(%x) = %x, want %x", leaf, got, w)
		}
	}
}

package guard

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// memory is a Persister in memory.
type memory struct{ b []byte }

func (m *memory) Load(context.Context) ([]byte, error) { return m.b, nil }
func (m *memory) Store(_ context.Context, prev, next []byte) error {
	if string(prev) != string(m.b) {
		return errors.New("compare-and-swap failed")
	}
	m.b = next
	return nil
}

// tree is an in-memory RFC 6962 tree that proves consistency.
type tree struct{ leaves [][]byte }

func (t *tree) root(n uint64) []byte { return subtreeHash(t.leaves[:n]) }

func subtreeHash(l [][]byte) []byte {
	switch len(l) {
	case 0:
		return rfc6962.DefaultHasher.EmptyRoot()
	case 1:
		return l[0]
	}
	k := 1
	for k*2 < len(l) {
		k *= 2
	}
	return rfc6962.DefaultHasher.HashChildren(subtreeHash(l[:k]), subtreeHash(l[k:]))
}

// prove builds an RFC 6962 consistency proof (section 2.1.2).
func (t *tree) prove(_ context.Context, from, to uint64) ([][]byte, error) {
	if to > uint64(len(t.leaves)) || from > to {
		return nil, fmt.Errorf("no tree of size %d", to)
	}
	var sub func(m int, l [][]byte, complete bool) [][]byte
	sub = func(m int, l [][]byte, complete bool) [][]byte {
		n := len(l)
		if m == n {
			if complete {
				return nil
			}
			return [][]byte{subtreeHash(l)}
		}
		k := 1
		for k*2 < n {
			k *= 2
		}
		if m <= k {
			return append(sub(m, l[:k], complete), subtreeHash(l[k:]))
		}
		return append(sub(m-k, l[k:], false), subtreeHash(l[:k]))
	}
	return sub(int(from), t.leaves[:to], true), nil
}

func body(origin string, size uint64, root []byte) []byte {
	return log.Checkpoint{Origin: origin, Size: size, Hash: root}.Marshal()
}

func newSigner(t testing.TB, p Persister, tr *tree) (*Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "guard.test/log")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	g, err := New(context.Background(), s, v, p, tr.prove, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g, v
}

// TestGuard checks that the signer signs a growing tree, persists each
// signed checkpoint, and stops for good at a smaller tree, another root at
// the same size, or a tree that does not extend the last one.
func TestGuard(t *testing.T) {
	tr := &tree{}
	for i := range 20 {
		tr.leaves = append(tr.leaves, rfc6962.DefaultHasher.HashLeaf([]byte(fmt.Sprint(i))))
	}
	mem := &memory{}
	g, v := newSigner(t, mem, tr)
	for _, n := range []uint64{0, 1, 5, 5, 8, 13} {
		msg := body(g.Name(), n, tr.root(n))
		if _, err := note.Sign(&note.Note{Text: string(msg)}, g); err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		cp, _, _, err := log.ParseCheckpoint(mem.b, g.Name(), v)
		if err != nil || cp.Size != n {
			t.Fatalf("size %d: the persisted checkpoint is %v (%v)", n, cp, err)
		}
	}
	// A forked tree of size 16: leaf 3 differs.
	fork := &tree{leaves: append([][]byte(nil), tr.leaves...)}
	fork.leaves[3] = rfc6962.DefaultHasher.HashLeaf([]byte("rewritten"))
	g.SetProver(fork.prove)
	if _, err := g.Sign(body(g.Name(), 16, fork.root(16))); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a fork was signed: %v", err)
	}
	if !errors.Is(g.Err(), ErrInconsistent) {
		t.Fatal("the signer did not stop")
	}
	// Stopped for good: even the honest tree is refused now.
	g.SetProver(tr.prove)
	if _, err := g.Sign(body(g.Name(), 16, tr.root(16))); err == nil {
		t.Fatal("a stopped signer signed")
	}

	t.Run("another root, same size", func(t *testing.T) {
		g := startAt(t, tr, 13)
		if _, err := g.Sign(body("guard.test/log", 13, tr.root(12))); !errors.Is(err, ErrInconsistent) {
			t.Fatalf("signed: %v", err)
		}
	})
	t.Run("a smaller tree is refused until it catches up", func(t *testing.T) {
		g := startAt(t, tr, 13)
		if _, err := g.Sign(body("guard.test/log", 12, tr.root(12))); !errors.Is(err, ErrBehind) {
			t.Fatalf("signed a smaller tree: %v", err)
		}
		if g.Err() != nil {
			t.Fatalf("a smaller tree stopped the signer: %v", g.Err())
		}
		if _, err := g.Sign(body("guard.test/log", 14, tr.root(14))); err != nil {
			t.Fatalf("the tree caught up but was not signed: %v", err)
		}
	})
	t.Run("wrong origin and extension lines", func(t *testing.T) {
		g := startAt(t, tr, 1)
		if _, err := g.Sign(body("other.test/log", 2, tr.root(2))); err == nil {
			t.Fatal("signed another origin")
		}
		if _, err := g.Sign(append(body(g.Name(), 2, tr.root(2)), "extension\n"...)); err == nil {
			t.Fatal("signed an extension line")
		}
	})
	t.Run("the file persister survives a reopen", func(t *testing.T) {
		path := File(filepath.Join(t.TempDir(), "checkpoint"))
		skey, vkey, _ := note.GenerateKey(rand.Reader, "guard.test/log")
		s, _ := note.NewSigner(skey)
		v, _ := note.NewVerifier(vkey)
		g, err := New(context.Background(), s, v, path, tr.prove, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Sign(body(g.Name(), 9, tr.root(9))); err != nil {
			t.Fatal(err)
		}
		again, err := New(context.Background(), s, v, path, tr.prove, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := again.Sign(body(g.Name(), 8, tr.root(8))); !errors.Is(err, ErrBehind) {
			t.Fatalf("after a reopen, a smaller tree was signed: %v", err)
		}
	})
}

// startAt returns a signer whose last signed checkpoint is the tree of size
// n.
func startAt(t *testing.T, tr *tree, n uint64) *Signer {
	t.Helper()
	g, _ := newSigner(t, &memory{}, tr)
	if _, err := g.Sign(body(g.Name(), n, tr.root(n))); err != nil {
		t.Fatal(err)
	}
	return g
}

// FuzzSign feeds arbitrary messages to the signer: nothing panics, and only
// a well-formed checkpoint body of its origin that extends the last one is
// signed.
func FuzzSign(f *testing.F) {
	tr := &tree{}
	for i := range 8 {
		tr.leaves = append(tr.leaves, rfc6962.DefaultHasher.HashLeaf([]byte(fmt.Sprint(i))))
	}
	f.Add(body("guard.test/log", 5, tr.root(5)))
	f.Add(body("guard.test/log", 2, tr.root(2)))
	f.Add([]byte("guard.test/log\n3\nnot base64\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		g := startAt(t, tr, 3)
		if _, err := g.Sign(msg); err != nil {
			return
		}
		var cp log.Checkpoint
		rest, err := cp.Unmarshal(msg)
		if err != nil || len(rest) != 0 || cp.Origin != g.Name() || cp.Size < 3 || cp.Size > 8 || string(cp.Hash) != string(tr.root(cp.Size)) {
			t.Fatalf("signed %q", msg)
		}
	})
}

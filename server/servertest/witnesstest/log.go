// Package witnesstest gives tests witnesses and a log to witness:
//
//   - [Log], a synthetic log: a test key and origin, and an RFC 6962 tree
//     that the test grows, with signed checkpoints and consistency proofs;
//   - [Fake], an in-process C2SP tlog-witness whose faults a test orders
//     (409 loops, slowness, silence, wrong signatures);
//   - [StartReal], the two witness implementations of deploy/witness
//     (transparency-dev's omniwitness and torchwood's litewitness), started
//     for a log's key with deploy/witness/up.sh.
package witnesstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Log is a synthetic log for tests. Its methods are safe for concurrent
// use.
type Log struct {
	// Origin is the log's origin, the name of its key.
	Origin string
	// VerifierKey is its note verifier key.
	VerifierKey string
	// SignerKey is its note signer key.
	SignerKey string

	signer note.Signer
	mu     sync.Mutex
	hashes []tlog.Hash
	size   int64
}

// NewLog returns an empty log whose key is derived from origin.
func NewLog(t testing.TB, origin string) *Log {
	t.Helper()
	seed := sha256.Sum256([]byte("witnesstest log key: " + origin))
	skey, vkey, err := note.GenerateKey(bytes.NewReader(seed[:]), origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &Log{Origin: origin, VerifierKey: vkey, SignerKey: skey, signer: s}
}

// WriteKey writes the log's verifier key to a file (the log.pub of a
// server) in dir and returns its path.
func (l *Log) WriteKey(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "log.pub")
	if err := os.WriteFile(path, []byte(l.VerifierKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Grow appends n leaves and returns the new size.
func (l *Log) Grow(t testing.TB, n int) uint64 {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		leaf := fmt.Appendf(nil, "witnesstest leaf %d", l.size)
		hs, err := tlog.StoredHashes(l.size, leaf, l.reader())
		if err != nil {
			t.Fatal(err)
		}
		l.hashes = append(l.hashes, hs...)
		l.size++
	}
	return uint64(l.size)
}

func (l *Log) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x < 0 || x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// Root returns the root hash of the tree of size n.
func (l *Log) Root(t testing.TB, n uint64) []byte {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	h, err := tlog.TreeHash(int64(n), l.reader())
	if err != nil {
		t.Fatal(err)
	}
	return h[:]
}

// Sign signs a checkpoint of the tree of size n with root, which need not
// be the tree's: a test makes a fork by signing another root.
func (l *Log) Sign(t testing.TB, n uint64, root []byte) []byte {
	t.Helper()
	body := fmt.Sprintf("%s\n%d\n%s\n", l.Origin, n, base64.StdEncoding.EncodeToString(root))
	b, err := note.Sign(&note.Note{Text: body}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Checkpoint returns the signed checkpoint of the tree of size n.
func (l *Log) Checkpoint(t testing.TB, n uint64) []byte {
	t.Helper()
	return l.Sign(t, n, l.Root(t, n))
}

// ConsistencyProof returns the proof that the tree of size to extends the
// tree of size from. Its signature is that of witnessing.Prover.
func (l *Log) ConsistencyProof(_ context.Context, from, to uint64) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, err := tlog.ProveTree(int64(to), int64(from), l.reader())
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i][:])
	}
	return out, nil
}

package client

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"golang.org/x/mod/sumdb/note"
)

// cachingVerifier is a note.Verifier that remembers the last signatures it
// found valid, so that the many receipts of a bulk import, which share a
// few checkpoints, cost one signature check per checkpoint. A signature is
// only remembered once the underlying verifier accepted it over the same
// message, so its answers are the underlying verifier's.
type cachingVerifier struct {
	note.Verifier

	mu    sync.Mutex
	valid map[[sha256.Size]byte]bool
	order [][sha256.Size]byte // oldest first, for eviction
}

// verifiedSignatures is how many valid signatures a cachingVerifier keeps.
const verifiedSignatures = 256

func newCachingVerifier(v note.Verifier) *cachingVerifier {
	return &cachingVerifier{Verifier: v, valid: map[[sha256.Size]byte]bool{}}
}

// Verify reports whether sig is a valid signature of msg.
func (c *cachingVerifier) Verify(msg, sig []byte) bool {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(msg)))
	h.Write(n[:])
	h.Write(msg)
	h.Write(sig)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	c.mu.Lock()
	ok := c.valid[k]
	c.mu.Unlock()
	if ok {
		return true
	}
	if !c.Verifier.Verify(msg, sig) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.valid[k] {
		c.valid[k] = true
		c.order = append(c.order, k)
		if len(c.order) > verifiedSignatures {
			delete(c.valid, c.order[0])
			c.order = c.order[1:]
		}
	}
	return true
}

package tileproofs

import (
	"crypto/sha256"

	"github.com/transparency-dev/merkle/rfc6962"
)

// Hasher is RFC 6962's hasher with SHA-256 (rfc6962.DefaultHasher, whose
// results it gives), hashing children with one allocation, the result,
// where the library's makes a new SHA-256 state for each: a receipt's
// proof checks about twenty nodes, and a pyramid hashes 255. It is safe
// for concurrent use.
var Hasher hasher

type hasher struct{}

// EmptyRoot returns the root of an empty tree.
func (hasher) EmptyRoot() []byte { return rfc6962.DefaultHasher.EmptyRoot() }

// HashLeaf returns the hash of a leaf.
func (hasher) HashLeaf(leaf []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(leaf) }

// HashChildren returns the hash of an inner node from its children's.
func (hasher) HashChildren(l, r []byte) []byte {
	if len(l) != sha256.Size || len(r) != sha256.Size {
		// Not a node of this log: hash what was given, as the library does.
		return rfc6962.DefaultHasher.HashChildren(l, r)
	}
	var pair [2 * sha256.Size]byte
	copy(pair[:], l)
	copy(pair[sha256.Size:], r)
	return appendNode(make([]byte, 0, sha256.Size), pair[:])
}

// appendNode appends to dst the hash of the inner node whose children's
// hashes are pair (left then right), allocating nothing beyond dst.
func appendNode(dst, pair []byte) []byte {
	var b [1 + 2*sha256.Size]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], pair)
	h := sha256.Sum256(b[:])
	return append(dst, h[:]...)
}

// Size returns the size of a hash.
func (hasher) Size() int { return sha256.Size }

// Package merkle is the part of Sigsum's merkle package that torchwood's
// witnessctl uses: the root hash of the empty RFC 6962 tree.
package merkle

import "crypto/sha256"

// Hash is a SHA-256 hash.
type Hash [sha256.Size]byte

// HashEmptyTree returns the root hash of the empty tree: SHA-256 of
// nothing (RFC 6962, section 2.1).
func HashEmptyTree() Hash { return sha256.Sum256(nil) }

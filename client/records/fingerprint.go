package records

import (
	"crypto/sha256"
	"encoding/hex"
)

// KeyFingerprint returns a short name of a public key for people to
// compare: the first 8 bytes of the SHA-256 of the key's bytes, in hex (16
// digits). The command line, audits and receipt pages all show keys so.
func KeyFingerprint(key []byte) string {
	h := sha256.Sum256(key)
	return hex.EncodeToString(h[:8])
}

package audit

import (
	"hash/fnv"

	"github.com/transparency-dev/merkle/rfc6962"
)

// leafHash returns the RFC 6962 leaf hash of a record.
func leafHash(record []byte) [32]byte {
	var h [32]byte
	copy(h[:], rfc6962.DefaultHasher.HashLeaf(record))
	return h
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

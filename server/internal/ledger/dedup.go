package ledger

import (
	"github.com/transparency-dev/merkle/rfc6962"

	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// DedupKeySize is the size of a dedup key: an HMAC-SHA256.
const DedupKeySize = sha256.Size

// dedupKey returns HMAC-SHA256(secret, kind ‖ lp(part)…). The index holds
// only such keys, so that a leaked index reveals no names.
func dedupKey(secret []byte, kind string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("undersigned/v1/dedup/" + kind + "\n"))
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func leafHash(record []byte) []byte { return rfc6962.DefaultHasher.HashLeaf(record) }

package ledger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"
)

// DedupKeySize is the size of a dedup key: an HMAC-SHA256.
const DedupKeySize = sha256.Size

// dedupKeys makes the dedup keys of one secret, reusing the HMAC state
// (the key's padded blocks hashed once), which costs more than the rest
// of a key.
type dedupKeys struct {
	pool sync.Pool // of hash.Hash
}

func newDedupKeys(secret []byte) *dedupKeys {
	return &dedupKeys{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }}}
}

// key returns HMAC-SHA256(secret, kind ‖ lp(part)…). The index holds only
// such keys, so that a leaked index reveals no names.
func (d *dedupKeys) key(kind string, parts ...[]byte) []byte {
	m := d.pool.Get().(hash.Hash)
	defer d.pool.Put(m)
	m.Reset()
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

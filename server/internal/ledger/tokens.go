package ledger

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// TokenPrefix starts every organiser token.
const TokenPrefix = "ust_"

// NewToken creates an API token in ts, with a name to recognise it by and
// the letters it may write to (none: every letter). Only the token's hash
// is stored; the token is returned, to be shown once.
func NewToken(ctx context.Context, ts TokenStore, name string, letters []string) (string, Token, error) {
	var id [6]byte
	var secret [32]byte
	rand.Read(id[:])
	rand.Read(secret[:])
	tok := TokenPrefix + hex.EncodeToString(id[:]) + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	t := Token{ID: hex.EncodeToString(id[:]), Hash: HashToken(tok), Name: name, Letters: letters, Created: time.Now().Unix()}
	if err := ts.Create(ctx, t); err != nil {
		return "", Token{}, fmt.Errorf("store the token: %w", err)
	}
	return tok, t, nil
}

// HashToken returns the hash a token is stored under.
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

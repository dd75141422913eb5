package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/internal/atomicfile"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// The files of the data folder.
const (
	// LogKeyFile holds the log's private key, in signed-note signer format.
	LogKeyFile = "log.key"
	// LogPubFile holds the log's verifier key, the file operators publish.
	LogPubFile = "log.pub"
	// DedupSecretFile holds the key of the dedup index.
	DedupSecretFile = "dedup.secret"
	// TokenFile holds the first organiser token, written once.
	TokenFile = "organiser.token"
	// LastCheckpointFile holds the last checkpoint the log signed.
	LastCheckpointFile = "checkpoint.signed"
	// LogVerifiedFile holds the state of the embedded log as last checked,
	// so that a start checks only what changed since the last clean stop.
	LogVerifiedFile = "log.verified"
	// LogDir is the folder of the embedded engine's log.
	LogDir = "log"
	// StateFile is the embedded engine's SQLite database.
	StateFile = "state.db"
)

// keys are the secrets of a data folder.
type keys struct {
	origin      string
	signer      note.Signer
	verifier    note.Verifier
	verifierKey string
	dedupSecret []byte
}

// DefaultOrigin returns a fresh default origin:
// localhost/undersigned/<8 random hex digits>.
func DefaultOrigin() string {
	var b [4]byte
	rand.Read(b[:])
	return "localhost/undersigned/" + hex.EncodeToString(b[:])
}

// openKeys loads the keys of the data folder, creating them on first
// start. An origin that differs from the one fixed at first start is
// refused.
func openKeys(dir, origin string) (*keys, bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("data folder: %w", err)
	}
	keyPath := filepath.Join(dir, LogKeyFile)
	skey, err := os.ReadFile(keyPath)
	first := errors.Is(err, os.ErrNotExist)
	switch {
	case first:
		if origin == "" {
			origin = DefaultOrigin()
		}
		if err := checkOrigin(origin); err != nil {
			return nil, false, err
		}
		sk, vk, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, false, fmt.Errorf("generate the log key: %w", err)
		}
		if err := atomicfile.Write(filepath.Join(dir, LogPubFile), []byte(vk+"\n"), 0o644); err != nil {
			return nil, false, fmt.Errorf("write %s: %w", LogPubFile, err)
		}
		if err := atomicfile.Write(keyPath, []byte(sk+"\n"), 0o600); err != nil {
			return nil, false, fmt.Errorf("write %s: %w", LogKeyFile, err)
		}
		skey = []byte(sk)
	case err != nil:
		return nil, false, fmt.Errorf("read %s: %w", keyPath, err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", keyPath, err)
	}
	if origin != "" && origin != signer.Name() {
		return nil, false, fmt.Errorf("the data folder %s holds the log %q; the origin is fixed at first start and cannot become %q", dir, signer.Name(), origin)
	}
	pub, err := os.ReadFile(filepath.Join(dir, LogPubFile))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", LogPubFile, err)
	}
	vkey := strings.TrimSpace(string(pub))
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", LogPubFile, err)
	}
	if verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() {
		return nil, false, fmt.Errorf("%s does not match %s", LogPubFile, LogKeyFile)
	}
	secret, err := readOrCreateSecret(filepath.Join(dir, DedupSecretFile))
	if err != nil {
		return nil, false, err
	}
	return &keys{origin: signer.Name(), signer: signer, verifier: verifier, verifierKey: vkey, dedupSecret: secret}, first, nil
}

// checkOrigin checks an origin: printable ASCII, no spaces or plus signs
// (it is also the key's name), at most 255 bytes.
func checkOrigin(origin string) error {
	if origin == "" || len(origin) > 255 {
		return fmt.Errorf("origin %q: must be 1 to 255 bytes", origin)
	}
	for _, r := range origin {
		if r <= ' ' || r > '~' || r == '+' {
			return fmt.Errorf("origin %q: must be printable ASCII without spaces or '+'", origin)
		}
	}
	return nil
}

func readOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		s := make([]byte, 32)
		rand.Read(s)
		enc := []byte(base64.StdEncoding.EncodeToString(s) + "\n")
		if err := atomicfile.Write(path, enc, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	s, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(s) < 16 {
		return nil, fmt.Errorf("%s: not a base64 secret of at least 16 bytes", path)
	}
	return s, nil
}

// TokenPrefix starts every organiser token.
const TokenPrefix = "ust_"

// NewToken creates an API token: it stores only its hash and returns the
// token, which is shown once.
func NewToken(ctx context.Context, ts ledger.TokenStore, name string, letters []string) (string, ledger.Token, error) {
	var id [6]byte
	var secret [32]byte
	rand.Read(id[:])
	rand.Read(secret[:])
	tok := TokenPrefix + hex.EncodeToString(id[:]) + "_" + base64.RawURLEncoding.EncodeToString(secret[:])
	t := ledger.Token{ID: hex.EncodeToString(id[:]), Hash: HashToken(tok), Name: name, Letters: letters, Created: time.Now().Unix()}
	if err := ts.Create(ctx, t); err != nil {
		return "", ledger.Token{}, err
	}
	return tok, t, nil
}

// HashToken returns the hash a token is stored under.
func HashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// ensureFirstToken creates the first organiser token and its file when the
// store has no token at all.
func ensureFirstToken(ctx context.Context, dir string, ts ledger.TokenStore) (string, bool, error) {
	path := filepath.Join(dir, TokenFile)
	all, err := ts.List(ctx)
	if err != nil {
		return "", false, err
	}
	if len(all) > 0 {
		return path, false, nil
	}
	tok, _, err := NewToken(ctx, ts, "first organiser token", nil)
	if err != nil {
		return "", false, fmt.Errorf("create the first token: %w", err)
	}
	if err := atomicfile.Write(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	return path, true, nil
}

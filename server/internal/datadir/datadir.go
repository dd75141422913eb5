// Package datadir is the data folder of an undersigned server: the log's
// key and the verifier key operators publish, the secret of the dedup
// index, the first organiser token, and the files the embedded engine
// keeps beside them.
//
// [Open] opens a folder, creating its keys and secrets on first start;
// [ReadVerifier] reads the verifier key of a folder that is not served
// (fsck, backup, restore, migrate). The engines, the service and the
// migration all name the folder's files by the constants here.
//
// # Files
//
//	log.key            the log's private key (signed-note signer format), mode 0600
//	log.pub            the verifier key (signed-note verifier format), the file operators publish
//	dedup.secret       the key of the dedup index (base64), mode 0600
//	organiser.token    the first organiser token, written once, mode 0600
//	checkpoint.signed  the last checkpoint the log signed (embedded engine)
//	trillian.signed    what the log's key signed on the Trillian engine: the tree, the
//	                   database, the last checkpoint (in the frontend's state folder,
//	                   by default here; see the trillian package's HistoryFile)
//	log.verified       the embedded log's state as last checked at a clean stop
//	log/               the embedded engine's Tessera log
//	state.db           the embedded engine's SQLite store
//	retired            written by a successful migration: the log moved to another engine
//
// A retired folder ([RetiredFile]) is not opened: [Open] returns a
// [*RetiredError] naming where the log went.
package datadir

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	// LastCheckpointFile holds the last checkpoint the embedded log signed.
	LastCheckpointFile = "checkpoint.signed"
	// CosignedCheckpointFile holds the last checkpoint published with
	// the cosignatures of a witness policy's quorum.
	CosignedCheckpointFile = "checkpoint.cosigned"
	// LogVerifiedFile holds the state of the embedded log as last checked,
	// so that a start checks only what changed since the last clean stop.
	LogVerifiedFile = "log.verified"
	// LogDir is the folder of the embedded engine's log.
	LogDir = "log"
	// StateFile is the embedded engine's SQLite database.
	StateFile = "state.db"
)

// Folder is an open data folder: its keys and secrets.
type Folder struct {
	// Dir is the folder.
	Dir string
	// Origin is the log's origin, fixed at first start. It is also the
	// name of the log's key.
	Origin string
	// Signer signs checkpoints with the log's key. Verifier verifies them,
	// and VerifierKey is its signed-note encoding, as log.pub holds it.
	Signer      note.Signer
	Verifier    note.Verifier
	VerifierKey string
	// DedupSecret keys the dedup index.
	DedupSecret []byte
	// Created reports that Open created the log's key: a first start.
	Created bool
}

// Path returns the path of a file of the folder.
func (f *Folder) Path(name string) string { return filepath.Join(f.Dir, name) }

// DefaultOrigin returns a fresh default origin:
// localhost/undersigned/<8 random hex digits>.
func DefaultOrigin() string {
	var b [4]byte
	rand.Read(b[:])
	return "localhost/undersigned/" + hex.EncodeToString(b[:])
}

// Open opens the data folder dir, creating it, the log's key (with origin
// as its name, or [DefaultOrigin] when origin is empty), the verifier key
// and the dedup secret on first start. A later origin that differs from
// the one fixed at first start is refused, as is a log.pub that does not
// match log.key, and a folder a migration retired (a [*RetiredError]).
//
// A folder that exists is only read: frontends of the Trillian engine
// share one, mounted read-only, and no lock is taken on it.
func Open(dir, origin string) (*Folder, error) {
	if err := CheckRetired(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	f := &Folder{Dir: dir}
	signer, err := f.openSigner(origin)
	if err != nil {
		return nil, err
	}
	verifier, vkey, err := readVerifier(dir)
	if err != nil {
		return nil, err
	}
	if verifier.Name() != signer.Name() || verifier.KeyHash() != signer.KeyHash() {
		return nil, fmt.Errorf("%s does not match %s", LogPubFile, LogKeyFile)
	}
	secret, err := readOrCreateSecret(f.Path(DedupSecretFile))
	if err != nil {
		return nil, err
	}
	f.Origin, f.Signer, f.Verifier, f.VerifierKey, f.DedupSecret = signer.Name(), signer, verifier, vkey, secret
	return f, nil
}

// openSigner reads the log's key, creating it and log.pub on first start.
func (f *Folder) openSigner(origin string) (note.Signer, error) {
	keyPath := f.Path(LogKeyFile)
	skey, err := os.ReadFile(keyPath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if origin == "" {
			origin = DefaultOrigin()
		}
		if err := CheckOrigin(origin); err != nil {
			return nil, err
		}
		sk, vk, err := note.GenerateKey(rand.Reader, origin)
		if err != nil {
			return nil, fmt.Errorf("generate the log key: %w", err)
		}
		if err := atomicfile.Write(f.Path(LogPubFile), []byte(vk+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", LogPubFile, err)
		}
		if err := atomicfile.Write(keyPath, []byte(sk+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", LogKeyFile, err)
		}
		skey, f.Created = []byte(sk), true
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", keyPath, err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if origin != "" && origin != signer.Name() {
		return nil, fmt.Errorf("the data folder %s holds the log %q; the origin is fixed at first start and cannot become %q", f.Dir, signer.Name(), origin)
	}
	return signer, nil
}

// ReadVerifier returns the verifier of the log whose data folder is dir,
// from its log.pub, without creating anything.
func ReadVerifier(dir string) (note.Verifier, error) {
	v, _, err := readVerifier(dir)
	return v, err
}

func readVerifier(dir string) (note.Verifier, string, error) {
	pub, err := os.ReadFile(filepath.Join(dir, LogPubFile))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", LogPubFile, err)
	}
	vkey := strings.TrimSpace(string(pub))
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", LogPubFile, err)
	}
	return v, vkey, nil
}

// CheckOrigin checks an origin: printable ASCII, no spaces or plus signs
// (it is also the key's name), at most 255 bytes.
func CheckOrigin(origin string) error {
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

// EnsureFirstToken creates the first organiser token, and writes it to
// the token file (mode 0600), when ts holds no token at all. It returns
// the token file's path and whether it created the token.
func (f *Folder) EnsureFirstToken(ctx context.Context, ts ledger.TokenStore) (string, bool, error) {
	path := f.Path(TokenFile)
	all, err := ts.List(ctx)
	if err != nil {
		return "", false, fmt.Errorf("list the tokens: %w", err)
	}
	if len(all) > 0 {
		return path, false, nil
	}
	tok, _, err := ledger.NewToken(ctx, ts, "first organiser token", nil)
	if err != nil {
		return "", false, fmt.Errorf("create the first token: %w", err)
	}
	if err := atomicfile.Write(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	return path, true, nil
}

// Rename gives the log's key in dir a new name, origin: the same key
// under a new origin, for a new log (see the Trillian engine's
// --new-tree). It rewrites log.key and log.pub; checkpoints signed under
// the old origin never verify under the new one. It returns the old name.
// A key already named origin is left as it is (log.pub made to match).
func Rename(dir, origin string) (string, error) {
	if err := CheckOrigin(origin); err != nil {
		return "", err
	}
	keyPath := filepath.Join(dir, LogKeyFile)
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", keyPath, err)
	}
	skey := strings.TrimSpace(string(b))
	old, err := note.NewSigner(skey)
	if err != nil {
		return "", fmt.Errorf("%s: %w", keyPath, err)
	}
	// PRIVATE+KEY+<name>+<hash>+<key>: the key stays, the name and its
	// hash change.
	fields := strings.SplitN(skey, "+", 5)
	if len(fields) != 5 {
		return "", fmt.Errorf("%s: not a signed-note signer key", keyPath)
	}
	raw, err := base64.StdEncoding.DecodeString(fields[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", fmt.Errorf("%s: not an Ed25519 signed-note signer key", keyPath)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
	if err != nil {
		return "", err
	}
	// <name>+<hash>+<key> of the verifier key gives the new name's hash.
	vfields := strings.SplitN(vkey, "+", 3)
	newKey := strings.Join([]string{"PRIVATE", "KEY", origin, vfields[1], fields[4]}, "+")
	signer, err := note.NewSigner(newKey)
	if err != nil || signer.Name() != origin {
		return "", fmt.Errorf("rename the log key: %v", err)
	}
	if old.Name() != origin {
		if err := atomicfile.Write(keyPath, []byte(newKey+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", LogKeyFile, err)
		}
	}
	if err := atomicfile.Write(filepath.Join(dir, LogPubFile), []byte(vkey+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", LogPubFile, err)
	}
	return old.Name(), nil
}

// KeyName returns the name of the log's key in dir, its origin.
func KeyName(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, LogKeyFile))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", LogKeyFile, err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("%s: %w", LogKeyFile, err)
	}
	return s.Name(), nil
}

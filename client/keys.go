package client

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/signing"
)

// DefaultConfigDir returns the folder of the user's undersigned files:
// $XDG_CONFIG_HOME/undersigned or its platform equivalent.
func DefaultConfigDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("config folder: %w", err)
	}
	return filepath.Join(d, "undersigned"), nil
}

// LoadOrCreateOrganiserKey reads an Ed25519 organiser key (PKCS #8, PEM)
// from path, creating it (mode 0600) if it does not exist. created reports
// whether it did.
func LoadOrCreateOrganiserKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("create organiser key: %w", err)
		}
		if _, err := f.Write(out); err != nil {
			f.Close()
			return nil, false, err
		}
		return k, true, f.Close()
	}
	if err != nil {
		return nil, false, fmt.Errorf("read organiser key: %w", err)
	}
	k, err := parseOrganiserKey(path, b)
	return k, false, err
}

// LoadOrganiserKey reads an organiser key written by
// [LoadOrCreateOrganiserKey], and never creates one: a missing file is an
// error that wraps [os.ErrNotExist].
func LoadOrganiserKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read organiser key: %w", err)
	}
	return parseOrganiserKey(path, b)
}

func parseOrganiserKey(path string, b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an Ed25519 key", path)
	}
	return ek, nil
}

// GenerateSignerSeed writes a new signer key file to path (mode 0600); it
// refuses to overwrite one.
func GenerateSignerSeed(path string) error {
	out := signing.EncodeSignerSeed(signing.NewSignerSeed())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create signer key: %w", err)
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadSignerSeed reads a signer key file.
func LoadSignerSeed(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signer key: %w", err)
	}
	seed, err := signing.ParseSignerSeed(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return seed, nil
}

// SignerKey returns the signer's key for one letter of one log, derived
// from the seed of a signer key file (see records.SignerKeyForLetter).
func SignerKey(seed []byte, origin, letterID string) ed25519.PrivateKey {
	return records.SignerKeyForLetter(seed, origin, letterID)
}

// MarshalOrganiserPublicKey returns the public key of an organiser key as
// a file to hand to the organisers of a letter: PEM "PUBLIC KEY" (PKIX),
// as `openssl pkey -pubout` writes it.
func MarshalOrganiserPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("organiser public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParseOrganiserPublicKey reads a file written by
// [MarshalOrganiserPublicKey]: an Ed25519 public key in PEM "PUBLIC KEY".
// It refuses a private key, which must never be handed over.
func ParseOrganiserPublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	switch {
	case blk == nil:
		return nil, errors.New("not a PEM public key (undersigned letter organiser key writes one)")
	case blk.Type == "PRIVATE KEY":
		return nil, errors.New("this is a private key: give the public key (undersigned letter organiser key --out FILE writes it), and keep the private key to yourself")
	case blk.Type != "PUBLIC KEY":
		return nil, fmt.Errorf("a PEM %q, not a public key", blk.Type)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T public key, not an Ed25519 one", k)
	}
	return pub, nil
}

// LoadOrganiserPublicKey reads a public key file (see
// [ParseOrganiserPublicKey]).
func LoadOrganiserPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read organiser public key: %w", err)
	}
	pub, err := ParseOrganiserPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

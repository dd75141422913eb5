package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/internal/atomicfile"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// dial connects to the server and pins its key. logKeyFile, when set, is
// the verifier key the log must have.
func (e *env) dial(ctx context.Context, logKeyFile string) (*client.Client, error) {
	known, err := e.knownLogs()
	if err != nil {
		return nil, err
	}
	// The tree size of each log that this user verified, sent with every
	// call so that no frontend of the log answers from a smaller one.
	cfg := client.Config{Addr: e.g.server, KnownLogs: known, SizeDir: filepath.Join(filepath.Dir(known), "tree-sizes"), Notice: e.stderr}
	if e.g.tokenFile != "" {
		b, err := os.ReadFile(e.g.tokenFile)
		if err != nil {
			return nil, usagef("token: %v", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	if logKeyFile != "" {
		b, err := os.ReadFile(logKeyFile)
		if err != nil {
			return nil, usagef("log key: %v", err)
		}
		cfg.LogKey = strings.TrimSpace(string(b))
	}
	if e.g.tlsCA != "" {
		pem, err := os.ReadFile(e.g.tlsCA)
		if err != nil {
			return nil, usagef("tls: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("tls: %s holds no PEM certificate", e.g.tlsCA)
		}
		cfg.TLS = &tls.Config{RootCAs: pool, ServerName: e.g.tlsServer, MinVersion: tls.VersionTLS12}
		if e.g.tlsCert != "" {
			cert, err := tls.LoadX509KeyPair(e.g.tlsCert, e.g.tlsKey)
			if err != nil {
				return nil, usagef("tls: %v", err)
			}
			cfg.TLS.Certificates = []tls.Certificate{cert}
		}
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// organiserKeyPath returns the organiser key's file.
func (e *env) organiserKeyPath() (string, error) {
	if e.g.organiserKey != "" {
		return e.g.organiserKey, nil
	}
	d, err := e.configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "organiser.key"), nil
}

// letterOrganiserKey loads the organiser key to sign for letter l (nil when
// the letter is not known here). It never creates one: a key nobody listed
// in the letter could sign nothing, so it says what to do instead, before
// anything is sent.
func (e *env) letterOrganiserKey(l *pb.Letter) (ed25519.PrivateKey, error) {
	path, err := e.organiserKeyPath()
	if err != nil {
		return nil, err
	}
	_, err = os.Stat(path)
	if errors.Is(err, os.ErrNotExist) && l == nil {
		return nil, usagef("no organiser key at %s: give the key of an organiser of the letter with --organiser-key FILE", path)
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("no organiser key at %s: only the %d organiser key(s) listed in letter %s can sign for it; give yours with --organiser-key FILE, or ask an organiser of %s to list a key of yours",
			path, len(l.GetOrganiserKeys()), l.GetId(), l.GetId())
	}
	k, _, err := client.LoadOrCreateOrganiserKey(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if l == nil {
		return k, nil
	}
	pub := k.Public().(ed25519.PublicKey)
	for _, listed := range l.GetOrganiserKeys() {
		if bytes.Equal(listed, pub) {
			return k, nil
		}
	}
	return nil, usagef("the organiser key %s (%s) is not one of the %d listed in letter %s: give the right one with --organiser-key FILE, or ask an organiser of %s to list this one",
		path, records.KeyFingerprint(pub), len(l.GetOrganiserKeys()), l.GetId(), l.GetId())
}

// organiserKey loads the organiser key, creating it on first use: only to
// publish a new letter, which lists it.
func (e *env) organiserKey() (ed25519.PrivateKey, error) {
	path, err := e.organiserKeyPath()
	if err != nil {
		return nil, err
	}
	k, created, err := client.LoadOrCreateOrganiserKey(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	if created {
		fmt.Fprintf(e.stderr, "created a new organiser key in %s: keep it safe, it signs for your letters\n", path)
	}
	return k, nil
}

// writeFileAtomic writes a file so that it is either absent or complete,
// and only as a regular file: anything else at path is a usage error.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := atomicfile.Write(path, data, perm); err != nil {
		if errors.Is(err, atomicfile.ErrNotRegular) {
			return usagef("refusing to write %v: name a regular file", err)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// safeCell neutralises a CSV cell that a spreadsheet would run as a
// formula (it starts with =, +, -, @, a tab or a carriage return): it is
// written with a leading '.
func safeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvWriter writes CSV with every cell neutralised by safeCell.
type csvWriter struct{ *csv.Writer }

func newCSVWriter(w io.Writer) csvWriter { return csvWriter{csv.NewWriter(w)} }

// Write writes one record.
func (w csvWriter) Write(rec []string) error {
	safe := make([]string, len(rec))
	for i, c := range rec {
		safe[i] = safeCell(c)
	}
	return w.Writer.Write(safe)
}

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
	"slices"
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
	cfg := client.Config{Addr: e.g.server, KnownLogs: known, Notice: e.stderr}
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

// validKeys returns the organiser keys valid for a letter's next record
// and those revoked, as the server says (a server that does not say: the
// keys the letter lists).
func validKeys(l *pb.Letter, info *pb.LetterInfo) (valid, revoked [][]byte) {
	if keys := info.GetOrganiserKeys(); len(keys) > 0 {
		return keys, info.GetRevokedOrganiserKeys()
	}
	return l.GetOrganiserKeys(), nil
}

func holdsKey(keys [][]byte, key []byte) bool {
	return slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) })
}

// getOwnKey is what a volunteer does to get a key of their own, listed by
// an organiser of letter id.
func getOwnKey(id string) string {
	return fmt.Sprintf("to get a key of your own, run \"undersigned letter organiser key --out my-key.pub\" and give my-key.pub to an organiser of %s, who lists it with \"undersigned letter organiser add --letter %s --key my-key.pub\"", id, id)
}

// letterOrganiserKey loads the organiser key to sign for letter l (nil when
// the letter is not known here), whose info says which organiser keys are
// valid now. It never creates one: a key nobody listed in the letter could
// sign nothing, so it says what to do instead, before anything is sent.
func (e *env) letterOrganiserKey(l *pb.Letter, info *pb.LetterInfo) (ed25519.PrivateKey, error) {
	path, err := e.organiserKeyPath()
	if err != nil {
		return nil, err
	}
	k, err := client.LoadOrganiserKey(path)
	if errors.Is(err, os.ErrNotExist) && l == nil {
		return nil, usagef("no organiser key at %s: give the key of an organiser of the letter with --organiser-key FILE", path)
	}
	valid, revoked := validKeys(l, info)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("no organiser key at %s: only the %d organiser key(s) of letter %s can sign for it; give yours with --organiser-key FILE, or %s",
			path, len(valid), l.GetId(), getOwnKey(l.GetId()))
	}
	if err != nil {
		return nil, usagef("%v", err)
	}
	if l == nil {
		return k, nil
	}
	pub := k.Public().(ed25519.PublicKey)
	switch {
	case holdsKey(valid, pub):
		return k, nil
	case holdsKey(revoked, pub):
		return nil, usagef("the organiser key %s (%s) was revoked from letter %s: it signs nothing for the letter any more; to act for it again, make a new key with \"undersigned letter organiser key --organiser-key new.key --out new.pub\" and ask an organiser of %s to list new.pub",
			path, records.KeyFingerprint(pub), l.GetId(), l.GetId())
	}
	return nil, usagef("the organiser key %s (%s) is not one of the %d organiser keys valid for letter %s: give the right one with --organiser-key FILE, or ask an organiser of %s to list this one (undersigned letter organiser add --letter %s --key FILE, FILE from undersigned letter organiser key)",
		path, records.KeyFingerprint(pub), len(valid), l.GetId(), l.GetId(), l.GetId())
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

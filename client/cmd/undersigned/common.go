package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/internal/atomicfile"
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

// organiserKey loads the organiser key, creating it on first use.
func (e *env) organiserKey() (ed25519.PrivateKey, error) {
	path := e.g.organiserKey
	if path == "" {
		d, err := e.configDir()
		if err != nil {
			return nil, err
		}
		path = filepath.Join(d, "organiser.key")
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

// writeFileAtomic writes a file so that it is either absent or complete.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

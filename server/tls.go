package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig configures TLS for both ports.
type TLSConfig struct {
	// CertFile and KeyFile are the server's certificate chain and key
	// (PEM). Both empty: plaintext.
	CertFile, KeyFile string
	// ClientCAFile, when set, is a CA bundle (PEM) that client
	// certificates are verified against: mutual TLS for organisers.
	ClientCAFile string
	// RequireClientCertForTokens refuses a token presented without a
	// verified client certificate, so that a leaked token alone cannot
	// write. Writes that need no token are not affected.
	RequireClientCertForTokens bool
}

// enabled reports whether TLS is configured.
func (c TLSConfig) enabled() bool { return c.CertFile != "" || c.KeyFile != "" }

// load returns the server's TLS configuration, or nil for plaintext.
func (c TLSConfig) load() (*tls.Config, error) {
	if !c.enabled() {
		if c.ClientCAFile != "" || c.RequireClientCertForTokens {
			return nil, errors.New("tls: client certificates need a server certificate (--tls-cert and --tls-key)")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: %s holds no PEM certificate", c.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	} else if c.RequireClientCertForTokens {
		return nil, errors.New("tls: requiring client certificates needs a client CA (--tls-client-ca)")
	}
	return cfg, nil
}

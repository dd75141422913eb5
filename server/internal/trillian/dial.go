package trillian

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// TLSConfig configures TLS to trillian_log_server. The zero value dials in
// plaintext, which only a private network makes safe: trillian_log_server
// has no authentication, and also serves the admin API.
type TLSConfig struct {
	// CAFile holds the certificates (PEM) that verify the server's; set,
	// the connection uses TLS.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key (PEM) to
	// present, for a server (or a proxy in front of it) that requires
	// one.
	CertFile, KeyFile string
	// ServerName, when set, is the name the server's certificate must
	// carry, instead of the host of the address dialled.
	ServerName string
}

// enabled reports whether t asks for TLS.
func (t TLSConfig) enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// credentials returns the transport credentials of t.
func (t TLSConfig) credentials() (credentials.TransportCredentials, error) {
	if !t.enabled() {
		return insecure.NewCredentials(), nil
	}
	if t.CAFile == "" {
		return nil, errors.New("trillian: TLS needs the CA that verifies the server (--trillian-tls-ca)")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("trillian: a client certificate needs both its file and its key's")
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("trillian: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("trillian: %s holds no PEM certificate", t.CAFile)
	}
	c := &tls.Config{RootCAs: pool, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("trillian: the client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(c), nil
}

// Dial returns a connection to trillian_log_server at addr, over TLS when
// t asks for it. The caller closes it.
func Dial(addr string, t TLSConfig) (*grpc.ClientConn, error) {
	creds, err := t.credentials()
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("trillian: dial %s: %w", addr, err)
	}
	return conn, nil
}

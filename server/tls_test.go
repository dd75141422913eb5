package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
	pool                                                 *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(name string, serial int64, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, KeyUsage: x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalPKCS8PrivateKey(k)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "PRIVATE KEY", kder)
	}
	p := &testPKI{caFile: write("ca.crt", "CERTIFICATE", caDER), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.clientCert, p.clientKey = issue("organiser", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

// TestTLS serves both ports with TLS and mutual TLS for organisers: a
// token is accepted only with a client certificate, writes without a token
// and reads need none, and plaintext is refused.
func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	s, err := server.New(context.Background(), server.Config{DataDir: dir, Engine: servertest.EmbeddedEngine,
		TLS: server.TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.caFile, RequireClientCertForTokens: true}})
	if err != nil {
		t.Fatal(err)
	}
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	hl, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, gl, hl) }()
	t.Cleanup(func() { cancel(); <-done })
	token := readToken(t, s.TokenPath)

	dial := func(t *testing.T, withCert bool, tok string) *client.Client {
		cfg := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
		if withCert {
			c, err := tls.LoadX509KeyPair(pki.clientCert, pki.clientKey)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		c, err := client.Dial(testContext(t), client.Config{Addr: gl.Addr().String(), TLS: cfg, Token: tok})
		if err != nil {
			t.Fatalf("dial with TLS: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	org := newOrganiserKey(t)
	letter := client.NewLetter(s.Origin(), client.LetterDraft{ID: "tls", Title: "TLS", Text: "Text.\n"}, org)

	t.Run("a token without a client certificate is refused", func(t *testing.T) {
		_, err := dial(t, false, token).PublishLetter(testContext(t), letter, "")
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("a token with a client certificate writes", func(t *testing.T) {
		if _, err := dial(t, true, token).PublishLetter(testContext(t), letter, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reads need no certificate", func(t *testing.T) {
		if _, err := dial(t, false, "").API().GetCheckpoint(testContext(t), &pb.GetCheckpointRequest{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("plaintext gRPC is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if c, err := client.Dial(ctx, client.Config{Addr: gl.Addr().String()}); err == nil {
			c.Close()
			t.Fatal("a plaintext client got through")
		}
	})
	t.Run("HTTP is served with TLS", func(t *testing.T) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool}}}
		resp, err := hc.Get("https://" + hl.Addr().String() + "/log/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /log/checkpoint over TLS: %s", resp.Status)
		}
		if _, err := http.Get("http://" + hl.Addr().String() + "/log/checkpoint"); err == nil {
			// A plaintext request to a TLS port gets a 400 from net/http;
			// either way it must not be served as a checkpoint.
			resp, _ := http.Get("http://" + hl.Addr().String() + "/log/checkpoint")
			if resp != nil && resp.StatusCode == http.StatusOK {
				t.Fatal("plaintext HTTP served the checkpoint")
			}
		}
	})
	t.Run("client certificates need a CA", func(t *testing.T) {
		_, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), Engine: servertest.EmbeddedEngine, TLS: server.TLSConfig{CertFile: pki.serverCert, KeyFile: pki.serverKey, RequireClientCertForTokens: true}})
		if err == nil {
			t.Fatal("a server requiring client certificates started without a client CA")
		}
	})
}

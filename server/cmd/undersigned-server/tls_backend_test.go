package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// backendPKI is a CA, a server certificate for 127.0.0.1 (for PostgreSQL
// and trillian_log_server) and a client certificate for the database user
// undersigned_tls, as PEM files.
type backendPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newBackendPKI(t *testing.T, dir string) *backendPKI {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backend test CA"},
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
	p := &backendPKI{ca: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = issue("server", 2, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	// PostgreSQL's clientcert=verify-full wants the database user as the
	// certificate's common name.
	p.clientCert, p.clientKey = issue("undersigned_tls", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

// TestTLSToTrillianAndPostgres runs a frontend that reaches Trillian and
// PostgreSQL only over TLS, with certificates made by the test: Trillian's
// log server serves TLS, and PostgreSQL accepts undersigned's user only
// over TLS with a client certificate and a password, which the frontend
// reads from PGPASSFILE, never from its command line (issue 17, item 6:
// the password was an argument, visible in ps, with sslmode=disable, and
// frontends could dial Trillian only in plaintext). Without the password
// file, or dialling Trillian in plaintext, the frontend does not start.
func TestTLSToTrillianAndPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Trillian and PostgreSQL of its own")
	}
	trilliantest.Need(t)
	tr := startTrillian(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The certificates, readable by PostgreSQL's own user.
	tlsDir := filepath.Join(tr.dir, "pg", "tls")
	if err := os.Mkdir(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pki := newBackendPKI(t, tlsDir)
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(tr.dir, "pg", "data"), &st); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"", "ca.crt", "server.crt", "server.key"} {
		if err := os.Chown(filepath.Join(tlsDir, f), int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}

	// PostgreSQL: TLS on, and undersigned's user only over TLS, with a
	// client certificate and a password.
	admin, err := pgx.Connect(ctx, tr.settings["POSTGRES_URI"])
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	const password = "a password never on a command line"
	for _, q := range []string{
		"ALTER SYSTEM SET ssl = on",
		fmt.Sprintf("ALTER SYSTEM SET ssl_cert_file = '%s'", pki.serverCert),
		fmt.Sprintf("ALTER SYSTEM SET ssl_key_file = '%s'", pki.serverKey),
		fmt.Sprintf("ALTER SYSTEM SET ssl_ca_file = '%s'", pki.ca),
		fmt.Sprintf("CREATE ROLE undersigned_tls LOGIN PASSWORD '%s'", password),
		"CREATE DATABASE undersigned_tls OWNER undersigned_tls",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	hba := filepath.Join(tr.dir, "pg", "data", "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	rules := "hostssl undersigned_tls undersigned_tls 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n" +
		"host undersigned_tls undersigned_tls 127.0.0.1/32 reject\n"
	if err := os.WriteFile(hba, append([]byte(rules), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(tr.settings["POSTGRES_URI"])
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	passFile := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(passFile, []byte(fmt.Sprintf("127.0.0.1:%s:undersigned_tls:undersigned_tls:%s\n", port, password)), 0o600); err != nil {
		t.Fatal(err)
	}
	pgURI := fmt.Sprintf("postgresql://undersigned_tls@127.0.0.1:%s/undersigned_tls?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s",
		port, pki.ca, pki.clientCert, pki.clientKey)

	// Trillian's log server: TLS.
	argv := tr.kill(t, "trillian_log_server")
	tr.restart(t, "trillian_log_server", append(argv, "--tls_cert_file="+pki.serverCert, "--tls_key_file="+pki.serverKey))

	// A tree, created over TLS (Trillian's createtree dials in plaintext
	// only).
	addr := tr.settings["TRILLIAN_ADDR"]
	out, err := servertest.Command("create-tree", "--trillian", addr, "--trillian-tls-ca", pki.ca).Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("create-tree over TLS: %v\n%s", err, exit.Stderr)
		}
		t.Fatalf("create-tree over TLS: %v", err)
	}
	tree := strings.TrimSpace(string(out))
	tlsArgs := []string{"--trillian", addr, "--tree-id", tree, "--postgres", pgURI,
		"--trillian-tls-ca", pki.ca, "--trillian-tls-cert", pki.clientCert, "--trillian-tls-key", pki.clientKey}
	// A frontend that cannot reach them as they require does not start,
	// and says why.
	for _, c := range []struct {
		what string
		args []string
		env  []string
		says string
	}{
		{"without the password file", tlsArgs, nil, "password"},
		{"dialling Trillian in plaintext", []string{"--trillian", addr, "--tree-id", tree, "--postgres", pgURI}, []string{"PGPASSFILE=" + passFile}, "Trillian"},
	} {
		cmd := servertest.Command(append([]string{"serve", "--data", t.TempDir(), "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"}, c.args...)...)
		cmd.Env = append(cmd.Env, c.env...)
		cmd.Env = append(cmd.Env, "PGPASSWORD=")
		done := make(chan error, 1)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(out.String(), c.says) {
				t.Errorf("a frontend %s: %v, want it to stop saying %q\n%s", c.what, err, c.says, out.String())
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Errorf("a frontend %s still runs a minute on", c.what)
		}
	}

	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	dir := t.TempDir()
	const origin = "tls-backends.test/undersigned"
	f := servertest.StartProcess(t, servertest.ProcessOptions{Dir: dir, Origin: origin, Log: logs, Args: tlsArgs,
		Env: []string{"PGPASSFILE=" + passFile}})
	c, _ := f.DialOrganiser(t, filepath.Join(t.TempDir(), "known_logs"))
	defer c.Close()
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(origin, client.LetterDraft{ID: "tls", Title: "Over TLS", Text: "We ask.\n"}, org)
	if _, err := c.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	e := client.NewEndorsement(origin, l, client.Signer{Fields: records.Fields{Name: "Transport Secured"}, OrganiserKey: org})
	r, err := c.Endorse(ctx, e, "")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Verify(ctx, r.Receipt); err != nil || st.State != client.StateCounted {
		t.Fatalf("verify: %v %v", st, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", f.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), password) {
		t.Error("the database password is on the frontend's command line")
	}
	// The connection to PostgreSQL is TLS with the client certificate.
	var ssl bool
	var dn string
	err = admin.QueryRow(ctx, `SELECT s.ssl, COALESCE(s.client_dn, '') FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
		WHERE a.usename = 'undersigned_tls' LIMIT 1`).Scan(&ssl, &dn)
	if err != nil || !ssl || !strings.Contains(dn, "undersigned_tls") {
		t.Errorf("the frontend's connection to PostgreSQL: ssl %v, client %q (%v); want TLS with its certificate", ssl, dn, err)
	}
}

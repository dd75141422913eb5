package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	trillianpb "github.com/google/trillian"
	"google.golang.org/grpc/connectivity"

	"github.com/undersigned/undersigned/server/internal/trillian"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// health asks a running server's /healthz (or another URL) and exits 0
// when it answers 200: a health check for images without a shell
// (Docker's HEALTHCHECK, Compose's healthcheck).
func health(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	u := fs.String("url", "http://127.0.0.1:7421/healthz", "the URL to ask: /healthz says whether the server can write, /livez only that it serves")
	ca := fs.String("tls-ca", "", "for an https URL: the CA certificates (PEM) that verify the server's")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			return usageError{err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return usageError{fmt.Errorf("health: %s holds no PEM certificate", *ca)}
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
	if err != nil {
		return usageError{err}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", strings.TrimSpace(string(body)))
	}
	return nil
}

// createTree creates a LOG tree on trillian_log_server, over TLS if asked,
// and prints its id: Trillian's createtree dials only in plaintext.
func createTree(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("create-tree", flag.ContinueOnError)
	var tc trillian.Config
	registerTrillian(fs, &tc)
	name := fs.String("name", "undersigned", "the tree's display name (Trillian keeps 20 characters)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if tc.Addr == "" || tc.TreeID != 0 || tc.PostgresURI != "" {
		return usageError{errors.New("create-tree needs --trillian (and the --trillian-tls flags Trillian needs), nothing else")}
	}
	conn, err := trillian.Dial(tc.Addr, tc.TLS)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// Trillian may be starting (a compose file starts both at once): the
	// connection is waited for, up to the minute.
	conn.Connect()
	for st := conn.GetState(); st != connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			return fmt.Errorf("create-tree: trillian_log_server at %s did not accept a connection within a minute (is it up, and is --trillian-tls-ca right?)", tc.Addr)
		}
	}
	id, err := trillianlog.CreateTree(ctx, trillianpb.NewTrillianAdminClient(conn), trillianpb.NewTrillianLogClient(conn), trillianpb.TreeType_LOG, *name)
	if err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

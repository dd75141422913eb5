// Package trilliantest gives tests the Trillian and PostgreSQL that
// deploy/trillian/up.sh starts: it reads their settings from the
// environment (TRILLIAN_ADDR, POSTGRES_URI), and makes a new tree and a new
// database for each test, so that tests share one Trillian and one
// PostgreSQL without seeing each other's state.
//
// Without those settings a test is skipped with a message saying how to
// run it, except under CI=true, where it fails: CI must run them.
package trilliantest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
)

// Env is a running Trillian and PostgreSQL.
type Env struct {
	// TrillianAddr is the gRPC address of trillian_log_server.
	TrillianAddr string
	// PostgresURI is a database for undersigned's own tables.
	PostgresURI string
	// Log and Admin are clients of trillian_log_server.
	Log   trillian.TrillianLogClient
	Admin trillian.TrillianAdminClient
}

// Need returns the environment, or skips the test when TRILLIAN_ADDR or
// POSTGRES_URI is not set, unless CI=true, where it fails the test.
func Need(t testing.TB) *Env {
	t.Helper()
	addr, uri := os.Getenv("TRILLIAN_ADDR"), os.Getenv("POSTGRES_URI")
	if addr == "" || uri == "" {
		const how = "TRILLIAN_ADDR and POSTGRES_URI are not set: start them with deploy/trillian/up.sh DIR and `set -a; . DIR/env; set +a`"
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true needs Trillian and PostgreSQL: %s", how)
		}
		t.Skipf("skipping a test on Trillian and PostgreSQL: %s", how)
	}
	return Connect(t, addr, uri)
}

// Connect returns the environment of the Trillian at addr and the
// PostgreSQL database at uri: for a test that starts its own with
// deploy/trillian/up.sh.
func Connect(t testing.TB, addr, uri string) *Env {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatalf("dial Trillian at %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &Env{TrillianAddr: addr, PostgresURI: uri, Log: trillian.NewTrillianLogClient(conn), Admin: trillian.NewTrillianAdminClient(conn)}
}

// NewTree creates a new active tree of the given type for the test.
func (e *Env) NewTree(t testing.TB, treeType trillian.TreeType) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := trillianlog.CreateTree(ctx, e.Admin, e.Log, treeType, "undersigned-test")
	if err != nil {
		t.Fatalf("create a tree: %v", err)
	}
	return id
}

// NewDatabase creates a new, empty database beside the one PostgresURI
// names, returns its URI, and drops it at the end of the test.
func (e *Env) NewDatabase(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(e.PostgresURI)
	if err != nil {
		t.Fatalf("POSTGRES_URI: %v", err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "undersigned_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, e.PostgresURI)
	if err != nil {
		t.Fatalf("connect to %s: %v", e.PostgresURI, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := pgx.Connect(ctx, e.PostgresURI)
		if err != nil {
			t.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return strings.Replace(u.String(), "%2F", "/", -1)
}

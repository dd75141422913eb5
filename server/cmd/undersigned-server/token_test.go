package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/servertest"
)

// capture runs f with stdout and stderr redirected, and returns both.
func capture(t *testing.T, f func() error) (string, string, error) {
	t.Helper()
	oldOut, oldErr := os.Stdout, os.Stderr
	ro, wo, _ := os.Pipe()
	re, we, _ := os.Pipe()
	os.Stdout, os.Stderr = wo, we
	err := f()
	wo.Close()
	we.Close()
	os.Stdout, os.Stderr = oldOut, oldErr
	var out, errb bytes.Buffer
	io.Copy(&out, ro)
	io.Copy(&errb, re)
	return out.String(), errb.String(), err
}

// TestTokenCommand creates, lists and revokes tokens with the command line:
// a token is shown once, stored hashed, scoped if asked, and refused once
// revoked.
func TestTokenCommand(t *testing.T) {
	dir := t.TempDir()
	s, err := server.New(context.Background(), server.Config{DataDir: dir, Engine: servertest.EmbeddedEngine})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(context.Background())

	out, _, err := capture(t, func() error {
		return run(context.Background(), []string{"token", "create", "--data", dir, "--name", "press office", "--letters", "a,b"}, nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, ledger.TokenPrefix) {
		t.Fatalf("token create printed %q", out)
	}
	// Stored hashed: the token itself is nowhere in the data folder, but
	// the first token's file.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(tok)) {
				t.Errorf("the new token is stored in clear in %s", p)
			}
		}
		return nil
	})
	list, _, err := capture(t, func() error { return run(context.Background(), []string{"token", "list", "--data", dir}, nil) })
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Split(strings.TrimPrefix(tok, ledger.TokenPrefix), "_")[0]
	if !strings.Contains(list, id) || !strings.Contains(list, "press office") || !strings.Contains(list, "a,b") {
		t.Fatalf("token list does not show the token, its name and its letters:\n%s", list)
	}
	if _, _, err := capture(t, func() error { return run(context.Background(), []string{"token", "revoke", "--data", dir, id}, nil) }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := capture(t, func() error { return run(context.Background(), []string{"token", "revoke", "--data", dir, id}, nil) }); err == nil {
		t.Fatal("a token was revoked twice")
	}
	s, err = server.New(context.Background(), server.Config{DataDir: dir, Engine: servertest.EmbeddedEngine})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	got, err := s.Tokens().ByHash(context.Background(), ledger.HashToken(tok))
	if err != nil || got != nil {
		t.Fatalf("a revoked token is still accepted: %v %v", got, err)
	}
}

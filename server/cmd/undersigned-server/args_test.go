package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/servertest"
)

// TestFlagsAnywhere: the flags of a subcommand count wherever they are
// given. "token revoke ID --postgres URI" dropped the flags after the id,
// opened ./undersigned-data, failed, and the token stayed valid (issue 17,
// item 8). An argument a command does not take is refused, naming it.
func TestFlagsAnywhere(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := server.New(ctx, server.Config{DataDir: dir, Engine: servertest.EmbeddedEngine})
	if err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	// The test runs in its package's folder: a default --data must not be
	// what saves it.
	t.Chdir(t.TempDir())

	newToken := func() (string, string) {
		t.Helper()
		out, _, err := capture(t, func() error { return run(ctx, []string{"token", "create", "--data", dir}, nil) })
		if err != nil {
			t.Fatal(err)
		}
		tok := strings.TrimSpace(out)
		return tok, strings.Split(strings.TrimPrefix(tok, ledger.TokenPrefix), "_")[0]
	}
	revoked := func(tok string) bool {
		t.Helper()
		s, err := server.New(ctx, server.Config{DataDir: dir, Engine: servertest.EmbeddedEngine})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(ctx)
		got, err := s.Tokens().ByHash(ctx, ledger.HashToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		return got == nil
	}

	for _, args := range [][]string{
		{"token", "revoke", "ID", "--data", dir},
		{"token", "revoke", "--data", dir, "ID"},
		{"token", "revoke", "--data", dir, "--", "ID"},
	} {
		tok, id := newToken()
		args = append([]string(nil), args...)
		for i, a := range args {
			if a == "ID" {
				args[i] = id
			}
		}
		if _, _, err := capture(t, func() error { return run(ctx, args, nil) }); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if !revoked(tok) {
			t.Errorf("%q: the token is still valid", args)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "revoke", "--data", dir}, "want one token id"},
		{[]string{"token", "revoke", "a", "b", "--data", dir}, `unexpected argument "b"`},
		{[]string{"token", "list", "--data", dir, "everything"}, `unexpected argument "everything"`},
		{[]string{"token", "expire", "--data", dir}, `unknown command "expire"`},
		{[]string{"fsck", "--data", dir, "now"}, `unexpected argument "now"`},
		{[]string{"backup", dir, "--out", t.TempDir()}, `unexpected argument`},
		{[]string{"serve", "--data", dir, "extra"}, `unexpected argument "extra"`},
		{[]string{"migrate", "--data", dir, "extra"}, `unexpected argument "extra"`},
		{[]string{"unmigrate", "extra", "--data", dir, "--tree-id", "7"}, `unexpected argument "extra"`},
	} {
		_, _, err := capture(t, func() error { return run(ctx, c.args, nil) })
		var u usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error (exit 2) saying %q", c.args, err, c.want)
		}
	}
}

// TestHealthCommand: `undersigned-server health` exits 0 while the
// server's /healthz answers 200, and fails, saying why, otherwise.
func TestHealthCommand(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	if err := run(ctx, []string{"health", "--url", s.HTTP + "/healthz"}, nil); err != nil {
		t.Errorf("health of a healthy server: %v", err)
	}
	if err := run(ctx, []string{"health", "--url", s.HTTP + "/livez"}, nil); err != nil {
		t.Errorf("health of /livez: %v", err)
	}
	if err := run(ctx, []string{"health", "--url", s.HTTP + "/no-such-page-at-all"}, nil); err == nil {
		t.Error("health of a page that answers 404 succeeded")
	}
	s.Stop(t)
	if err := run(ctx, []string{"health", "--url", s.HTTP + "/healthz"}, nil); err == nil {
		t.Error("health of a stopped server succeeded")
	}
}

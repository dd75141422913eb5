package datadir_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// TestOpen creates a folder, opens it again, and refuses what must not be
// served: another origin, a log.pub of another key, a broken secret.
func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	f, err := datadir.Open(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !f.Created || !strings.HasPrefix(f.Origin, "localhost/undersigned/") || len(f.DedupSecret) != 32 {
		t.Fatalf("first open: created %v, origin %q, secret of %d bytes", f.Created, f.Origin, len(f.DedupSecret))
	}
	for name, mode := range map[string]os.FileMode{datadir.LogKeyFile: 0o600, datadir.LogPubFile: 0o644, datadir.DedupSecretFile: 0o600} {
		st, err := os.Stat(f.Path(name))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v; want %v", name, err, st.Mode().Perm(), mode)
		}
	}
	msg := []byte("a note\n")
	signed, err := note.Sign(&note.Note{Text: string(msg)}, f.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(signed, note.VerifierList(f.Verifier)); err != nil {
		t.Fatalf("the verifier does not verify the signer's note: %v", err)
	}

	again, err := datadir.Open(dir, f.Origin)
	if err != nil {
		t.Fatal(err)
	}
	if again.Created || again.Origin != f.Origin || again.VerifierKey != f.VerifierKey || string(again.DedupSecret) != string(f.DedupSecret) {
		t.Fatalf("reopened: created %v, origin %q, key %q; want the first start's", again.Created, again.Origin, again.VerifierKey)
	}
	if v, err := datadir.ReadVerifier(dir); err != nil || v.Name() != f.Origin {
		t.Fatalf("ReadVerifier: %v, %v", v, err)
	}
	if _, err := datadir.Open(dir, "other.example/log"); err == nil || !strings.Contains(err.Error(), "fixed at first start") {
		t.Fatalf("another origin: %v, want a refusal", err)
	}

	other, err := datadir.Open(t.TempDir(), "other.example/log")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(other.Path(datadir.LogPubFile))
	os.WriteFile(f.Path(datadir.LogPubFile), pub, 0o644)
	if _, err := datadir.Open(dir, ""); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("a log.pub of another key: %v, want a refusal", err)
	}
	os.WriteFile(f.Path(datadir.LogPubFile), []byte(f.VerifierKey+"\n"), 0o644)
	os.WriteFile(f.Path(datadir.DedupSecretFile), []byte("c2hvcnQ=\n"), 0o600)
	if _, err := datadir.Open(dir, ""); err == nil || !strings.Contains(err.Error(), datadir.DedupSecretFile) {
		t.Fatalf("a short dedup secret: %v, want a refusal naming the file", err)
	}
}

// TestCheckOrigin checks the rules of an origin.
func TestCheckOrigin(t *testing.T) {
	for origin, ok := range map[string]bool{
		"example.org/letters":    true,
		"":                       false,
		"with space/x":           false,
		"plus+sign":              false,
		"ünïcode":                false,
		strings.Repeat("a", 256): false,
	} {
		if err := datadir.CheckOrigin(origin); (err == nil) != ok {
			t.Errorf("CheckOrigin(%q) = %v, want ok %v", origin, err, ok)
		}
		if _, err := datadir.Open(t.TempDir(), origin); origin != "" && (err == nil) != ok {
			t.Errorf("Open with origin %q: %v, want ok %v", origin, err, ok)
		}
	}
}

// TestEnsureFirstToken creates the first token once, in a file of mode
// 0600 that holds a token the store knows, and never again.
func TestEnsureFirstToken(t *testing.T) {
	ctx := context.Background()
	f, err := datadir.Open(t.TempDir(), "tokens.example/log")
	if err != nil {
		t.Fatal(err)
	}
	ts := &memTokens{}
	path, created, err := f.EnsureFirstToken(ctx, ts)
	if err != nil || !created || path != f.Path(datadir.TokenFile) {
		t.Fatalf("first: %q, %v, %v", path, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v, mode %v", err, st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(b))
	if got, err := ts.ByHash(ctx, ledger.HashToken(tok)); err != nil || got == nil || !strings.HasPrefix(tok, ledger.TokenPrefix) {
		t.Fatalf("the token in the file %q is not in the store: %v, %v", tok, got, err)
	}
	os.Remove(path)
	if _, created, err := f.EnsureFirstToken(ctx, ts); err != nil || created {
		t.Fatalf("second: created %v, %v; want nothing created while the store holds a token", created, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the token file was written again: %v", err)
	}
}

// memTokens is a ledger.TokenStore in memory.
type memTokens struct {
	mu     sync.Mutex
	tokens []ledger.Token
}

func (m *memTokens) Create(_ context.Context, t ledger.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens = append(m.tokens, t)
	return nil
}

func (m *memTokens) ByHash(_ context.Context, hash []byte) (*ledger.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tokens {
		if string(t.Hash) == string(hash) && t.Revoked == 0 {
			return &t, nil
		}
	}
	return nil, nil
}

func (m *memTokens) List(context.Context) ([]ledger.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ledger.Token(nil), m.tokens...), nil
}

func (m *memTokens) Revoke(context.Context, string, int64) (bool, error) { return false, nil }

// TestRetired: a folder a migration retired is not opened, with an error
// naming the engine and tree the log went to; Unretire needs the right tree
// and undoes it; and opening an existing folder writes nothing in it, so
// that frontends can share one mounted read-only.
func TestRetired(t *testing.T) {
	dir := t.TempDir()
	if _, err := datadir.Open(dir, ""); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	if _, err := datadir.Open(dir, ""); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); after != before {
		t.Errorf("opening an existing folder changed it:\n%s\nbecame\n%s", before, after)
	}

	if err := datadir.Unretire(dir, 7); err == nil || !strings.Contains(err.Error(), "not retired") {
		t.Errorf("Unretire on a folder in service: %v, want a refusal", err)
	}
	if err := datadir.Retire(dir, datadir.Retirement{Engine: "trillian", TreeID: 7, Data: "/srv/new"}); err != nil {
		t.Fatal(err)
	}
	_, err := datadir.Open(dir, "")
	var re *datadir.RetiredError
	if !errors.As(err, &re) || re.TreeID != 7 {
		t.Fatalf("opening a retired folder: %v, want a RetiredError for tree 7", err)
	}
	for _, want := range []string{"migrated to the trillian engine", "tree 7", "/srv/new", "unmigrate --data " + dir + " --tree-id 7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if err := datadir.Unretire(dir, 8); err == nil || !strings.Contains(err.Error(), "tree 7, not 8") {
		t.Errorf("Unretire with another tree: %v, want a refusal", err)
	}
	if _, err := datadir.Open(dir, ""); err == nil {
		t.Fatal("a refused Unretire reopened the folder")
	}
	if err := datadir.Unretire(dir, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := datadir.Open(dir, ""); err != nil {
		t.Fatalf("after Unretire: %v", err)
	}

	if err := os.WriteFile(filepath.Join(dir, datadir.RetiredFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := datadir.Open(dir, ""); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("a mark that cannot be read: %v, want a refusal", err)
	}
}

// snapshot lists a folder's files with their sizes and times.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %v\n", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

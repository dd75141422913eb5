package main

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/servertest"
)

// TestRetiredFolder: `undersigned-server serve` on a folder a migration
// retired exits 1 naming the migration, before it listens; `unmigrate`
// needs the tree the folder went to, and then the folder serves again.
// (TestMigrate retires a folder with a real migration.)
func TestRetiredFolder(t *testing.T) {
	dir := t.TempDir()
	s, err := server.New(context.Background(), server.Config{DataDir: dir, Origin: "retired.test/undersigned", Engine: servertest.EmbeddedEngine})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := datadir.Retire(dir, datadir.Retirement{Engine: "trillian", TreeID: 4242, Data: "/srv/trillian-data"}); err != nil {
		t.Fatal(err)
	}
	exitCode := func(err error) int {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 0
	}

	_, errOut, err := runCommand(t, "serve", "--data", dir, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0")
	if exitCode(err) != 1 || !strings.Contains(errOut, "migrated to the trillian engine (tree 4242, data folder /srv/trillian-data)") {
		t.Fatalf("serving a retired folder: %v, want exit 1 naming the migration:\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "undersigned-server unmigrate --data "+dir+" --tree-id 4242") {
		t.Errorf("the refusal does not name the undo command:\n%s", errOut)
	}
	if _, errOut, err := runCommand(t, "unmigrate", "--data", dir); exitCode(err) != 2 {
		t.Errorf("unmigrate without --tree-id: %v, want exit 2\n%s", err, errOut)
	}
	if _, errOut, err := runCommand(t, "unmigrate", "--data", dir, "--tree-id", "1"); exitCode(err) != 1 || !strings.Contains(errOut, "tree 4242, not 1") {
		t.Errorf("unmigrate with another tree: %v, want exit 1\n%s", err, errOut)
	}
	if _, _, err := runCommand(t, "serve", "--data", dir, "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"); exitCode(err) != 1 {
		t.Fatalf("a refused unmigrate let the folder serve: %v", err)
	}
	if _, errOut, err := runCommand(t, "unmigrate", "--data", dir, "--tree-id", "4242"); err != nil {
		t.Fatalf("unmigrate: %v\n%s", err, errOut)
	}
	p := servertest.StartProcess(t, servertest.ProcessOptions{Dir: dir})
	c := p.Dial(t, "", filepath.Join(t.TempDir(), "known_logs"))
	if c.Origin() != "retired.test/undersigned" {
		t.Errorf("the folder serves %q after unmigrate", c.Origin())
	}
	c.Close()
	p.Stop(t)
}

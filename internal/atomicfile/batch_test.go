package atomicfile_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/undersigned/undersigned/internal/atomicfile"
)

func TestBatch(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	os.WriteFile(old, []byte("before"), 0o600)
	var b atomicfile.Batch
	if err := b.Add(old, []byte("after"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := b.Add(filepath.Join(dir, fmt.Sprint("new", i)), []byte(fmt.Sprint("content ", i)), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 11 {
		t.Errorf("Len = %d, want 11", b.Len())
	}
	// Nothing has changed before Commit.
	if c, _ := os.ReadFile(old); string(c) != "before" {
		t.Errorf("before Commit, old holds %q", c)
	}
	if _, err := os.Stat(filepath.Join(dir, "new0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("before Commit, new0: %v, want absent", err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(old); string(c) != "after" {
		t.Errorf("old holds %q, want after", c)
	}
	for i := range 10 {
		p := filepath.Join(dir, fmt.Sprint("new", i))
		c, err := os.ReadFile(p)
		if err != nil || string(c) != fmt.Sprint("content ", i) {
			t.Errorf("%s: %q, %v", p, c, err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", p, fi.Mode().Perm())
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 11 {
		t.Errorf("%d files in the folder, want 11 (no temporary file left)", len(ents))
	}
	if b.Len() != 0 {
		t.Errorf("Len after Commit = %d", b.Len())
	}
}

func TestBatchAbortAndRefusals(t *testing.T) {
	dir := t.TempDir()
	var b atomicfile.Batch
	if err := b.Add(filepath.Join(dir, "a"), []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(os.DevNull, []byte("x"), 0o600); !errors.Is(err, atomicfile.ErrNotRegular) {
		t.Errorf("Add(%s) = %v, want ErrNotRegular", os.DevNull, err)
	}
	b.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left after Abort, want none", len(ents))
	}
	if err := b.Commit(); err != nil {
		t.Errorf("Commit of nothing: %v", err)
	}
}

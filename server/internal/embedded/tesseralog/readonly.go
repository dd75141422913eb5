package tesseralog

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/server/internal/tileproofs"
)

// OpenReadOnly opens the log in dir to read and check it, without an
// appender: nothing is written. The server must not be running on dir.
func OpenReadOnly(dir string, verifier note.Verifier) (*Log, error) {
	if _, err := os.Stat(filepath.Join(dir, ".state", "treeState")); err != nil {
		return nil, err
	}
	l := &Log{cfg: Config{Dir: dir, Verifier: verifier}, origin: verifier.Name(), reader: files(dir), changed: make(chan struct{})}
	l.nodes = tileproofs.New(l.reader.ReadTile)
	return l, nil
}

// files reads a Tessera POSIX folder directly.
type files string

func (f files) read(path string, p uint8, full string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(string(f), path))
	if errors.Is(err, os.ErrNotExist) && p != 0 {
		// A partial resource may have been replaced by the full one.
		return os.ReadFile(filepath.Join(string(f), full))
	}
	return b, err
}

func (f files) ReadCheckpoint(context.Context) ([]byte, error) {
	return os.ReadFile(filepath.Join(string(f), layout.CheckpointPath))
}

func (f files) ReadTile(_ context.Context, level, index uint64, p uint8) ([]byte, error) {
	return f.read(layout.TilePath(level, index, p), p, layout.TilePath(level, index, 0))
}

func (f files) ReadEntryBundle(_ context.Context, index uint64, p uint8) ([]byte, error) {
	return f.read(layout.EntriesPath(index, p), p, layout.EntriesPath(index, 0))
}

func (f files) IntegratedSize(ctx context.Context) (uint64, error) {
	size, _, err := (&Log{cfg: Config{Dir: string(f)}}).treeState(ctx)
	return size, err
}

func (f files) NextIndex(ctx context.Context) (uint64, error) { return f.IntegratedSize(ctx) }

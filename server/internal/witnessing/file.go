package witnessing

import (
	"context"
	"errors"
	"os"

	"github.com/undersigned/undersigned/internal/atomicfile"
)

// File is a [Store] in a file of the data folder, for a log that one
// server serves.
type File string

// Load reads the file; a missing file means no checkpoint.
func (f File) Load(context.Context) ([]byte, error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Store replaces the file atomically and durably (written, synced,
// renamed, the folder synced).
func (f File) Store(_ context.Context, _, next []byte) error {
	return atomicfile.Write(string(f), next, 0o644)
}

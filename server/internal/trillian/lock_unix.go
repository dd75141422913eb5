//go:build unix

package trillian

import (
	"fmt"
	"os"
	"syscall"
)

// lockPath takes an exclusive lock on the file at path, creating it, and
// returns the function that releases it: frontends that share a state
// folder advance its history file one at a time.
func lockPath(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// Package atomicfile writes files that a crash leaves either as they were or
// complete, never half-written, and only as regular files: never over a
// device, a directory, a named pipe or a symbolic link.
//
// It is internal to the module: the command line keeps its receipts and
// journals with it, the server its keys, secrets and last signed
// checkpoint. It is no part of the client library's API.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotRegular is wrapped by the error of [Write] when something other
// than a regular file is at the path.
var ErrNotRegular = errors.New("not a regular file")

// Write writes data to path: a temporary file in the same folder is
// written and synced, renamed over path, and the folder synced, so that the
// new content is durable when Write returns. It refuses, with an error
// wrapping [ErrNotRegular], to replace anything at path but a regular file
// (a device such as /dev/null, a directory, a symbolic link).
func Write(path string, data []byte, perm os.FileMode) error {
	if err := CheckRegular(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CheckRegular returns nil when path does not exist or is a regular file,
// and otherwise an error wrapping [ErrNotRegular] that says what is there.
func CheckRegular(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		return nil
	}
	what := "a special file"
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		what = "a symbolic link"
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeDevice != 0:
		what = "a device"
	case m&fs.ModeNamedPipe != 0:
		what = "a named pipe"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("%s is %s: %w", path, what, ErrNotRegular)
}

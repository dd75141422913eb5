// Package atomicfile writes files that a crash leaves either as they were or
// complete, never half-written.
//
// It is internal to the module: the command line keeps its receipts and
// journals with it, the server its keys, secrets and last signed
// checkpoint. It is no part of the client library's API.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes data to path: a temporary file in the same folder is
// written and synced, renamed over path, and the folder synced, so that the
// new content is durable when Write returns.
func Write(path string, data []byte, perm os.FileMode) error {
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

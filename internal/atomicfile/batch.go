package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Batch writes many files with the guarantee of [Write] (after a crash each
// is either as it was or complete) for the price of a few syncs in all,
// instead of two per file: [Batch.Add] writes each file's content to a
// temporary file beside it, and [Batch.Commit] makes them all durable at
// once, renames them over their paths and syncs their folders. Until Commit
// returns, none of the paths has changed. A Batch is not safe for
// concurrent use.
type Batch struct {
	pending []pendingFile
}

type pendingFile struct {
	tmp, path string
}

// Add writes data to a temporary file beside path, to be renamed over path
// by [Batch.Commit]. Like [Write], it refuses with an error wrapping
// [ErrNotRegular] to replace anything but a regular file.
func (b *Batch) Add(path string, data []byte, perm os.FileMode) error {
	if err := CheckRegular(path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil && perm != 0o600 { // os.CreateTemp makes files 0600
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	b.pending = append(b.pending, pendingFile{tmp: tmp.Name(), path: path})
	return nil
}

// Len returns the number of files added since the last Commit.
func (b *Batch) Len() int { return len(b.pending) }

// Commit makes the files added durable, renames each over its path and
// syncs the folders they are in: when it returns nil, every file is
// complete at its path and durable. On an error, the files not yet renamed
// are removed and their paths left as they were. The Batch is empty
// afterwards, and may be used again.
func (b *Batch) Commit() error {
	pending := b.pending
	b.pending = nil
	if len(pending) == 0 {
		return nil
	}
	renamed := 0
	defer func() {
		for _, p := range pending[renamed:] {
			os.Remove(p.tmp)
		}
	}()
	if err := syncFiles(pending); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	dirs := map[string]bool{}
	for _, p := range pending {
		if err := os.Rename(p.tmp, p.path); err != nil {
			return err
		}
		renamed++
		dirs[filepath.Dir(p.path)] = true
	}
	var errs []error
	for dir := range dirs {
		errs = append(errs, syncDir(dir))
	}
	return errors.Join(errs...)
}

// Abort removes the files added since the last Commit; their paths are
// left as they were.
func (b *Batch) Abort() {
	for _, p := range b.pending {
		os.Remove(p.tmp)
	}
	b.pending = nil
}

// syncEach syncs each file on its own.
func syncEach(files []pendingFile) error {
	for _, p := range files {
		f, err := os.Open(p.tmp)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

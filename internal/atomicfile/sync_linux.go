package atomicfile

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// syncFiles makes the files durable. On Linux, one syncfs(2) of the file
// system that holds the first file syncs them all, with one journal commit
// instead of one per file; when the files span file systems, or syncfs
// fails, each is synced on its own.
func syncFiles(files []pendingFile) error {
	dir := filepath.Dir(files[0].tmp)
	for _, p := range files[1:] {
		if filepath.Dir(p.tmp) != dir {
			return syncEach(files)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return syncEach(files)
	}
	return nil
}

//go:build !linux

package atomicfile

// syncFiles makes the files durable, each on its own.
func syncFiles(files []pendingFile) error { return syncEach(files) }

package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/embedded/tesseralog"
)

// Backup copies a data folder, which a server may be serving, to out, a
// new folder. The copy is consistent: the last signed checkpoint is copied
// first, then the log (its tree state before its tiles), then a snapshot of
// the store, so that the store knows every entry of the copied log and the
// log covers the copied checkpoint. The copy is checked before Backup
// returns; a copy spoilt by the server's writes is made again.
func Backup(ctx context.Context, dir, out string) error {
	var err error
	for attempt := range 3 {
		if err = backupOnce(ctx, dir, out); err == nil {
			return nil
		}
		if attempt < 2 {
			os.RemoveAll(out)
		}
	}
	return err
}

func backupOnce(ctx context.Context, dir, out string) error {
	if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
		return fmt.Errorf("backup: %s is not empty", out)
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// The secrets, the keys and the last signed checkpoint first.
	for _, f := range []string{datadir.LogKeyFile, datadir.LogPubFile, datadir.DedupSecretFile, datadir.TokenFile, datadir.LastCheckpointFile} {
		if err := copyFile(filepath.Join(dir, f), filepath.Join(out, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("backup: %w", err)
		}
	}
	// The log: its tree state before everything else, so that every tile
	// and bundle the state needs was written before it is copied.
	src, dst := filepath.Join(dir, datadir.LogDir), filepath.Join(out, datadir.LogDir)
	if err := os.MkdirAll(filepath.Join(dst, ".state"), 0o755); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	for _, f := range []string{".state/treeState", ".state/version"} {
		if err := copyFile(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed by the server's clean-up while walking
			}
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() || strings.HasPrefix(rel, ".state") {
			return nil
		}
		err = copyFile(path, filepath.Join(dst, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("backup: copy the log: %w", err)
	}
	// Then a snapshot of the store, which holds every intent admitted
	// before it, so every entry of the copied log.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, datadir.StateFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, filepath.Join(out, datadir.StateFile)); err != nil {
		return fmt.Errorf("backup: snapshot the store: %w", err)
	}
	// Check the copy.
	v, err := datadir.ReadVerifier(out)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	l, err := tesseralog.OpenReadOnly(dst, v)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := l.Check(ctx, &tesseralog.Verified{}, tesseralog.CheckOptions{Tiles: true}); err != nil {
		return fmt.Errorf("backup: the copy does not check: %w", err)
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Restore makes a new data folder from a backup. It re-applies the log's
// redactions to the store before anything can serve it: a name redacted in
// the log never comes back from a copy. The server started on the restored
// folder appends the admitted writes the copied log lacks and refuses to
// serve until the log covers the last checkpoint it had signed, so a
// restore cannot fork the log.
// It returns how many redacted disclosures it deleted again.
func Restore(ctx context.Context, backup, dir string) (int64, error) {
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return 0, fmt.Errorf("restore: %s is not empty", dir)
	}
	if err := os.CopyFS(dir, os.DirFS(backup)); err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	for _, f := range []string{datadir.LogKeyFile, datadir.DedupSecretFile, datadir.TokenFile, datadir.StateFile} {
		os.Chmod(filepath.Join(dir, f), 0o600)
	}
	n, err := reapplyRedactions(ctx, dir)
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	return n, nil
}

// reapplyRedactions deletes from the store the disclosure of every
// endorsement that a redaction record of the log, or the store itself,
// says is redacted. It returns how many it deleted.
func reapplyRedactions(ctx context.Context, dir string) (int64, error) {
	v, err := datadir.ReadVerifier(dir)
	if err != nil {
		return 0, err
	}
	l, err := tesseralog.OpenReadOnly(filepath.Join(dir, datadir.LogDir), v)
	if err != nil {
		return 0, err
	}
	size, _, err := l.TreeState(ctx)
	if err != nil {
		return 0, err
	}
	var targets []uint64
	for from := uint64(0); from < size; from += 4096 {
		leaves, err := l.ReadLeaves(ctx, from, min(from+4096, size))
		if err != nil {
			return 0, err
		}
		for _, leaf := range leaves {
			if r, err := records.Decode(leaf); err == nil && r.GetRedaction() != nil {
				targets = append(targets, r.GetRedaction().GetTargetIndex())
			}
		}
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, datadir.StateFile))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.ApplyRedactions(ctx, targets)
}

package datadir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/undersigned/undersigned/internal/atomicfile"
)

// RetiredFile marks a data folder whose log moved to another engine: a
// successful migration writes it into the folder it copied. A server
// refuses to serve a retired folder, since one more entry signed there
// would fork the log the new engine continues; only [Unretire] (the
// command `undersigned-server unmigrate`) removes the mark.
const RetiredFile = "retired"

// Retirement is what the mark of a retired folder says: where the log
// went.
type Retirement struct {
	// Engine is the engine that continues the log: "trillian".
	Engine string `json:"engine"`
	// TreeID is the Trillian tree that holds the log now.
	TreeID int64 `json:"tree_id"`
	// Data is the new data folder, as the migration was given it.
	Data string `json:"data"`
	// At is when the migration finished.
	At time.Time `json:"at"`
}

// RetiredError is the refusal to serve a retired data folder.
type RetiredError struct {
	// Dir is the retired folder.
	Dir string
	Retirement
}

func (e *RetiredError) Error() string {
	return fmt.Sprintf("the data folder %s is retired: its log was migrated to the %s engine (tree %d, data folder %s) on %s, "+
		"and serving it here would fork the log; serve the %s engine instead, or, only if tree %d never served a write, "+
		"undo the migration with `undersigned-server unmigrate --data %s --tree-id %d`",
		e.Dir, e.Engine, e.TreeID, e.Data, e.At.UTC().Format(time.RFC3339), e.Engine, e.TreeID, e.Dir, e.TreeID)
}

// Retire marks dir as retired, durably.
func Retire(dir string, r Retirement) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, RetiredFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("mark %s as retired: %w", dir, err)
	}
	return nil
}

// CheckRetired returns a [*RetiredError] when dir is retired, and nil when
// it is not (or does not exist). A mark that cannot be read is an error
// too: the folder is not served on a guess.
func CheckRetired(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, RetiredFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("read the retirement mark of %s: %w", dir, err)
	}
	e := &RetiredError{Dir: dir}
	if err := json.Unmarshal(b, &e.Retirement); err != nil || e.Engine == "" {
		return fmt.Errorf("the data folder %s holds a retirement mark (%s) that cannot be read: it was migrated to another engine; "+
			"see `undersigned-server unmigrate -h`", dir, RetiredFile)
	}
	return e
}

// Unretire removes the retirement mark of dir, undoing what a migration
// into tree treeID did to it, so that the embedded engine can serve it
// again. It refuses when dir is not retired, or was retired by a
// migration into another tree: the tree id is the operator's
// confirmation that they know which migration they abandon.
func Unretire(dir string, treeID int64) error {
	err := CheckRetired(dir)
	var re *RetiredError
	switch {
	case err == nil:
		return fmt.Errorf("the data folder %s is not retired: there is nothing to undo", dir)
	case !errors.As(err, &re):
		return err
	case re.TreeID != treeID:
		return fmt.Errorf("the data folder %s was migrated into tree %d, not %d", dir, re.TreeID, treeID)
	}
	if err := os.Remove(filepath.Join(dir, RetiredFile)); err != nil {
		return fmt.Errorf("remove the retirement mark of %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err == nil {
		err = errors.Join(d.Sync(), d.Close())
	}
	if err != nil {
		return fmt.Errorf("remove the retirement mark of %s: %w", dir, err)
	}
	return nil
}

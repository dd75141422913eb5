package embedded_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded"
)

// TestBackupRestore takes a backup while writes go on, restores it, and
// checks that every receipt handed out before the backup verifies against
// the restored server, that a redacted name does not come back even from a
// store that still held it, and that a restore which lost published
// entries refuses to serve rather than fork the log.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	ts := startServer(t, t.TempDir())
	c := ts.dial(t, ts.Token)
	l := ts.publish(t, c, "backup", pb.Policy_POLICY_CURATED)
	const secret = "Redacted Before Backup"
	redacted := endorse(t, c, ts.endorsement(c.Origin(), l, secret, "Hidden"))
	if _, err := c.Redact(testContext(t), client.Action{TargetIndex: redacted.Verified.Index, TargetLeafHash: redacted.Verified.LeafHash,
		Reason: pb.Reason_REASON_SAFETY, OrganiserKey: ts.Org}); err != nil {
		t.Fatal(err)
	}
	early := t.TempDir() + "/early"
	if err := embedded.Backup(ctx, ts.Dir, early); err != nil {
		t.Fatalf("backup: %v", err)
	}

	// Writes go on while the backup is taken.
	var mu sync.Mutex
	var before [][]byte
	var backupStarted atomic.Bool
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r, err := c.Endorse(testContext(t), ts.endorsement(c.Origin(), l, "Writer "+string(rune('A'+i%26))+strings.Repeat("z", i/26), ""), "")
			if err != nil {
				t.Error(err)
				return
			}
			// Returned before the backup began: its checkpoint is covered.
			if !backupStarted.Load() {
				mu.Lock()
				before = append(before, r.Receipt)
				mu.Unlock()
			}
		}
	}()
	for logSize(t, c) < 40 {
	}
	backupStarted.Store(true)
	out := t.TempDir() + "/copy"
	if err := embedded.Backup(ctx, ts.Dir, out); err != nil {
		t.Fatalf("backup while serving: %v", err)
	}
	close(stop)
	<-done
	ts.stop(t)
	if len(before) == 0 {
		t.Fatal("no receipt was handed out before the backup")
	}

	t.Run("every receipt from before the backup verifies against the restore", func(t *testing.T) {
		dir := t.TempDir() + "/restored"
		if _, err := embedded.Restore(ctx, out, dir); err != nil {
			t.Fatal(err)
		}
		rs := startServer(t, dir)
		rc := rs.dial(t, rs.Token)
		for i, b := range before {
			st, err := rc.Verify(testContext(t), b)
			if err != nil {
				t.Fatalf("receipt %d: %v", i, err)
			}
			if st.State != client.StateCounted {
				t.Fatalf("receipt %d: %v", i, st.State)
			}
		}
		// The restored log goes on.
		endorse(t, rc, ts.endorsement(rc.Origin(), l, "After The Restore", ""))
		rs.stop(t)
		if files := filesContaining(t, dir, []byte(secret)); len(files) > 0 {
			t.Errorf("the redacted name is in %v", files)
		}
		if n, report := runFsck(t, dir); n != 0 {
			t.Errorf("the restored folder has problems:\n%s", report)
		}
	})

	t.Run("a redacted name in a copied store does not come back", func(t *testing.T) {
		// Put the name back into the copy's store, as an older store would
		// hold it.
		old := t.TempDir() + "/old"
		if err := os.CopyFS(old, os.DirFS(out)); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", filepath.Join(old, datadir.StateFile))
		if err != nil {
			t.Fatal(err)
		}
		d := redacted.Verified.Disclosure
		if _, err := db.Exec(`INSERT INTO disclosures (seq, salt, name, affiliation, country, folded)
			SELECT seq, ?, ?, ?, ?, '' FROM entries WHERE idx = ?`, d.GetSalt(), d.GetName(), d.GetAffiliation(), d.GetCountry(), redacted.Verified.Index); err != nil {
			t.Fatal(err)
		}
		db.Exec(`UPDATE endorsements SET redacted_by = 0`)
		db.Close()
		dir := t.TempDir() + "/restored"
		n, err := embedded.Restore(ctx, old, dir)
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d disclosures deleted again, want 1", n)
		}
		if files := filesContaining(t, dir, []byte(secret)); len(files) > 0 {
			t.Errorf("the redacted name came back in %v", files)
		}
	})

	t.Run("a restore that lost published entries refuses to serve", func(t *testing.T) {
		// The early copy's log and store, with the last checkpoint the
		// server signed later: the entries in between are gone from both.
		dir := t.TempDir() + "/forked"
		if _, err := embedded.Restore(ctx, early, dir); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(filepath.Join(out, datadir.LastCheckpointFile), filepath.Join(dir, datadir.LastCheckpointFile)); err != nil {
			t.Fatal(err)
		}
		_, err := open(ctx, dir)
		if err == nil || !strings.Contains(err.Error(), "refusing to serve") {
			t.Fatalf("a restore that lost published entries started: %v", err)
		}
	})
}

package embedded_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
	_ "modernc.org/sqlite"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/datadir"
)

// fillAndStop writes a letter and n endorsements (every third private) to
// a new server on dir and stops it cleanly.
func fillAndStop(t *testing.T, dir string, n int) {
	t.Helper()
	ts := startServer(t, dir)
	c := ts.dial(t, ts.Token)
	l := ts.publish(t, c, "fsck", pb.Policy_POLICY_CURATED)
	stream, err := c.EndorseStream(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for i := range n {
			vis := pb.Visibility_VISIBILITY_PUBLIC
			if i%3 == 0 {
				vis = pb.Visibility_VISIBILITY_PRIVATE
			}
			stream.Send(client.NewEndorsement(c.Origin(), l, client.Signer{
				Fields: records.Fields{Name: fmt.Sprintf("Fsck Signer %d", i)}, Visibility: vis, OrganiserKey: ts.Org}), "")
		}
		stream.CloseSend()
	}()
	for range n {
		if _, rej, err := stream.Recv(); err != nil || rej != nil {
			t.Fatalf("endorse: %v %v", err, rej)
		}
	}
	ts.stop(t)
}

// TestFsck checks a sound data folder, then folders spoilt in each way fsck
// must catch.
func TestFsck(t *testing.T) {
	sound := t.TempDir()
	fillAndStop(t, sound, 300)
	if n, out := runFsck(t, sound); n != 0 {
		t.Fatalf("a sound folder has %d problems:\n%s", n, out)
	}
	spoil := func(t *testing.T, how func(dir string)) string {
		t.Helper()
		dir := t.TempDir()
		if err := os.CopyFS(dir, os.DirFS(sound)); err != nil {
			t.Fatal(err)
		}
		how(dir)
		return dir
	}
	flip := func(t *testing.T, path string, at int) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[at] ^= 1
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(t *testing.T, dir, q string) {
		db, err := sql.Open("sqlite", filepath.Join(dir, datadir.StateFile))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		res, err := db.Exec(q)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%s changed nothing", q)
		}
	}
	for _, c := range []struct {
		name string
		how  func(t *testing.T, dir string)
		want string
	}{
		{"a flipped byte in an entry bundle", func(t *testing.T, dir string) {
			flip(t, filepath.Join(dir, datadir.LogDir, layout.EntriesPath(0, 0)), 100)
		}, "the log is corrupt"},
		{"a flipped byte in a tile", func(t *testing.T, dir string) {
			flip(t, filepath.Join(dir, datadir.LogDir, layout.TilePath(0, 0, 0)), 64)
		}, "tile 0/0"},
		{"an altered disclosure", func(t *testing.T, dir string) {
			exec(t, dir, `UPDATE disclosures SET name = name || '!' WHERE seq = (SELECT MIN(seq) FROM disclosures)`)
		}, "does not open the commitment"},
		{"a deleted public disclosure", func(t *testing.T, dir string) {
			exec(t, dir, `DELETE FROM disclosures WHERE seq = (SELECT MAX(seq) FROM disclosures)`)
		}, "withheld"},
		{"a record changed in the store", func(t *testing.T, dir string) {
			exec(t, dir, `UPDATE entries SET leaf_hash = zeroblob(32) WHERE idx = 5`)
		}, "entry 5 differs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := spoil(t, func(dir string) { c.how(t, dir) })
			n, out := runFsck(t, dir)
			if n == 0 || !strings.Contains(out, c.want) {
				t.Fatalf("fsck found %d problems, want one mentioning %q:\n%s", n, c.want, out)
			}
		})
	}
}

// TestStartRefusesACorruptLog checks the start-up check: after a crash (no
// clean stop since the entries were written), a changed entry bundle stops
// the server from serving; after a clean stop the start reads nothing
// already checked.
func TestStartRefusesACorruptLog(t *testing.T) {
	dir := t.TempDir()
	fillAndStop(t, dir, 300)
	// As after a crash before any clean stop: nothing is known verified.
	if err := os.Remove(filepath.Join(dir, datadir.LogVerifiedFile)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, datadir.LogDir, layout.EntriesPath(0, 0))
	b, _ := os.ReadFile(p)
	b[50] ^= 1
	os.WriteFile(p, b, 0o644)
	_, err := open(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "refusing to serve") {
		t.Fatalf("a corrupt log was served: %v", err)
	}
	b[50] ^= 1
	os.WriteFile(p, b, 0o644)
	s, err := open(context.Background(), dir)
	if err != nil {
		t.Fatalf("the repaired log: %v", err)
	}
	s.Close(context.Background())
	v, err := os.ReadFile(filepath.Join(dir, datadir.LogVerifiedFile))
	if err != nil || !bytes.Contains(v, []byte(`"size":301`)) {
		t.Fatalf("the verified state after a clean stop: %s (%v)", v, err)
	}
}

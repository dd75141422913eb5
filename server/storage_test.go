package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/embedded"
)

// smallDisk mounts a tmpfs of size bytes on a new folder. It needs root:
// without it the test is skipped, except under CI=true, where it fails.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount a tmpfs (CI must run this test as root): %v: %s", err, out)
		}
		t.Skipf("needs root to mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func remount(t *testing.T, dir, opts string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,"+opts, dir).CombinedOutput(); err != nil {
		t.Fatalf("remount %s %s: %v: %s", dir, opts, err, out)
	}
}

// TestStorageFaults fills the disk under a serving server, then makes it
// read-only: writes fail cleanly with Unavailable while reads go on, every
// receipt handed out still verifies, and once space returns the server
// writes again without a restart, and fsck finds nothing wrong.
func TestStorageFaults(t *testing.T) {
	disk := smallDisk(t, "4m")
	dir := filepath.Join(disk, "data")
	ts := startServer(t, dir)
	c := ts.dial(t, ts.Token)
	l := ts.publish(t, c, "faults", pb.Policy_POLICY_CURATED)
	var receipts [][]byte
	endorseOne := func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := c.Endorse(ctx, client.NewEndorsement(c.Origin(), l, client.Signer{
			Fields: records.Fields{Name: fmt.Sprintf("Fault Signer %05d", i), Affiliation: "Filling the disk with a rather long affiliation"}, OrganiserKey: ts.Org}), "")
		if err == nil {
			receipts = append(receipts, r.Receipt)
		}
		return err
	}
	// Fill the disk: with a few writes at a time, until they fail.
	i := 0
	var fullErr error
	for ; i < 100_000 && fullErr == nil; i++ {
		fullErr = endorseOne(i)
	}
	if fullErr == nil {
		t.Fatal("the disk never filled")
	}
	t.Logf("the disk filled after %d endorsements: %v", len(receipts), fullErr)
	if code := status.Code(fullErr); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("a write on a full disk: %v, want Unavailable", fullErr)
	}
	check := func(what string) {
		t.Helper()
		for n, r := range receipts {
			if _, err := c.Verify(testContext(t), r); err != nil {
				t.Fatalf("%s: receipt %d: %v", what, n, err)
			}
		}
	}
	check("on a full disk")

	// Read-only: the same. (A read-only bind mount over the data folder:
	// a mount with files open for writing cannot be remounted read-only.)
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("bind mount: %v: %s", err, out)
	}
	remount(t, dir, "bind,ro")
	if err := endorseOne(i); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a write on a read-only disk: %v, want Unavailable", err)
	}
	i++
	check("on a read-only disk")

	// Space returns: writes succeed again, without a restart.
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount the bind mount: %v: %s", err, out)
	}
	remount(t, disk, "size=64m")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := endorseOne(i)
		i++
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write succeeded after space returned: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for range 20 {
		if err := endorseOne(i); err != nil {
			t.Fatalf("a write after recovery: %v", err)
		}
		i++
	}
	check("after recovery")
	ts.stop(t)
	var out bytes.Buffer
	if n, err := embedded.Fsck(testContext(t), dir, &out); err != nil || n != 0 {
		t.Fatalf("fsck after the faults: %v\n%s", err, out.String())
	}
}

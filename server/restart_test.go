package server_test

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt/receipttest"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/servertest"
)

// TestRestart closes a server and opens another on the same data folder:
// the same log continues, under the same origin and key, with the same
// token, and the old receipts verify against it. Another origin is
// refused.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	const origin = "example.test/undersigned/restart"
	first := startServer(t, dir, withOrigin(origin))
	c1 := first.dial(t, first.Token)
	letter := first.publish(t, c1, "restart-letter", pb.Policy_POLICY_CURATED)
	var receipts []*client.Result
	for _, name := range []string{"Before Restart One", "Before Restart Two", "Before Restart Three"} {
		receipts = append(receipts, endorse(t, c1, first.endorsement(origin, letter, name, "")))
	}
	info1, err := c1.API().GetLogInfo(testContext(t), &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pub1 := first.logPub(t)
	first.stop(t)

	t.Run("another origin is refused", func(t *testing.T) {
		s, err := server.New(context.Background(), server.Config{DataDir: dir, Origin: "example.test/undersigned/other", Engine: servertest.EmbeddedEngine})
		if err == nil {
			s.Close(context.Background())
			t.Fatal("New accepted another origin on an existing data folder")
		}
		if !strings.Contains(err.Error(), "origin") || !strings.Contains(err.Error(), origin) {
			t.Errorf("the error %q does not explain the origin is fixed as %q", err, origin)
		}
	})

	for _, tc := range []struct {
		name   string
		origin string
	}{
		{"no origin given", ""},
		{"the same origin given", origin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []serverOption
			if tc.origin != "" {
				opts = append(opts, withOrigin(tc.origin))
			}
			ts := startServer(t, dir, opts...)
			defer ts.stop(t)
			ts.Org = first.Org
			if ts.Token != first.Token {
				t.Errorf("the token file changed across the restart")
			}
			if ts.Srv.Origin() != origin || ts.Srv.VerifierKey() != pub1 || ts.logPub(t) != pub1 {
				t.Fatalf("after the restart: origin %q, key %q; want %q, %q", ts.Srv.Origin(), ts.Srv.VerifierKey(), origin, pub1)
			}
			c := ts.dial(t, ts.Token) // the token file still works for writes below
			info, err := c.API().GetLogInfo(testContext(t), &pb.GetLogInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if info.GetOrigin() != info1.GetOrigin() || info.GetVerifierKey() != info1.GetVerifierKey() || info.GetSize() < info1.GetSize() {
				t.Fatalf("log info %v after the restart, %v before", info, info1)
			}
			size := info.GetSize()
			for i, r := range receipts {
				st, err := c.Verify(testContext(t), r.Receipt)
				if err != nil {
					t.Errorf("receipt %d from before the restart: %v", i, err)
					continue
				}
				if st.State != client.StateCounted {
					t.Errorf("receipt %d: %v, want counted", i, st.State)
				}
				if _, _, err := receipttest.VerifyIndependently(r.Receipt, ts.logPub(t)); err != nil {
					t.Errorf("receipt %d with the restarted log.pub: %v", i, err)
				}
			}
			// The letter is still known and the log continues.
			next := endorse(t, c, ts.endorsement(origin, letter, "After Restart "+tc.name, ""))
			if next.Verified.Index != size {
				t.Errorf("the first write after the restart is at %d, want %d", next.Verified.Index, size)
			}
			// The dedup index survived: an earlier endorsement comes back.
			dup := endorse(t, c, client.NewEndorsement(origin, letter, clientSignerOf(t, c, receipts[0], ts.Org)))
			if !dup.Duplicate || dup.Verified.Index != receipts[0].Verified.Index {
				t.Errorf("repeating an endorsement from before the restart: duplicate %v at %d, want %d", dup.Duplicate, dup.Verified.Index, receipts[0].Verified.Index)
			}
			if st, err := c.Verify(testContext(t), receipts[0].Receipt); err != nil || st.Latest.Size <= receipts[0].Verified.Checkpoint.Size {
				t.Errorf("old receipt against the grown log: %v, %v", st, err)
			}
		})
	}

	t.Run("the data folder has its files", func(t *testing.T) {
		for _, f := range []string{datadir.LogKeyFile, datadir.LogPubFile, datadir.DedupSecretFile, datadir.TokenFile, datadir.LastCheckpointFile, datadir.StateFile} {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if secret := f == datadir.LogKeyFile || f == datadir.DedupSecretFile || f == datadir.TokenFile; secret && fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v: readable by others", f, fi.Mode().Perm())
			}
		}
	})
}

// clientSignerOf returns a signer that rebuilds the endorsement of a
// receipt: its fields, visibility and the organiser key.
func clientSignerOf(t *testing.T, c *client.Client, r *client.Result, org ed25519.PrivateKey) client.Signer {
	t.Helper()
	d := r.Verified.Disclosure
	if d == nil {
		t.Fatal("the receipt carries no disclosure")
	}
	return client.Signer{
		Fields:       records.FieldsOf(d),
		Visibility:   r.Verified.Record.GetEndorsement().GetVisibility(),
		OrganiserKey: org,
	}
}

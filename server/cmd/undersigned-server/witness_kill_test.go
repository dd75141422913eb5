package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/trillian"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/policy"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
	"github.com/undersigned/undersigned/server/servertest/witnesstest"
)

// TestWitnessedKilledEmbedded kills the embedded server during a round of
// cosigning (see testWitnessedKilled).
func TestWitnessedKilledEmbedded(t *testing.T) { testWitnessedKilled(t, false) }

// TestWitnessedKilledTrillianPostgres kills one of two frontends of a
// Trillian tree during a round of cosigning; the other keeps serving.
func TestWitnessedKilledTrillianPostgres(t *testing.T) { testWitnessedKilled(t, true) }

// testWitnessedKilled runs servers with the policy of the two real
// witnesses, holds one witness (SIGSTOP) so that a round of cosigning
// hangs with writes waiting for it, kills a server with SIGKILL, lets the
// witness go on and starts the server again: every write sent again
// returns its record (those admitted before the kill as duplicates), with
// a receipt that both witnesses cosigned, and the log holds each write
// once: nothing admitted was lost.
func testWitnessedKilled(t *testing.T, onTrillian bool) {
	const origin = "killed-witnessed.test/undersigned"
	dir, _ := servertest.NewFolder(t, origin)
	real := witnesstest.StartReal(t, filepath.Join(dir, "log.pub"))
	p, err := policy.Parse([]byte(real.PolicyText))
	if err != nil {
		t.Fatal(err)
	}
	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	args := []string{"--witness-policy", real.Policy, "--witness-timeout", "2m"}
	if onTrillian {
		env := trilliantest.Need(t)
		args = append(args, "--trillian", env.TrillianAddr, "--tree-id", strconv.FormatInt(env.NewTree(t, trillian.TreeType_LOG), 10), "--postgres", env.NewDatabase(t))
	}
	start := func(dir string) *child {
		return servertest.StartProcess(t, servertest.ProcessOptions{Dir: dir, Origin: origin, Args: args, Log: logs})
	}
	dirs := []string{dir}
	servers := []*child{start(dir)}
	knownLogs := filepath.Join(t.TempDir(), "known_logs")
	cl, token := servers[0].DialOrganiser(t, knownLogs)
	defer cl.Close()
	if onTrillian {
		other := t.TempDir()
		servertest.CopyFolder(t, dir, other)
		dirs, servers = append(dirs, other), append(servers, start(other))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	letter := client.NewLetter(origin, client.LetterDraft{ID: "killed", Title: "Killed", Text: "We ask.\n"}, org)
	if _, err := cl.PublishLetter(ctx, letter, ""); err != nil {
		t.Fatal(err)
	}
	var es []*client.Endorsement
	for i := range 30 {
		es = append(es, client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: fmt.Sprintf("Signer %d", i)}, OrganiserKey: org}))
	}
	for _, e := range es[:5] {
		if _, err := cl.Endorse(ctx, e, ""); err != nil {
			t.Fatal(err)
		}
	}

	real.Pause(t, witnesstest.Litewitness)
	var wg sync.WaitGroup
	for _, e := range es[5:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.Endorse(ctx, e, "") // fails when the server is killed
		}()
	}
	// The writes are admitted and in the log; the round that would
	// publish them waits for litewitness.
	metric := "undersigned_ledger_appended_total"
	if onTrillian {
		// Either frontend may record an entry's index first: what this
		// one followed of the tree is what counts.
		metric = "undersigned_trillian_followed_size"
	}
	waitMetric(t, servers[0], metric, 1+len(es))
	if cp := servers[0].Checkpoint(t); checkpointSize(t, cp) > 6 {
		t.Fatalf("the server published a checkpoint with litewitness held:\n%s", cp)
	}
	servers[0].Kill()
	wg.Wait()
	real.Resume(t, witnesstest.Litewitness)

	servers[0] = start(dirs[0])
	again := servers[0].Dial(t, token, knownLogs)
	defer again.Close()
	v := again.Verifier()
	for i, e := range es {
		r, err := again.Endorse(ctx, e, "")
		if err != nil {
			t.Fatalf("signer %d sent again after the restart: %v", i, err)
		}
		if i >= 5 && !r.Duplicate {
			t.Errorf("signer %d, admitted before the kill, was appended again", i)
		}
		rc, err := receipt.Parse(r.Receipt)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := p.Check(rc.Checkpoint); err != nil || !res.Met {
			t.Errorf("receipt of signer %d: %v %v", i, err, res)
		}
		if _, _, err := client.VerifyOffline(r.Receipt, v); err != nil {
			t.Errorf("receipt of signer %d: %v", i, err)
		}
	}
	checkEntriesOnce(t, ctx, again, len(es))
	if onTrillian {
		// The frontend that kept running publishes the same.
		other := servers[1].Dial(t, "", knownLogs)
		defer other.Close()
		checkEntriesOnce(t, ctx, other, len(es))
	}
}

// checkpointSize returns the size of a checkpoint.
func checkpointSize(t *testing.T, cp []byte) uint64 {
	t.Helper()
	lines := strings.SplitN(string(cp), "\n", 3)
	if len(lines) < 3 {
		t.Fatalf("not a checkpoint:\n%s", cp)
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		t.Fatalf("not a checkpoint:\n%s", cp)
	}
	return n
}

// waitMetric waits until a metric of the server without labels reaches
// n, or fails the test after a minute.
func waitMetric(t *testing.T, s *child, name string, n int) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + name + ` (\S+)`)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get("http://" + s.HTTPAddr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if m := re.FindSubmatch(b); m != nil {
				if got, _ := strconv.ParseFloat(string(m[1]), 64); got >= float64(n) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's %s did not reach %d within a minute", name, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkEntriesOnce checks that the roster of the letter "killed" holds n
// public endorsements, each signer once.
func checkEntriesOnce(t *testing.T, ctx context.Context, c *client.Client, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: "killed", PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range resp.GetEntries() {
			seen[e.GetDisclosure().GetName()]++
		}
		if resp.GetCounts().GetPublic() == uint64(n) && len(seen) == n {
			for name, k := range seen {
				if k != 1 {
					t.Fatalf("%s is in the roster %d times", name, k)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the roster holds %d public endorsements (%d signers), want %d", resp.GetCounts().GetPublic(), len(seen), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

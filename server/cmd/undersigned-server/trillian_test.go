package main

import (
	"bytes"
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// frontend is an undersigned-server process on a Trillian tree.
type frontend = servertest.Process

// startFrontend starts `undersigned-server serve --trillian ...` on dir;
// killAfterAdmit > 0 makes it kill itself after that many admitted
// batches, between intent and queuing.
func startFrontend(t *testing.T, env *trilliantest.Env, dir, origin string, tree int64, postgres string, killAfterAdmit int, logw io.Writer) *frontend {
	t.Helper()
	return servertest.StartProcess(t, servertest.ProcessOptions{Dir: dir, Origin: origin, KillAfterAdmit: killAfterAdmit, Log: logw,
		Args: []string{"--trillian", env.TrillianAddr, "--tree-id", strconv.FormatInt(tree, 10), "--postgres", postgres}})
}

// showOnFailure shows the servers' logs when the test fails.
func showOnFailure(t *testing.T, logs *servertest.Logs) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", logs)
		}
	})
}

// TestTwoFrontends runs two undersigned-server processes on one Trillian
// tree and one PostgreSQL database: writes go through either, duplicates
// are caught across both, and both serve the same roster and, once the
// writes settle, byte-identical checkpoints.
func TestTwoFrontends(t *testing.T) {
	env := trilliantest.Need(t)
	tree, db := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)
	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	const origin = "two.test/undersigned"
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startFrontend(t, env, dirA, origin, tree, db, 0, logs)
	a.Dial(t, "", filepath.Join(t.TempDir(), "known_logs")).Close()
	servertest.CopyFolder(t, dirA, dirB)
	b := startFrontend(t, env, dirB, origin, tree, db, 0, logs)
	token := servertest.ReadToken(t, dirA)
	knownLogs := filepath.Join(t.TempDir(), "known_logs")
	ca, cb := a.Dial(t, token, knownLogs), b.Dial(t, token, knownLogs)
	defer ca.Close()
	defer cb.Close()
	if ca.VerifierKey() != cb.VerifierKey() {
		t.Fatal("the two frontends serve different keys")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, org, _ := ed25519.GenerateKey(rand.Reader)
	letter := client.NewLetter(origin, client.LetterDraft{ID: "two-frontends", Title: "Two", Text: "We ask.\n"}, org)
	if _, err := ca.PublishLetter(ctx, letter, ""); err != nil {
		t.Fatal(err)
	}

	// Each signer is sent through both frontends at once: one copy is new,
	// the other returns it.
	const signers = 60
	type outcome struct {
		r   *client.Result
		err error
	}
	results := make([][2]outcome, signers)
	var wg sync.WaitGroup
	for i := range signers {
		e := client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: fmt.Sprintf("Frontend Signer %02d", i)}, OrganiserKey: org})
		for j, c := range []*client.Client{ca, cb} {
			wg.Go(func() {
				r, err := c.Endorse(ctx, e, "")
				results[i][j] = outcome{r, err}
			})
		}
	}
	wg.Wait()
	var receipts [][]byte
	for i, pair := range results {
		for j, o := range pair {
			if o.err != nil {
				t.Fatalf("signer %d through frontend %d: %v", i, j, o.err)
			}
		}
		x, y := pair[0].r, pair[1].r
		if x.Verified.Index != y.Verified.Index || x.Duplicate == y.Duplicate {
			t.Errorf("signer %d: indexes %d and %d, duplicate %v and %v; want one new record returned twice",
				i, x.Verified.Index, y.Verified.Index, x.Duplicate, y.Duplicate)
		}
		receipts = append(receipts, x.Receipt)
	}

	t.Run("another organiser gets AlreadyExists through either", func(t *testing.T) {
		other, _ := tokenOnPostgres(t, db)
		e := client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "Frontend Signer 07"}, OrganiserKey: org})
		for _, f := range []*frontend{a, b} {
			c := f.Dial(t, other, knownLogs)
			_, err := c.Endorse(ctx, e, "")
			c.Close()
			if status.Code(err) != codes.AlreadyExists {
				t.Errorf("through %s: %v, want AlreadyExists", f.Addr, err)
			}
		}
	})

	t.Run("a close through one frontend stops endorsements through both", func(t *testing.T) {
		if _, err := cb.SetLetterStatus(ctx, "two-frontends", pb.Status_STATUS_CLOSED, "", org); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client.Client{ca, cb} {
			e := client.NewEndorsement(origin, letter, client.Signer{Fields: records.Fields{Name: "After The Close"}, OrganiserKey: org})
			if _, err := c.Endorse(ctx, e, ""); status.Code(err) != codes.FailedPrecondition {
				t.Errorf("endorsing after the close: %v, want FailedPrecondition", err)
			}
		}
	})

	// Once the writes settle, both serve the same checkpoint, byte for
	// byte, and the same roster.
	want := uint64(1 + signers + 1)
	deadline := time.Now().Add(time.Minute)
	var cpA, cpB []byte
	for {
		cpA, cpB = a.Checkpoint(t), b.Checkpoint(t)
		if bytes.Equal(cpA, cpB) && strings.Contains(string(cpA), "\n"+strconv.FormatUint(want, 10)+"\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the frontends do not converge on one checkpoint of size %d:\n%s\n%s", want, cpA, cpB)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, f := range []*frontend{a, b} {
		resp, err := http.Get("http://" + f.HTTPAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if line := fmt.Sprintf("undersigned_trillian_published_size %d\n", want); !strings.Contains(string(body), line) {
			t.Errorf("%s/metrics does not say %q", f.HTTPAddr, line)
		}
		if m := regexp.MustCompile(`undersigned_trillian_checkpoints_signed_total (\d+)`).FindSubmatch(body); m != nil {
			t.Logf("frontend %s signed %s checkpoints itself", f.HTTPAddr, m[1])
		}
	}
	rosters := make([][]byte, 2)
	for i, c := range []*client.Client{ca, cb} {
		resp, err := c.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: "two-frontends", PageSize: 1000, TreeSize: want})
		if err != nil {
			t.Fatal(err)
		}
		if n := resp.GetCounts().GetPublic(); n != signers {
			t.Errorf("frontend %d: %d public endorsements, want %d", i, n, signers)
		}
		for _, e := range resp.GetEntries() {
			rosters[i] = fmt.Appendf(rosters[i], "%d %s\n", e.GetIndex(), e.GetDisclosure().GetName())
		}
	}
	if !bytes.Equal(rosters[0], rosters[1]) {
		t.Errorf("the frontends serve different rosters:\n%s\n%s", rosters[0], rosters[1])
	}
	// Every receipt verifies online through the other frontend.
	for i, r := range receipts {
		st, err := cb.Verify(ctx, r)
		if err != nil || st.State != client.StateCounted {
			t.Errorf("receipt %d through frontend B: %v, %v", i, st, err)
		}
	}
	a.Stop(t)
	b.Stop(t)
}

// tokenOnPostgres creates an organiser token in the Trillian engine's
// database with the token command, and returns it.
func tokenOnPostgres(t *testing.T, postgres string) (string, string) {
	t.Helper()
	cmd := servertest.Command("token", "create", "--postgres", postgres, "--name", "another organiser")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("token create: %v\n%s", err, errb.String())
	}
	return strings.TrimSpace(out.String()), errb.String()
}

// TestCrashDuringImportTrillian kills a Trillian-engine server between an
// intent and its queuing, and at random moments of an import, restarts it
// and reruns the import: every receipt handed out verifies, each name is
// in the roster once, and nothing is in the log twice.
func TestCrashDuringImportTrillian(t *testing.T) {
	env := trilliantest.Need(t)
	tree, db := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)
	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	dir := t.TempDir()
	knownLogs := filepath.Join(t.TempDir(), "known_logs")
	const origin = "crash-trillian.test/undersigned"
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	secrets := &rowSecrets{}
	ctx := context.Background()

	srv := startFrontend(t, env, dir, origin, tree, db, 0, logs)
	token := ""
	srv.Dial(t, "", knownLogs).Close()
	token = servertest.ReadToken(t, dir)
	cl := srv.Dial(t, token, knownLogs)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "crash", Title: "Crash test", Text: "Sign here.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	srv.Kill()

	const rowsPerCycle = 200
	cycles := []struct {
		name           string
		killAfterAdmit int
		afterReceipts  int
		afterTime      time.Duration
	}{
		{name: "between intent and queuing, first batch", killAfterAdmit: 1},
		{name: "mid-stream after receipts", afterReceipts: 80},
		{name: "between intent and queuing, later batch", killAfterAdmit: 3},
		{name: "at a random time", afterTime: 700 * time.Millisecond},
	}
	names := make([]string, rowsPerCycle*(len(cycles)+1))
	for i := range names {
		names[i] = fmt.Sprintf("Signer %04d Łapińska", i)
	}
	got := &receipts{byID: map[int][]byte{}}
	for i, c := range cycles {
		srv = startFrontend(t, env, dir, origin, tree, db, c.killAfterAdmit, logs)
		cl = srv.Dial(t, token, knownLogs)
		checkAll(t, ctx, cl, got)
		before := len(got.all())
		var timer *time.Timer
		if c.afterTime > 0 {
			timer = time.AfterFunc(c.afterTime, srv.Kill)
		}
		if c.afterReceipts > 0 {
			go func() {
				deadline := time.Now().Add(time.Minute)
				for len(got.all()) < before+c.afterReceipts && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				srv.Kill()
			}()
		}
		n, err := importRows(ctx, cl, l, key, secrets, names[:(i+1)*rowsPerCycle], got)
		if timer != nil {
			timer.Stop()
		}
		srv.Kill()
		cl.Close()
		t.Logf("%s: %d receipts before the kill (%v)", c.name, n, err)
	}
	srv = startFrontend(t, env, dir, origin, tree, db, 0, logs)
	cl = srv.Dial(t, token, knownLogs)
	defer cl.Close()
	checkAll(t, ctx, cl, got)
	if _, err := importRows(ctx, cl, l, key, secrets, names, got); err != nil {
		t.Fatalf("the final import: %v", err)
	}
	checkAll(t, ctx, cl, got)
	resp, err := cl.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: "crash", PageSize: 10000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range resp.GetEntries() {
		seen[e.GetDisclosure().GetName()]++
	}
	for _, n := range names {
		if seen[n] != 1 {
			t.Errorf("%q is in the roster %d times, want once", n, seen[n])
		}
	}
	if !regexp.MustCompile(`queued_again=[1-9]`).MatchString(logs.String()) {
		t.Error("no restart queued admitted writes again: the kill between intent and queuing was not exercised")
	}
	info, err := cl.API().GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(names) + 1); info.GetSize() != want {
		t.Errorf("the log has %d entries, want %d: something was appended twice", info.GetSize(), want)
	}
	srv.Stop(t)
}

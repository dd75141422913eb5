package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/servertest"
)

// The test binary doubles as the server: started by servertest as a child
// process, it runs main instead of the tests, with the test seams the
// child's options ask for.
func TestMain(m *testing.M) {
	if servertest.RunChild(func(wrap func(server.Engine) server.Engine) { os.Exit(runMain(wrap)) }) {
		return
	}
	os.Exit(m.Run())
}

// child is a server process that the test can kill.
type child = servertest.Process

// startServer starts the server on dir; killAfterAdmit > 0 makes it kill
// itself after that many admitted batches, between intent and append.
func startServer(t *testing.T, dir, origin string, killAfterAdmit int, logw io.Writer, extra ...string) *child {
	t.Helper()
	return servertest.StartProcess(t, servertest.ProcessOptions{Dir: dir, Origin: origin, Args: extra,
		KillAfterAdmit: killAfterAdmit, Env: []string{"GODEBUG=gctrace=1"}, Log: logw})
}

// receipts collects every receipt handed out, across crashes.
type receipts struct {
	mu   sync.Mutex
	byID map[int][]byte
}

func (r *receipts) put(id int, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[id] = b
}

func (r *receipts) has(id int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.byID[id]
	return ok
}

func (r *receipts) all() map[int][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int][]byte, len(r.byID))
	for k, v := range r.byID {
		out[k] = v
	}
	return out
}

// importRows streams the endorsements of the signers that have no receipt
// yet, as a rerun of an import does, and stops at the first error (the
// server was killed).
// rowSecrets are the random secrets of each row of an import, kept for the
// whole test as the import command's journal keeps them, so that a rerun
// sends the same endorsements.
type rowSecrets struct {
	mu sync.Mutex
	m  map[int][2][]byte
}

func (j *rowSecrets) of(i int) (salt, secret []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m == nil {
		j.m = map[int][2][]byte{}
	}
	s, ok := j.m[i]
	if !ok {
		s[0], s[1] = client.NewSecrets()
		j.m[i] = s
	}
	return s[0], s[1]
}

func importRows(ctx context.Context, cl *client.Client, l *pb.Letter, key ed25519.PrivateKey, secrets *rowSecrets, names []string, got *receipts) (int, error) {
	stream, err := cl.EndorseStream(ctx)
	if err != nil {
		return 0, err
	}
	var todo []int
	for i := range names {
		if !got.has(i) {
			todo = append(todo, i)
		}
	}
	go func() {
		for _, i := range todo {
			salt, secret := secrets.of(i)
			e := client.NewEndorsementWithSecrets(cl.Origin(), l, client.Signer{
				Fields:       records.Fields{Name: names[i]},
				OrganiserKey: key,
			}, salt, secret)
			if stream.Send(e, "") != nil {
				return
			}
		}
		stream.CloseSend()
	}()
	n := 0
	for _, i := range todo {
		res, rej, err := stream.Recv()
		if err != nil {
			return n, err
		}
		if rej != nil {
			return n, fmt.Errorf("row %d rejected: %s", i, rej.GetMessage())
		}
		got.put(i, res.Receipt)
		n++
	}
	return n, nil
}

// checkAll verifies every receipt handed out so far against the server's
// latest checkpoint (with a consistency proof) and checks that each still
// counts.
func checkAll(t *testing.T, ctx context.Context, cl *client.Client, got *receipts) {
	t.Helper()
	all := got.all()
	ids := make(chan int)
	errs := make(chan error, len(all))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				st, err := cl.Verify(ctx, all[id])
				switch {
				case err != nil:
					errs <- fmt.Errorf("receipt of row %d no longer verifies: %w", id, err)
				case st.State != client.StateCounted:
					errs <- fmt.Errorf("receipt of row %d: state %v, want counted", id, st.State)
				}
			}
		}()
	}
	for id := range all {
		ids <- id
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestCrashDuringImport kills the server with SIGKILL at several moments of
// a bulk import (between an intent and its append, in the middle of the
// stream, at random times), restarts it on the same folder and reruns the
// import each time. Every receipt handed out before a kill must verify
// against the new checkpoint, and at the end the roster must hold each
// name exactly once.
func TestCrashDuringImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	dir := t.TempDir()
	knownLogs := filepath.Join(t.TempDir(), "known_logs")
	logf, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			logf.Seek(0, 0)
			b, _ := io.ReadAll(logf)
			t.Logf("server log:\n%s", b)
		}
		logf.Close()
	}()
	const origin = "crash.test/undersigned"
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	secrets := &rowSecrets{}
	// Each cycle adds new rows to the import, so that there is always work
	// in flight when the server dies.
	const rowsPerCycle = 300
	ctx := context.Background()

	srv := startServer(t, dir, origin, 0, logf)
	cl, token := srv.DialOrganiser(t, knownLogs)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "crash", Title: "Crash test", Text: "Sign here.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	srv.Kill()

	got := &receipts{byID: map[int][]byte{}}
	// Each cycle: how the server dies. killAfterAdmit kills it between an
	// intent and its append; afterReceipts kills it once that many more
	// receipts arrived; afterTime kills it after a delay.
	type cycle struct {
		name           string
		killAfterAdmit int
		afterReceipts  int
		afterTime      time.Duration
	}
	cycles := []cycle{
		{name: "between intent and append, first batch", killAfterAdmit: 1},
		{name: "between intent and append, later batch", killAfterAdmit: 3},
		{name: "mid-stream after receipts", afterReceipts: 100},
		{name: "at a random time", afterTime: 150 * time.Millisecond},
		{name: "between intent and append again", killAfterAdmit: 2},
		{name: "right after start", afterTime: time.Millisecond},
		{name: "mid-stream again", afterReceipts: 50},
	}
	names := make([]string, rowsPerCycle*(len(cycles)+1))
	for i := range names {
		names[i] = fmt.Sprintf("Signer %04d Łapińska", i)
	}
	for i, c := range cycles {
		before := len(got.all())
		srv = startServer(t, dir, origin, c.killAfterAdmit, logf)
		cl = srv.Dial(t, token, knownLogs)
		// Every receipt handed out before the last kill verifies now.
		checkAll(t, ctx, cl, got)
		ictx, cancel := context.WithCancel(ctx)
		var timer *time.Timer
		if c.afterTime > 0 {
			timer = time.AfterFunc(c.afterTime, srv.Kill)
		}
		if c.afterReceipts > 0 {
			go func() {
				deadline := time.Now().Add(60 * time.Second)
				for len(got.all()) < before+c.afterReceipts && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				srv.Kill()
			}()
		}
		n, err := importRows(ictx, cl, l, key, secrets, names[:(i+1)*rowsPerCycle], got)
		cancel()
		if timer != nil {
			timer.Stop()
		}
		srv.Kill()
		cl.Close()
		t.Logf("%s: %d receipts before the kill (%v)", c.name, n, err)
	}

	// A clean run finishes the import; everything verifies; each name is
	// in the roster exactly once.
	srv = startServer(t, dir, origin, 0, logf)
	defer srv.Kill()
	cl = srv.Dial(t, token, knownLogs)
	defer cl.Close()
	checkAll(t, ctx, cl, got)
	if _, err := importRows(ctx, cl, l, key, secrets, names, got); err != nil {
		t.Fatalf("the final import: %v", err)
	}
	if n := len(got.all()); n != len(names) {
		t.Fatalf("%d receipts, want %d", n, len(names))
	}
	checkAll(t, ctx, cl, got)
	seen := map[string]int{}
	token2 := ""
	for {
		resp, err := cl.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: "crash", PageSize: 1000, PageToken: token2})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEntries() {
			seen[e.GetDisclosure().GetName()]++
		}
		if token2 = resp.GetNextPageToken(); token2 == "" {
			if c := resp.GetCounts(); c.GetPublic() != uint64(len(names)) {
				t.Errorf("roster counts %d public, want %d", c.GetPublic(), len(names))
			}
			break
		}
	}
	for _, n := range names {
		if seen[n] != 1 {
			t.Errorf("%q is in the roster %d times, want once", n, seen[n])
		}
	}
	if len(seen) != len(names) {
		t.Errorf("the roster has %d names, want %d", len(seen), len(names))
	}
	// The kills between intent and append left admitted writes that only
	// the reconciliation at start could append: check that it did.
	logText, err := os.ReadFile(logf.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`appended_again=[1-9]`).Match(logText) {
		t.Error("no restart appended admitted writes again: the kill between intent and append was not exercised")
	}
	info, err := cl.API().GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(names) + 1); info.GetSize() != want {
		t.Errorf("the log has %d entries, want %d (the letter and one per name): something was appended twice", info.GetSize(), want)
	}
}

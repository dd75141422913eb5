package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/trillian"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// cycleReport is what TestCrashCycles saw, for docs/RELIABILITY.md.
type cycleReport struct {
	Cycles        int            `json:"cycles"`
	Kills         map[string]int `json:"kills"`
	Receipts      int            `json:"receipts_handed_out"`
	Duplicates    int            `json:"names_appended_twice"`
	AppendedAgain int            `json:"restarts_that_appended_admitted_writes_again"`
	LogSize       uint64         `json:"log_size"`
	Seconds       float64        `json:"seconds"`
}

// TestCrashCycles is the crash harness: it kills the server with SIGKILL
// at random moments of a bulk import, cycle after cycle: between an intent
// and its append (the failpoint after a random number of admitted
// batches), after a random number of receipts, or after a random delay.
// After each restart every receipt handed out in the cycle before, and a
// sample of older ones, must verify online with a consistency proof, and
// an incremental audit of the log must find no violation. At the end every
// receipt verifies, the roster has each name once, and the log holds
// nothing twice.
//
// UNDERSIGNED_CRASH_CYCLES sets the number of cycles (default 10; CI runs
// 50); UNDERSIGNED_CRASH_REPORT, a file to write the tally to as JSON.
func TestCrashCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	runCrashCycles(t, func(dir string, killAfterAdmit int, logw io.Writer) *child {
		return startServer(t, dir, "crash-cycles.test/undersigned", killAfterAdmit, logw)
	})
}

// TestCrashCyclesTrillian is the crash harness on Trillian and PostgreSQL:
// the server is killed, Trillian and PostgreSQL go on.
func TestCrashCyclesTrillian(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills server processes")
	}
	env := trilliantest.Need(t)
	tree, db := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)
	const origin = "crash-cycles-trillian.test/undersigned"
	runCrashCycles(t, func(dir string, killAfterAdmit int, logw io.Writer) *child {
		return startFrontend(t, env, dir, origin, tree, db, killAfterAdmit, logw)
	})
}

// runCrashCycles runs the cycles of TestCrashCycles against the servers
// start starts.
func runCrashCycles(t *testing.T, start func(dir string, killAfterAdmit int, logw io.Writer) *child) {
	cycles := 10
	if v := os.Getenv("UNDERSIGNED_CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("UNDERSIGNED_CRASH_CYCLES=%q", v)
		}
		cycles = n
	}
	started := time.Now()
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
			if len(b) > 200_000 {
				b = b[len(b)-200_000:]
			}
			t.Logf("server log (end):\n%s", b)
		}
		logf.Close()
	}()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	secrets := &rowSecrets{}
	ctx := context.Background()
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	rep := cycleReport{Cycles: cycles, Kills: map[string]int{}}

	srv := start(dir, 0, logf)
	cl, token := srv.DialOrganiser(t, knownLogs)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "cycles", Title: "Crash cycles", Text: "Sign here.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	srv.Kill()

	stateDir := t.TempDir()

	const rowsPerCycle = 60
	names := make([]string, rowsPerCycle*(cycles+1))
	for i := range names {
		names[i] = fmt.Sprintf("Cycle Signer %05d Ŭładzimiraŭna", i)
	}
	got := &receipts{byID: map[int][]byte{}}
	var lastCycle map[int]bool
	for c := range cycles {
		before := got.all()
		kind := []string{"between intent and append", "after receipts", "after a delay"}[rng.IntN(3)]
		killAfterAdmit := 0
		if kind == "between intent and append" {
			killAfterAdmit = 1 + rng.IntN(3)
		}
		srv = start(dir, killAfterAdmit, logf)
		cl = srv.Dial(t, token, knownLogs)
		// The receipts of the last cycle, and a sample of older ones,
		// verify against the log as it is after the restart.
		var check []int
		for id := range before {
			if lastCycle[id] || rng.IntN(20) == 0 {
				check = append(check, id)
			}
		}
		sample := &receipts{byID: map[int][]byte{}}
		for _, id := range check {
			sample.put(id, before[id])
		}
		checkAll(t, ctx, cl, sample)
		auditOnce(t, ctx, cl, stateDir)

		ictx, cancel := context.WithCancel(ctx)
		switch kind {
		case "after receipts":
			want := len(before) + 1 + rng.IntN(rowsPerCycle)
			go func() {
				deadline := time.Now().Add(30 * time.Second)
				for len(got.all()) < want && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				srv.Kill()
			}()
		case "after a delay":
			time.AfterFunc(time.Duration(rng.IntN(400))*time.Millisecond, srv.Kill)
		}
		importRows(ictx, cl, l, key, secrets, names[:(c+1)*rowsPerCycle], got)
		cancel()
		srv.Kill()
		cl.Close()
		rep.Kills[kind]++
		after := got.all()
		lastCycle = map[int]bool{}
		for id := range after {
			if _, ok := before[id]; !ok {
				lastCycle[id] = true
			}
		}
	}

	srv = start(dir, 0, logf)
	defer srv.Kill()
	cl = srv.Dial(t, token, knownLogs)
	defer cl.Close()
	if _, err := importRows(ctx, cl, l, key, secrets, names, got); err != nil {
		t.Fatalf("the final import: %v", err)
	}
	checkAll(t, ctx, cl, got)
	auditOnce(t, ctx, cl, stateDir)
	rep.Duplicates, rep.LogSize = checkOnceEach(t, ctx, cl, "cycles", names)
	logText, _ := os.ReadFile(logf.Name())
	// The embedded engine appends admitted entries again at start; the
	// Trillian engine queues them again.
	rep.AppendedAgain = len(regexp.MustCompile(`(appended|queued)_again=[1-9]`).FindAll(logText, -1))
	rep.Receipts = len(got.all())
	rep.Seconds = time.Since(started).Seconds()
	// Reaching here, every receipt verified after every restart and at the
	// end, and every audit passed: any failure stops the test.
	t.Logf("crash cycles: %+v; every receipt verifies, every audit passes", rep)
	if p := os.Getenv("UNDERSIGNED_CRASH_REPORT"); p != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		os.WriteFile(p, b, 0o644)
	}
}

// auditOnce runs an incremental audit from the state in stateDir, and fails
// the test on any violation.
func auditOnce(t *testing.T, ctx context.Context, cl *client.Client, stateDir string) {
	t.Helper()
	st, err := audit.OpenState(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := audit.New(audit.Config{Source: audit.NewGRPCSource(cl.API()), VerifierKey: cl.VerifierKey(), State: st})
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.Run(ctx)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	if !r.OK() {
		t.Fatalf("audit: %d violations: %v", len(r.Violations), r.Violations)
	}
}

// checkOnceEach checks that each name is in the letter's roster once and
// that the log holds the letter and one endorsement per name, nothing
// more. It returns how many names are not there once, and the log's size.
func checkOnceEach(t *testing.T, ctx context.Context, cl *client.Client, letterID string, names []string) (wrong int, size uint64) {
	t.Helper()
	seen := map[string]int{}
	for page := ""; ; {
		resp, err := cl.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: letterID, PageSize: 10000, PageToken: page})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEntries() {
			seen[e.GetDisclosure().GetName()]++
		}
		if page = resp.GetNextPageToken(); page == "" {
			break
		}
	}
	for _, n := range names {
		if seen[n] != 1 {
			wrong++
			t.Errorf("%q is in the roster %d times, want once", n, seen[n])
		}
	}
	info, err := cl.API().GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(names) + 1); info.GetSize() != want {
		t.Errorf("the log has %d entries, want %d: something was appended twice", info.GetSize(), want)
	}
	return wrong, info.GetSize()
}

package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/servertest"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// frontendsScheme is the scheme of the resolver that gives the test's
// clients the addresses of the frontends.
const frontendsScheme = "frontends"

// frontendsResolver resolves frontends:///log to the addresses of the
// frontends, for every client connection built on it, and tells them all
// when the addresses change (a frontend restarted on new ports).
type frontendsResolver struct {
	mu    sync.Mutex
	addrs []string
	conns map[*frontendsConn]bool
}

type frontendsConn struct {
	r  *frontendsResolver
	cc resolver.ClientConn
}

func (c *frontendsConn) ResolveNow(resolver.ResolveNowOptions) {}

func (c *frontendsConn) Close() {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	delete(c.r.conns, c)
}

func (r *frontendsResolver) Scheme() string { return frontendsScheme }

func (r *frontendsResolver) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &frontendsConn{r: r, cc: cc}
	r.conns[c] = true
	cc.UpdateState(r.state())
	return c, nil
}

func (r *frontendsResolver) state() resolver.State {
	var s resolver.State
	for _, a := range r.addrs {
		s.Addresses = append(s.Addresses, resolver.Address{Addr: a})
	}
	return s
}

// set gives every client connection the frontends' addresses.
func (r *frontendsResolver) set(addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addrs = addrs
	for c := range r.conns {
		c.cc.UpdateState(r.state())
	}
}

// readOnlyView returns a read-only view of dir (a read-only bind mount),
// as the frontends of a Kubernetes deployment mount their data folder.
// Without root the frontends share dir itself, and the test says so;
// under CI=true it fails instead.
func readOnlyView(t *testing.T, dir string) string {
	t.Helper()
	ro := t.TempDir()
	mount := func(args ...string) error {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("mount %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	err := mount("--bind", dir, ro)
	if err == nil {
		t.Cleanup(func() { exec.Command("umount", "-l", ro).Run() })
		err = mount("-o", "remount,bind,ro", ro)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a read-only bind mount of the data folder (CI runs as root): %v", err)
		}
		t.Logf("the frontends share a writable data folder: %v", err)
		return dir
	}
	if err := os.WriteFile(filepath.Join(ro, "probe"), nil, 0o600); err == nil {
		t.Fatal("the read-only view of the data folder can be written")
	}
	return ro
}

// frontendsStats counts what the callers of TestFrontendsAgree saw.
type frontendsStats struct {
	ops, publishes, endorsements, verified atomic.Int64
	// The faults that must not happen.
	notFound, wentBack, unverified, shrank, other atomic.Int64
	// Calls sent again after a frontend went away (Unavailable without a
	// retry hint), and the sizes seen.
	retried, largest atomic.Int64
}

// caller is a client of both frontends, through one connection and gRPC's
// round_robin balancer, that publishes letters of its own and endorses
// them, reading back and verifying each write.
type caller struct {
	t     *testing.T
	name  string
	c     *client.Client
	org   ed25519.PrivateKey
	stats *frontendsStats
	rng   *rand.Rand

	letters []*pb.Letter
	counted map[string]uint64
	seen    uint64 // the largest checkpoint size this caller saw
}

func newCaller(t *testing.T, name, target, token, logKey string, r *frontendsResolver, stats *frontendsStats) *caller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: target, Token: token, LogKey: logKey, DialOptions: []grpc.DialOption{
		grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(`{"loadBalancingConfig": [{"round_robin": {}}]}`)}})
	if err != nil {
		t.Fatalf("dial the frontends: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_, org, _ := ed25519.GenerateKey(nil)
	return &caller{t: t, name: name, c: c, org: org, stats: stats, rng: rand.New(rand.NewPCG(rand.Uint64(), 0)), counted: map[string]uint64{}}
}

// observe checks that a checkpoint size this caller sees is not smaller
// than one it saw before.
func (c *caller) observe(what string, size uint64) {
	if size < c.seen {
		c.stats.shrank.Add(1)
		c.t.Errorf("%s: %s shows the log at size %d, after it was seen at %d", c.name, what, size, c.seen)
	}
	c.seen = max(c.seen, size)
	for {
		old := c.stats.largest.Load()
		if int64(size) <= old || c.stats.largest.CompareAndSwap(old, int64(size)) {
			return
		}
	}
}

// fault counts an error that must not happen.
func (c *caller) fault(what string, err error) {
	switch {
	case status.Code(err) == codes.NotFound:
		c.stats.notFound.Add(1)
	case strings.Contains(err.Error(), "went back"):
		c.stats.wentBack.Add(1)
	case errors.Is(err, receipt.ErrVerification):
		c.stats.unverified.Add(1)
	default:
		c.stats.other.Add(1)
	}
	c.t.Errorf("%s: %s: %v", c.name, what, err)
}

// again runs fn until it is not refused Unavailable by a frontend that
// went away, for up to a minute: what any client of a load balancer
// does. Refusals with a retry hint the client library sends again itself.
func (c *caller) again(ctx context.Context, fn func(context.Context) error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := fn(cctx)
		cancel()
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		c.stats.retried.Add(1)
		time.Sleep(50 * time.Millisecond)
	}
}

// iteration publishes a letter (the first time, then one time in
// twenty) or endorses one of the caller's letters; reads it back; and
// verifies the receipt online. Every call may land on either frontend.
func (c *caller) iteration(ctx context.Context, i int) {
	c.stats.ops.Add(1)
	var res *client.Result
	var letter *pb.Letter
	publish := len(c.letters) == 0 || c.rng.IntN(20) == 0
	// What is sent again after a frontend went away is the same write.
	var e *client.Endorsement
	if publish {
		letter = client.NewLetter(c.c.Origin(), client.LetterDraft{ID: fmt.Sprintf("%s-%d", c.name, i), Title: "Agree", Text: "We agree.\n"}, c.org)
	} else {
		letter = c.letters[c.rng.IntN(len(c.letters))]
		name := fmt.Sprintf("Signer %s %d", c.name, i)
		e = client.NewEndorsement(c.c.Origin(), letter, client.Signer{Fields: records.Fields{Name: name}, OrganiserKey: c.org})
	}
	err := c.again(ctx, func(ctx context.Context) error {
		var err error
		if publish {
			res, err = c.c.PublishLetter(ctx, letter, "")
		} else {
			res, err = c.c.Endorse(ctx, e, "")
		}
		return err
	})
	if err != nil {
		c.fault("write", err)
		return
	}
	c.observe("the receipt", res.Verified.Checkpoint.Size)
	id := letter.GetId()
	if publish {
		c.stats.publishes.Add(1)
		c.letters = append(c.letters, letter)
	} else {
		c.stats.endorsements.Add(1)
		c.counted[id]++
	}

	// Read it back: the letter, with every endorsement this caller made,
	// and the endorsement's state.
	var info *pb.LetterInfo
	err = c.again(ctx, func(ctx context.Context) error {
		var err error
		_, info, err = c.c.Letter(ctx, id)
		return err
	})
	if err != nil {
		c.fault("read the letter back", err)
		return
	}
	if got := info.GetCounts().GetPublic(); got != c.counted[id] {
		c.stats.other.Add(1)
		c.t.Errorf("%s: letter %s counts %d public endorsements after %d were written", c.name, id, got, c.counted[id])
	}
	if !publish {
		var st *pb.GetEndorsementResponse
		err = c.again(ctx, func(ctx context.Context) error {
			var err error
			st, err = c.c.API().GetEndorsement(ctx, &pb.GetEndorsementRequest{Index: res.Verified.Index})
			return err
		})
		if err != nil {
			c.fault("read the endorsement back", err)
			return
		}
		c.observe("GetEndorsement", st.GetTreeSize())
	}

	// Verify the receipt online.
	var vs *client.Status
	err = c.again(ctx, func(ctx context.Context) error {
		var err error
		vs, err = c.c.Verify(ctx, res.Receipt)
		return err
	})
	if err != nil {
		c.fault("verify the receipt online", err)
		return
	}
	c.observe("the latest checkpoint", vs.Latest.Size)
	if want := map[bool]client.State{true: client.StateIncluded, false: client.StateCounted}[publish]; vs.State != want {
		c.stats.unverified.Add(1)
		c.t.Errorf("%s: the receipt of %d verifies as %v, want %v", c.name, res.Verified.Index, vs.State, want)
		return
	}
	c.stats.verified.Add(1)
}

// TestFrontendsAgree runs two frontends of one Trillian tree and one
// PostgreSQL database, sharing one data folder mounted read-only, behind
// gRPC's own round_robin balancer (one client connection, both
// addresses), so that consecutive calls land on different frontends.
// First one caller makes UNDERSIGNED_FRONTENDS_ITERATIONS iterations
// (default 100; CI runs 1,000) of "publish or endorse, read it back,
// verify the receipt online"; then four callers do the same at once for
// UNDERSIGNED_FRONTENDS_SECONDS (default 10; CI 60), while one frontend is
// killed with SIGKILL a third of the way through and started again. No
// call may answer NotFound for what was written, no verification may find
// the log went back, every receipt must verify, and no caller may see a
// checkpoint smaller than one it saw before (issue 12).
func TestFrontendsAgree(t *testing.T) {
	env := trilliantest.Need(t)
	iterations, seconds := envCount(t, "UNDERSIGNED_FRONTENDS_ITERATIONS", 100), envCount(t, "UNDERSIGNED_FRONTENDS_SECONDS", 10)
	tree, db := env.NewTree(t, trillian.TreeType_LOG), env.NewDatabase(t)
	logs := &servertest.Logs{}
	showOnFailure(t, logs)
	const origin = "agree.test/undersigned"
	args := []string{"--trillian", env.TrillianAddr, "--tree-id", strconv.FormatInt(tree, 10), "--postgres", db}
	// Each frontend keeps what the key signed in a writable state folder
	// of its own (--state), as deploy/README.md says.
	start := func(dir, state string) *frontend {
		a := args
		if state != "" {
			a = append(slices.Clone(args), "--state", state)
		}
		return servertest.StartProcess(t, servertest.ProcessOptions{Dir: dir, Origin: origin, Log: logs, Args: a})
	}

	// The first start writes the data folder; the frontends then share it
	// read-only.
	dir := t.TempDir()
	first := start(dir, "")
	first.Dial(t, "", "").Close()
	first.Stop(t)
	shared := readOnlyView(t, dir)
	stateA, stateB := t.TempDir(), t.TempDir()
	a, b := start(shared, stateA), start(shared, stateB)
	a.Dial(t, "", "").Close()
	b.Dial(t, "", "").Close()
	token := servertest.ReadToken(t, shared)
	logKey, err := os.ReadFile(filepath.Join(shared, "log.pub"))
	if err != nil {
		t.Fatal(err)
	}
	r := &frontendsResolver{conns: map[*frontendsConn]bool{}}
	r.set(a.Addr, b.Addr)
	target := frontendsScheme + ":///log"
	stats := &frontendsStats{}
	ctx := context.Background()

	began := time.Now()
	one := newCaller(t, "one", target, token, strings.TrimSpace(string(logKey)), r, stats)
	for i := range iterations {
		one.iteration(ctx, i)
	}
	t.Logf("%d iterations by one caller in %v", iterations, time.Since(began).Round(time.Millisecond))

	// Four callers at once; one frontend killed and started again.
	began = time.Now()
	stop := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for k := range 4 {
		c := newCaller(t, fmt.Sprintf("c%d", k), target, token, strings.TrimSpace(string(logKey)), r, stats)
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				c.iteration(ctx, i)
			}
		})
	}
	time.Sleep(time.Duration(seconds) * time.Second / 3)
	a.Kill()
	t.Logf("killed frontend %s after %v", a.Addr, time.Since(began).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	a = start(shared, stateA)
	a.Dial(t, "", "").Close()
	r.set(a.Addr, b.Addr)
	t.Logf("frontend started again on %s after %v", a.Addr, time.Since(began).Round(time.Millisecond))
	wg.Wait()

	t.Logf("%d iterations (%d letters, %d endorsements), %d receipts verified online; the log grew to %d; "+
		"%d calls sent again after a frontend went away; %d wrong NotFound, %d \"went back\", %d receipts that did not verify, "+
		"%d checkpoints smaller than one seen before, %d other faults",
		stats.ops.Load(), stats.publishes.Load(), stats.endorsements.Load(), stats.verified.Load(), stats.largest.Load(),
		stats.retried.Load(), stats.notFound.Load(), stats.wentBack.Load(), stats.unverified.Load(), stats.shrank.Load(), stats.other.Load())
	if stats.verified.Load() != stats.ops.Load() {
		t.Errorf("%d of %d receipts verified", stats.verified.Load(), stats.ops.Load())
	}
	checkOnce(t, one, stats)
	a.Stop(t)
	b.Stop(t)
}

// checkOnce reads the whole log once the writes are over, through both
// frontends: each name is in it once, and for each letter the store's
// roster and the letters' view count what the log holds.
func checkOnce(t *testing.T, c *caller, stats *frontendsStats) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := c.c.API().GetEntries(ctx, &pb.GetEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	names, perLetter := map[string][]uint64{}, map[string]uint64{}
	size := uint64(0)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetEntries() {
			size++
			rec, err := records.Decode(e.GetRecord())
			if err != nil {
				t.Fatal(err)
			}
			if en := rec.GetEndorsement(); en != nil {
				key := en.GetLetterId() + "/" + e.GetDisclosure().GetName()
				names[key] = append(names[key], e.GetIndex())
				perLetter[en.GetLetterId()]++
			}
		}
	}
	for k, at := range names {
		if len(at) > 1 {
			t.Errorf("%s is in the log %d times, at %v", k, len(at), at)
		}
	}
	if want := uint64(stats.ops.Load()); size != want {
		t.Errorf("the log holds %d records after %d writes", size, want)
	}
	for id, n := range perLetter {
		roster, err := c.c.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: id, TreeSize: size, PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, info, err := c.c.Letter(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got, view := roster.GetCounts().GetPublic(), info.GetCounts().GetPublic(); got != n || view != n {
			t.Errorf("letter %s: the log holds %d endorsements, the roster counts %d, GetLetter %d", id, n, got, view)
		}
	}
}

// envCount returns the count in the environment variable name, or def.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q", name, v)
	}
	return n
}

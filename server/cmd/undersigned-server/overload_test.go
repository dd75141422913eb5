package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
)

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestOverload measures the rate the server sustains, then offers writes
// at ten times that rate, open loop, for three seconds. The server must push back (ResourceExhausted with a retry hint)
// instead of queueing, keep its memory bounded, answer reads all along,
// and hand out only receipts that verify; afterwards it writes as before.
func TestOverload(t *testing.T) {
	if testing.Short() {
		t.Skip("a load test with a server process")
	}
	dir := t.TempDir()
	logf, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	srv := startServer(t, dir, "overload.test/undersigned", 0, logf, "--max-inflight-writes", "1024")
	defer srv.Kill()
	srv.Dial(t, "", "").Close()
	tok, _ := os.ReadFile(filepath.Join(dir, datadir.TokenFile))
	token := strings.TrimSpace(string(tok))
	const conns = 8
	var cls []*client.Client
	// One more connection for reads only, as a reader would have.
	for range conns + 1 {
		c := srv.Dial(t, token, "")
		defer c.Close()
		cls = append(cls, c)
	}
	ctx := context.Background()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cls[0].Origin(), client.LetterDraft{ID: "overload", Title: "Overload", Text: "Sign here.\n"}, key)
	if _, err := cls[0].PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	const distinct = 20_000
	pool := make([]*client.Endorsement, distinct)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < distinct; i += 4 {
				pool[i] = client.NewEndorsement(cls[0].Origin(), l, client.Signer{
					Fields: records.Fields{Name: fmt.Sprintf("Overload %06d", i)}, OrganiserKey: key})
			}
		}()
	}
	wg.Wait()
	var next atomic.Int64
	send := func(ctx context.Context, c *client.Client, opts ...grpc.CallOption) (*pb.EndorseResponse, error) {
		e := pool[int(next.Add(1)-1)%distinct]
		return c.API().Endorse(c.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure}, opts...)
	}
	// The sustainable rate: 1,024 writers, closed loop, for two seconds.
	var warm atomic.Int64
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	for w := range 1024 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				if _, err := send(wctx, cls[w%conns]); err == nil {
					warm.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	wcancel()
	sustained := max(warm.Load()/2, 100)
	baseline := rssOf(srv.Pid())

	var ok, exhausted, withHint, failed atomic.Int64
	var receiptsMu sync.Mutex
	var receipts [][]byte
	var maxRSS atomic.Int64
	var readFailures atomic.Int64
	var maxRead atomic.Int64
	stop := make(chan struct{})
	var side sync.WaitGroup
	side.Add(2)
	go func() {
		defer side.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if r := rssOf(srv.Pid()); r > maxRSS.Load() {
				maxRSS.Store(r)
			}
		}
	}()
	go func() {
		defer side.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			cp, err := cls[conns].API().GetCheckpoint(rctx, &pb.GetCheckpointRequest{})
			if err == nil && cp.GetSize() > 1 {
				_, err = cls[conns].API().GetInclusionProof(rctx, &pb.GetInclusionProofRequest{Index: cp.GetSize() / 2})
			}
			cancel()
			if err != nil {
				readFailures.Add(1)
			}
			if d := time.Since(start); int64(d) > maxRead.Load() {
				maxRead.Store(int64(d))
			}
		}
	}()

	// Ten times the sustained rate, every 10 ms, whatever the answers.
	perTick := int(sustained * 10 / 100)
	var load sync.WaitGroup
	end := time.Now().Add(3 * time.Second)
	for tick := 0; time.Now().Before(end); tick++ {
		for i := range perTick {
			load.Add(1)
			go func() {
				defer load.Done()
				var trailer metadata.MD
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				resp, err := send(rctx, cls[i%conns], grpc.Trailer(&trailer))
				switch status.Code(err) {
				case codes.OK:
					ok.Add(1)
					if i%50 == 0 {
						receiptsMu.Lock()
						receipts = append(receipts, resp.GetResult().GetReceipt())
						receiptsMu.Unlock()
					}
				case codes.ResourceExhausted:
					exhausted.Add(1)
					if trailer.Get(server.RetryAfterTrailer) != nil {
						withHint.Add(1)
					}
				default:
					failed.Add(1)
					if failed.Load() < 5 {
						t.Logf("write failed: %v", err)
					}
				}
			}()
		}
		time.Sleep(10 * time.Millisecond)
	}
	load.Wait()
	close(stop)
	side.Wait()

	t.Logf("sustained %d writes/s; offered %d a second: %d writes: %d written, %d pushed back (%d with a retry hint), %d failed; RSS %d MiB at rest, at most %d MiB under load; slowest read %v, %d failed",
		sustained, sustained*10, ok.Load()+exhausted.Load()+failed.Load(), ok.Load(), exhausted.Load(), withHint.Load(), failed.Load(),
		baseline>>20, maxRSS.Load()>>20, time.Duration(maxRead.Load()), readFailures.Load())
	if exhausted.Load() == 0 {
		t.Error("the server never pushed back: the load did not overload it")
	}
	if withHint.Load() != exhausted.Load() {
		t.Errorf("%d pushbacks carried no retry hint", exhausted.Load()-withHint.Load())
	}
	if failed.Load() != 0 {
		t.Errorf("%d writes failed with something other than pushback", failed.Load())
	}
	if ok.Load() == 0 {
		t.Error("nothing was written under load")
	}
	if readFailures.Load() != 0 {
		t.Errorf("%d reads failed under load", readFailures.Load())
	}
	// The race detector makes the server several times slower and bigger.
	maxReadTime, maxGrowth := 5*time.Second, int64(384<<20)
	if raceEnabled {
		maxReadTime, maxGrowth = 10*time.Second, 2<<30
	}
	if d := time.Duration(maxRead.Load()); d > maxReadTime {
		t.Errorf("a read took %v under load", d)
	}
	if grew := maxRSS.Load() - baseline; grew > maxGrowth {
		t.Errorf("the server's memory grew by %d MiB under load", grew>>20)
	}
	for _, r := range receipts {
		if _, err := cls[conns].Verify(ctx, r); err != nil {
			t.Fatalf("a receipt handed out under load does not verify: %v", err)
		}
	}
	if _, err := send(ctx, cls[3]); err != nil {
		t.Fatalf("a write after the load: %v", err)
	}
}

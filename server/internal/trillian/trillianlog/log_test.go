package trillianlog_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"

	"github.com/undersigned/undersigned/server/internal/guard"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianlog"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianmem"
)

// countingClient counts the log's calls for the latest root and for
// consistency proofs.
type countingClient struct {
	trillian.TrillianLogClient
	roots, proofs atomic.Int64
}

func (c *countingClient) GetConsistencyProof(ctx context.Context, in *trillian.GetConsistencyProofRequest, opts ...grpc.CallOption) (*trillian.GetConsistencyProofResponse, error) {
	c.proofs.Add(1)
	return c.TrillianLogClient.GetConsistencyProof(ctx, in, opts...)
}

func (c *countingClient) GetLatestSignedLogRoot(ctx context.Context, in *trillian.GetLatestSignedLogRootRequest, opts ...grpc.CallOption) (*trillian.GetLatestSignedLogRootResponse, error) {
	c.roots.Add(1)
	return c.TrillianLogClient.GetLatestSignedLogRoot(ctx, in, opts...)
}

// TestFollowReadsAhead checks that while entries arrive the follower reads
// the new leaves with the root Trillian read them at, in one call, that
// the guard's consistency proofs come from the builder's tiles, not
// Trillian, and that every leaf is still handed to the ledger in order and
// each root the builder reproduced signed.
func TestFollowReadsAhead(t *testing.T) {
	ctx := context.Background()
	tr, err := trillianmem.Start(ctx, trillianmem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tree, err := tr.CreateTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "trillianlog.test/log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	g, err := guard.New(ctx, signer, verifier, guard.File(filepath.Join(t.TempDir(), "checkpoint")), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &countingClient{TrillianLogClient: tr.Log}
	l, err := trillianlog.Open(ctx, trillianlog.Config{
		Client: client, TreeID: tree, Signer: g, Verifier: verifier, Tiles: &trillianmem.Tiles{},
		PollInterval: time.Hour, // steps only when asked (CatchUp)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(ctx)
	var mu sync.Mutex
	var followed [][]byte
	err = l.Follow(ctx, func(_ context.Context, start uint64, leaves [][]byte) error {
		mu.Lock()
		defer mu.Unlock()
		if start != uint64(len(followed)) {
			return fmt.Errorf("handed leaves from %d, want %d", start, len(followed))
		}
		followed = append(followed, leaves...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// add queues n entries, waits for Trillian to integrate them, has the
	// log step and waits for its checkpoint.
	var sent [][]byte
	add := func(n int) {
		t.Helper()
		for range n {
			e := fmt.Appendf(nil, "entry %d", len(sent))
			if err := l.Queue(ctx, e); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, e)
		}
		for deadline := time.Now().Add(30 * time.Second); ; {
			resp, err := tr.Log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: tree})
			if err != nil {
				t.Fatal(err)
			}
			var root types.LogRootV1
			if err := root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
				t.Fatal(err)
			}
			if root.TreeSize == uint64(len(sent)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Trillian integrated %d of %d entries in 30 s", root.TreeSize, len(sent))
			}
			time.Sleep(5 * time.Millisecond)
		}
		l.CatchUp()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cp, err := l.AwaitCheckpoint(wctx, uint64(len(sent))-1)
		if err != nil {
			t.Fatalf("no checkpoint of %d entries: %v", len(sent), err)
		}
		if cp.Size != uint64(len(sent)) {
			t.Fatalf("checkpoint of %d entries, want %d", cp.Size, len(sent))
		}
	}

	add(5) // the first step found nothing: this one reads the root first
	before := client.roots.Load()
	add(5) // the last step found leaves: this one reads them first
	if got := client.roots.Load(); got != before {
		t.Errorf("a step after one that found leaves read the root %d times; want it to come with the leaves", got-before)
	}
	for range 3 {
		add(300) // across a tile's edge
	}
	if n := client.proofs.Load(); n != 0 {
		t.Errorf("Trillian was asked for %d consistency proofs; want them from the tiles", n)
	}
	if last, _ := g.LastCheckpoint(); last == nil || last.Size != uint64(len(sent)) {
		t.Errorf("the guard's last checkpoint %+v, want size %d", last, len(sent))
	}
	if err := l.Healthy(); err != nil {
		t.Fatalf("the log: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(followed) != len(sent) {
		t.Fatalf("the ledger was handed %d leaves, want %d", len(followed), len(sent))
	}
	seen := map[string]bool{}
	for _, f := range followed {
		seen[string(f)] = true
	}
	for _, e := range sent {
		if !seen[string(e)] {
			t.Errorf("%q was not handed to the ledger", e)
		}
	}
}

package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/trillian/trillianmem"
)

// cuttableConn is a connection to Trillian that can be cut: while cut,
// every call fails with Unavailable, as when Trillian is down.
type cuttableConn struct {
	grpc.ClientConnInterface
	cut atomic.Bool
}

func (c *cuttableConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if c.cut.Load() {
		return status.Error(codes.Unavailable, "Trillian is down (test)")
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

func (c *cuttableConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.cut.Load() {
		return nil, status.Error(codes.Unavailable, "Trillian is down (test)")
	}
	return c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
}

// TestTrillianOutage cuts a frontend off Trillian for longer than it takes
// to call itself unhealthy, with a write waiting, and checks that it
// recovers by itself when Trillian is back: the waiting write gets its
// receipt, and new writes go through.
func TestTrillianOutage(t *testing.T) {
	ctx := context.Background()
	tr, err := trillianmem.Start(ctx, trillianmem.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	tree, err := tr.CreateTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := &cuttableConn{ClientConnInterface: tr.Conn}
	target := (&serverLog{dir: t.TempDir(), cfg: server.Config{Trillian: &server.TrillianConfig{
		Conn: conn, TreeID: tree, PollInterval: 10 * time.Millisecond,
	}}}).Start(t)
	cl, err := client.Dial(ctx, client.Config{Addr: target.Addr, Token: target.Token, DialOptions: target.DialOptions})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	l := client.NewLetter(cl.Origin(), client.LetterDraft{ID: "outage", Title: "Outage", Text: "Sign here.\n"}, key)
	if _, err := cl.PublishLetter(ctx, l, ""); err != nil {
		t.Fatal(err)
	}
	endorse := func(ctx context.Context, name string) error {
		e := client.NewEndorsement(cl.Origin(), l, client.Signer{
			Fields: records.Fields{Name: name}, OrganiserKey: key,
		})
		_, err := cl.Endorse(ctx, e, "")
		return err
	}
	if err := endorse(ctx, "Before the outage"); err != nil {
		t.Fatal(err)
	}

	conn.cut.Store(true)
	waiting := make(chan error, 1)
	go func() { waiting <- endorse(ctx, "During the outage") }()
	// Past the point where the frontend calls itself unhealthy (5 s of
	// failed steps): writes are refused meanwhile.
	deadline := time.Now().Add(20 * time.Second)
	for {
		// Until then a write is admitted and waits: give up on it after
		// a moment (it is appended once Trillian is back).
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := endorse(pctx, "Refused during the outage")
		cancel()
		if status.Code(err) == codes.Unavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s into the outage, a write got %v, want Unavailable", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	conn.cut.Store(false)

	select {
	case err := <-waiting:
		if err != nil {
			t.Fatalf("the write admitted during the outage: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a minute after Trillian came back, the write admitted during the outage has no receipt")
	}
	deadline = time.Now().Add(time.Minute)
	for {
		err := endorse(ctx, "After the outage")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after Trillian came back, writes still fail: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

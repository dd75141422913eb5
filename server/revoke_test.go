package server_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/embedded"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/servertest"
)

// TestRevokedTokenStopsAStream: a token revoked while a bulk import's
// stream is open stops that stream. The token was checked only when the
// stream opened, and a revoked token kept writing on it (issue 17, item
// 3). A revocation through the server takes effect at the next message; one
// by another process (`undersigned-server token revoke`, which writes the
// store directly) within the server's token cache life.
func TestRevokedTokenStopsAStream(t *testing.T) {
	for _, by := range []string{"the server", "another process"} {
		t.Run(by, func(t *testing.T) {
			ts := startServer(t, t.TempDir())
			ctx := testContext(t)
			org := ts.dial(t, ts.Token)
			l := ts.publish(t, org, "revoked", pb.Policy_POLICY_CURATED)
			tok, tokRow, err := ledger.NewToken(ctx, ts.Srv.Tokens(), "to be revoked", nil)
			if err != nil {
				t.Fatal(err)
			}
			c := ts.dial(t, tok)
			stream, err := c.EndorseStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			send := func(i int) (*client.Result, *pb.Rejection, error) {
				t.Helper()
				if err := stream.Send(ts.endorsement(c.Origin(), l, fmt.Sprintf("Stream Signer %d", i), ""), ""); err != nil {
					return nil, nil, err
				}
				return stream.Recv()
			}
			if _, rej, err := send(0); err != nil || rej != nil {
				t.Fatalf("before the revocation: %v %v", rej, err)
			}

			revoke := func() {
				ok, err := ts.Srv.Tokens().Revoke(ctx, tokRow.ID, time.Now().Unix())
				if err != nil || !ok {
					t.Fatalf("revoke: %v %v", ok, err)
				}
			}
			// The server's cache keeps a token it found for 5 s.
			grace := time.Duration(0)
			if by == "another process" {
				revoke = func() {
					ts, closeTokens, err := embedded.OpenTokens(ctx, ts.Dir)
					if err != nil {
						t.Fatal(err)
					}
					defer closeTokens()
					if ok, err := ts.Revoke(ctx, tokRow.ID, time.Now().Unix()); err != nil || !ok {
						t.Fatalf("revoke: %v %v", ok, err)
					}
				}
				grace = 5*time.Second + time.Second
			}
			revoke()
			revokedAt := time.Now()
			for i := 1; ; i++ {
				res, rej, err := send(i)
				if err != nil {
					if code := status.Code(err); code != codes.Unauthenticated {
						t.Fatalf("the stream ended with %v, want Unauthenticated", err)
					}
					break
				}
				if rej != nil {
					t.Fatalf("endorsement %d rejected (%v) rather than the stream ended", i, rej)
				}
				if since := time.Since(revokedAt); since > grace {
					t.Fatalf("endorsement %d (index %d) was written %v after the token was revoked", i, res.Verified.Index, since.Round(time.Millisecond))
				}
				time.Sleep(200 * time.Millisecond)
			}
			// Nothing more is written with it, on any call.
			_, err = c.Endorse(ctx, ts.endorsement(c.Origin(), l, "After The Revocation", ""), "")
			wantCode(t, err, codes.Unauthenticated)
		})
	}
}

// TestMaxConnectionAge: a gRPC connection is not kept for ever: after the
// server's maximum connection age, and its grace, a call still open on it
// ends, and the client reconnects.
func TestMaxConnectionAge(t *testing.T) {
	ts := startServer(t, t.TempDir(), func(o *servertest.Options) {
		o.MaxConnectionAge, o.MaxConnectionAgeGrace = 300*time.Millisecond, 300*time.Millisecond
	})
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	stream, err := c.EndorseStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The stream sends nothing: it is ended by the server within the age
	// and its grace (and some slack for a loaded machine).
	done := make(chan error, 1)
	go func() {
		_, _, err := stream.Recv()
		done <- err
	}()
	select {
	case err := <-done:
		if code := status.Code(err); code != codes.Unavailable && code != codes.Canceled {
			t.Errorf("the stream ended with %v, want Unavailable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stream stayed open 10 s on a connection whose maximum age is 300 ms (and 300 ms of grace)")
	}
	// The client reconnects for the next call.
	if _, err := c.API().GetLogInfo(ctx, &pb.GetLogInfoRequest{}); err != nil {
		t.Fatalf("after the connection's age: %v", err)
	}
}

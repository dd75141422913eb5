package server_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server"
)

// TestKnownSize: a call that carries a tree size larger than the server
// publishes waits for the server to catch up, and answers once it has;
// after server.CatchUpWait it is refused with Unavailable and a retry hint,
// having done nothing; a size that is not a number is refused with the
// metadata's name. (TestFrontendsAgree runs two frontends on Trillian.)
func TestKnownSize(t *testing.T) {
	if client.KnownSizeHeader != server.KnownSizeHeader {
		t.Fatalf("the client sends %q, the server reads %q", client.KnownSizeHeader, server.KnownSizeHeader)
	}
	ts := startServer(t, t.TempDir())
	ctx := testContext(t)
	c := ts.dial(t, ts.Token)
	l := ts.publish(t, c, "known-size", pb.Policy_POLICY_CURATED)
	size := logSize(t, c)
	if got := c.KnownSize(); got != size {
		t.Errorf("the client knows size %d after its write, want %d", got, size)
	}
	api := pb.NewLedgerServiceClient(ts.Conn(t))
	known := func(n uint64) context.Context {
		return metadata.AppendToOutgoingContext(ctx, server.KnownSizeHeader, strconv.FormatUint(n, 10))
	}

	if _, err := api.GetCheckpoint(known(size), &pb.GetCheckpointRequest{}); err != nil {
		t.Errorf("a size the server publishes: %v", err)
	}
	start := time.Now()
	var trailer metadata.MD
	_, err := api.GetLetter(known(size+5), &pb.GetLetterRequest{LetterId: "known-size"}, grpc.Trailer(&trailer))
	wantCode(t, err, codes.Unavailable)
	if waited := time.Since(start); waited < server.CatchUpWait {
		t.Errorf("refused after %v, before the server waited %v to catch up", waited, server.CatchUpWait)
	}
	if len(trailer.Get(server.RetryAfterTrailer)) != 1 {
		t.Errorf("no %s trailer in %v", server.RetryAfterTrailer, trailer)
	}
	hint := false
	for _, d := range status.Convert(err).Details() {
		_, hint = d.(*errdetails.RetryInfo)
	}
	if !hint {
		t.Errorf("the refusal %v carries no RetryInfo", err)
	}
	e := ts.endorsement(c.Origin(), l, "Not Yet Known", "")
	_, err = api.Endorse(metadata.AppendToOutgoingContext(known(size+5), "authorization", "Bearer "+ts.Token),
		&pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
	wantCode(t, err, codes.Unavailable)
	if got := logSize(t, c); got != size {
		t.Errorf("a write refused for a size the server does not have grew the log from %d to %d", size, got)
	}

	// A size published while the call waits: the call answers.
	done := make(chan error, 1)
	go func() {
		resp, err := api.GetCheckpoint(known(size+1), &pb.GetCheckpointRequest{})
		if err == nil && resp.GetSize() < size+1 {
			err = status.Errorf(codes.Internal, "answered size %d", resp.GetSize())
		}
		done <- err
	}()
	endorse(t, c, ts.endorsement(c.Origin(), l, "Arrives Meanwhile", ""))
	if err := <-done; err != nil {
		t.Errorf("a call waiting for a size the server then published: %v", err)
	}

	_, err = api.GetCheckpoint(metadata.AppendToOutgoingContext(ctx, server.KnownSizeHeader, "ten"), &pb.GetCheckpointRequest{})
	wantCode(t, err, codes.InvalidArgument)
	if msg := status.Convert(err).Message(); msg != server.KnownSizeHeader+" (metadata): must be a tree size, in decimal" {
		t.Errorf("the refusal of a malformed size says %q", msg)
	}
}

package client_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// catchingUp is a server that refuses the first calls of each method with
// a code and a retry hint, as a frontend that has not caught up (or a
// rate limit of reads) does, and keeps the known sizes it was sent.
type catchingUp struct {
	pb.UnimplementedLedgerServiceServer
	origin, key string
	refuse      codes.Code
	refusals    int

	mu    sync.Mutex
	calls map[string]int
	sizes []string
}

func (f *catchingUp) refused(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sizes = append(f.sizes, method+"="+firstOr(md.Get(client.KnownSizeHeader), "none"))
	f.calls[method]++
	if f.calls[method] > f.refusals {
		return nil
	}
	st, _ := status.New(f.refuse, "not yet").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(20 * time.Millisecond)})
	return st.Err()
}

func firstOr(v []string, def string) string {
	if len(v) == 0 {
		return def
	}
	return v[0]
}

func (f *catchingUp) GetLogInfo(ctx context.Context, _ *pb.GetLogInfoRequest) (*pb.GetLogInfoResponse, error) {
	return &pb.GetLogInfoResponse{Origin: f.origin, VerifierKey: f.key}, nil
}

func (f *catchingUp) GetCheckpoint(ctx context.Context, _ *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	if err := f.refused(ctx, "GetCheckpoint"); err != nil {
		return nil, err
	}
	return &pb.GetCheckpointResponse{Size: 7}, nil
}

func (f *catchingUp) Endorse(ctx context.Context, _ *pb.EndorseRequest) (*pb.EndorseResponse, error) {
	if err := f.refused(ctx, "Endorse"); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.InvalidArgument, "endorsement: is required")
}

func (f *catchingUp) GetEntries(req *pb.GetEntriesRequest, stream pb.LedgerService_GetEntriesServer) error {
	if err := f.refused(stream.Context(), "GetEntries"); err != nil {
		return err
	}
	return stream.Send(&pb.GetEntriesResponse{Entries: []*pb.Entry{{Index: req.GetStart()}}})
}

func serveFake(t *testing.T, f *catchingUp) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, "fake.example/log")
	if err != nil {
		t.Fatal(err)
	}
	f.origin, f.key, f.calls = "fake.example/log", vkey, map[string]int{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterLedgerServiceServer(g, f)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return l.Addr().String()
}

// TestRetriesWhatCarriesAHint: a call refused with Unavailable and a retry
// hint (a frontend catching up with the size the client knows) is sent
// again until it is answered, unary or a stream of answers; a read refused
// with ResourceExhausted and a hint too, but not a write, which the caller
// decides about. Every call carries the size the client knows, which the
// size folder keeps from one client to the next.
func TestRetriesWhatCarriesAHint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sizes := t.TempDir()
	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			f := &catchingUp{refuse: code, refusals: 3}
			addr := serveFake(t, f)
			c, err := client.Dial(ctx, client.Config{Addr: addr, SizeDir: sizes})
			if err != nil {
				t.Fatal(err)
			}
			if code == codes.Unavailable {
				c.Observe(41)
				c.Observe(12) // smaller: ignored
			}
			if got := c.KnownSize(); got != 41 {
				t.Errorf("the client knows size %d, want 41", got)
			}
			if _, err := c.API().GetCheckpoint(ctx, &pb.GetCheckpointRequest{}); err != nil {
				t.Errorf("GetCheckpoint after %d refusals with a hint: %v", f.refusals, err)
			}
			stream, err := c.API().GetEntries(ctx, &pb.GetEntriesRequest{Start: 5, End: 6})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || resp.GetEntries()[0].GetIndex() != 5 {
				t.Errorf("GetEntries after %d refusals with a hint: %v, %v", f.refusals, resp, err)
			} else if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Errorf("GetEntries after its answer: %v", err)
			}
			_, err = c.API().Endorse(ctx, &pb.EndorseRequest{})
			want := codes.InvalidArgument // answered once the refusals end
			if code == codes.ResourceExhausted {
				want = codes.ResourceExhausted // a write's pushback is the caller's
			}
			if status.Code(err) != want {
				t.Errorf("Endorse: %v, want %v", err, want)
			}
			f.mu.Lock()
			for _, s := range f.sizes {
				if s[len(s)-3:] != "=41" {
					t.Errorf("a call carried %s, want the known size 41", s)
				}
			}
			f.mu.Unlock()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
	f := &catchingUp{refuse: codes.Unavailable, refusals: 1 << 30}
	addr := serveFake(t, f)
	c, err := client.Dial(ctx, client.Config{Addr: addr, SizeDir: sizes})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	short, stop := context.WithTimeout(ctx, 300*time.Millisecond)
	defer stop()
	if _, err := c.API().GetCheckpoint(short, &pb.GetCheckpointRequest{}); status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("a server that never catches up: %v, want the refusal or the deadline", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := f.calls["GetCheckpoint"]; n < 2 || n > 30 {
		t.Errorf("%d calls within 300 ms of 20 ms hints", n)
	}
}

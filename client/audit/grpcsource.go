package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// maxMessage is the largest gRPC message the sources accept: a batch of
// entries may hold several letters of up to 48 KiB each.
const maxMessage = 64 << 20

// grpcSource reads the log through the gRPC API.
type grpcSource struct {
	api     pb.LedgerServiceClient
	timeout time.Duration
}

// NewGRPCSource returns a [Source] that reads the log through the gRPC API
// (GetCheckpoint, GetEntries, GetConsistencyProof), for example the API of
// a client.Client. Each call is bounded by timeout (0 means
// [DefaultFetchTimeout]), and a stream of entries by timeout between two
// messages, so that a server that stops answering cannot hang an audit.
func NewGRPCSource(api pb.LedgerServiceClient, timeout ...time.Duration) Source {
	s := &grpcSource{api: api, timeout: DefaultFetchTimeout}
	if len(timeout) > 0 && timeout[0] > 0 {
		s.timeout = timeout[0]
	}
	return s
}

func (s *grpcSource) Checkpoint(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.api.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	if err != nil {
		return nil, fmt.Errorf("get checkpoint: %w", err)
	}
	return resp.GetCheckpoint(), nil
}

func (s *grpcSource) Entries(ctx context.Context, start, end uint64, fn func([]Entry) error) error {
	if start >= end {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A watchdog ends the stream when no message came for s.timeout.
	var timedOut atomic.Bool
	watchdog := time.AfterFunc(s.timeout, func() { timedOut.Store(true); cancel() })
	defer watchdog.Stop()
	stream, err := s.api.GetEntries(ctx, &pb.GetEntriesRequest{Start: start, End: end}, grpc.MaxCallRecvMsgSize(maxMessage))
	if err != nil {
		return fmt.Errorf("get entries [%d, %d): %w", start, end, err)
	}
	next := start
	for next < end {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("get entries: the stream ended at %d, before %d", next, end)
		}
		if err != nil && timedOut.Load() {
			return fmt.Errorf("get entries from %d: no message within %s (timeout): %w", next, s.timeout, err)
		}
		if err != nil {
			return fmt.Errorf("get entries from %d: %w", next, err)
		}
		watchdog.Stop() // the time fn takes is not the server's
		batch := make([]Entry, len(resp.GetEntries()))
		for i, e := range resp.GetEntries() {
			if e.GetIndex() != next {
				return fmt.Errorf("get entries: the server sent index %d where %d was due", e.GetIndex(), next)
			}
			if next >= end {
				return fmt.Errorf("get entries: the server sent index %d beyond %d", next, end)
			}
			batch[i] = Entry{Index: next, Record: e.GetRecord(), Disclosure: e.GetDisclosure(), Redacted: e.GetRedacted(), Foreign: e.GetForeign()}
			next++
		}
		if err := fn(batch); err != nil {
			return err
		}
		watchdog.Reset(s.timeout)
	}
	return nil
}

func (s *grpcSource) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.api.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: from, ToSize: to})
	if err != nil {
		return nil, fmt.Errorf("get consistency proof from %d to %d: %w", from, to, err)
	}
	if resp.GetFromSize() != from || resp.GetToSize() != to {
		return nil, fmt.Errorf("get consistency proof: asked for %d to %d, got %d to %d", from, to, resp.GetFromSize(), resp.GetToSize())
	}
	return resp.GetHashes(), nil
}

func (s *grpcSource) Disclosures(ctx context.Context, size uint64, indexes []uint64) (map[uint64]*pb.Disclosure, error) {
	out := map[uint64]*pb.Disclosure{}
	for _, i := range indexes {
		if i >= size {
			return nil, fmt.Errorf("disclosure of %d: beyond the tree of size %d", i, size)
		}
		err := s.Entries(ctx, i, i+1, func(b []Entry) error {
			for _, e := range b {
				if e.Disclosure != nil {
					out[e.Index] = e.Disclosure
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

package server

import (
	"context"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/web"
)

// webSource is what the web pages read and write through (web.Source).
type webSource struct{ s *Server }

var _ web.Source = webSource{}

func (w webSource) Checkpoint(ctx context.Context) ([]byte, uint64, error) {
	return w.s.ledger.ViewSource().Checkpoint(ctx)
}

func (w webSource) Entries(ctx context.Context, start, end uint64, fn func([]*pb.Entry) error) error {
	return w.s.ledger.ViewSource().Entries(ctx, start, end, fn)
}

func (w webSource) Origin() string      { return w.s.Origin() }
func (w webSource) VerifierKey() string { return w.s.VerifierKey() }

// Endorse runs the gRPC Endorse call in process, through the same
// interceptor (bounded writes, authentication, the rate limit of writes
// without a token for the client's address) and the same error mapping.
func (w webSource) Endorse(ctx context.Context, addr net.Addr, req *pb.EndorseRequest) (*pb.EndorseResponse, error) {
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: addr})
	info := &grpc.UnaryServerInfo{FullMethod: pb.LedgerService_Endorse_FullMethodName}
	resp, err := w.s.unaryInterceptor(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return (&service{s: w.s}).Endorse(ctx, req.(*pb.EndorseRequest))
	})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.EndorseResponse), nil
}

package servertest

import (
	"context"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TrillianDown is what every call through a cut [CuttableConn] fails
// with: gRPC's error for a Trillian that is down, naming an internal
// address and host that nothing the server says may repeat.
var TrillianDown = status.Error(codes.Unavailable,
	`connection error: desc = "transport: Error while dialing: dial tcp 10.20.30.40:8090: connect: connection refused" (trillian-log-server.internal.example)`)

// CuttableConn is a connection to Trillian that a test can cut (see
// Options.TrillianConn): while cut, every call fails with [TrillianDown].
type CuttableConn struct {
	grpc.ClientConnInterface
	cut atomic.Bool
}

// NewCuttable returns c, cuttable.
func NewCuttable(c grpc.ClientConnInterface) *CuttableConn {
	return &CuttableConn{ClientConnInterface: c}
}

// Cut cuts the connection off, or restores it.
func (c *CuttableConn) Cut(cut bool) { c.cut.Store(cut) }

// Invoke fails while the connection is cut.
func (c *CuttableConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if c.cut.Load() {
		return TrillianDown
	}
	return c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

// NewStream fails while the connection is cut.
func (c *CuttableConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.cut.Load() {
		return nil, TrillianDown
	}
	return c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
}

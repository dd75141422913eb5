package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/internal/atomicfile"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Several servers can serve one log (the Trillian engine's frontends
// behind a load balancer), and one of them may not have caught up yet with
// a checkpoint another published. So that a caller never sees the log
// smaller than a checkpoint it was handed, nor a record it was given as
// not found, a [Client] sends with every call the largest tree size of the
// log it has verified a checkpoint of (KnownSizeHeader); a server behind
// it catches up before it answers, or answers Unavailable with a retry
// hint having done nothing, and the client sends the call again.

// KnownSizeHeader is the gRPC metadata that carries the tree size a client
// knows; the server's name for it is server.KnownSizeHeader.
const KnownSizeHeader = "undersigned-known-size"

// RetryFor bounds how long a call is sent again after refusals that carry
// a retry hint, beyond its context's own deadline.
const RetryFor = 30 * time.Second

// KnownSize returns the largest tree size of the log the client knows: of
// a checkpoint it verified, or that a server of the log answered at. It
// sends it with every call.
func (c *Client) KnownSize() uint64 { return c.known.Load() }

// Observe tells the client of a tree size of its log that the caller
// verified a checkpoint of (a receipt's, say): it is sent with every later
// call, so that no server answers from a smaller log, and kept in the size
// folder. A size no larger than the known one changes nothing.
func (c *Client) Observe(size uint64) {
	raise(&c.verified, size)
	raise(&c.known, size)
}

// raise sets v to size when size is larger.
func raise(v *atomic.Uint64, size uint64) {
	for {
		old := v.Load()
		if size <= old || v.CompareAndSwap(old, size) {
			return
		}
	}
}

// treeSizer and sizer are the answers that say at which tree size a
// server answered.
type (
	treeSizer interface{ GetTreeSize() uint64 }
	sizer     interface{ GetSize() uint64 }
	toSizer   interface{ GetToSize() uint64 }
)

// observeAnswer raises the known size to the tree size an answer was made
// at: a later call to another server of the log is not answered from a
// smaller one. Such a size is sent, not kept in the size folder: only
// verified checkpoints are.
func (c *Client) observeAnswer(reply any) {
	var size uint64
	switch r := reply.(type) {
	case treeSizer:
		size = r.GetTreeSize()
	case sizer:
		size = r.GetSize()
	case toSizer:
		size = r.GetToSize()
	}
	raise(&c.known, size)
}

// withKnownSize adds the known size to a call's metadata.
func (c *Client) withKnownSize(ctx context.Context) context.Context {
	if n := c.known.Load(); n > 0 {
		return metadata.AppendToOutgoingContext(ctx, KnownSizeHeader, strconv.FormatUint(n, 10))
	}
	return ctx
}

// writeMethods are the calls that append to the log.
var writeMethods = map[string]bool{
	pb.LedgerService_PublishLetter_FullMethodName:   true,
	pb.LedgerService_Endorse_FullMethodName:         true,
	pb.LedgerService_Withdraw_FullMethodName:        true,
	pb.LedgerService_Redact_FullMethodName:          true,
	pb.LedgerService_SetLetterStatus_FullMethodName: true,
	pb.LedgerService_ChangeOrganiser_FullMethodName: true,
	pb.LedgerService_EndorseStream_FullMethodName:   true,
}

// retryHint returns the wait a refusal asks for, when the call may be sent
// again as it is: Unavailable with a retry hint (a server that has not
// caught up with the known size, and did nothing), or, for a read,
// ResourceExhausted with one (a rate limit of reads).
func retryHint(method string, err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable && (st.Code() != codes.ResourceExhausted || writeMethods[method]) {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return min(max(ri.GetRetryDelay().AsDuration(), 10*time.Millisecond), 5*time.Second), true
		}
	}
	return 0, false
}

// sleepOrDone waits d, and reports false when ctx ended first.
func sleepOrDone(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// unaryInterceptor sends the known size with each call, and sends it again
// after a refusal that carries a retry hint, for up to RetryFor.
func (c *Client) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	deadline := time.Now().Add(RetryFor)
	for {
		err := invoker(c.withKnownSize(ctx), method, req, reply, cc, opts...)
		if err == nil {
			c.observeAnswer(reply)
		}
		wait, ok := retryHint(method, err)
		if !ok || time.Now().Add(wait).After(deadline) || !sleepOrDone(ctx, wait) {
			return err
		}
	}
}

// streamInterceptor sends the known size with each stream. A stream of
// answers to one request (GetEntries) refused with a retry hint before its
// first answer is opened again, for up to RetryFor.
func (c *Client) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	open := func() (grpc.ClientStream, error) { return streamer(c.withKnownSize(ctx), desc, cc, method, opts...) }
	s, err := open()
	if err != nil || desc.ClientStreams || !desc.ServerStreams {
		return s, err
	}
	return &retryingStream{ClientStream: s, ctx: ctx, method: method, open: open, deadline: time.Now().Add(RetryFor)}, nil
}

// retryingStream is a stream of answers to one request that is opened
// again, with that request, when it is refused with a retry hint before
// its first answer.
type retryingStream struct {
	grpc.ClientStream
	ctx      context.Context
	method   string
	open     func() (grpc.ClientStream, error)
	deadline time.Time
	req      any
	received bool
}

func (s *retryingStream) SendMsg(m any) error {
	s.req = m
	return s.ClientStream.SendMsg(m)
}

func (s *retryingStream) RecvMsg(m any) error {
	for {
		err := s.ClientStream.RecvMsg(m)
		if err == nil || s.received || s.req == nil || errors.Is(err, io.EOF) {
			s.received = s.received || err == nil
			return err
		}
		wait, ok := retryHint(s.method, err)
		if !ok || time.Now().Add(wait).After(s.deadline) || !sleepOrDone(s.ctx, wait) {
			return err
		}
		again, oerr := s.open()
		if oerr != nil {
			return oerr
		}
		if oerr := again.SendMsg(s.req); oerr != nil {
			return oerr
		}
		if oerr := again.CloseSend(); oerr != nil {
			return oerr
		}
		s.ClientStream = again
	}
}

// sizeFile is the file of a log's known size in dir.
func sizeFile(dir, origin string) string {
	return filepath.Join(dir, url.PathEscape(origin))
}

// loadKnownSize reads the known size of the log from cfg.SizeDir.
func (c *Client) loadKnownSize(dir string) error {
	b, err := os.ReadFile(sizeFile(dir, c.origin))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("known tree size: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("known tree size: %s: not a tree size", sizeFile(dir, c.origin))
	}
	c.Observe(n)
	c.saved = n
	return nil
}

// saveKnownSize writes the largest verified size of the log to the size
// folder, when it grew.
func (c *Client) saveKnownSize() error {
	n := c.verified.Load()
	if c.sizeDir == "" || n <= c.saved {
		return nil
	}
	if err := os.MkdirAll(c.sizeDir, 0o700); err != nil {
		return fmt.Errorf("known tree size: %w", err)
	}
	if err := atomicfile.Write(sizeFile(c.sizeDir, c.origin), []byte(strconv.FormatUint(n, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("known tree size: %w", err)
	}
	c.saved = n
	return nil
}

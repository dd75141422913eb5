package server

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

// RetryAfterTrailer is the trailer that carries a retry hint, in
// milliseconds, with ResourceExhausted.
const RetryAfterTrailer = "retry-after-ms"

// toStatus maps an error of the ledger to a gRPC status: the one place
// where domain errors become codes. Clients get a safe message; an
// unexpected error is logged in full and reported as Internal.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if fe, ok := records.AsFieldError(err); ok {
		st := status.New(codes.InvalidArgument, fe.Error())
		if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
			Field: fe.Field, Description: fe.Rule,
		}}}); derr == nil {
			st = d
		}
		return st.Err()
	}
	var over *ledger.OverloadedError
	if errors.As(err, &over) {
		grpc.SetTrailer(ctx, metadata.Pairs(RetryAfterTrailer, strconv.FormatInt(over.RetryAfter.Milliseconds(), 10)))
		st := status.New(codes.ResourceExhausted, err.Error())
		if d, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(over.RetryAfter)}); derr == nil {
			st = d
		}
		return st.Err()
	}
	for _, m := range []struct {
		err  error
		code codes.Code
	}{
		{ledger.ErrUnauthenticated, codes.Unauthenticated},
		{ledger.ErrPermissionDenied, codes.PermissionDenied},
		{ledger.ErrAlreadyExists, codes.AlreadyExists},
		{ledger.ErrFailedPrecondition, codes.FailedPrecondition},
		{ledger.ErrNotFound, codes.NotFound},
		{ledger.ErrOutOfRange, codes.OutOfRange},
		{ledger.ErrUnavailable, codes.Unavailable},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
	} {
		if errors.Is(err, m.err) {
			return status.Error(m.code, err.Error())
		}
	}
	s.log.ErrorContext(ctx, "internal error", slog.Any("error", err))
	return status.Error(codes.Internal, "internal error; the server's log has the details")
}

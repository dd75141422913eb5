package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/witnessing"
)

// This file is the one place where errors become what callers see: gRPC
// statuses and HTTP error responses. A caller gets a code and a short
// message that is safe for anyone: a rule a request broke, or for a fault
// of the server or of what is underneath it (the engine's database,
// Trillian) only that it happened, never its text, which can name hosts,
// addresses, paths or names. Every call has a request id, sent in the
// x-request-id header (and trailer, on failure) and named in the message
// of a fault; the server logs each failure once, in full, with that id.

// RetryAfterTrailer is the trailer that carries a retry hint, in
// milliseconds, with ResourceExhausted, and with the Unavailable of a
// server catching up with the tree size a client knows (KnownSizeHeader).
const RetryAfterTrailer = "retry-after-ms"

// RequestIDHeader is the gRPC header and trailer, and the HTTP response
// header, that carries the request id of a call.
const RequestIDHeader = "x-request-id"

type requestIDKey struct{}

// withRequestID returns ctx with a new request id.
func withRequestID(ctx context.Context) (context.Context, string) {
	var b [8]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	return context.WithValue(ctx, requestIDKey{}, id), id
}

// requestID returns the request id of a call, or "".
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// refusal is a refusal the service decides itself: its message is for
// the caller, and it wraps the ledger error that gives its code.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

// unauthenticated refuses a call's credentials.
func unauthenticated(msg string) error {
	return &refusal{kind: ledger.ErrUnauthenticated, msg: msg}
}

// The codes of the ledger's errors whose messages are for the caller: the
// rule a request broke, written by the ledger from the request.
var callerErrors = []struct {
	err  error
	code codes.Code
}{
	{ledger.ErrUnauthenticated, codes.Unauthenticated},
	{ledger.ErrPermissionDenied, codes.PermissionDenied},
	{ledger.ErrAlreadyExists, codes.AlreadyExists},
	{ledger.ErrFailedPrecondition, codes.FailedPrecondition},
	{ledger.ErrNotFound, codes.NotFound},
	{ledger.ErrOutOfRange, codes.OutOfRange},
}

// toStatus maps an error to the gRPC status the caller gets, and logs it
// once with the call's request id: a refusal at debug level, a fault of
// the server at warning or error level.
func (s *Server) toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	id := requestID(ctx)
	st, level := statusOf(ctx, err, id)
	s.log.Log(ctx, level, "call failed", slog.String("request_id", id),
		slog.String("code", st.Code().String()), slog.Any("error", err))
	if id != "" {
		grpc.SetTrailer(ctx, metadata.Pairs(RequestIDHeader, id))
	}
	return st.Err()
}

// statusOf returns the status for err and the level to log it at.
func statusOf(ctx context.Context, err error, id string) (*status.Status, slog.Level) {
	if fe, ok := records.AsFieldError(err); ok {
		st := status.New(codes.InvalidArgument, fe.Error())
		return withDetails(st, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
			Field: fe.Field, Description: fe.Rule,
		}}}), slog.LevelDebug
	}
	var behind *ledger.BehindError
	if errors.As(err, &behind) {
		grpc.SetTrailer(ctx, metadata.Pairs(RetryAfterTrailer, strconv.FormatInt(behind.RetryAfter.Milliseconds(), 10)))
		st := status.New(codes.Unavailable, behind.Error())
		return withDetails(st, &errdetails.RetryInfo{RetryDelay: durationpb.New(behind.RetryAfter)}), slog.LevelDebug
	}
	var over *ledger.OverloadedError
	if errors.As(err, &over) {
		grpc.SetTrailer(ctx, metadata.Pairs(RetryAfterTrailer, strconv.FormatInt(over.RetryAfter.Milliseconds(), 10)))
		st := status.New(codes.ResourceExhausted, over.Error())
		return withDetails(st, &errdetails.RetryInfo{RetryDelay: durationpb.New(over.RetryAfter)}), slog.LevelDebug
	}
	for _, m := range callerErrors {
		if errors.Is(err, m.err) {
			return status.New(m.code, err.Error()), slog.LevelDebug
		}
	}
	var pending *witnessing.PendingError
	switch {
	case errors.As(err, &pending):
		// Its message names the witnesses, never their addresses.
		return status.New(codes.Unavailable, fmt.Sprintf("unavailable now: %v; it is published once the witnesses cosign, and a retry returns it (request id %s)", pending, id)), slog.LevelWarn
	case errors.Is(err, ledger.ErrUnavailable):
		return unavailableStatus(id), slog.LevelWarn
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		return status.New(codes.Canceled, "the call was canceled"), slog.LevelDebug
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "the call's deadline passed"), slog.LevelDebug
	case status.Code(err) == codes.Unavailable:
		// A status from something underneath (Trillian) that is down:
		// its code is kept, never its message.
		return unavailableStatus(id), slog.LevelWarn
	}
	return status.New(codes.Internal, fmt.Sprintf("internal error (request id %s); the server's log has the details", id)), slog.LevelError
}

func unavailableStatus(id string) *status.Status {
	return status.New(codes.Unavailable, fmt.Sprintf("unavailable now, retry later; a write may still be appended, and a retry returns it (request id %s)", id))
}

// withDetails returns st with a detail attached (st itself should that
// fail).
func withDetails(st *status.Status, d protoadapt.MessageV1) *status.Status {
	if with, err := st.WithDetails(d); err == nil {
		return with
	}
	return st
}

// withRequestIDs gives every HTTP request a request id, sent back in the
// X-Request-Id header.
func withRequestIDs(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, id := withRequestID(r.Context())
		w.Header().Set(RequestIDHeader, id)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// httpError answers an HTTP request with code and msg, a message safe for
// anyone, and logs err, when set, once in full with the request id.
func (s *Server) httpError(w http.ResponseWriter, r *http.Request, code int, msg string, err error) {
	id := requestID(r.Context())
	if err != nil {
		level := slog.LevelDebug
		if code >= 500 {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request failed", slog.String("request_id", id), slog.String("path", r.URL.Path),
			slog.Int("status", code), slog.Any("error", err))
	}
	http.Error(w, fmt.Sprintf("%s (request id %s)", msg, id), code)
}

package server

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

type callerKey struct{}

// authenticate reads the bearer token of a call. No token gives an
// anonymous caller; a token that is unknown or revoked is refused. The
// error is for toStatus.
func (s *Server) authenticate(ctx context.Context) (ledger.Caller, error) {
	// ValueFromIncomingContext reads one key without copying the call's
	// whole metadata, as FromIncomingContext does.
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(vals) == 0 {
		return ledger.Caller{}, nil
	}
	tok, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok {
		return ledger.Caller{}, unauthenticated("authorization: must be \"Bearer <token>\"")
	}
	if s.cfg.TLS.RequireClientCertForTokens && !hasClientCert(ctx) {
		return ledger.Caller{}, unauthenticated("a token is accepted only with a verified client certificate")
	}
	t, err := s.tokens.lookup(ctx, ledger.HashToken(strings.TrimSpace(tok)))
	if err != nil {
		return ledger.Caller{}, fmt.Errorf("look the token up: %w", err)
	}
	if t == nil {
		return ledger.Caller{}, unauthenticated("unknown or revoked token")
	}
	return ledger.Caller{Token: t}, nil
}

// stillValid checks that the token a call was authenticated with is still
// valid: a long call (a bulk import's stream) is refused from the first
// message after its token was revoked.
func (s *Server) stillValid(ctx context.Context, c ledger.Caller) error {
	if c.Token == nil {
		return nil
	}
	t, err := s.tokens.lookup(ctx, c.Token.Hash)
	if err != nil {
		return fmt.Errorf("look the token up: %w", err)
	}
	if t == nil {
		return unauthenticated("the token was revoked")
	}
	return nil
}

// withLimit adds the rate limits of the writes that need no token to an
// anonymous caller.
func (s *Server) withLimit(ctx context.Context, c ledger.Caller) ledger.Caller {
	if c.Token == nil {
		c.Limit = func(kind ledger.OpenWrite, letterID string) error {
			if wait, ok := s.limits.allowWrite(ctx, kind, letterID); !ok {
				return &ledger.OverloadedError{RetryAfter: wait, What: "rate limit for " + openWriteNames[kind]}
			}
			return nil
		}
	}
	return c
}

// hasClientCert reports whether the call came with a client certificate
// that the TLS handshake verified.
func hasClientCert(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(ti.State.VerifiedChains) > 0
}

func callerOf(ctx context.Context) ledger.Caller {
	c, _ := ctx.Value(callerKey{}).(ledger.Caller)
	return c
}

// writeMethods are the unary calls that append to the log.
var writeMethods = map[string]bool{
	pb.LedgerService_PublishLetter_FullMethodName:   true,
	pb.LedgerService_Endorse_FullMethodName:         true,
	pb.LedgerService_Withdraw_FullMethodName:        true,
	pb.LedgerService_Redact_FullMethodName:          true,
	pb.LedgerService_SetLetterStatus_FullMethodName: true,
	pb.LedgerService_ChangeOrganiser_FullMethodName: true,
}

// overloadRetry is the retry hint given when too many writes are in
// progress: about the time a batch takes to get its receipts.
const overloadRetry = 500 * time.Millisecond

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, id := withRequestID(ctx)
	grpc.SetHeader(ctx, metadata.Pairs(RequestIDHeader, id))
	if writeMethods[info.FullMethod] {
		if !s.writes.TryAcquire(1) {
			return nil, s.toStatus(ctx, &ledger.OverloadedError{RetryAfter: overloadRetry, What: "too many writes in progress"})
		}
		defer s.writes.Release(1)
	}
	c, err := s.authenticate(ctx)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if c.Token == nil && isRead(info.FullMethod) {
		release, err := s.admitRead(ctx)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		defer release()
	}
	if err := s.catchUp(ctx, info.FullMethod); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return handler(context.WithValue(ctx, callerKey{}, s.withLimit(ctx, c)), req)
}

// KnownSizeHeader is the gRPC metadata in which a client sends the largest
// tree size of the log it knows (of a checkpoint it verified, or that a
// server of the log answered at). A server that has
// not published that size yet (another frontend of the log did) catches
// up before it answers, or, after CatchUpWait, answers Unavailable with a
// retry hint (RetryInfo, and the retry-after-ms trailer) having done
// nothing: a caller is never told the log went back, nor that a record it
// was handed is not found.
const KnownSizeHeader = "undersigned-known-size"

// CatchUpWait is the longest a call waits for its server to catch up with
// the tree size its client knows.
const CatchUpWait = time.Second

// catchUp waits until the log's published size covers the size the
// caller knows (KnownSizeHeader), for the ledger service's calls.
func (s *Server) catchUp(ctx context.Context, method string) error {
	if !strings.HasPrefix(method, ledgerServicePrefix) {
		return nil
	}
	vals := metadata.ValueFromIncomingContext(ctx, KnownSizeHeader)
	if len(vals) == 0 {
		return nil
	}
	size, err := strconv.ParseUint(vals[0], 10, 64)
	if err != nil {
		return &records.FieldError{Field: KnownSizeHeader + " (metadata)", Rule: "must be a tree size, in decimal"}
	}
	if size == 0 {
		return nil
	}
	return s.ledger.CatchUp(ctx, size, CatchUpWait)
}

// isRead reports whether a method is a read of the ledger service.
func isRead(method string) bool {
	return strings.HasPrefix(method, ledgerServicePrefix) && !writeMethods[method] &&
		method != pb.LedgerService_EndorseStream_FullMethodName
}

var ledgerServicePrefix = "/" + pb.LedgerService_ServiceDesc.ServiceName + "/"

// admitRead applies the limits of reads without a token: the rate of the
// caller's address, then a slot among the reads in progress. It returns
// the function that frees the slot.
func (s *Server) admitRead(ctx context.Context) (func(), error) {
	if wait, ok := s.limits.allowRead(ctx); !ok {
		return nil, &ledger.OverloadedError{RetryAfter: wait, What: "rate limit for reads without a token"}
	}
	if !s.reads.TryAcquire(1) {
		return nil, &ledger.OverloadedError{RetryAfter: readRetry, What: "too many reads in progress"}
	}
	return func() { s.reads.Release(1) }, nil
}

// readRetry is the retry hint given when too many reads are in progress.
const readRetry = 100 * time.Millisecond

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w wrappedStream) Context() context.Context { return w.ctx }

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, id := withRequestID(ss.Context())
	ss.SetHeader(metadata.Pairs(RequestIDHeader, id))
	c, err := s.authenticate(ctx)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	if c.Token == nil && isRead(info.FullMethod) {
		release, err := s.admitRead(ctx)
		if err != nil {
			return s.toStatus(ctx, err)
		}
		defer release()
	}
	if err := s.catchUp(ctx, info.FullMethod); err != nil {
		return s.toStatus(ctx, err)
	}
	return handler(srv, wrappedStream{ss, context.WithValue(ctx, callerKey{}, s.withLimit(ctx, c))})
}

// tokenCacheLife is how long a token found in the store is trusted without
// asking the store again: a revocation takes effect within it.
const tokenCacheLife = 5 * time.Second

// tokenCache remembers the tokens recently found in the store, so that a
// write does not cost a query to authenticate.
type tokenCache struct {
	store ledger.TokenStore

	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	t     *ledger.Token
	until time.Time
}

func newTokenCache(store ledger.TokenStore) *tokenCache {
	return &tokenCache{store: store, tokens: map[string]cachedToken{}}
}

// lookup returns the unrevoked token with this hash, or nil.
func (c *tokenCache) lookup(ctx context.Context, hash []byte) (*ledger.Token, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.tokens[string(hash)]
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.t, nil
	}
	t, err := c.store.ByHash(ctx, hash)
	if err != nil || t == nil {
		return t, err
	}
	c.mu.Lock()
	if len(c.tokens) > 10000 {
		clear(c.tokens)
	}
	c.tokens[string(hash)] = cachedToken{t: t, until: now.Add(tokenCacheLife)}
	c.mu.Unlock()
	return t, nil
}

// The cache is the server's token store: a revocation through it takes
// effect at once; one by another process (undersigned-server token revoke)
// within tokenCacheLife.
var _ ledger.TokenStore = (*tokenCache)(nil)

func (c *tokenCache) Create(ctx context.Context, t ledger.Token) error { return c.store.Create(ctx, t) }

func (c *tokenCache) ByHash(ctx context.Context, hash []byte) (*ledger.Token, error) {
	return c.lookup(ctx, hash)
}

func (c *tokenCache) List(ctx context.Context) ([]ledger.Token, error) { return c.store.List(ctx) }

func (c *tokenCache) Revoke(ctx context.Context, id string, at int64) (bool, error) {
	ok, err := c.store.Revoke(ctx, id, at)
	c.mu.Lock()
	clear(c.tokens)
	c.mu.Unlock()
	return ok, err
}

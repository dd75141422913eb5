package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
	"github.com/undersigned/undersigned/server/internal/ledger"
)

type callerKey struct{}

// authenticate reads the bearer token of a call. No token gives an
// anonymous caller; a token that is unknown or revoked is refused. The
// error is for toStatus.
func (s *Server) authenticate(ctx context.Context) (ledger.Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
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

// withLimit adds the open-write rate limit to an anonymous caller.
func (s *Server) withLimit(ctx context.Context, c ledger.Caller) ledger.Caller {
	if c.Token == nil {
		c.Limit = func(letterID string) error {
			if wait, ok := s.limits.allow(ctx, letterID); !ok {
				return &ledger.OverloadedError{RetryAfter: wait, What: "rate limit for writes without a token"}
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
	return handler(context.WithValue(ctx, callerKey{}, s.withLimit(ctx, c)), req)
}

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
	return handler(srv, wrappedStream{ss, context.WithValue(ctx, callerKey{}, s.withLimit(ctx, c))})
}

// limiter rate-limits the writes that need no token, per client address and
// per letter.
type limiter struct {
	cfg RateLimits
	// shared, when set, keeps the letters' buckets where every server of
	// the log shares them (Engine.SharedLetterLimit); the addresses' stay
	// per server.
	shared func(ctx context.Context, letterID string, rate float64, burst int) (time.Duration, error)

	mu        sync.Mutex
	addresses map[string]*entry
	letters   map[string]*entry
	swept     time.Time
}

type entry struct {
	l    *rate.Limiter
	used time.Time
}

// newLimiter returns a limiter; shared, when set, keeps the letters'
// buckets (see Engine.SharedLetterLimit).
func newLimiter(cfg RateLimits, shared func(context.Context, string, float64, int) (time.Duration, error)) *limiter {
	return &limiter{cfg: cfg, shared: shared, addresses: map[string]*entry{}, letters: map[string]*entry{}, swept: time.Now()}
}

// allow takes one token from the address's and the letter's buckets; it
// returns the wait before a retry when either is empty.
func (l *limiter) allow(ctx context.Context, letterID string) (time.Duration, bool) {
	addr := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for _, m := range []map[string]*entry{l.addresses, l.letters} {
			for k, e := range m {
				if now.Sub(e.used) > 10*time.Minute {
					delete(m, k)
				}
			}
		}
		l.swept = now
	}
	get := func(m map[string]*entry, k string, r float64, b int) *rate.Limiter {
		e := m[k]
		if e == nil {
			e = &entry{l: rate.NewLimiter(rate.Limit(r), b)}
			m[k] = e
		}
		e.used = now
		return e.l
	}
	a := get(l.addresses, addr, l.cfg.PerAddress, l.cfg.AddressBurst).ReserveN(now, 1)
	if l.shared != nil {
		if wait := a.DelayFrom(now); wait > 0 {
			a.CancelAt(now)
			return wait, false
		}
		l.mu.Unlock()
		wait, err := l.shared(ctx, letterID, l.cfg.PerLetter, l.cfg.LetterBurst)
		l.mu.Lock()
		if err != nil {
			// The shared bucket cannot be read: refuse rather than let
			// an open write through unlimited.
			wait = time.Second
		}
		if wait > 0 {
			a.CancelAt(now)
			return wait, false
		}
		return 0, true
	}
	b := get(l.letters, letterID, l.cfg.PerLetter, l.cfg.LetterBurst).ReserveN(now, 1)
	wait := max(a.DelayFrom(now), b.DelayFrom(now))
	if wait > 0 {
		a.CancelAt(now)
		b.CancelAt(now)
		return wait, false
	}
	return 0, true
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

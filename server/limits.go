package server

import (
	"context"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc/peer"

	"github.com/undersigned/undersigned/server/internal/ledger"
)

// RateLimits are the limits on one kind of write that needs no token.
type RateLimits struct {
	// PerAddress is the sustained rate per client address, per second, and
	// AddressBurst the burst; defaults 1 and 20.
	PerAddress   float64
	AddressBurst int
	// PerLetter is the sustained rate per letter, shared by every address;
	// LetterBurst the burst; defaults 50 and 500.
	PerLetter   float64
	LetterBurst int
}

func (r *RateLimits) setDefaults() {
	if r.PerAddress == 0 {
		r.PerAddress = 1
	}
	if r.AddressBurst == 0 {
		r.AddressBurst = 20
	}
	if r.PerLetter == 0 {
		r.PerLetter = 50
	}
	if r.LetterBurst == 0 {
		r.LetterBurst = 500
	}
}

// ReadLimits are the limits on the reads of callers without a token.
type ReadLimits struct {
	// PerAddress is the sustained rate of calls per client address, per
	// second, and AddressBurst the burst; defaults 500 and 5,000.
	PerAddress   float64
	AddressBurst int
}

func (r *ReadLimits) setDefaults() {
	if r.PerAddress == 0 {
		r.PerAddress = 500
	}
	if r.AddressBurst == 0 {
		r.AddressBurst = 5000
	}
}

// openWriteNames name the kinds of write that need no token, in refusals.
var openWriteNames = map[ledger.OpenWrite]string{
	ledger.OpenEndorsement: "endorsements without a token",
	ledger.SignerAction:    "withdrawals and redactions by signers",
}

// sharedBucket names a letter's bucket of a kind of write in the engine's
// shared rate limits: endorsements keep the letter id, so that the buckets
// of servers from before the kinds were apart carry on; a letter id has
// no ':', so the names never meet.
func sharedBucket(kind ledger.OpenWrite, letterID string) string {
	if kind == ledger.OpenEndorsement {
		return letterID
	}
	return "signer-actions:" + letterID
}

// limiter rate-limits what callers without a token do: each kind of write
// per client address and per letter, and reads per client address, every
// one in buckets of its own, so that a flood of one does not delay the
// others.
type limiter struct {
	writes map[ledger.OpenWrite]RateLimits
	reads  ReadLimits
	// shared, when set, keeps the letters' buckets where every server of
	// the log shares them (Engine.SharedLetterLimit); the addresses' stay
	// per server.
	shared func(ctx context.Context, bucket string, rate float64, burst int) (time.Duration, error)

	mu        sync.Mutex
	addresses map[ledger.OpenWrite]buckets
	letters   map[ledger.OpenWrite]buckets
	readers   buckets
	swept     time.Time
}

// buckets are token buckets by key, each with when it was last used.
type buckets map[string]*entry

type entry struct {
	l    *rate.Limiter
	used time.Time
}

// reserve reserves a token of key's bucket, made with rate r and burst b
// on first use.
func (m buckets) reserve(key string, r float64, b int, now time.Time) *rate.Reservation {
	e := m[key]
	if e == nil {
		e = &entry{l: rate.NewLimiter(rate.Limit(r), b)}
		m[key] = e
	}
	e.used = now
	return e.l.ReserveN(now, 1)
}

// newLimiter returns a limiter; shared, when set, keeps the letters'
// buckets (see Engine.SharedLetterLimit).
func newLimiter(openRate, signerRate RateLimits, reads ReadLimits, shared func(context.Context, string, float64, int) (time.Duration, error)) *limiter {
	l := &limiter{
		writes: map[ledger.OpenWrite]RateLimits{ledger.OpenEndorsement: openRate, ledger.SignerAction: signerRate},
		reads:  reads, shared: shared, readers: buckets{}, swept: time.Now(),
		addresses: map[ledger.OpenWrite]buckets{}, letters: map[ledger.OpenWrite]buckets{},
	}
	for k := range l.writes {
		l.addresses[k], l.letters[k] = buckets{}, buckets{}
	}
	return l
}

// clientAddress returns the host of the call's peer, or "unknown".
func clientAddress(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	addr := p.Addr.String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// sweep forgets the buckets unused for ten minutes, once a minute; the
// caller holds mu.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	all := []buckets{l.readers}
	for k := range l.writes {
		all = append(all, l.addresses[k], l.letters[k])
	}
	for _, m := range all {
		for k, e := range m {
			if now.Sub(e.used) > 10*time.Minute {
				delete(m, k)
			}
		}
	}
	l.swept = now
}

// allowRead takes one token from the bucket of the caller's address for
// reads; it returns the wait before a retry when it is empty.
func (l *limiter) allowRead(ctx context.Context) (time.Duration, bool) {
	addr, now := clientAddress(ctx), time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	r := l.readers.reserve(addr, l.reads.PerAddress, l.reads.AddressBurst, now)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		return wait, false
	}
	return 0, true
}

// allowWrite takes one token from the address's and the letter's buckets
// of a kind of write; it returns the wait before a retry when either is
// empty.
func (l *limiter) allowWrite(ctx context.Context, kind ledger.OpenWrite, letterID string) (time.Duration, bool) {
	cfg := l.writes[kind]
	addr, now := clientAddress(ctx), time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	a := l.addresses[kind].reserve(addr, cfg.PerAddress, cfg.AddressBurst, now)
	if l.shared != nil {
		if wait := a.DelayFrom(now); wait > 0 {
			a.CancelAt(now)
			return wait, false
		}
		l.mu.Unlock()
		wait, err := l.shared(ctx, sharedBucket(kind, letterID), cfg.PerLetter, cfg.LetterBurst)
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
	b := l.letters[kind].reserve(letterID, cfg.PerLetter, cfg.LetterBurst, now)
	wait := max(a.DelayFrom(now), b.DelayFrom(now))
	if wait > 0 {
		a.CancelAt(now)
		b.CancelAt(now)
		return wait, false
	}
	return 0, true
}

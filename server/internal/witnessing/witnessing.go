// Package witnessing is the log's side of witnessing: it gets each new
// checkpoint cosigned by the witnesses of a policy before the log
// publishes it.
//
// A [Cosigner] submits a checkpoint the log signed to every witness of a
// C2SP tlog-policy in parallel, with the C2SP tlog-witness protocol
// (v1.0.0): POST <submission prefix>/add-checkpoint with the size the
// witness last cosigned for the log and the RFC 6962 consistency proof from
// that size. A witness that knows another size answers 409 Conflict with
// it; the cosigner learns it and submits again with the right proof.
// Requests time out and are retried with exponential backoff until the
// round's context ends. As soon as the valid cosignatures meet the
// policy's quorum, [Cosigner.Cosign] returns the checkpoint with their
// cosignature lines appended; when the quorum cannot be had, it returns
// a [*QuorumError] naming the witnesses that did not cosign and why, in
// words safe to show to the log's clients (the details go to the log).
//
// # The log's published checkpoints
//
// A [Log] wraps an engine's log (ledger.Log, or ledger.UnorderedLog for
// Trillian) so that what it publishes, serves and puts into receipts is
// only ever a checkpoint cosigned by the quorum: it cosigns the engine's
// latest checkpoint in rounds, stores it in a [Store] (a file of the data
// folder, or a PostgreSQL row that the frontends of a Trillian tree
// replace by compare-and-swap, so that they publish one cosigned
// checkpoint for each size) and publishes it. Writes wait for it up to a
// bound, then fail with a [*PendingError] that names the witnesses that
// did not cosign; the entries stay in the log and are published once the
// witnesses are back. Both engines use it, the same way: the seam is one
// call, after the guard-checked signature of the log's key.
//
// # Metrics
//
// With a registry, a cosigner exports per-witness request latency
// (undersigned_witness_request_seconds), failures by reason
// (undersigned_witness_failures_total) and the last size each witness
// cosigned (undersigned_witness_cosigned_size), and the duration and
// outcome of each round (undersigned_witness_round_seconds); a Log adds
// the size it published (undersigned_witness_published_size) and the
// writes that gave up waiting (undersigned_witness_wait_timeouts_total).
package witnessing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
)

// Defaults of [Config].
const (
	DefaultRequestTimeout = 5 * time.Second
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
)

// Config configures a [Cosigner].
type Config struct {
	// Policy is the witness policy. Every witness its quorum involves must
	// have a URL: its tlog-witness submission prefix.
	Policy *policy.Policy
	// Client sends the requests; nil means a client of its own.
	Client *http.Client
	// RequestTimeout bounds each request to a witness; 0 means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between two attempts at one
	// witness; 0 means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives what happened, with the details that errors leave
	// out; nil discards it.
	Logger *slog.Logger
	// Registerer, when set, gets the cosigner's metrics.
	Registerer prometheus.Registerer
}

// Prover returns the RFC 6962 consistency proof from the tree of size
// from to the tree of size to, where 0 < from < to.
type Prover func(ctx context.Context, from, to uint64) ([][]byte, error)

// Cosigner gets checkpoints cosigned. Its methods are safe for concurrent
// use; rounds run one at a time.
type Cosigner struct {
	cfg       Config
	witnesses []*witness
	metrics   *metrics
	log       *slog.Logger

	round    sync.Mutex
	inFlight sync.WaitGroup
}

// witness is the cosigner's view of one witness.
type witness struct {
	policy.Witness
	endpoint string
	// size is the size of the latest checkpoint of the log the witness
	// cosigned, as far as the cosigner knows (0 until it learns it).
	size atomic.Uint64
}

// New returns a cosigner for the witnesses of cfg.Policy. It fails if a
// witness of the quorum has no URL or the metrics cannot be registered.
func New(cfg Config) (*Cosigner, error) {
	if cfg.Policy == nil {
		return nil, errors.New("witnessing: a policy is required")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}}
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	c := &Cosigner{cfg: cfg, log: lg}
	for _, w := range cfg.Policy.Witnesses {
		if !slices.Contains(cfg.Policy.WitnessNames(), w.Name) {
			continue
		}
		if w.URL == "" {
			return nil, fmt.Errorf("witnessing: witness %s has no URL in the policy", w.Name)
		}
		c.witnesses = append(c.witnesses, &witness{Witness: w, endpoint: strings.TrimSuffix(w.URL, "/") + "/add-checkpoint"})
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("witnessing: %w", err)
	}
	c.metrics = m
	return c, nil
}

// Seed sets the size of the last cosigned checkpoint of each witness whose
// size the cosigner does not know yet: the size of the last checkpoint the
// log published cosigned is the best guess after a restart. A wrong guess
// costs one request: the witness answers with its size.
func (c *Cosigner) Seed(size uint64) {
	for _, w := range c.witnesses {
		w.size.CompareAndSwap(0, size)
	}
}

// Sizes returns, for each witness by name, the size of the last checkpoint
// it cosigned as far as the cosigner knows.
func (c *Cosigner) Sizes() map[string]uint64 {
	out := make(map[string]uint64, len(c.witnesses))
	for _, w := range c.witnesses {
		out[w.Name] = w.size.Load()
	}
	return out
}

// Close waits for the requests still in flight after the last round (a
// round returns once the quorum is met, and lets the attempts under way
// at other witnesses finish so that they learn the checkpoint).
func (c *Cosigner) Close() { c.inFlight.Wait() }

// result is one witness's outcome in a round.
type result struct {
	w     *witness
	lines []byte
	fail  *Failure
}

// Cosign gets the checkpoint, signed by the log (a C2SP signed note),
// cosigned by enough witnesses to meet the policy's quorum, and returns it
// with their cosignature lines. prove gives the consistency proofs the
// witnesses need. It returns as soon as the quorum is met, or when it can
// no longer be met (witnesses refused) or ctx ends: then it returns the
// checkpoint with what cosignatures it got and a [*QuorumError].
func (c *Cosigner) Cosign(ctx context.Context, checkpoint []byte, prove Prover) ([]byte, error) {
	c.round.Lock()
	defer c.round.Unlock()
	start := time.Now()
	text, _, ok := bytes.Cut(checkpoint, []byte("\n\n"))
	if !ok {
		return nil, errors.New("witnessing: the checkpoint is not a signed note")
	}
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(append(bytes.Clone(text), '\n')); err != nil {
		return nil, fmt.Errorf("witnessing: the checkpoint: %w", err)
	}
	if c.cfg.Policy.MetBy() {
		return checkpoint, nil
	}
	roundCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	proofs := &proofCache{prove: prove, to: cp.Size, proofs: map[uint64]func() ([][]byte, error){}}
	results := make(chan result, len(c.witnesses))
	for _, w := range c.witnesses {
		c.inFlight.Add(1)
		go func() {
			defer c.inFlight.Done()
			lines, fail := c.submit(ctx, roundCtx, w, checkpoint, &cp, proofs)
			results <- result{w, lines, fail}
		}()
	}
	out := bytes.Clone(checkpoint)
	var cosigned, pending []string
	var failures []Failure
	for _, w := range c.witnesses {
		pending = append(pending, w.Name)
	}
	for range c.witnesses {
		r := <-results
		pending = slices.DeleteFunc(pending, func(n string) bool { return n == r.w.Name })
		if r.fail != nil {
			failures = append(failures, *r.fail)
		} else {
			out = append(out, r.lines...)
			cosigned = append(cosigned, r.w.Name)
		}
		if c.cfg.Policy.MetBy(cosigned...) {
			c.metrics.round(time.Since(start), "met")
			c.log.DebugContext(ctx, "checkpoint cosigned", slog.Uint64("size", cp.Size), slog.Any("witnesses", cosigned), slog.Duration("took", time.Since(start)))
			return out, nil
		}
		if !c.cfg.Policy.MetBy(append(slices.Clone(cosigned), pending...)...) {
			// The quorum is out of reach: stop retrying, and let the
			// attempts under way say what became of them.
			cancel()
		}
	}
	slices.SortFunc(failures, func(a, b Failure) int { return strings.Compare(a.Witness, b.Witness) })
	c.metrics.round(time.Since(start), "failed")
	err := &QuorumError{Required: c.cfg.Policy.Describe(), Cosigned: cosigned, Failures: failures}
	c.log.WarnContext(ctx, "witness quorum not met", slog.Uint64("size", cp.Size), slog.String("error", err.Error()))
	return out, err
}

// proofCache computes each consistency proof a round needs once.
type proofCache struct {
	prove  Prover
	to     uint64
	mu     sync.Mutex
	proofs map[uint64]func() ([][]byte, error)
}

func (p *proofCache) get(ctx context.Context, from uint64) ([][]byte, error) {
	if from == 0 || from == p.to {
		return nil, nil
	}
	p.mu.Lock()
	f, ok := p.proofs[from]
	if !ok {
		f = sync.OnceValues(func() ([][]byte, error) { return p.prove(ctx, from, p.to) })
		p.proofs[from] = f
	}
	p.mu.Unlock()
	return f()
}

// verifiedLines returns the cosignature lines of w in body, a witness's
// answer, that verify over the checkpoint.
func verifiedLines(w *witness, checkpoint, body []byte) ([]byte, error) {
	n, err := note.Open(append(bytes.Clone(checkpoint), body...), note.VerifierList(w.Verifier()))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, s := range n.Sigs {
		fmt.Fprintf(&out, "— %s %s\n", s.Name, s.Base64)
	}
	return out.Bytes(), nil
}

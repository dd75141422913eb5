package witnessing

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
)

// maxAnswer bounds what is read of a witness's answer: a few signature
// lines, or a size.
const maxAnswer = 64 << 10

// maxConflicts is how many 409 answers in a row a witness may give before
// the cosigner backs off between attempts.
const maxConflicts = 4

// attempt is the outcome of one request to a witness.
type attempt struct {
	status int
	body   []byte
	ctype  string
}

// next says what submit does after an answer.
type next int

const (
	retryNow next = iota
	retryLater
	done
)

// submit gets the checkpoint cosigned by one witness: it retries until the
// witness cosigns, refuses for good, or round ends. Attempts use ctx (the
// caller's), so that the one under way when the quorum is met may finish.
func (c *Cosigner) submit(ctx, round context.Context, w *witness, checkpoint []byte, cp *log.Checkpoint, proofs *proofCache) ([]byte, *Failure) {
	lg := c.log.With(slog.String("witness", w.Name), slog.Uint64("size", cp.Size))
	backoff := c.cfg.MinBackoff
	conflicts := 0
	last := &Failure{Witness: w.Name, Kind: Unanswered}
	// learning is set while the witness has just told its size: the
	// request that follows is made even when the round is over, so that
	// the witness's answer to this checkpoint is known.
	learning := false
	for round.Err() == nil || learning {
		learning = false
		old := w.size.Load()
		if old > cp.Size {
			old = 0 // the witness will say where it is
		}
		then := retryLater
		proof, err := proofs.get(round, old)
		if err != nil {
			lg.WarnContext(ctx, "no consistency proof for a witness", slog.Uint64("from", old), slog.Any("error", err))
			last = &Failure{Witness: w.Name, Kind: Unanswered, detail: "no consistency proof: " + err.Error()}
		} else {
			start := time.Now()
			a, err := c.post(ctx, w, requestBody(old, proof, checkpoint))
			c.metrics.request(w.Name, time.Since(start), a.status)
			if err != nil {
				c.metrics.failure(w.Name, "unanswered")
				lg.DebugContext(ctx, "witness did not answer", slog.Any("error", err))
				last = &Failure{Witness: w.Name, Kind: Unanswered, detail: err.Error()}
			} else {
				var lines []byte
				var fail *Failure
				lines, fail, then = c.handle(ctx, lg, w, a, old, checkpoint, cp)
				if then == done {
					return lines, fail
				}
				if fail != nil {
					last = fail
				}
				if then == retryNow {
					if conflicts++; conflicts <= maxConflicts {
						learning = true
						continue
					}
				}
			}
		}
		// Wait before the next attempt, with jitter.
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, c.cfg.MaxBackoff)
		t := time.NewTimer(d)
		select {
		case <-round.Done():
		case <-t.C:
		}
		t.Stop()
	}
	lg.WarnContext(ctx, "witness did not cosign in time", slog.String("last", last.detail))
	return nil, last
}

// handle reads a witness's answer: the cosignature lines, a failure for
// good, or what to do next.
func (c *Cosigner) handle(ctx context.Context, lg *slog.Logger, w *witness, a attempt, old uint64, checkpoint []byte, cp *log.Checkpoint) ([]byte, *Failure, next) {
	fail := func(kind Kind, reason, detail string) ([]byte, *Failure, next) {
		c.metrics.failure(w.Name, reason)
		return nil, &Failure{Witness: w.Name, Kind: kind, detail: detail}, done
	}
	switch {
	case a.status == http.StatusOK:
		lines, err := verifiedLines(w, checkpoint, a.body)
		if err != nil || len(lines) == 0 {
			lg.ErrorContext(ctx, "witness answered without a valid cosignature", slog.Any("error", err), slog.String("answer", truncate(a.body)))
			return fail(Invalid, "invalid", fmt.Sprint(err))
		}
		w.size.Store(cp.Size)
		c.metrics.cosigned(w.Name, cp.Size)
		return lines, nil, done
	case a.status == http.StatusConflict && strings.HasPrefix(a.ctype, "text/x.tlog.size"):
		size, err := strconv.ParseUint(strings.TrimSuffix(string(a.body), "\n"), 10, 64)
		if err != nil {
			return fail(Invalid, "invalid", "409 with a size that is not a number: "+truncate(a.body))
		}
		if size > cp.Size {
			lg.ErrorContext(ctx, "witness cosigned a larger tree of this log than the checkpoint", slog.Uint64("witness_size", size))
			return fail(Refused, "refused", fmt.Sprintf("it cosigned size %d", size))
		}
		if size == old {
			// It is at the size sent: the conflict is the root.
			lg.ErrorContext(ctx, "witness refused the checkpoint as inconsistent with what it cosigned before", slog.Uint64("old", old))
			return fail(Refused, "refused", fmt.Sprintf("409 at its own size %d", size))
		}
		c.metrics.failure(w.Name, "conflict")
		lg.InfoContext(ctx, "witness is at another size", slog.Uint64("sent", old), slog.Uint64("witness_size", size))
		w.size.Store(size)
		return nil, &Failure{Witness: w.Name, Kind: Unanswered, detail: fmt.Sprintf("answered 409 with size %d after %d", size, old)}, retryNow
	case a.status == http.StatusConflict || a.status == http.StatusUnprocessableEntity:
		lg.ErrorContext(ctx, "witness refused the checkpoint as inconsistent with what it cosigned before",
			slog.Int("status", a.status), slog.Uint64("old", old), slog.String("answer", truncate(a.body)))
		return fail(Refused, "refused", fmt.Sprintf("%d %s", a.status, truncate(a.body)))
	case a.status == http.StatusBadRequest && old != 0:
		// Our idea of its size is wrong: let it say.
		c.metrics.failure(w.Name, "conflict")
		w.size.Store(0)
		return nil, nil, retryNow
	case a.status == http.StatusNotFound || a.status == http.StatusForbidden || a.status == http.StatusBadRequest:
		lg.ErrorContext(ctx, "witness rejected the checkpoint (unknown log, key or request)", slog.Int("status", a.status), slog.String("answer", truncate(a.body)))
		return fail(Rejected, "rejected", fmt.Sprintf("%d %s", a.status, truncate(a.body)))
	}
	c.metrics.failure(w.Name, "unanswered")
	return nil, &Failure{Witness: w.Name, Kind: Unanswered, detail: fmt.Sprintf("%d %s", a.status, truncate(a.body))}, retryLater
}

// requestBody is the body of add-checkpoint: the old size, the proof
// lines, an empty line and the checkpoint.
func requestBody(old uint64, proof [][]byte, checkpoint []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", old)
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteByte('\n')
	b.Write(checkpoint)
	return b.Bytes()
}

// post sends one add-checkpoint request, bounded by the request timeout.
func (c *Cosigner) post(ctx context.Context, w *witness, body []byte) (attempt, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.endpoint, bytes.NewReader(body))
	if err != nil {
		return attempt{}, err
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return attempt{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return attempt{status: resp.StatusCode}, err
	}
	if len(b) > maxAnswer {
		return attempt{status: resp.StatusCode}, errors.New("an answer larger than 64 KiB")
	}
	return attempt{status: resp.StatusCode, body: b, ctype: resp.Header.Get("Content-Type")}, nil
}

func truncate(b []byte) string {
	const n = 200
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

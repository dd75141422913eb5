package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/internal/atomicfile"
)

// chunkSize is how many persons are signed, journaled and synced at once
// before they are sent: one journal sync per chunk.
const chunkSize = 2048

// maxReceiptBatch bounds the receipts written with one sync.
const maxReceiptBatch = 8192

// run is one import in progress.
type run struct {
	cfg     Config
	rows    []Row
	out     []Outcome
	journal *journal // only the preparing goroutine touches it

	batch   atomicfile.Batch
	settled []settled // the outcomes of the batch, set once it is durable
	done    int       // rows settled, for the progress
	total   int       // rows to settle by sending
}

// settled is an outcome waiting for its receipt to be durable.
type settled struct {
	row                int
	path               string
	index              uint64
	duplicate, skipped bool
}

// endorsements signs the endorsements of the persons that have none yet,
// with their journaled secrets, on every core.
func (im *run) endorsements(ps []*person) {
	var unsigned []*person
	for _, p := range ps {
		if p.endorsement == nil {
			unsigned = append(unsigned, p)
		}
	}
	secrets := make([][2][]byte, len(unsigned))
	for i, p := range unsigned {
		secrets[i][0], secrets[i][1] = im.journal.secrets(p.key)
	}
	parallel(len(unsigned), func(i int) {
		p := unsigned[i]
		p.endorsement = client.NewEndorsementWithSecrets(im.cfg.Client.Origin(), im.cfg.Letter,
			signer(im.cfg, im.rows[p.rows[0]]), secrets[i][0], secrets[i][1])
	})
}

// parallel calls f(0) to f(n-1) on every core.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				f(i)
			}
		})
	}
	wg.Wait()
}

// settleEarlier settles the persons whose first row has a receipt from an
// earlier run that fits what the journal's secrets make, and returns the
// others, to be sent.
func (im *run) settleEarlier(ps []*person) ([]*person, error) {
	im.endorsements(ps)
	type kept struct {
		receipt []byte
		index   uint64
		ok      bool
	}
	found := make([]kept, len(ps))
	parallel(len(ps), func(i int) {
		found[i].receipt, found[i].index, found[i].ok = hasReceipt(im.cfg.Client, ps[i].earlier, ps[i].endorsement)
	})
	var unsettled []*person
	for i, k := range found {
		if !k.ok {
			unsettled = append(unsettled, ps[i])
			continue
		}
		if err := im.add(ps[i], k.receipt, k.index, false, true); err != nil {
			return nil, err
		}
	}
	return unsettled, im.commit(false)
}

// send signs, journals and sends the persons, and writes their receipts
// as the answers arrive.
func (im *run) send(ctx context.Context, todo []*person) error {
	if len(todo) == 0 {
		return nil
	}
	for _, p := range todo {
		im.total += len(p.rows)
	}
	if im.cfg.Progress != nil {
		im.cfg.Progress(0, im.total)
	}
	g, ctx := errgroup.WithContext(ctx)
	ready := make(chan *person, chunkSize)
	answers := make(chan answer, maxReceiptBatch)
	g.Go(func() error {
		defer close(ready)
		return im.prepare(ctx, todo, ready)
	})
	streams := im.cfg.Streams
	if streams <= 0 {
		streams = DefaultStreams
	}
	var senders sync.WaitGroup
	for range streams {
		senders.Add(1)
		g.Go(func() error {
			defer senders.Done()
			return im.stream(ctx, ready, answers)
		})
	}
	go func() { senders.Wait(); close(answers) }()
	g.Go(func() error { return im.write(ctx, answers) })
	err := g.Wait()
	if err != nil {
		// The rows sent and not answered may be in the log, or not.
		for _, p := range todo {
			for _, i := range p.rows {
				if o := &im.out[i]; o.Receipt == "" && o.Rejected == "" && o.Unknown == "" {
					o.Unknown = "no answer came: the import stopped before the server answered"
				}
			}
		}
	}
	return err
}

// prepare signs the persons a chunk at a time, syncs the journal, and
// only then hands the chunk to the streams.
func (im *run) prepare(ctx context.Context, todo []*person, ready chan<- *person) error {
	for start := 0; start < len(todo); start += chunkSize {
		chunk := todo[start:min(start+chunkSize, len(todo))]
		im.endorsements(chunk)
		// The secrets are durable before anything of the chunk is sent.
		if err := im.journal.sync(); err != nil {
			return err
		}
		for _, p := range chunk {
			select {
			case ready <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// stream sends persons from ready on one stream and passes each answer
// on, in the order sent.
func (im *run) stream(ctx context.Context, ready <-chan *person, answers chan<- answer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := im.cfg.Client.EndorseStream(ctx)
	if err != nil {
		return err
	}
	inflight := make(chan *person, client.StreamWindow+1)
	sendErr := make(chan error, 1)
	go func() {
		defer close(inflight)
		for p := range ready {
			select {
			case inflight <- p:
			case <-ctx.Done():
				sendErr <- ctx.Err()
				return
			}
			if err := st.Send(p.endorsement, im.rows[p.rows[0]].ID); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- st.CloseSend()
	}()
	for p := range inflight {
		res, rej, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the server ended the stream early")
			}
			return err
		}
		select {
		case answers <- answer{p: p, result: res, rejected: rej}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// write settles the answers in batches: whatever has arrived while the
// last batch was made durable is written and synced at once.
func (im *run) write(ctx context.Context, answers <-chan answer) error {
	defer im.batch.Abort()
	for a := range answers {
		for more := true; more; {
			if err := im.settle(a); err != nil {
				return err
			}
			if im.batch.Len() >= maxReceiptBatch {
				break
			}
			select {
			case a, more = <-answers:
			default:
				more = false
			}
		}
		if err := im.commit(true); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// settle adds a person's answer to the batch: its receipt for each of its
// rows, or its rejection.
func (im *run) settle(a answer) error {
	if a.rejected != nil {
		for _, i := range a.p.rows {
			if IsRefusal(codes.Code(a.rejected.GetCode())) {
				im.out[i].Rejected, im.out[i].MergedInto = a.rejected.GetMessage(), 0
			} else {
				im.out[i].Unknown = unknownOutcome(a.rejected.GetMessage())
			}
		}
		im.done += len(a.p.rows)
		return nil
	}
	err := im.add(a.p, a.result.Receipt, a.result.Verified.Index, a.result.Duplicate, false)
	a.p.endorsement = nil // no longer needed: let a long import's memory go
	return err
}

// add adds a person's receipt for each of its rows to the batch, named by
// the log index and the row (see [ReceiptName]); when the person's receipt
// is from an earlier run, its first row keeps that file.
func (im *run) add(p *person, b []byte, index uint64, duplicate, skipped bool) error {
	for n, i := range p.rows {
		s := settled{row: i, index: index, duplicate: duplicate, skipped: skipped,
			path: filepath.Join(im.cfg.Dir, ReceiptName(index, im.rows[i], im.cfg.NamedReceipts))}
		if skipped && n == 0 {
			s.path = p.earlier
		} else if err := im.batch.Add(s.path, b, 0o600); err != nil {
			return fmt.Errorf("receipt of row %d: %w", im.rows[i].Number, err)
		}
		im.settled = append(im.settled, s)
	}
	return nil
}

// commit makes the batch's receipts durable, then sets their rows'
// outcomes and, when sent, counts them for the progress.
func (im *run) commit(sent bool) error {
	if err := im.batch.Commit(); err != nil {
		im.settled = im.settled[:0]
		return fmt.Errorf("receipts: %w", err)
	}
	for _, s := range im.settled {
		o := &im.out[s.row]
		o.Receipt, o.Index, o.Duplicate, o.Skipped = s.path, s.index, s.duplicate, s.skipped
	}
	if sent {
		im.done += len(im.settled)
	}
	im.settled = im.settled[:0]
	if sent && im.cfg.Progress != nil {
		im.cfg.Progress(im.done, im.total)
	}
	return nil
}

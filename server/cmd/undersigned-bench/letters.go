package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// The measures of the letters part.
const (
	nameGetLetter     = "GetLetter, no token, read limits off"
	nameQuiet         = "Endorse, no reads"
	nameLoaded        = "Endorse, 64 readers looping GetLetter, read limits off"
	nameLimitedQuiet  = "Endorse, no reads (default read limits)"
	nameLimitedLoaded = "Endorse, 64 readers looping GetLetter, default read limits"
)

// letterReaders is how many anonymous readers loop GetLetter.
const letterReaders = 64

// letterWriters is how many organisers endorse at once while they do.
const letterWriters = 16

// benchLetters measures GetLetter on a letter of --letter-entries
// endorsements, by anonymous readers, and what their loop does to the
// latency of endorsements: once with the read limits off (what a read
// costs the server), once with the default limits (what one address of
// readers can take).
func benchLetters(ctx context.Context, o options, res *results) error {
	off := []string{"--read-rate", "1e9", "--read-burst", "1000000000"}
	if err := lettersOn(ctx, o, res, filepath.Join(o.dir, "letters-off"), off, nameGetLetter, nameQuiet, nameLoaded); err != nil {
		return err
	}
	if err := lettersOn(ctx, o, res, filepath.Join(o.dir, "letters-limited"), nil, "", nameLimitedQuiet, nameLimitedLoaded); err != nil {
		return err
	}
	// The p99 of each run, and the ratio of their medians: the median run
	// by rate need not be the median by latency.
	ratio := func(quiet, loaded string) string {
		q, l := medianP99(res.Runs[quiet]), medianP99(res.Runs[loaded])
		return fmt.Sprintf("%.2f (median p99 %v with the readers, %v without)", l.Seconds()/q.Seconds(), l.Round(time.Millisecond), q.Round(time.Millisecond))
	}
	res.Extra["endorse_p99_ratio_read_limits_off"] = ratio(nameQuiet, nameLoaded)
	res.Extra["endorse_p99_ratio_default_read_limits"] = ratio(nameLimitedQuiet, nameLimitedLoaded)
	res.Extra["letter_entries"] = o.letterEntries
	return nil
}

// medianP99 is the median of the runs' p99.
func medianP99(ms []measurement) time.Duration {
	var p []time.Duration
	for _, m := range ms {
		p = append(p, m.P99)
	}
	slices.Sort(p)
	if len(p) == 0 {
		return 0
	}
	return p[len(p)/2]
}

// plainClients returns n plain gRPC connections to addr, not the client
// library's, which would send a refused read again after its hint: the
// readers loop regardless, as a hostile one would.
func plainClients(addr string, n int) ([]pb.LedgerServiceClient, func(), error) {
	var conns []*grpc.ClientConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	clients := make([]pb.LedgerServiceClient, n)
	for i := range clients {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, conn)
		clients[i] = pb.NewLedgerServiceClient(conn)
	}
	return clients, closeAll, nil
}

// lettersOn fills a server started with extra flags, and measures
// GetLetter (when getLetter names it) and endorsements without and with
// the readers.
func lettersOn(ctx context.Context, o options, res *results, dir string, extra []string, getLetter, quietName, loadedName string) error {
	srv, err := startChild(ctx, o, dir, extra...)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Fprintf(os.Stderr, "filling a letter with %d endorsements\n", o.letterEntries)
	if _, err := fill(ctx, srv, o.letterEntries, 0); err != nil {
		return err
	}
	readers, closeReaders, err := plainClients(srv.grpcAddr, 4)
	if err != nil {
		return err
	}
	defer closeReaders()
	want := uint64(o.letterEntries)
	letterID := srv.letter.GetId() // the letter fill published
	var refused atomic.Int64
	read := func(ctx context.Context, seq int64) error {
		resp, err := readers[seq%int64(len(readers))].GetLetter(ctx, &pb.GetLetterRequest{LetterId: letterID})
		if status.Code(err) == codes.ResourceExhausted {
			refused.Add(1)
			return err
		}
		if err == nil && resp.GetLetter().GetCounts().GetPublic() < want {
			err = fmt.Errorf("the letter counts %d endorsements, fewer than %d", resp.GetLetter().GetCounts().GetPublic(), want)
		}
		return err
	}
	// The first read builds the letters' view: what it holds in memory.
	before := srv.rss()
	if err := read(ctx, 0); err != nil {
		return err
	}
	res.Extra["rss_mb_before_and_after_first_GetLetter_"+filepath.Base(dir)] = fmt.Sprintf("%d, %d", before>>20, srv.rss()>>20)
	writer, err := newLetterWriter(ctx, srv)
	if err != nil {
		return err
	}
	defer writer.close()
	names := []string{quietName, loadedName}
	for i := range o.runs {
		if getLetter != "" {
			m := drive(ctx, getLetter, "calls/s", o, letterReaders, srv.cpu, read)
			res.record(m)
			fmt.Fprintf(os.Stderr, "run %d: %s %.0f/s, p99 %v\n", i+1, getLetter, m.Rate, m.P99)
		}
		m := drive(ctx, quietName, "endorsements/s", o, letterWriters, srv.cpu, writer.endorse)
		res.record(m)
		fmt.Fprintf(os.Stderr, "run %d: %s p99 %v\n", i+1, quietName, m.P99)
		rctx, stop := context.WithCancel(ctx)
		var reads atomic.Int64
		for r := range letterReaders {
			go func() {
				for seq := int64(r); rctx.Err() == nil; seq += letterReaders {
					if read(rctx, seq) == nil {
						reads.Add(1)
					}
				}
			}()
		}
		refused.Store(0)
		start := time.Now()
		m = drive(ctx, loadedName, "endorsements/s", o, letterWriters, srv.cpu, writer.endorse)
		m.Note = fmt.Sprintf("readers: %.0f calls/s answered, %.0f/s refused by the read limits",
			float64(reads.Load())/time.Since(start).Seconds(), float64(refused.Load())/time.Since(start).Seconds())
		stop()
		res.record(m)
		fmt.Fprintf(os.Stderr, "run %d: %s p99 %v (%s)\n", i+1, loadedName, m.P99, m.Note)
	}
	if getLetter != "" {
		names = append([]string{getLetter}, names...)
	}
	res.finish(names...)
	return nil
}

// letterWriter endorses the letter a fill made, with an organiser token,
// with names no fill uses.
type letterWriter struct {
	c   *client.Client
	gen *endorsements
}

func newLetterWriter(ctx context.Context, srv *child) (*letterWriter, error) {
	c, l, key, err := organiserClient(ctx, srv)
	if err != nil {
		return nil, err
	}
	gen := &endorsements{origin: c.Origin(), letter: l, key: key}
	gen.next.Store(1 << 40)
	return &letterWriter{c: c, gen: gen}, nil
}

func (w *letterWriter) endorse(ctx context.Context, _ int64) error {
	e := w.gen.get()
	_, err := w.c.API().Endorse(w.c.Context(ctx), &pb.EndorseRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure})
	return err
}

func (w *letterWriter) close() { w.c.Close() }

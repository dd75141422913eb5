package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/undersigned/undersigned/client"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

const (
	nameProofs  = "GetInclusionProof over gRPC"
	nameEntries = "GetEntries over gRPC"
	nameTiles   = "full tiles over HTTP"
)

// fill appends n endorsements through bulk-import streams and returns the
// raw receipts of the first keep of them.
func fill(ctx context.Context, srv *child, n, keep int) ([][]byte, error) {
	cl, l, key, err := organiserClient(ctx, srv)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	gen := &endorsements{origin: cl.Origin(), letter: l, key: key}
	const streams = 4
	var mu sync.Mutex
	var kept [][]byte
	var done atomic.Int64
	start := time.Now()
	errc := make(chan error, streams)
	for s := range streams {
		go func() {
			stream, err := cl.API().EndorseStream(cl.Context(ctx))
			if err != nil {
				errc <- err
				return
			}
			count := n / streams
			if s == 0 {
				count += n % streams
			}
			go func() {
				for range count {
					e := gen.get()
					if stream.Send(&pb.EndorseStreamRequest{Endorsement: e.Endorsement, Disclosure: e.Disclosure}) != nil {
						return
					}
				}
				stream.CloseSend()
			}()
			for range count {
				resp, err := stream.Recv()
				if err != nil {
					errc <- err
					return
				}
				if r := resp.GetRejected(); r != nil {
					errc <- errors.New(r.GetMessage())
					return
				}
				if d := done.Add(1); d%100_000 == 0 {
					fmt.Fprintf(os.Stderr, "  filled %d of %d (%.0f/s)\n", d, n, float64(d)/time.Since(start).Seconds())
				}
				mu.Lock()
				if len(kept) < keep {
					kept = append(kept, resp.GetWritten().GetReceipt())
				}
				mu.Unlock()
			}
			errc <- nil
		}()
	}
	for range streams {
		if err := <-errc; err != nil {
			return nil, err
		}
	}
	return kept, nil
}

func benchReads(ctx context.Context, o options, res *results) error {
	// The read limits off, as in the letters part: the readers all come
	// from one address, and what is measured is what a read costs the
	// server, not the limit of 500 calls a second per address (which the
	// letters part measures with its defaults).
	extra := []string{"--read-rate", "1e9", "--read-burst", "1000000000"}
	if o.cpuProfile != "" {
		extra = append(extra, "--cpuprofile", o.cpuProfile+".reads")
	}
	srv, err := startChild(ctx, o, filepath.Join(o.dir, "reads"), extra...)
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Fprintf(os.Stderr, "filling a log with %d endorsements\n", o.readEntries)
	if _, err := fill(ctx, srv, o.readEntries, 0); err != nil {
		return err
	}
	cl, err := client.Dial(ctx, client.Config{Addr: srv.grpcAddr})
	if err != nil {
		return err
	}
	defer cl.Close()
	api := cl.API()
	info, err := api.GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		return err
	}
	size := info.GetSize()
	readers := min(o.concurrency, 256)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: readers}}
	fullTiles := size / layout.TileWidth
	if fullTiles == 0 {
		return errors.New("the log is too small for a full tile")
	}
	for i := range o.runs {
		if i == 0 {
			srv.profile(true)
		}
		m := drive(ctx, nameProofs, "proofs/s", o, readers, srv.cpu, func(ctx context.Context, _ int64) error {
			_, err := api.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Index: rand.Uint64N(size), TreeSize: size})
			return err
		})
		if i == 0 {
			srv.profile(false)
		}
		res.record(m)
		res.record(benchEntries(ctx, o, srv, api, size))
		res.record(benchTiles(ctx, o, srv, hc, readers, fullTiles))
		fmt.Fprintf(os.Stderr, "run %d: reads done\n", i+1)
	}
	res.finish(nameProofs, nameEntries, nameTiles)
	res.Extra["reads_log_size"] = size
	return nil
}

// benchEntries measures GetEntries, each call streaming 10,000 entries
// from a random start; the rate is in entries.
func benchEntries(ctx context.Context, o options, srv *child, api pb.LedgerServiceClient, size uint64) measurement {
	n := min(size, 10_000)
	m := drive(ctx, nameEntries, "entries/s", o, 2, srv.cpu, func(ctx context.Context, _ int64) error {
		start := rand.Uint64N(size - n + 1)
		stream, err := api.GetEntries(ctx, &pb.GetEntriesRequest{Start: start, End: start + n})
		if err != nil {
			return err
		}
		for {
			_, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
	m.Rate *= float64(n)
	m.Ops *= int64(n)
	m.ServerCPUPerOp /= time.Duration(n)
	m.CPUPerOp /= time.Duration(n)
	return m
}

// benchTiles measures full tiles of level 0 fetched over HTTP.
func benchTiles(ctx context.Context, o options, srv *child, hc *http.Client, readers int, fullTiles uint64) measurement {
	return drive(ctx, nameTiles, "tiles/s", o, readers, srv.cpu, func(ctx context.Context, _ int64) error {
		u := fmt.Sprintf("http://%s/log/%s", srv.httpAddr, layout.TilePath(0, rand.Uint64N(fullTiles), 0))
		resp, err := hc.Get(u)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") == "" {
			return fmt.Errorf("%s: %s", u, resp.Status)
		}
		return nil
	})
}

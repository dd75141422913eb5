package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client"
)

const nameVerify = "receipt verification, offline, one core"

func benchVerify(ctx context.Context, o options, res *results) error {
	srv, err := startChild(ctx, o, filepath.Join(o.dir, "verify"))
	if err != nil {
		return err
	}
	receipts, err := fill(ctx, srv, 2000, 2000)
	if err != nil {
		srv.stop()
		return err
	}
	cl, err := client.Dial(ctx, client.Config{Addr: srv.grpcAddr})
	if err != nil {
		srv.stop()
		return err
	}
	// A verifier of its own: the client's remembers the signatures it
	// checked, and a signer verifying one receipt has no such memory.
	v, err := note.NewVerifier(cl.VerifierKey())
	cl.Close()
	if err != nil {
		srv.stop()
		return err
	}
	srv.stop()
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	for i := range o.runs {
		oo := o
		oo.warmup = time.Second
		m := drive(ctx, nameVerify, "receipts/s", oo, 1, nil, func(ctx context.Context, seq int64) error {
			_, _, err := client.VerifyOffline(receipts[int(seq)%len(receipts)], v)
			return err
		})
		fmt.Fprintf(os.Stderr, "run %d: %.0f receipts/s\n", i+1, m.Rate)
		res.record(m)
	}
	res.finish(nameVerify)
	return nil
}

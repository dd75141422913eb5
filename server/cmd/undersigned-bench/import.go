package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/undersigned/undersigned/client/importer"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// importConcurrency is the concurrency of the Endorse measure the import is
// compared with.
const importConcurrency = 4096

func nameImport(rows int) string {
	return fmt.Sprintf("import of %d rows (client/importer, receipts written)", rows)
}

// benchImport imports --import-rows rows through client/importer, the
// package behind `undersigned import`, into a server in a process of its
// own, and in the same run measures Endorse at C = 4,096 against a server
// started the same way; runs alternate. "ratio" is the import's rows per
// second over the endorsements per second.
func benchImport(ctx context.Context, o options, res *results) error {
	o.concurrency = importConcurrency
	name := nameImport(o.importRows)
	res.Options["import_rows"] = o.importRows
	for i := range o.runs {
		profile := ""
		if i == 0 {
			profile = o.cpuProfile
		}
		m, err := benchImportRun(ctx, o, filepath.Join(o.dir, fmt.Sprintf("import-%d", i)), profile)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: %s %.0f/s\n", i+1, name, m.Rate)
		res.record(m)
		m, err = benchEndorse(ctx, o, nameFull, filepath.Join(o.dir, fmt.Sprintf("import-endorse-%d", i)), "")
		if err != nil {
			return fmt.Errorf("endorse: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: %s %.0f/s\n", i+1, nameFull, m.Rate)
		res.record(m)
	}
	med := res.finish(name, nameFull)
	res.Ratio = med[name].Rate / med[nameFull].Rate
	return nil
}

// importRows are rows as an organiser's list gives them: a name, an
// affiliation and a country, every tenth private.
func importRows(n int) []importer.Row {
	rows := make([]importer.Row, n)
	for i := range rows {
		vis := pb.Visibility_VISIBILITY_PUBLIC
		if i%10 == 9 {
			vis = pb.Visibility_VISIBILITY_PRIVATE
		}
		rows[i] = importer.Row{Number: i + 1, Visibility: vis, Verification: pb.Verification_VERIFICATION_EMAIL,
			Fields: records.Fields{Name: fmt.Sprintf("Signer %07d Łapińska", i), Affiliation: "University of Bench", Country: "PL"}}
	}
	return rows
}

// benchImportRun starts a server, publishes a letter and imports the rows
// into it, measuring the time of importer.Run and the CPU of both sides.
// With profile, the server's CPU is profiled into it and the importer's
// into profile.importer.
func benchImportRun(ctx context.Context, o options, dir, profile string) (measurement, error) {
	var extra []string
	if profile != "" {
		extra = []string{"--cpuprofile", profile}
	}
	srv, err := startChild(ctx, o, dir, extra...)
	if err != nil {
		return measurement{}, err
	}
	defer srv.stop()
	cl, l, key, err := organiserClient(ctx, srv)
	if err != nil {
		return measurement{}, err
	}
	defer cl.Close()
	rows := importRows(o.importRows)
	receipts := dir + "-receipts"
	defer os.RemoveAll(receipts)
	cfg := importer.Config{Client: cl, Letter: l, OrganiserKey: key, Dir: receipts}
	if profile != "" {
		f, err := os.Create(profile + ".importer")
		if err != nil {
			return measurement{}, err
		}
		defer f.Close()
		srv.profile(true)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
		defer srv.profile(false)
	}
	s0, c0, t0 := srv.cpu(), cpuTime(), time.Now()
	out, err := importer.Run(ctx, cfg, rows)
	elapsed, c1, s1 := time.Since(t0), cpuTime(), srv.cpu()
	if err != nil {
		return measurement{}, err
	}
	var errs int64
	for _, r := range out {
		if r.Receipt == "" {
			errs++
		}
	}
	n := time.Duration(len(rows))
	return measurement{Name: nameImport(len(rows)), Unit: "rows/s", Ops: int64(len(rows)), Seconds: elapsed.Seconds(),
		Rate: float64(len(rows)) / elapsed.Seconds(), CPUPerOp: (c1 - c0) / n, ServerCPUPerOp: (s1 - s0) / n, Errors: errs,
		Note: "client CPU is the importer's: signing, journal, streams, receipt checks and files"}, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/undersigned/undersigned/server/internal/datadir"
)

// benchWitnessed measures the writes of a server whose checkpoints are
// cosigned by the witnesses of --witness-policy against the same server
// without witnesses, in alternating runs: each kind on a log of its own
// that grows from run to run (the witnesses remember the log they
// cosigned: --witness-data is the data folder whose key they were started
// for). "ratio" is witnessed over plain.
func benchWitnessed(ctx context.Context, o options, res *results) error {
	if o.witnessData == "" {
		return errors.New("--witness-policy needs --witness-data, the data folder whose log.pub the witnesses were started for")
	}
	if _, err := os.Stat(filepath.Join(o.witnessData, datadir.LogKeyFile)); errors.Is(err, os.ErrNotExist) {
		f, err := datadir.Open(o.witnessData, benchOrigin)
		if err != nil {
			return err
		}
		return fmt.Errorf("made the data folder %s: start the witnesses for its key (deploy/witness/up.sh WORKDIR %s) and run again with their policy (--witness-policy)", f.Dir, f.Path(datadir.LogPubFile))
	}
	if o.witnessPolicy == "" {
		return errors.New("--witness-data needs --witness-policy, the policy of the witnesses started for its log.pub")
	}
	plain := filepath.Join(o.dir, "plain")
	for i := range o.runs {
		m, err := benchEndorse(ctx, o, nameFull, plain, "")
		if err != nil {
			return fmt.Errorf("without witnesses: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: %s %.0f/s p95 %v\n", i+1, nameFull, m.Rate, m.P95)
		res.record(m)
		m, err = benchEndorse(ctx, o, nameWitnessed, o.witnessData, "", "--witness-policy", o.witnessPolicy)
		if err != nil {
			return fmt.Errorf("with witnesses: %w", err)
		}
		fmt.Fprintf(os.Stderr, "run %d: %s %.0f/s p95 %v\n", i+1, nameWitnessed, m.Rate, m.P95)
		res.record(m)
	}
	med := res.finish(nameFull, nameWitnessed)
	res.Ratio = med[nameWitnessed].Rate / med[nameFull].Rate
	res.Extra["witnessed p95 minus plain p95"] = (med[nameWitnessed].P95 - med[nameFull].P95).String()
	return nil
}

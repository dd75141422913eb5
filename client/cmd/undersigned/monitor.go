package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"
)

func runMonitor(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	var af auditFlags
	af.register(fs)
	interval := fs.Duration("interval", time.Minute, "how long to wait between audits")
	rounds := fs.Int("rounds", 0, "stop after this many audits (default: run until stopped)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *interval <= 0 {
		return usagef("monitor: --interval must be positive")
	}
	e.resolveSource(&af)
	a, release, err := e.openAuditor(ctx, af, false)
	if err != nil {
		return err
	}
	defer release()
	for n := 1; ; n++ {
		rep, err := a.Run(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !rep.OK() {
			printReport(e.stdout, a.State(), rep, false)
			return failedf("monitor: %d violation(s) at %s", len(rep.Violations), time.Now().UTC().Format(time.RFC3339))
		}
		if rep.To > rep.From || n == 1 {
			var parts []string
			for _, lc := range rep.Letters {
				parts = append(parts, fmt.Sprintf("%s +%d -%d redacted %d corrected %d", lc.LetterID, lc.Added, lc.Withdrawn, lc.Redacted, lc.Corrected))
			}
			line := fmt.Sprintf("%s size %d (+%d) ok", time.Now().UTC().Format(time.RFC3339), rep.To, rep.To-rep.From)
			if len(parts) > 0 {
				line += ": " + strings.Join(parts, "; ")
			}
			for _, w := range rep.Warnings {
				line += "; warning: " + w.String()
			}
			fmt.Fprintln(e.stdout, line)
		}
		if *rounds > 0 && n >= *rounds {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/undersigned/undersigned/client/audit"
)

func runMonitor(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	var af auditFlags
	af.register(fs)
	interval := fs.Duration("interval", time.Minute, "how long to wait between audits")
	rounds := fs.Int("rounds", 0, "stop after this many audits (default: run until stopped)")
	var compare []string
	fs.Func("compare", "after each audit, compare the log's checkpoint with the one at this tlog-tiles URL (a mirror: URL + \"checkpoint\") or checkpoint URL (a witness's view of the log); two histories are a violation, with both signed checkpoints written as evidence (repeatable)", func(u string) error {
		compare = append(compare, u)
		return nil
	})
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
		if rep.OK() {
			gossip(ctx, e.stdout, a, rep, compare, af.timeout)
		}
		if !rep.OK() {
			printReport(e.stdout, a.State(), rep, false)
			return failedf("monitor: %d violation(s) at %s", len(rep.Violations), time.Now().UTC().Format(time.RFC3339))
		}
		if rep.To > rep.From || n == 1 {
			fmt.Fprintln(e.stdout, roundLine(rep))
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

// roundLine is the line monitor prints for an audit that found nothing
// wrong.
func roundLine(rep *audit.Report) string {
	var parts []string
	for _, lc := range rep.Letters {
		parts = append(parts, fmt.Sprintf("%s +%d -%d redacted %d corrected %d", lc.LetterID, lc.Added, lc.Withdrawn, lc.Redacted, lc.Corrected))
	}
	line := fmt.Sprintf("%s size %d (+%d) ok", time.Now().UTC().Format(time.RFC3339), rep.To, rep.To-rep.From)
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, "; ")
	}
	if rep.ForeignNotChecked > 0 {
		line += fmt.Sprintf("; foreign marks not checked: %d entries (the source serves none)", rep.ForeignNotChecked)
	}
	for _, w := range rep.Warnings {
		line += "; warning: " + w.String()
	}
	return line
}

// gossip compares the audited checkpoint with those the other sources
// hold: a disagreement is added to the report's violations (its evidence
// written); a source that cannot be read or proves nothing is a warning
// line, and is asked again next time.
func gossip(ctx context.Context, w io.Writer, a *audit.Auditor, rep *audit.Report, sources []string, timeout time.Duration) {
	for _, u := range sources {
		raw, err := audit.FetchCheckpoint(ctx, u, nil, audit.WithFetchTimeout(timeout))
		var v *audit.Violation
		if err == nil {
			v, err = a.Compare(ctx, u, raw)
		}
		switch {
		case v != nil:
			rep.Violations = append(rep.Violations, *v)
		case err != nil:
			fmt.Fprintf(w, "%s warning: could not compare with %s: %v\n", time.Now().UTC().Format(time.RFC3339), u, err)
		}
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/term"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/audit"
)

// auditFlags are the flags of the commands that audit: audit and monitor.
type auditFlags struct {
	state  string
	tiles  string
	logKey string
	policy string
	// timeout bounds each fetch from the source.
	timeout time.Duration
}

func (f *auditFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.state, "state", "", "the audit state folder (default: audit/ORIGIN under the config folder)")
	fs.StringVar(&f.tiles, "tiles", "", "read the log over plain HTTP from this tlog-tiles URL (e.g. http://127.0.0.1:7421/log/) instead of gRPC")
	fs.StringVar(&f.logKey, "log-key", "", "the log's verifier key file (log.pub); default: the key pinned for the log")
	fs.DurationVar(&f.timeout, "fetch-timeout", audit.DefaultFetchTimeout, "give up on a fetch (a request and its answer) from the server or mirror after this long")
	fs.StringVar(&f.policy, "policy", "", "a witness policy (C2SP tlog-policy): a checkpoint without the cosignatures of its quorum is a violation; pinned for the log (default: the policy pinned for the log, if any)")
}

// auditDir returns the default state folder of a log.
func (e *env) auditDir(origin string) (string, error) {
	d, err := e.configDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "audit", url.PathEscape(origin)), nil
}

// openAuditor sets up an auditor: its source, the pinned key and the
// state. The returned function releases them.
func (e *env) openAuditor(ctx context.Context, f auditFlags, progress bool) (*audit.Auditor, func(), error) {
	src, key, origin, release, err := e.auditSource(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	st, err := e.openAuditState(f, origin)
	if err != nil {
		release()
		return nil, nil, err
	}
	closeAll := func() {
		st.Close()
		release()
	}
	wp, err := e.witnessPolicy(origin, f.policy)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	cfg := audit.Config{Source: src, VerifierKey: key, State: st, Policy: wp}
	var bar *progressbar.ProgressBar
	if fd, ok := e.stderr.(*os.File); progress && ok && term.IsTerminal(int(fd.Fd())) {
		cfg.Progress = func(done, total uint64) {
			if bar == nil && total >= 1000 {
				bar = progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(e.stderr),
					progressbar.OptionSetDescription("auditing"), progressbar.OptionShowCount(),
					progressbar.OptionSetItsString("entries"), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
			}
			if bar != nil {
				bar.Set64(int64(done))
			}
		}
	}
	a, err := audit.New(cfg)
	if err != nil {
		closeAll()
		return nil, nil, failedf("%v", err)
	}
	return a, func() {
		if bar != nil {
			bar.Finish()
		}
		closeAll()
	}, nil
}

// auditSource opens where the audit reads the log: a tlog-tiles URL
// (--tiles) or the server. It returns the source, the log's verifier key
// and origin, and a function that releases the source.
func (e *env) auditSource(ctx context.Context, f auditFlags) (audit.Source, string, string, func(), error) {
	if f.tiles == "" {
		c, err := e.dial(ctx, f.logKey)
		if err != nil {
			return nil, "", "", nil, err
		}
		return audit.NewGRPCSource(c.API(), f.timeout), c.VerifierKey(), c.Origin(), func() { c.Close() }, nil
	}
	s, err := audit.NewHTTPSource(f.tiles, nil, audit.WithFetchTimeout(f.timeout))
	if err != nil {
		return nil, "", "", nil, usagef("audit: %v", err)
	}
	raw, err := s.Checkpoint(ctx)
	var se *audit.SourceError
	if errors.As(err, &se) {
		return nil, "", "", nil, failedf("audit: VIOLATION %s: %v", audit.RuleSource, se)
	}
	if err != nil {
		return nil, "", "", nil, usagef("audit: %v", err)
	}
	origin, _, _ := strings.Cut(string(raw), "\n")
	key, err := e.pinnedKey(origin, f.logKey)
	if err != nil {
		return nil, "", "", nil, err
	}
	return s, key, origin, func() {}, nil
}

// openAuditState opens the audit's state folder (--state, or the log's
// default one) and remembers there where the log is read from.
func (e *env) openAuditState(f auditFlags, origin string) (*audit.State, error) {
	dir := f.state
	if dir == "" {
		d, err := e.auditDir(origin)
		if err != nil {
			return nil, err
		}
		dir = d
	}
	st, err := audit.OpenState(dir)
	if err != nil {
		return nil, usagef("%v", err)
	}
	from := auditSource{Tiles: f.tiles}
	if f.tiles == "" {
		from.Server = e.g.server
	}
	if err := rememberSource(dir, from); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// pinnedKey returns the verifier key of origin: from keyFile (which is
// then pinned), or the one pinned in known_logs. Plain HTTP serves no key,
// so one of the two is required.
func (e *env) pinnedKey(origin, keyFile string) (string, error) {
	path, err := e.knownLogs()
	if err != nil {
		return "", err
	}
	known := client.KnownLogs{Path: path}
	pinned, err := known.Lookup(origin)
	if err != nil {
		return "", err
	}
	if keyFile == "" {
		if pinned == "" {
			return "", usagef("no key is pinned for log %q: give its verifier key with --log-key (the file log.pub its operator publishes)", origin)
		}
		return pinned, nil
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", usagef("log key: %v", err)
	}
	key := strings.TrimSpace(string(b))
	v, err := note.NewVerifier(key)
	if err != nil {
		return "", usagef("log key: %v", err)
	}
	if v.Name() != origin {
		return "", &exitError{exitFailed, fmt.Errorf("%w: the given key is for %q, the log is %q", client.ErrKeyChanged, v.Name(), origin)}
	}
	if pinned != "" && pinned != key {
		return "", &exitError{exitFailed, fmt.Errorf("%w: the given key for %q is not the one pinned in %s", client.ErrKeyChanged, origin, path)}
	}
	if pinned == "" {
		if err := known.Pin(origin, key); err != nil {
			return "", err
		}
		fmt.Fprintf(e.stderr, "pinned the key of log %s (%s)\n", origin, path)
	}
	return key, nil
}

func runAudit(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	var af auditFlags
	af.register(fs)
	checkpoint := fs.String("checkpoint", "", "also check that the log still holds the tree of this signed checkpoint (a delivery's checkpoint.txt)")
	verbose := fs.Bool("v", false, "list every change, not only the counts")
	report := fs.String("report", "", "write a JSON report to this `FILE`: the checkpoint, its root, the counts of each letter, violations, warnings, the tool's version")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	e.resolveSource(&af)
	a, release, err := e.openAuditor(ctx, af, true)
	if err != nil {
		return err
	}
	defer release()
	rep, err := a.Run(ctx)
	if err != nil {
		return err
	}
	printReport(e.stdout, a.State(), rep, *verbose)
	if *checkpoint != "" && rep.OK() {
		raw, err := os.ReadFile(*checkpoint)
		if err != nil {
			return usagef("audit: %v", err)
		}
		v, err := a.CheckCheckpoint(ctx, raw)
		if err != nil {
			return err
		}
		if v != nil {
			rep.Violations = append(rep.Violations, *v)
			fmt.Fprintf(e.stdout, "VIOLATION %s\n", v.Error())
		} else {
			fmt.Fprintf(e.stdout, "the log still holds the tree of %s\n", *checkpoint)
		}
	}
	if *report != "" {
		if err := writeAuditReport(*report, a.State(), rep, auditSource{Server: e.g.server, Tiles: af.tiles}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "report written to %s\n", *report)
	}
	if !rep.OK() {
		return failedf("audit: %d violation(s): the log breaks its rules (see above)", len(rep.Violations))
	}
	return nil
}

// printReport prints what an audit found, for people.
func printReport(w io.Writer, st *audit.State, rep *audit.Report, verbose bool) {
	switch {
	case rep.To > rep.From:
		fmt.Fprintf(w, "log %s: verified entries %d to %d (%d new) against the signed checkpoint of size %d\n",
			rep.Origin, rep.From, rep.To-1, rep.To-rep.From, rep.To)
	case rep.Saved:
		fmt.Fprintf(w, "log %s: no new entries; the checkpoint of size %d is still the latest\n", rep.Origin, rep.To)
	}
	for _, lc := range rep.Letters {
		fmt.Fprintf(w, "letter %s: %s\n", lc.LetterID, summary(lc))
		if verbose {
			for _, c := range lc.Changes {
				fmt.Fprintf(w, "  %s\n", describeChange(c))
			}
		}
	}
	if rep.NotChecked > 0 {
		fmt.Fprintf(w, "disclosures not checked: %d public endorsements (the source serves no disclosure bundles)\n", rep.NotChecked)
	}
	if rep.ForeignNotChecked > 0 {
		fmt.Fprintf(w, "foreign marks not checked: %d entries (the source serves no foreign marks: an entry no server of the log admitted counts here if it keeps the rules)\n", rep.ForeignNotChecked)
	}
	if rep.Pending > 0 {
		fmt.Fprintf(w, "%d public endorsements lost their disclosure to a redaction not yet in the log: checked again next time\n", rep.Pending)
	}
	for _, wr := range rep.Warnings {
		fmt.Fprintf(w, "warning: %s\n", wr)
	}
	for _, v := range rep.Violations {
		fmt.Fprintf(w, "VIOLATION %s\n", v.Error())
	}
	if rep.Fork != nil {
		fmt.Fprintf(w, "evidence of the fork (both signed checkpoints): %s\n", rep.Fork.EvidenceFile)
	}
	if rep.Saved {
		fmt.Fprintf(w, "state saved in %s\n", st.Dir())
	} else {
		fmt.Fprintf(w, "state NOT advanced: still at the checkpoint of size %d (%s)\n", rep.From, st.Dir())
	}
}

func summary(lc audit.LetterChanges) string {
	var parts []string
	if lc.Published {
		parts = append(parts, "published")
	}
	added := fmt.Sprintf("%d added", lc.Added)
	var notes []string
	if lc.AddedPrivate > 0 {
		notes = append(notes, fmt.Sprintf("%d private", lc.AddedPrivate))
	}
	if lc.AddedAfterDelivery > 0 {
		notes = append(notes, fmt.Sprintf("%d AFTER DELIVERY", lc.AddedAfterDelivery))
	}
	if len(notes) > 0 {
		added += " (" + strings.Join(notes, ", ") + ")"
	}
	parts = append(parts, added, fmt.Sprintf("%d corrected", lc.Corrected), fmt.Sprintf("%d withdrawn", lc.Withdrawn), fmt.Sprintf("%d redacted", lc.Redacted))
	if lc.Closed {
		parts = append(parts, "closed")
	}
	if lc.Delivered {
		parts = append(parts, "delivered")
	}
	if lc.OrganisersAdded > 0 || lc.OrganisersRevoked > 0 {
		parts = append(parts, fmt.Sprintf("%d organiser keys added, %d revoked", lc.OrganisersAdded, lc.OrganisersRevoked))
	}
	return strings.Join(parts, ", ") + "; now " + countsLine(lc.Counts)
}

func countsLine(c audit.Counts) string {
	s := fmt.Sprintf("%d public, %d private, %d redacted, %d withdrawn, %d superseded", c.Public, c.Private, c.Redacted, c.Withdrawn, c.Superseded)
	if c.Withheld > 0 {
		s += fmt.Sprintf(", %d WITHHELD", c.Withheld)
	}
	if c.NotChecked > 0 {
		s += fmt.Sprintf(", %d not checked", c.NotChecked)
	}
	return s
}

// openState opens an audit state for reading: the folder given, or the
// only one under the config folder, or the one of the log at --server.
func (e *env) openState(ctx context.Context, dir string) (*audit.State, error) {
	if dir == "" {
		root, err := e.configDir()
		if err != nil {
			return nil, err
		}
		matches, _ := filepath.Glob(filepath.Join(root, "audit", "*", audit.HeaderFile))
		switch len(matches) {
		case 0:
			return nil, usagef("no audit state in %s: run \"undersigned audit\" first", filepath.Join(root, "audit"))
		case 1:
			dir = filepath.Dir(matches[0])
		default:
			c, err := e.dial(ctx, "")
			if err != nil {
				return nil, fmt.Errorf("several logs were audited; give --state, or reach the server to choose: %w", err)
			}
			origin := c.Origin()
			c.Close()
			if dir, err = e.auditDir(origin); err != nil {
				return nil, err
			}
		}
	}
	st, err := audit.ReadState(dir)
	if errors.Is(err, audit.ErrNoState) {
		return nil, usagef("%v: run \"undersigned audit\" first", err)
	}
	if err != nil {
		return nil, usagef("%v", err)
	}
	return st, nil
}

// checkpointSize returns the size of a signed checkpoint, unverified.
func checkpointSize(raw []byte) uint64 {
	var cp log.Checkpoint
	if _, err := cp.Unmarshal(raw); err != nil {
		return 0
	}
	return cp.Size
}

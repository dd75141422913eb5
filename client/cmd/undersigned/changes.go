package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/undersigned/undersigned/client/audit"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func runChanges(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("changes", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	from := fs.Uint64("from", 0, "the tree size to start from")
	to := fs.Uint64("to", 0, "the tree size to end at (default: the audited checkpoint's)")
	after := fs.String("after", "", "instead of --from: every change accepted on or after this `DATE` (YYYY-MM-DD, UTC) or time (RFC 3339)")
	stateDir := fs.String("state", "", "the audit state folder (default: the one under the config folder)")
	format := fs.String("format", "text", "text or json")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" {
		return usagef("changes: --letter is required")
	}
	if *format != "text" && *format != "json" {
		return usagef("changes: --format must be text or json")
	}
	fromSet := false
	fs.Visit(func(f *flag.Flag) { fromSet = fromSet || f.Name == "from" })
	if *after != "" && fromSet {
		return usagef("changes: give --from or --after, not both")
	}
	st, err := e.openState(ctx, *stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	if *after != "" {
		t, err := parseDate(*after)
		if err != nil {
			return err
		}
		*from = st.FirstIndexAfter(t)
	}
	end := *to
	if end == 0 {
		end = st.Size()
	}
	cs, err := st.Changes(*letter, *from, end)
	if err != nil {
		return failedf("changes: %v", err)
	}
	if *format == "json" {
		type change struct {
			audit.Change
			Reason string `json:"reason,omitempty"`
		}
		out := struct {
			Letter  string   `json:"letter"`
			From    uint64   `json:"from"`
			To      uint64   `json:"to"`
			Changes []change `json:"changes"`
		}{*letter, *from, end, []change{}}
		for _, c := range cs {
			ch := change{Change: c}
			if c.Reason != pb.Reason_REASON_UNSPECIFIED {
				ch.Reason = reasonName(c.Reason)
			}
			out.Changes = append(out.Changes, ch)
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(e.stdout, "letter %s, entries %d to %d of the audited log (checkpoint of size %d): %d changes\n", *letter, *from, end, st.Size(), len(cs))
	for _, c := range cs {
		fmt.Fprintln(e.stdout, describeChange(c))
	}
	return nil
}

func reasonName(r pb.Reason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "REASON_"))
}

// describeChange puts a change on one line.
func describeChange(c audit.Change) string {
	head := fmt.Sprintf("%6d  %s  %-17s", c.Index, c.AcceptedAt.Format("2006-01-02 15:04Z"), c.Kind)
	name := func(n string) string {
		if n == "" {
			return "(no name)"
		}
		return fmt.Sprintf("%q", n)
	}
	var s string
	switch c.Kind {
	case audit.ChangePublished:
		s = "the letter was published"
	case audit.ChangeAdded:
		switch {
		case c.Private:
			s = "a private endorsement (counted, never named)"
		default:
			s = name(c.Name)
		}
	case audit.ChangeCorrected:
		s = fmt.Sprintf("%s, correcting index %d", name(c.Name), c.Target)
	case audit.ChangeWithdrawn:
		s = fmt.Sprintf("index %d %s (reason: %s; authorised by %s)", c.Target, name(c.Name), reasonName(c.Reason), c.AuthorisedBy)
	case audit.ChangeRedacted:
		s = fmt.Sprintf("the name of index %d (reason: %s; authorised by %s)", c.Target, reasonName(c.Reason), c.AuthorisedBy)
	case audit.ChangeClosed:
		s = "no more endorsements"
	case audit.ChangeDelivered:
		s = fmt.Sprintf("%q", c.Note)
	case audit.ChangeOrganiserAdded:
		s = fmt.Sprintf("organiser key %s may now sign for the letter", c.OrganiserKey)
	case audit.ChangeOrganiserRevoked:
		s = fmt.Sprintf("organiser key %s signs nothing for the letter from here on", c.OrganiserKey)
	}
	switch {
	case c.NoEffect:
		s += fmt.Sprintf(" (NO EFFECT: not a valid change; signed by %s)", c.AuthorisedBy)
	case c.Kind == audit.ChangeOrganiserAdded || c.Kind == audit.ChangeOrganiserRevoked || c.Kind == audit.ChangeClosed || c.Kind == audit.ChangeDelivered:
		s += fmt.Sprintf(" (signed by %s)", c.AuthorisedBy)
	}
	if c.AfterDelivery {
		s += "  [after delivery]"
	}
	return head + "  " + s
}

// parseDate reads a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--after %q: want a date such as 2026-11-29, or a time such as 2026-11-29T18:00:00Z", s)
}

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/undersigned/undersigned/client/audit"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// rosterRow is one public endorsement that counts.
type rosterRow struct {
	Index         uint64 `json:"index"`
	Name          string `json:"name"`
	Affiliation   string `json:"affiliation"`
	Country       string `json:"country"`
	Verification  string `json:"verification"`
	SignerSigned  bool   `json:"signer_signed"`
	AcceptedAt    string `json:"accepted_at"`
	AfterDelivery bool   `json:"after_delivery,omitempty"`
	Salt          string `json:"salt,omitempty"`
}

// rosterData is a roster from the server or from an audit state.
type rosterData struct {
	letter  string
	size    uint64
	counts  countsJSON
	entries []audit.RosterEntry
	// audited is true for a roster from an audit state.
	audited bool
	// withdrawn are the withdrawn endorsements whose names the audit
	// state knows; nil for a roster from the server.
	withdrawn []audit.Match
}

// rows returns the named entries.
func (r *rosterData) rows(withSalt bool) []rosterRow {
	rows := []rosterRow{}
	for _, en := range r.entries {
		d := en.Disclosure
		if en.Visibility != pb.Visibility_VISIBILITY_PUBLIC || d == nil {
			continue
		}
		row := rosterRow{
			Index: en.Index, Name: d.GetName(), Affiliation: d.GetAffiliation(), Country: d.GetCountry(),
			Verification: verificationName(en.Verification), SignerSigned: en.SignerSigned,
			AcceptedAt: en.AcceptedAt.UTC().Format(time.RFC3339), AfterDelivery: en.AfterDelivery,
		}
		if withSalt {
			row.Salt = base64.StdEncoding.EncodeToString(d.GetSalt())
		}
		rows = append(rows, row)
	}
	return rows
}

// serverRoster reads a roster from the server, page by page, at one size.
func (e *env) serverRoster(ctx context.Context, letter string, at uint64) (*rosterData, error) {
	c, err := e.dial(ctx, "")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &rosterData{letter: letter}
	token := ""
	for {
		resp, err := c.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: letter, TreeSize: at, PageSize: 10000, PageToken: token})
		if err != nil {
			return nil, err
		}
		r.counts, r.size = toCountsJSON(resp.GetCounts()), resp.GetTreeSize()
		at = r.size // every page at the same size
		for _, en := range resp.GetEntries() {
			r.entries = append(r.entries, audit.RosterEntry{
				Index: en.GetIndex(), Visibility: en.GetVisibility(), Verification: en.GetVerification(),
				SignerSigned: en.GetSignerSigned(), AcceptedAt: time.Unix(en.GetAcceptedAt(), 0).UTC(),
				Disclosure: en.GetDisclosure(), Redacted: en.GetRedacted(), Supersedes: -1,
			})
		}
		if token = resp.GetNextPageToken(); token == "" {
			return r, nil
		}
	}
}

// stateRoster reads a roster from an audit state.
func stateRoster(st *audit.State, letter string, at uint64) (*rosterData, error) {
	ro, err := st.Roster(letter, at)
	if err != nil {
		return nil, failedf("%v", err)
	}
	c := ro.Counts
	r := &rosterData{letter: letter, size: ro.TreeSize, entries: ro.Entries, audited: true,
		counts: countsJSON{c.Public, c.Private, c.Redacted, c.Withdrawn, c.Superseded, c.Withheld, c.NotChecked}, withdrawn: []audit.Match{}}
	cs, err := st.Changes(letter, 0, ro.TreeSize)
	if err != nil {
		return nil, failedf("%v", err)
	}
	for _, ch := range cs {
		if ch.Kind == audit.ChangeWithdrawn && ch.Name != "" {
			r.withdrawn = append(r.withdrawn, audit.Match{Ledger: ch.Name, Index: uint64(ch.Target)})
		}
	}
	return r, nil
}

// loadRoster reads a roster from the audit state when offline (or a state
// folder is given), and from the server otherwise.
func (e *env) loadRoster(ctx context.Context, letter string, at uint64, offline bool, stateDir string) (*rosterData, error) {
	if !offline && stateDir == "" {
		return e.serverRoster(ctx, letter, at)
	}
	st, err := e.openState(ctx, stateDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return stateRoster(st, letter, at)
}

func runRoster(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("roster", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	at := fs.Uint64("at", 0, "the tree size to take the roster at (default: the latest checkpoint, or the audited one)")
	format := fs.String("format", "csv", "csv or json")
	offline := fs.Bool("offline", false, "read the roster from the audit state (see undersigned audit) instead of the server")
	stateDir := fs.String("state", "", "read the roster from this audit state folder (implies --offline)")
	history := fs.Bool("history", false, "instead of the roster, every record that changed it up to --at, with who authorised each withdrawal and redaction (from the audit state)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" {
		return usagef("roster: --letter is required")
	}
	if *format != "csv" && *format != "json" {
		return usagef("roster: --format must be csv or json")
	}
	if *history {
		return rosterHistory(ctx, e, *letter, *at, *stateDir, *format)
	}
	r, err := e.loadRoster(ctx, *letter, *at, *offline, *stateDir)
	if err != nil {
		return err
	}
	if err := writeRoster(e.stdout, r, *format, false); err != nil {
		return err
	}
	source := "the server"
	if r.audited {
		source = "the audit state"
	}
	fmt.Fprintf(e.stderr, "letter %s at tree size %d (from %s): %s\n", *letter, r.size, source, countsText(r.counts))
	return nil
}

// writeRoster writes the named entries as CSV or JSON.
func writeRoster(w io.Writer, r *rosterData, format string, withSalt bool) error {
	rows := r.rows(withSalt)
	switch format {
	case "csv":
		cw := newCSVWriter(w)
		head := []string{"index", "name", "affiliation", "country", "verification", "signer_signed", "accepted_at"}
		if r.audited {
			head = append(head, "after_delivery")
		}
		if withSalt {
			head = append(head, "salt")
		}
		cw.Write(head)
		for _, row := range rows {
			rec := []string{fmt.Sprint(row.Index), row.Name, row.Affiliation, row.Country, row.Verification, fmt.Sprint(row.SignerSigned), row.AcceptedAt}
			if r.audited {
				rec = append(rec, fmt.Sprint(row.AfterDelivery))
			}
			if withSalt {
				rec = append(rec, row.Salt)
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	default:
		out := struct {
			Letter       string      `json:"letter"`
			TreeSize     uint64      `json:"tree_size"`
			Audited      bool        `json:"audited"`
			Counts       countsJSON  `json:"counts"`
			Endorsements []rosterRow `json:"endorsements"`
		}{r.letter, r.size, r.audited, r.counts, rows}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
}

type countsJSON struct {
	Public     uint64 `json:"public"`
	Private    uint64 `json:"private"`
	Redacted   uint64 `json:"redacted"`
	Withdrawn  uint64 `json:"withdrawn"`
	Superseded uint64 `json:"superseded"`
	Withheld   uint64 `json:"withheld,omitempty"`
	NotChecked uint64 `json:"not_checked,omitempty"`
}

func toCountsJSON(c *pb.Counts) countsJSON {
	return countsJSON{Public: c.GetPublic(), Private: c.GetPrivate(), Redacted: c.GetRedacted(), Withdrawn: c.GetWithdrawn(), Superseded: c.GetSuperseded()}
}

func countsText(c countsJSON) string {
	return countsLine(audit.Counts{Public: c.Public, Private: c.Private, Redacted: c.Redacted, Withdrawn: c.Withdrawn,
		Superseded: c.Superseded, Withheld: c.Withheld, NotChecked: c.NotChecked})
}

func verificationName(v pb.Verification) string {
	s := pb.Verification_name[int32(v)]
	if len(s) > len("VERIFICATION_") {
		s = s[len("VERIFICATION_"):]
	}
	return strings.ToLower(s)
}

// rosterHistory writes every change of a letter's roster up to size at,
// from the audit state, as CSV or JSON.
func rosterHistory(ctx context.Context, e *env, letter string, at uint64, stateDir, format string) error {
	st, err := e.openState(ctx, stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	cs, err := st.Changes(letter, 0, at)
	if err != nil {
		return failedf("roster: %v", err)
	}
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Letter  string         `json:"letter"`
			Changes []audit.Change `json:"changes"`
		}{letter, cs})
	}
	w := newCSVWriter(e.stdout)
	w.Write([]string{"index", "accepted_at", "kind", "target", "name", "reason", "authorised_by", "after_delivery", "organiser_key"})
	for _, c := range cs {
		target, reason := "", ""
		if c.Target >= 0 {
			target = fmt.Sprint(c.Target)
		}
		if c.Reason != pb.Reason_REASON_UNSPECIFIED {
			reason = reasonName(c.Reason)
		}
		w.Write([]string{fmt.Sprint(c.Index), c.AcceptedAt.Format(time.RFC3339), string(c.Kind), target, c.Name, reason, c.AuthorisedBy,
			fmt.Sprint(c.AfterDelivery), c.OrganiserKey})
	}
	w.Flush()
	return w.Error()
}

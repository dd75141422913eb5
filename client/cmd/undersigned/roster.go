package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// rosterRow is one public endorsement that counts.
type rosterRow struct {
	Index        uint64 `json:"index"`
	Name         string `json:"name"`
	Affiliation  string `json:"affiliation"`
	Country      string `json:"country"`
	Verification string `json:"verification"`
	SignerSigned bool   `json:"signer_signed"`
	AcceptedAt   string `json:"accepted_at"`
}

func runRoster(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("roster", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	at := fs.Uint64("at", 0, "the tree size to take the roster at (default: the latest checkpoint)")
	format := fs.String("format", "csv", "csv or json")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" {
		return usagef("roster: --letter is required")
	}
	if *format != "csv" && *format != "json" {
		return usagef("roster: --format must be csv or json")
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	var rows []rosterRow
	var counts *pb.Counts
	var size uint64
	token := ""
	for {
		resp, err := c.API().GetRoster(ctx, &pb.GetRosterRequest{LetterId: *letter, TreeSize: *at, PageSize: 10000, PageToken: token})
		if err != nil {
			return err
		}
		counts, size = resp.GetCounts(), resp.GetTreeSize()
		*at = size // every page at the same size
		for _, r := range resp.GetEntries() {
			d := r.GetDisclosure()
			if r.GetVisibility() != pb.Visibility_VISIBILITY_PUBLIC || d == nil {
				continue
			}
			rows = append(rows, rosterRow{
				Index: r.GetIndex(), Name: d.GetName(), Affiliation: d.GetAffiliation(), Country: d.GetCountry(),
				Verification: verificationName(r.GetVerification()), SignerSigned: r.GetSignerSigned(),
				AcceptedAt: time.Unix(r.GetAcceptedAt(), 0).UTC().Format(time.RFC3339),
			})
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	switch *format {
	case "csv":
		w := csv.NewWriter(e.stdout)
		w.Write([]string{"index", "name", "affiliation", "country", "verification", "signer_signed", "accepted_at"})
		for _, r := range rows {
			w.Write([]string{fmt.Sprint(r.Index), r.Name, r.Affiliation, r.Country, r.Verification, fmt.Sprint(r.SignerSigned), r.AcceptedAt})
		}
		w.Flush()
		if err := w.Error(); err != nil {
			return err
		}
	case "json":
		out := struct {
			Letter       string      `json:"letter"`
			TreeSize     uint64      `json:"tree_size"`
			Counts       countsJSON  `json:"counts"`
			Endorsements []rosterRow `json:"endorsements"`
		}{*letter, size, toCountsJSON(counts), rows}
		if out.Endorsements == nil {
			out.Endorsements = []rosterRow{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stderr, "letter %s at tree size %d: %d public, %d private, %d redacted, %d withdrawn, %d superseded\n",
		*letter, size, counts.GetPublic(), counts.GetPrivate(), counts.GetRedacted(), counts.GetWithdrawn(), counts.GetSuperseded())
	return nil
}

type countsJSON struct {
	Public     uint64 `json:"public"`
	Private    uint64 `json:"private"`
	Redacted   uint64 `json:"redacted"`
	Withdrawn  uint64 `json:"withdrawn"`
	Superseded uint64 `json:"superseded"`
}

func toCountsJSON(c *pb.Counts) countsJSON {
	return countsJSON{c.GetPublic(), c.GetPrivate(), c.GetRedacted(), c.GetWithdrawn(), c.GetSuperseded()}
}

func verificationName(v pb.Verification) string {
	s := pb.Verification_name[int32(v)]
	if len(s) > len("VERIFICATION_") {
		s = s[len("VERIFICATION_"):]
	}
	return strings.ToLower(s)
}

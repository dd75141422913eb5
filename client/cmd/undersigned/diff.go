package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/undersigned/undersigned/client/audit"
)

func runDiff(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	published := fs.String("published", "", "the published list: one name per line, or CSV with a name column")
	at := fs.Uint64("at", 0, "compare with the roster at this tree size (default: the latest, or the audited one)")
	offline := fs.Bool("offline", false, "compare with the roster of the audit state instead of the server's")
	stateDir := fs.String("state", "", "compare with the roster of this audit state folder (implies --offline)")
	format := fs.String("format", "text", "text or json")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" || *published == "" {
		return usagef("diff: --letter and --published are required")
	}
	if *format != "text" && *format != "json" {
		return usagef("diff: --format must be text or json")
	}
	names, err := readPublished(*published)
	if err != nil {
		return usagef("diff: %v", err)
	}
	r, err := e.loadRoster(ctx, *letter, *at, *offline, *stateDir)
	if err != nil {
		return err
	}
	c := audit.CompareNames(names, r.entries)
	if *format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Letter   string `json:"letter"`
			TreeSize uint64 `json:"tree_size"`
			*audit.Comparison
		}{*letter, r.size, c}); err != nil {
			return err
		}
	} else {
		printComparison(e, r, c)
	}
	if !c.Identical() {
		return failedf("diff: the published list and the roster of %s differ", *letter)
	}
	return nil
}

func printComparison(e *env, r *rosterData, c *audit.Comparison) {
	w := e.stdout
	source := "the server's roster"
	if r.audited {
		source = "the audited roster"
	}
	fmt.Fprintf(w, "letter %s: the published list against %s at tree size %d\n", r.letter, source, r.size)
	fmt.Fprintf(w, "\nexact matches: %d\n", len(c.Exact))
	pairs := func(title string, ms []audit.Match) {
		fmt.Fprintf(w, "\n%s: %d\n", title, len(ms))
		for _, m := range ms {
			fmt.Fprintf(w, "  published %q  ~  ledger %q (index %d)\n", m.Published, m.Ledger, m.Index)
		}
	}
	pairs("names that differ only in case, spacing, diacritics or width", c.Folded)
	pairs("probable matches across scripts or spellings (check each by hand)", c.Transliterated)
	fmt.Fprintf(w, "\npublished but not in the ledger: %d\n", len(c.NotInLedger))
	for _, n := range c.NotInLedger {
		fmt.Fprintf(w, "  %q\n", n)
	}
	fmt.Fprintf(w, "\nin the ledger but not published: %d\n", len(c.NotPublished))
	for _, m := range c.NotPublished {
		fmt.Fprintf(w, "  %q (index %d)\n", m.Ledger, m.Index)
	}
	k := r.counts
	if k.Private+k.Redacted+k.Withheld+k.NotChecked > 0 {
		fmt.Fprintf(w, "\nthe ledger also counts %d private and %d redacted endorsements", k.Private, k.Redacted)
		if k.Withheld+k.NotChecked > 0 {
			fmt.Fprintf(w, ", and %d public ones whose name could not be read", k.Withheld+k.NotChecked)
		}
		fmt.Fprintln(w, ", which have no name to compare")
	}
	if c.Identical() {
		fmt.Fprintln(w, "\nevery name matches exactly")
	}
}

// readPublished reads a published list: CSV with a header naming a name
// column, or one name per line.
func readPublished(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	first, _, _ := bytes.Cut(b, []byte("\n"))
	if head, err := csv.NewReader(bytes.NewReader(first)).Read(); err == nil && len(head) >= 1 {
		col := -1
		for i, h := range head {
			if strings.EqualFold(strings.TrimSpace(h), "name") {
				col = i
			}
		}
		if col >= 0 {
			cr := csv.NewReader(bytes.NewReader(b))
			cr.FieldsPerRecord = -1
			recs, err := cr.ReadAll()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			var names []string
			for _, rec := range recs[1:] {
				if col < len(rec) && strings.TrimSpace(rec[col]) != "" {
					names = append(names, rec[col])
				}
			}
			return names, nil
		}
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if n := strings.TrimSpace(sc.Text()); n != "" {
			names = append(names, n)
		}
	}
	return names, sc.Err()
}

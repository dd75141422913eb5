package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/importfile"
)

func runDiff(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	published := fs.String("published", "", "the published list: one name per line (a numbered list too), or CSV with a name column, in any delimiter")
	encoding := fs.String("encoding", "", "the list's encoding if not UTF-8 or UTF-16 with a byte order mark: windows-1251, windows-1252, ...")
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
	names, err := readPublished(*published, *encoding)
	if err != nil {
		return usagef("diff: %v", err)
	}
	r, err := e.loadRoster(ctx, *letter, *at, *offline, *stateDir)
	if err != nil {
		return err
	}
	c := audit.CompareNames(names, r.entries)
	if r.withdrawn != nil {
		c.MarkWithdrawn(r.withdrawn)
	}
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
	pairs("names that differ only by look-alike characters, such as letters of another script (check each by hand)", c.Confusable)
	pairs("probable matches across scripts or spellings (check each by hand)", c.Transliterated)
	fmt.Fprintf(w, "\nambiguous matches, not one to one (decide by hand): %d\n", len(c.Ambiguous))
	for _, a := range c.Ambiguous {
		var led []string
		for _, m := range a.Ledger {
			led = append(led, fmt.Sprintf("%q (index %d)", m.Ledger, m.Index))
		}
		fmt.Fprintf(w, "  published %q  ~  ledger %s [%s]\n", a.Published, strings.Join(led, ", "), a.How)
	}
	fmt.Fprintf(w, "\npublished but not in the ledger: %d\n", len(c.NotInLedger))
	for _, n := range c.NotInLedger {
		fmt.Fprintf(w, "  %q\n", n)
	}
	if r.withdrawn == nil && len(c.NotInLedger) > 0 && r.counts.Withdrawn > 0 {
		fmt.Fprintf(w, "  (%d endorsements were withdrawn: diff --offline, from an audit, says which of these they were)\n", r.counts.Withdrawn)
	}
	fmt.Fprintf(w, "\npublished but withdrawn from the ledger: %d\n", len(c.Withdrawn))
	for _, m := range c.Withdrawn {
		fmt.Fprintf(w, "  published %q  ~  withdrawn %q (index %d)\n", m.Published, m.Ledger, m.Index)
	}
	if k := r.counts.Redacted; k > 0 && len(c.NotInLedger) > 0 {
		fmt.Fprintf(w, "  (%d endorsements were redacted: their names are gone, and a name published but not in the ledger may be one of them)\n", k)
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

// readPublished reads a published list (see parsePublished).
func readPublished(path, encoding string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text, _, err := importfile.Decode(b, encoding)
	if err != nil {
		var ee *importfile.EncodingError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: %w, with --encoding", path, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	names, err := parsePublished([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return names, nil
}

// numbered is the number of a numbered list: "1.", "2)", "3 -", "#4".
var numbered = regexp.MustCompile(`^\s*(#\s*)?[0-9]+\s*[.)\]:-]?\s+`)

// trailing is what follows a name on a line of a list typed up from a PDF:
// ", Programmer", " — Driver", " (Mother of three)".
var trailing = regexp.MustCompile(`(,\s|\s[—–-]\s|\s\().*$`)

// parsePublished parses a published list: CSV with a header naming a name
// column (in any delimiter and any of the header names import knows), or
// one name per line. In a list, a leading number ("1.", "2)") and what
// follows the name after a comma, a dash or a parenthesis (an affiliation)
// are dropped, and a first line that is a heading ("Signatories") is no
// name.
func parsePublished(b []byte) ([]string, error) {
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	text := string(b)
	delim := importfile.DetectDelimiter(text)
	first, _, _ := strings.Cut(text, "\n")
	cr := csv.NewReader(strings.NewReader(first))
	cr.Comma = delim
	if head, err := cr.Read(); err == nil && len(head) >= 1 {
		col := -1
		for i, h := range head {
			if f, ok := importfile.HeaderField(h); ok && f == importfile.FieldName {
				col = i
			}
		}
		if col >= 0 {
			cr := csv.NewReader(strings.NewReader(text))
			cr.Comma = delim
			cr.FieldsPerRecord = -1
			recs, err := cr.ReadAll()
			if err != nil {
				return nil, err
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
	anyNumbered := numbered.MatchString(text) || regexp.MustCompile(`(?m)^\s*[0-9]+[.)]\s`).MatchString(text)
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if anyNumbered {
			// In a numbered list, only the numbered lines are names.
			if !numbered.MatchString(line) {
				continue
			}
			line = numbered.ReplaceAllString(line, "")
			line = strings.TrimSpace(trailing.ReplaceAllString(line, ""))
		}
		if line != "" {
			names = append(names, line)
		}
	}
	return names, sc.Err()
}

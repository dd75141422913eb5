package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"html/template"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/undersigned/undersigned/client/audit"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/webui"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func runDeliver(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("deliver", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	out := fs.String("out", "", "the folder to write the delivery bundle to")
	stateDir := fs.String("state", "", "the audit state folder (default: the one under the config folder)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" || *out == "" {
		return usagef("deliver: --letter and --out are required")
	}
	st, err := e.openState(ctx, *stateDir)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := stateRoster(st, *letter, 0)
	if err != nil {
		return err
	}
	ro, err := st.Roster(*letter, 0)
	if err != nil {
		return failedf("deliver: %v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return usagef("deliver: %v", err)
	}
	var csvBuf, jsonBuf bytes.Buffer
	if err := writeRoster(&csvBuf, r, "csv", true); err != nil {
		return err
	}
	if err := writeRoster(&jsonBuf, r, "json", true); err != nil {
		return err
	}
	files, err := deliveryFiles(st, ro, r)
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(*out, f.name), f.data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "delivery bundle of letter %s at tree size %d in %s: %s\n", *letter, st.Size(), *out, countsText(r.counts))
	if len(st.Violations()) > 0 {
		fmt.Fprintf(e.stderr, "warning: the audit of this log found %d violation(s); see undersigned audit\n", len(st.Violations()))
	}
	return nil
}

// bundleFile is one file of a delivery bundle.
type bundleFile struct {
	name string
	data []byte
}

// deliveryFiles returns the files of a delivery bundle: the letter, its
// roster as CSV, JSON and a printable page, the signed checkpoint, the
// log's key, a README, and the verify page.
func deliveryFiles(st *audit.State, ro *audit.Roster, r *rosterData) ([]bundleFile, error) {
	lt := ro.Letter.Letter
	var csvBuf, jsonBuf bytes.Buffer
	if err := writeRoster(&csvBuf, r, "csv", true); err != nil {
		return nil, err
	}
	if err := writeRoster(&jsonBuf, r, "json", true); err != nil {
		return nil, err
	}
	meta := map[string]any{
		"origin": st.Origin(), "tree_size": st.Size(), "letter_id": lt.GetId(), "letter_index": ro.Letter.Index,
		"title": lt.GetTitle(), "language": lt.GetLanguage(), "text_sha256": hex.EncodeToString(lt.GetTextDigest()),
		"policy": strings.ToLower(strings.TrimPrefix(lt.GetPolicy().String(), "POLICY_")), "revises": lt.GetRevises(),
		"closed_index": ro.Letter.ClosedIndex, "delivered_index": ro.Letter.DeliveredIndex, "delivery_note": ro.Letter.DeliveryNote,
		"counts": r.counts, "audited_at": st.AuditedAt().UTC().Format(time.RFC3339),
	}
	metaJSON, _ := json.MarshalIndent(meta, "", "  ")
	page, err := rosterHTML(st.Origin(), st.Size(), ro.Letter.Index, lt, r)
	if err != nil {
		return nil, err
	}
	files := []bundleFile{
		{"letter.txt", []byte(lt.GetText())},
		{"letter.json", append(metaJSON, '\n')},
		{"roster.csv", csvBuf.Bytes()},
		{"roster.json", jsonBuf.Bytes()},
		{"roster.html", page},
		{"checkpoint.txt", st.Checkpoint()},
		{"log.pub", []byte(st.VerifierKey() + "\n")},
		{"README.txt", []byte(deliveryReadme(st.Origin(), st.Size(), lt, ro.Letter.Index, r))},
	}
	// The verify page, so that the addressee can check receipts with the
	// bundle alone (offline: signature, inclusion and name).
	verifyPage, err := webui.BundleFiles(st.VerifierKey())
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(verifyPage)) {
		files = append(files, bundleFile{name, verifyPage[name]})
	}
	return files, nil
}

var rosterPage = template.Must(template.New("roster").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}"><head><meta charset="utf-8"><title>{{.Title}}: signatories</title>
<style>
body { font-family: serif; margin: 2em; } table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #999; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
.small { font-size: 85%; color: #333; } pre { white-space: pre-wrap; font-family: serif; }
@media print { a { color: black; text-decoration: none; } }
</style></head><body>
<h1>{{.Title}}</h1>
<pre>{{.Text}}</pre>
<h2>Signatories</h2>
<p>{{.Counts.Public}} named, {{.Counts.Private}} who asked not to be named, {{.Counts.Redacted}} whose name was removed for their safety or at their request
({{.Total}} in all). {{.Counts.Withdrawn}} withdrew.</p>
<table><tr><th>#</th><th>Name</th><th>Affiliation</th><th>Country</th></tr>
{{range $i, $r := .Rows}}<tr><td class="small">{{$r.Index}}</td><td>{{$r.Name}}</td><td>{{$r.Affiliation}}</td><td>{{$r.Country}}</td></tr>
{{end}}</table>
<p class="small">Taken from the append-only log {{.Origin}} at its signed checkpoint of size {{.Size}}; the letter is its entry {{.LetterIndex}},
text SHA-256 {{.Digest}}. The first column is each signature's index in the log. README.txt says how to check this list.</p>
</body></html>
`))

func rosterHTML(origin string, size, letterIndex uint64, lt *pb.Letter, r *rosterData) ([]byte, error) {
	lang := lt.GetLanguage()
	if lang == "" {
		lang = "und"
	}
	var b bytes.Buffer
	err := rosterPage.Execute(&b, map[string]any{
		"Lang": lang, "Title": lt.GetTitle(), "Text": lt.GetText(), "Counts": r.counts, "Rows": r.rows(false),
		"Total": r.counts.Public + r.counts.Private + r.counts.Redacted, "Origin": origin, "Size": size,
		"LetterIndex": letterIndex, "Digest": hex.EncodeToString(lt.GetTextDigest()),
	})
	return b.Bytes(), err
}

func deliveryReadme(origin string, size uint64, lt *pb.Letter, letterIndex uint64, r *rosterData) string {
	var b strings.Builder
	fmt.Fprintf(&b, `Delivery bundle: %s

This folder holds an open letter and the list of its signatories, taken from
the public append-only log %q at its signed checkpoint of size %d. Anyone can
check, now or years later, that the list is the one the log holds, and that
nobody removed, added or changed a name since.

  letter.txt      the exact text that was signed (its SHA-256 is in letter.json)
  letter.json     the letter's id, its entry in the log, its status and the counts
  roster.csv      the named signatories, with each one's index in the log and the
                  "salt" that opens the log's commitment to the name
  roster.json     the same, as JSON
  roster.html     a printable page of the letter and its signatories
  checkpoint.txt  the log's signed checkpoint this list is taken at
  log.pub         the log's public key, which signs its checkpoints
  verify.html     a page that checks a signer's receipt (.tlog-proof) in a web
                  browser, offline, against log.pub (verify.be.html and
                  verify.ru.html in Belarusian and Russian; it needs the
                  .js and .css files beside it)

Counts at this checkpoint: %s.
Private signatories are counted but never named; a redacted name was removed
from the public record at the signer's request or for their safety.

How to check this bundle (with the "undersigned" command line):

1. The text: its SHA-256 must be %s
     sha256sum letter.txt

2. The log: audit it with the key in this folder. This downloads and checks
   every entry, and checks that the log still holds the tree of
   checkpoint.txt (a log that rewrote its history cannot pass):
     undersigned audit --log-key log.pub --checkpoint checkpoint.txt --server HOST:PORT
   or, from a plain HTTP copy of the log:
     undersigned audit --log-key log.pub --checkpoint checkpoint.txt --tiles https://HOST/log/

3. The list: compare it with the roster the audit rebuilt at the same size:
     undersigned diff --offline --letter %s --at %d --published roster.csv
   It exits 0 only when every name matches exactly. Then see what changed since:
     undersigned changes --letter %s --from %d

Each line of roster.csv can also be checked by hand: the log's entry at that
index commits to SHA-256("undersigned/v1/commitment\n" || salt || lp(name) ||
lp(affiliation) || lp(country)), where lp is a 4-byte big-endian length.
`, lt.GetTitle(), origin, size, countsText(r.counts), hex.EncodeToString(records.TextDigest(lt.GetText())), lt.GetId(), size, lt.GetId(), size)
	_ = letterIndex
	return b.String()
}

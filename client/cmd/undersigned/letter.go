package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"os"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func runLetter(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("letter: want publish, close, delivered or organiser (see undersigned letter --help)")
	}
	if isHelp(args[0]) {
		fmt.Fprintln(e.stdout, "usage: undersigned letter publish|close|delivered|organiser [flags]")
		fmt.Fprintln(e.stdout)
		for _, c := range letterCommands {
			fmt.Fprintf(e.stdout, "  %s %s\n            %s\n", c.name, c.args, c.help)
		}
		fmt.Fprintln(e.stdout, "\n\"undersigned letter COMMAND --help\" describes each.")
		return errHelpShown
	}
	switch args[0] {
	case "publish":
		return letterPublish(ctx, e, args[1:])
	case "close":
		return letterStatus(ctx, e, "close", pb.Status_STATUS_CLOSED, args[1:])
	case "delivered":
		return letterStatus(ctx, e, "delivered", pb.Status_STATUS_DELIVERED, args[1:])
	case "organiser":
		return runOrganiser(ctx, e, args[1:])
	}
	return usagef("letter: unknown command %q (want publish, close, delivered or organiser; see undersigned letter --help)", args[0])
}

func letterPublish(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("letter publish", flag.ContinueOnError)
	id := fs.String("id", "", "the letter id: 1 to 64 characters from [a-z0-9-]")
	title := fs.String("title", "", "the title")
	textFile := fs.String("text", "", "a file holding the text (UTF-8)")
	policy := fs.String("policy", "curated", "curated (only organisers add endorsements) or open (anyone with a signer key)")
	language := fs.String("language", "", "the text's language, a BCP 47 tag such as en or be-Latn")
	revises := fs.String("revises", "", "the id of a letter whose text this one corrects")
	out := fs.String("receipt", "", "where to write the letter's receipt (default letter-ID.tlog-proof)")
	var organisers listFlag
	fs.Var(&organisers, "organiser", "list a co-organiser's public key `FILE` (written by undersigned letter organiser key) in the letter beside yours (repeatable)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *id == "" || *title == "" || *textFile == "" {
		return usagef("letter publish: --id, --title and --text are required")
	}
	coOrganisers, err := readOrganisers(organisers)
	if err != nil {
		return err
	}
	text, err := os.ReadFile(*textFile)
	if err != nil {
		return usagef("letter publish: %v", err)
	}
	var p pb.Policy
	switch *policy {
	case "curated":
		p = pb.Policy_POLICY_CURATED
	case "open":
		p = pb.Policy_POLICY_OPEN
	default:
		return usagef("letter publish: --policy must be curated or open")
	}
	key, err := e.organiserKey()
	if err != nil {
		return err
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	l := client.NewLetter(c.Origin(), client.LetterDraft{
		ID: *id, Title: *title, Text: string(text), Language: *language, Policy: p, Revises: *revises, OrganiserKeys: coOrganisers,
	}, key)
	r, err := c.PublishLetter(ctx, l, "")
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = "letter-" + *id + ".tlog-proof"
	}
	if err := writeFileAtomic(path, r.Receipt, 0o644); err != nil {
		return err
	}
	note := ""
	if r.Duplicate {
		note = " (already published by you: same receipt)"
	}
	fmt.Fprintf(e.stdout, "published letter %s at index %d%s; receipt: %s\n", *id, r.Verified.Index, note, path)
	if n := len(l.GetOrganiserKeys()); n > 1 {
		fmt.Fprintf(e.stdout, "it lists %d organiser keys: yours (%s) and %d co-organisers'\n", n, records.KeyFingerprint(key.Public().(ed25519.PublicKey)), n-1)
	}
	return nil
}

func letterStatus(ctx context.Context, e *env, verb string, st pb.Status, args []string) error {
	fs := flag.NewFlagSet("letter "+verb, flag.ContinueOnError)
	note := new(string)
	if st == pb.Status_STATUS_DELIVERED {
		note = fs.String("note", "", "where and when it was delivered (required)")
	}
	out := fs.String("receipt", "", "where to write the receipt (default letter-ID-"+verb+".tlog-proof)")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("letter %s: want one letter id", verb)
	}
	if st == pb.Status_STATUS_DELIVERED && *note == "" {
		return usagef("letter delivered: --note is required (where and when)")
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	l, info, err := c.Letter(ctx, pos[0])
	if err != nil {
		return err
	}
	key, err := e.letterOrganiserKey(l, info)
	if err != nil {
		return err
	}
	r, err := c.SetLetterStatus(ctx, pos[0], st, *note, key)
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = "letter-" + pos[0] + "-" + verb + ".tlog-proof"
	}
	if err := writeFileAtomic(path, r.Receipt, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "letter %s: %s at index %d; receipt: %s\n", pos[0], map[pb.Status]string{pb.Status_STATUS_CLOSED: "closed", pb.Status_STATUS_DELIVERED: "delivered"}[st], r.Verified.Index, path)
	return nil
}

// readOrganisers reads the co-organisers' public keys of letter publish
// --organiser.
func readOrganisers(files []string) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	for _, f := range files {
		k, err := client.LoadOrganiserPublicKey(f)
		if err != nil {
			return nil, usagef("letter publish: --organiser: %v", err)
		}
		keys = append(keys, k)
	}
	if len(keys)+1 > records.MaxOrganiserKeys {
		return nil, usagef("letter publish: a letter lists at most %d organiser keys, yours included", records.MaxOrganiserKeys)
	}
	return keys, nil
}

package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// runOrganiser runs "letter organiser": a key of one's own to hand over,
// and the organiser keys of a letter listed, added and revoked.
func runOrganiser(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("letter organiser: want key, list, add or revoke (see undersigned letter --help)")
	}
	switch args[0] {
	case "key":
		return organiserKeyCmd(e, args[1:])
	case "list":
		return organiserList(ctx, e, args[1:])
	case "add":
		return organiserChange(ctx, e, "add", pb.KeyChange_KEY_CHANGE_ADD, args[1:])
	case "revoke":
		return organiserChange(ctx, e, "revoke", pb.KeyChange_KEY_CHANGE_REVOKE, args[1:])
	}
	if isHelp(args[0]) {
		return runLetter(ctx, e, []string{"--help"})
	}
	return usagef("letter organiser: unknown command %q (want key, list, add or revoke; see undersigned letter --help)", args[0])
}

// organiserKeyCmd writes the public key of the user's organiser key,
// creating the key when there is none: what a volunteer gives the
// organisers of a letter, who list it with "letter organiser add".
func organiserKeyCmd(e *env, args []string) error {
	fs := flag.NewFlagSet("letter organiser key", flag.ContinueOnError)
	out := fs.String("out", "", "write the public key to this file (default: print it)")
	pos, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("letter organiser key: unexpected %q", pos[0])
	}
	key, err := e.organiserKey()
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	b, err := client.MarshalOrganiserPublicKey(pub)
	if err != nil {
		return err
	}
	path, err := e.organiserKeyPath()
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := e.stdout.Write(b)
		fmt.Fprintf(e.stderr, "the public key of the organiser key %s (fingerprint %s): give it to an organiser of the letter, who lists it with undersigned letter organiser add --letter ID --key FILE\n",
			path, records.KeyFingerprint(pub))
		return err
	}
	if err := writeFileAtomic(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote the public key of the organiser key %s (fingerprint %s) to %s: give %s to an organiser of the letter, who lists it with undersigned letter organiser add --letter ID --key %s\n",
		path, records.KeyFingerprint(pub), *out, *out, *out)
	return nil
}

// organiserList prints the organiser keys of a letter, valid and revoked.
func organiserList(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("letter organiser list", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" {
		return usagef("letter organiser list: --letter is required")
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	l, info, err := c.Letter(ctx, *letter)
	if err != nil {
		return err
	}
	var mine []byte
	if path, err := e.organiserKeyPath(); err == nil {
		if k, err := client.LoadOrganiserKey(path); err == nil {
			mine = k.Public().(ed25519.PublicKey)
		}
	}
	valid, revoked := validKeys(l, info)
	fmt.Fprintf(e.stdout, "letter %s: %d organiser key(s) valid, %d revoked\n", l.GetId(), len(valid), len(revoked))
	line := func(state string, k []byte) {
		you := ""
		if len(mine) > 0 && string(k) == string(mine) {
			you = "  (yours)"
		}
		fmt.Fprintf(e.stdout, "%-8s %s  %s%s\n", state, records.KeyFingerprint(k), hex.EncodeToString(k), you)
	}
	for _, k := range valid {
		line("valid", k)
	}
	for _, k := range revoked {
		line("revoked", k)
	}
	return nil
}

// organiserChange adds or revokes an organiser key of a letter, signed by
// the user's organiser key, which must be valid for the letter.
func organiserChange(ctx context.Context, e *env, verb string, change pb.KeyChange, args []string) error {
	fs := flag.NewFlagSet("letter organiser "+verb, flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	keyFile := fs.String("key", "", "the organiser's public key `FILE` (written by undersigned letter organiser key)")
	var fingerprint *string
	if change == pb.KeyChange_KEY_CHANGE_REVOKE {
		fingerprint = fs.String("fingerprint", "", "instead of --key: the key's fingerprint, as undersigned letter organiser list shows it")
	}
	out := fs.String("receipt", "", "where to write the change's receipt (default letter-ID-organiser-"+verb+"-FINGERPRINT.tlog-proof)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" {
		return usagef("letter organiser %s: --letter is required", verb)
	}
	if (*keyFile == "") == (fingerprint == nil || *fingerprint == "") {
		if fingerprint != nil {
			return usagef("letter organiser revoke: give exactly one of --key and --fingerprint")
		}
		return usagef("letter organiser add: --key is required (the file undersigned letter organiser key writes)")
	}
	var key ed25519.PublicKey
	if *keyFile != "" {
		k, err := client.LoadOrganiserPublicKey(*keyFile)
		if err != nil {
			return usagef("letter organiser %s: %v", verb, err)
		}
		key = k
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	l, info, err := c.Letter(ctx, *letter)
	if err != nil {
		return err
	}
	valid, revoked := validKeys(l, info)
	if key == nil {
		if key, err = byFingerprint(valid, *fingerprint, l.GetId()); err != nil {
			return err
		}
	}
	if err := checkChange(change, key, valid, revoked, l.GetId()); err != nil {
		return err
	}
	signer, err := e.letterOrganiserKey(l, info)
	if err != nil {
		return err
	}
	if string(signer.Public().(ed25519.PublicKey)) == string(key) {
		return usagef("letter organiser %s: your own key %s cannot %s itself: another organiser of %s must sign it", verb, records.KeyFingerprint(key), verb, l.GetId())
	}
	r, err := c.ChangeOrganiser(ctx, l.GetId(), change, key, signer)
	if err != nil {
		return err
	}
	return reportChange(e, verb, change, l.GetId(), key, r, *out)
}

// reportChange writes an organiser change's receipt (to out, or a name of
// its own) and says what the change did.
func reportChange(e *env, verb string, change pb.KeyChange, letterID string, key []byte, r *client.Result, out string) error {
	fp := records.KeyFingerprint(key)
	path := out
	if path == "" {
		path = "letter-" + letterID + "-organiser-" + verb + "-" + fp + ".tlog-proof"
	}
	if err := writeFileAtomic(path, r.Receipt, 0o644); err != nil {
		return err
	}
	note := ""
	if r.Duplicate {
		note = " (already done by you: same receipt)"
	}
	what := map[pb.KeyChange]string{
		pb.KeyChange_KEY_CHANGE_ADD:    "added organiser key %s to letter %s at index %d%s: it may sign for the letter from now on; receipt: %s\n",
		pb.KeyChange_KEY_CHANGE_REVOKE: "revoked organiser key %s from letter %s at index %d%s: it signs nothing for the letter from now on, and what it signed before stays; receipt: %s\n",
	}[change]
	fmt.Fprintf(e.stdout, what, fp, letterID, r.Verified.Index, note, path)
	return nil
}

// byFingerprint finds the valid key of a letter with a fingerprint.
func byFingerprint(valid [][]byte, fingerprint, letterID string) (ed25519.PublicKey, error) {
	fp := strings.ToLower(strings.TrimSpace(fingerprint))
	for _, k := range valid {
		if records.KeyFingerprint(k) == fp {
			return k, nil
		}
	}
	return nil, usagef("letter organiser revoke: no valid organiser key of letter %s has the fingerprint %q (see undersigned letter organiser list --letter %s)", letterID, fingerprint, letterID)
}

// checkChange says, before anything is sent, why the server would refuse
// a change.
func checkChange(change pb.KeyChange, key []byte, valid, revoked [][]byte, letterID string) error {
	fp := records.KeyFingerprint(key)
	switch {
	case change == pb.KeyChange_KEY_CHANGE_ADD && holdsKey(valid, key):
		return usagef("letter organiser add: the key %s is already an organiser key of letter %s", fp, letterID)
	case change == pb.KeyChange_KEY_CHANGE_ADD && holdsKey(revoked, key):
		return usagef("letter organiser add: the key %s was revoked from letter %s and is never valid for it again: its holder needs a new key (undersigned letter organiser key --organiser-key NEW.key --out NEW.pub)", fp, letterID)
	case change == pb.KeyChange_KEY_CHANGE_ADD && len(valid) >= records.MaxOrganiserKeys:
		return usagef("letter organiser add: letter %s has %d organiser keys, the most it may hold at once: revoke one first", letterID, len(valid))
	case change == pb.KeyChange_KEY_CHANGE_REVOKE && holdsKey(revoked, key):
		return usagef("letter organiser revoke: the key %s is already revoked from letter %s", fp, letterID)
	case change == pb.KeyChange_KEY_CHANGE_REVOKE && !holdsKey(valid, key):
		return usagef("letter organiser revoke: the key %s is not an organiser key of letter %s (see undersigned letter organiser list --letter %s)", fp, letterID, letterID)
	case change == pb.KeyChange_KEY_CHANGE_REVOKE && len(valid) == 1:
		return usagef("letter organiser revoke: the key %s is the last organiser key of letter %s: a letter always keeps one; add another first", fp, letterID)
	}
	return nil
}

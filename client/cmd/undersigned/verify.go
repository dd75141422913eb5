package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func runVerify(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	offline := fs.Bool("offline", false, "verify with the log's key only, without contacting the server")
	logKey := fs.String("log-key", "", "the log's verifier key file (log.pub); default: the key pinned for the receipt's origin")
	requireCounted := fs.Bool("require-counted", false, "fail (exit 1) unless the endorsement still counts (withdrawn fails; offline, its state cannot be known, so this fails too)")
	disclosure := fs.String("disclosure", "", "the name kept apart from the receipt (the `FILE` endorse --disclosure-out wrote): prove it with the receipt")
	policyFile := fs.String("policy", "", "a witness policy (C2SP tlog-policy): fail (exit 1) unless each receipt's checkpoint carries the cosignatures its quorum requires; pinned for the log in known_logs (default: the policy pinned for the log, if any)")
	files, err := parse(e, fs, args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("verify: want at least one receipt file")
	}
	if *disclosure != "" && len(files) != 1 {
		return usagef("verify: --disclosure goes with exactly one receipt")
	}
	var c *client.Client
	if !*offline {
		if c, err = e.dial(ctx, *logKey); err != nil {
			return err
		}
		defer c.Close()
	}
	failed := 0
	for _, f := range files {
		line, err := verifyOne(ctx, e, c, f, verifyOptions{*logKey, *policyFile, *disclosure, *requireCounted})
		if err != nil {
			var ee *exitError
			if !errors.As(err, &ee) && exitCode(err) != exitFailed {
				return fmt.Errorf("%s: %w", f, err)
			}
			failed++
			fmt.Fprintf(e.stdout, "%s: FAILED: %s\n", f, message(err))
			continue
		}
		fmt.Fprintf(e.stdout, "%s: %s\n", f, line)
	}
	if failed > 0 {
		return failedf("%d of %d receipts failed", failed, len(files))
	}
	return nil
}

// verifierFor returns the verifier for a receipt, and its key: from
// --log-key, or the key pinned for the origin named in its checkpoint.
func verifierFor(e *env, b []byte, logKey string) (note.Verifier, string, error) {
	var key string
	if logKey != "" {
		k, err := os.ReadFile(logKey)
		if err != nil {
			return nil, "", usagef("log key: %v", err)
		}
		key = strings.TrimSpace(string(k))
	} else {
		r, err := receipt.Parse(b)
		if err != nil {
			return nil, "", err
		}
		origin, _, _ := strings.Cut(string(r.Checkpoint), "\n")
		path, err := e.knownLogs()
		if err != nil {
			return nil, "", err
		}
		if key, err = (client.KnownLogs{Path: path}).Lookup(origin); err != nil {
			return nil, "", err
		}
		if key == "" {
			return nil, "", usagef("no key is pinned for log %q: give its verifier key with --log-key (the file log.pub its operator publishes)", origin)
		}
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return nil, "", usagef("log key: %v", err)
	}
	return v, key, nil
}

func describe(v *receipt.Verified) string {
	switch k := v.Record.GetKind().(type) {
	case *pb.Record_Letter:
		return fmt.Sprintf("letter %s", k.Letter.GetId())
	case *pb.Record_Endorsement:
		s := fmt.Sprintf("endorsement of %s", k.Endorsement.GetLetterId())
		if v.Disclosure != nil {
			s += fmt.Sprintf(" by %q", v.Disclosure.GetName())
		} else {
			s += " (no disclosure in the receipt)"
		}
		return s
	case *pb.Record_Withdrawal:
		return fmt.Sprintf("withdrawal of %d", k.Withdrawal.GetTargetIndex())
	case *pb.Record_Redaction:
		return fmt.Sprintf("redaction of %d", k.Redaction.GetTargetIndex())
	case *pb.Record_LetterStatus:
		return fmt.Sprintf("status of %s", k.LetterStatus.GetLetterId())
	}
	return "record"
}

// verifyOptions are the flags of verify that apply to each receipt.
type verifyOptions struct {
	logKey, policy, disclosure string
	requireCounted             bool
}

func verifyOne(ctx context.Context, e *env, c *client.Client, path string, o verifyOptions) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("%v", err)
	}
	if o.disclosure != "" {
		if b, err = withDisclosure(b, o.disclosure); err != nil {
			return "", err
		}
	}
	var line, key string
	if c == nil {
		line, key, err = verifyOffline(e, b, o)
	} else {
		line, err = verifyOnline(ctx, c, b, o)
		key = c.VerifierKey()
	}
	if err != nil {
		return "", err
	}
	r, err := receipt.Parse(b)
	if err != nil {
		return "", err
	}
	origin, _, _ := strings.Cut(string(r.Checkpoint), "\n")
	p, err := e.witnessPolicy(origin, o.policy)
	if err != nil {
		return "", err
	}
	witnesses, err := checkWitnesses(p, r.Checkpoint, key)
	if err != nil {
		// Still a valid receipt of the log: say so, and which quorum it
		// misses.
		return "", failedf("%s; but %v", line, err)
	}
	if witnesses != "" {
		line += "; " + witnesses
	}
	if o.requireCounted && c == nil {
		return "", failedf("%s; state unknown offline: cannot confirm it still counts (verify online for that)", line)
	}
	if c == nil {
		line += "; state unknown offline"
	}
	return line, nil
}

// verifyOffline verifies a receipt with the log's key alone; it returns
// what it found and the key.
func verifyOffline(e *env, b []byte, o verifyOptions) (string, string, error) {
	v, key, err := verifierFor(e, b, o.logKey)
	if err != nil {
		return "", "", err
	}
	if err := keyFits(b, v); err != nil {
		return "", "", err
	}
	_, out, err := client.VerifyOffline(b, v)
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("verified offline: %s, index %d, in the checkpoint of size %d", describe(out), out.Index, out.Checkpoint.Size), key, nil
}

// verifyOnline verifies a receipt against the log: consistency with the
// latest checkpoint, and the endorsement's state.
func verifyOnline(ctx context.Context, c *client.Client, b []byte, o verifyOptions) (string, error) {
	st, err := c.Verify(ctx, b)
	if err != nil {
		return "", err
	}
	line := fmt.Sprintf("%s: %s, index %d; the log (size %d) is consistent with the receipt's checkpoint (size %d)",
		st.State, describe(st.Verified), st.Index, st.Latest.Size, st.Checkpoint.Size)
	if st.By != nil {
		line += fmt.Sprintf("; see index %d", *st.By)
	}
	if o.requireCounted && st.State == client.StateWithdrawn {
		return "", failedf("%s", line)
	}
	return line, nil
}

// keyFits says, as a failed verification, when the log key is not the one
// that signed the receipt's checkpoint: another log's key, or another key.
func keyFits(b []byte, v note.Verifier) error {
	r, err := receipt.Parse(b)
	if err != nil {
		return err
	}
	origin, _, _ := strings.Cut(string(r.Checkpoint), "\n")
	if v.Name() != origin {
		return &exitError{exitFailed, fmt.Errorf("the log key given is for log %q, but the receipt is from log %q: give that log's key (its log.pub) with --log-key", v.Name(), origin)}
	}
	if _, err := note.Open(r.Checkpoint, note.VerifierList(v)); err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return &exitError{exitFailed, fmt.Errorf("the receipt's checkpoint is not signed by the log key given for %q: a wrong log.pub, or a receipt that was not issued by this log", origin)}
		}
	}
	return nil
}

// withDisclosure returns the receipt with the disclosure kept apart put
// back, so that it is verified against the endorsement's commitment.
func withDisclosure(b []byte, path string) ([]byte, error) {
	j, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%v", err)
	}
	var d disclosureOf
	if err := json.Unmarshal(j, &d); err != nil || d.Name == "" || len(d.Salt) == 0 {
		return nil, usagef("%s: not a disclosure written by endorse --disclosure-out (want JSON with salt, name, affiliation, country)", path)
	}
	r, err := receipt.Parse(b)
	if err != nil {
		return nil, err
	}
	if r.Extra == nil {
		return nil, failedf("the receipt carries no record")
	}
	if old := r.Extra.GetDisclosure(); old != nil && !proto.Equal(old, d.proto()) {
		return nil, failedf("the receipt carries a disclosure other than %s", path)
	}
	r.Extra.Disclosure = d.proto()
	return r.Marshal()
}

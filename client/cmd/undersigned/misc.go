package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func runKeygen(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "the file to create")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("keygen: --out is required")
	}
	if err := client.GenerateSignerSeed(*out); err != nil {
		return usagef("keygen: %v", err)
	}
	fmt.Fprintf(e.stdout, "created the signer key %s; a separate key is derived from it for each letter, so your endorsements of different letters cannot be linked by key\n", *out)
	return nil
}

func runLog(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("log", flag.ContinueOnError)
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := c.API().GetLogInfo(ctx, &pb.GetLogInfoRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "origin:       %s\nverifier key: %s\nengine:       %s\nsize:         %d\n", info.GetOrigin(), c.VerifierKey(), info.GetEngine(), info.GetSize())
	return nil
}

func parseReason(verb, s string) (pb.Reason, error) {
	allowed := map[string][]string{
		"withdraw": {"signer_request", "not_signed", "duplicate", "organiser_error"},
		"redact":   {"signer_request", "safety", "legal"},
	}[verb]
	if !slices.Contains(allowed, s) {
		return 0, usagef("%s: --reason must be one of %s, not %q", verb, strings.Join(allowed, ", "), s)
	}
	return pb.Reason(pb.Reason_value["REASON_"+strings.ToUpper(s)]), nil
}

func runWithdraw(ctx context.Context, e *env, args []string) error {
	return runAction(ctx, e, "withdraw", args)
}
func runRedact(ctx context.Context, e *env, args []string) error {
	return runAction(ctx, e, "redact", args)
}

// runAction withdraws or redacts, authorised by a receipt (the signer) or,
// with --index, by the organiser key.
func runAction(ctx context.Context, e *env, verb string, args []string) error {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	receiptFile := fs.String("receipt", "", "the endorsement's receipt: authorised by its withdrawal secret (or --key)")
	index := fs.Int64("index", -1, "the endorsement's index: authorised by the organiser key")
	reasons := "signer_request, not_signed, duplicate or organiser_error"
	if verb == "redact" {
		reasons = "signer_request, safety or legal"
	}
	reason := fs.String("reason", "signer_request", "why: "+reasons)
	keyFile := fs.String("key", "", "with --receipt: the signer key, if the receipt holds no withdrawal secret")
	out := fs.String("out", "", "where to write the receipt of the "+verb+" (default "+verb+"-INDEX.tlog-proof)")
	var redact *bool
	if verb == "withdraw" {
		redact = fs.Bool("redact", false, "redact the name too, in the same step: the redaction's receipt goes beside the withdrawal's, with .redact before the extension")
	}
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if (*receiptFile == "") == (*index < 0) {
		return usagef("%s: give exactly one of --receipt and --index", verb)
	}
	r, err := parseReason(verb, *reason)
	if err != nil {
		return err
	}
	c, err := e.dial(ctx, "")
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := e.actionTarget(ctx, c, verb, *receiptFile, *index, *keyFile)
	if err != nil {
		return err
	}
	a.Reason = r
	var res *client.Result
	if verb == "withdraw" {
		res, err = c.Withdraw(ctx, a)
	} else {
		res, err = c.Redact(ctx, a)
	}
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = fmt.Sprintf("%s-%d%s", verb, a.TargetIndex, receipt.Extension)
	}
	if err := writeFileAtomic(path, res.Receipt, 0o644); err != nil {
		return err
	}
	done := map[string]string{"withdraw": "withdrew", "redact": "redacted"}[verb]
	fmt.Fprintf(e.stdout, "%s the endorsement at %d (record at index %d); receipt: %s\n", done, a.TargetIndex, res.Verified.Index, path)
	if redact != nil && *redact {
		return redactToo(ctx, e, c, a, path)
	}
	return nil
}

// actionTarget returns the action on an endorsement without its reason:
// authorised by a receipt (its withdrawal secret, or the signer key in
// keyFile), or, with an index, by the organiser key.
func (e *env) actionTarget(ctx context.Context, c *client.Client, verb, receiptFile string, index int64, keyFile string) (client.Action, error) {
	if receiptFile == "" {
		key, err := e.letterOrganiserKey(nil, nil)
		if err != nil {
			return client.Action{}, err
		}
		leaf, err := c.TargetOf(ctx, uint64(index))
		if err != nil {
			return client.Action{}, err
		}
		return client.Action{TargetIndex: uint64(index), TargetLeafHash: leaf, OrganiserKey: key}, nil
	}
	b, err := os.ReadFile(receiptFile)
	if err != nil {
		return client.Action{}, usagef("%v", err)
	}
	rc, v, err := client.VerifyOffline(b, c.Verifier())
	if err != nil {
		return client.Action{}, err
	}
	var seed []byte
	if keyFile != "" {
		if seed, err = client.LoadSignerSeed(keyFile); err != nil {
			return client.Action{}, usagef("%v", err)
		}
	}
	a, err := client.ActionFromReceipt(c.Origin(), v, rc, seed)
	if err != nil {
		return client.Action{}, usagef("%s: %v", verb, err)
	}
	return a, nil
}

// redactToo redacts the endorsement a withdrew, with the same authority (a
// spent withdrawal secret authorises a redaction), and writes its receipt
// beside the withdrawal's.
func redactToo(ctx context.Context, e *env, c *client.Client, a client.Action, withdrawal string) error {
	switch a.Reason {
	case pb.Reason_REASON_SIGNER_REQUEST, pb.Reason_REASON_SAFETY, pb.Reason_REASON_LEGAL:
	default:
		a.Reason = pb.Reason_REASON_SIGNER_REQUEST
	}
	res, err := c.Redact(ctx, a)
	if err != nil {
		return fmt.Errorf("withdrawn, but not redacted: %w", err)
	}
	ext := filepath.Ext(withdrawal)
	path := strings.TrimSuffix(withdrawal, ext) + ".redact" + ext
	if err := writeFileAtomic(path, res.Receipt, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "redacted the endorsement at %d (record at index %d); receipt: %s\n", a.TargetIndex, res.Verified.Index, path)
	return nil
}

// Command verifyproof verifies C2SP tlog-proof files (undersigned's
// receipts) with torchwood's own verifier, as a third party would: it
// parses the policy with torchwood.ParsePolicy and checks each proof with
// torchwood.VerifyProof, the record hash being the RFC 6962 leaf hash of
// field 1 of the proof's extra data (the record bytes). Nothing of
// undersigned's own verification code is used.
//
//	verifyproof -policy POLICY RECEIPT...
//
// It exits 0 when every receipt verifies, 1 otherwise.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protowire"
)

func main() {
	policyFile := flag.String("policy", "", "a C2SP tlog-policy file naming the log and the witnesses")
	flag.Parse()
	if *policyFile == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: verifyproof -policy POLICY RECEIPT...")
		os.Exit(2)
	}
	text, err := os.ReadFile(*policyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifyproof:", err)
		os.Exit(2)
	}
	policy, err := torchwood.ParsePolicy(text)
	if err != nil {
		fmt.Fprintln(os.Stderr, "verifyproof: policy:", err)
		os.Exit(2)
	}
	failed := false
	for _, path := range flag.Args() {
		if err := verify(policy, path); err != nil {
			fmt.Printf("%s: FAILED: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: verified by torchwood.VerifyProof with the policy\n", path)
	}
	if failed {
		os.Exit(1)
	}
}

func verify(policy torchwood.Policy, path string) error {
	proof, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	extra, err := torchwood.ProofExtraData(proof)
	if err != nil {
		return err
	}
	record, err := field1(extra)
	if err != nil {
		return fmt.Errorf("extra data: %w", err)
	}
	return torchwood.VerifyProof(policy, tlog.RecordHash(record), proof)
}

// field1 returns the bytes of field 1 of a protobuf message.
func field1(b []byte) ([]byte, error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			return v, nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return nil, errors.New("no field 1 (the record)")
}

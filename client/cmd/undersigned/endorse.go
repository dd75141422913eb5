package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/undersigned/undersigned/client"
	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// parseVerification reads a verification method.
func parseVerification(s string) (pb.Verification, error) {
	v, ok := pb.Verification_value["VERIFICATION_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, usagef("--verification must be none, email, phone, in_person, document or signer_key")
	}
	return pb.Verification(v), nil
}

func runEndorse(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("endorse", flag.ContinueOnError)
	letter := fs.String("letter", "", "the letter id")
	name := fs.String("name", "", "the signer's name, exactly as it should appear")
	affiliation := fs.String("affiliation", "", "the signer's affiliation")
	country := fs.String("country", "", "the signer's country")
	private := fs.Bool("private", false, "count the endorsement but never name the signer")
	keyFile := fs.String("key", "", "sign as the signer with this signer key (undersigned keygen)")
	verification := fs.String("verification", "", "how the signer was verified: none, email, phone, in_person, document, signer_key (default none, or signer_key with --key)")
	supersedes := fs.Int64("supersedes", -1, "the index of an earlier endorsement this one corrects")
	out := fs.String("receipt", "", "where to write the receipt (default LETTER-INDEX.tlog-proof)")
	disclosureOut := fs.String("disclosure-out", "", "write the name to this file instead of into the receipt, for signers who must not carry their name around")
	readd := fs.Bool("readd-after-redaction", false, "add a signer whom a redaction removed from this letter, at their request (organisers only)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *letter == "" || *name == "" {
		return usagef("endorse: --letter and --name are required")
	}
	s := client.Signer{Fields: records.Fields{Name: *name, Affiliation: *affiliation, Country: *country}}
	if *private {
		s.Visibility = pb.Visibility_VISIBILITY_PRIVATE
	}
	if *verification != "" {
		v, err := parseVerification(*verification)
		if err != nil {
			return err
		}
		s.Verification = v
	}
	if *supersedes >= 0 {
		u := uint64(*supersedes)
		s.Supersedes = &u
	}
	s.Fields = records.CanonicalFields(s.Fields)
	if err := records.CheckFields("disclosure", s.Fields); err != nil {
		return failedf("%v", err)
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
	if err := e.signWith(&s, c.Origin(), l, info, *keyFile); err != nil {
		return err
	}
	en := client.NewEndorsement(c.Origin(), l, s)
	en.ReaddAfterRedaction = *readd
	r, err := c.Endorse(ctx, en, "")
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = fmt.Sprintf("%s-%d.tlog-proof", *letter, r.Verified.Index)
	}
	if err := writeReceipt(path, *disclosureOut, r.Receipt); err != nil {
		return err
	}
	dup := ""
	if r.Duplicate {
		dup = " (a duplicate: this is the receipt of the first endorsement)"
	}
	fmt.Fprintf(e.stdout, "endorsed letter %s at index %d%s; receipt: %s\n", *letter, r.Verified.Index, dup, path)
	fmt.Fprintln(e.stderr, "keep the receipt safe: it proves the signature, and anyone holding it can withdraw it")
	return nil
}

// writeReceipt writes a receipt to path; with disclosureOut, its
// disclosure goes to that file instead, as JSON (see verify --disclosure).
func writeReceipt(path, disclosureOut string, data []byte) error {
	if disclosureOut != "" {
		rc, err := receipt.Parse(data)
		if err != nil {
			return err
		}
		d := rc.Extra.GetDisclosure()
		rc.Extra.Disclosure = nil
		if data, err = rc.Marshal(); err != nil {
			return err
		}
		j, _ := json.MarshalIndent(disclosureJSON(d), "", "  ")
		if err := writeFileAtomic(disclosureOut, append(j, '\n'), 0o600); err != nil {
			return err
		}
	}
	return writeFileAtomic(path, data, 0o600)
}

// disclosureOf is a disclosure as JSON, the same shape as the server's
// disclosure bundles.
type disclosureOf struct {
	Salt        []byte `json:"salt"`
	Name        string `json:"name"`
	Affiliation string `json:"affiliation"`
	Country     string `json:"country"`
}

func (d disclosureOf) proto() *pb.Disclosure {
	return &pb.Disclosure{Salt: d.Salt, Name: d.Name, Affiliation: d.Affiliation, Country: d.Country}
}

func disclosureJSON(d *pb.Disclosure) disclosureOf {
	return disclosureOf{Salt: d.GetSalt(), Name: d.GetName(), Affiliation: d.GetAffiliation(), Country: d.GetCountry()}
}

// signWith sets the keys an endorsement of l is signed with: the signer
// key derived from keyFile, if given, and the organiser key where the
// letter needs it (curated, or no signer key).
func (e *env) signWith(s *client.Signer, origin string, l *pb.Letter, info *pb.LetterInfo, keyFile string) error {
	if keyFile != "" {
		seed, err := client.LoadSignerSeed(keyFile)
		if err != nil {
			return usagef("%v", err)
		}
		s.SignerKey = client.SignerKey(seed, origin, l.GetId())
	}
	if l.GetPolicy() == pb.Policy_POLICY_CURATED || s.SignerKey == nil {
		key, err := e.letterOrganiserKey(l, info)
		if err != nil && l.GetPolicy() == pb.Policy_POLICY_OPEN {
			return usagef("letter %s is open: sign it with a signer key of your own (undersigned keygen --out my.key, then endorse --key my.key ...)", l.GetId())
		}
		if err != nil {
			return err
		}
		s.OrganiserKey = key
	}
	return nil
}

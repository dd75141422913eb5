package receipt_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// This example plays the log: it publishes a letter and one endorsement in
// a tree of two leaves, signs a checkpoint and writes the signer's
// receipt. The signer then verifies it offline with the log's verifier key.
func ExampleReceipt_Verify() {
	const origin = "example.org/undersigned/example"
	seed := sha256.Sum256([]byte("example keys"))
	organiser := ed25519.NewKeyFromSeed(seed[:])

	// The letter, signed by its organiser.
	text := "We, the undersigned, ask the council to keep the square open.\n"
	letter := &pb.Letter{
		Id: "keep-the-square-open", Title: "Keep the square open", Text: text,
		TextDigest: records.TextDigest(text), Policy: pb.Policy_POLICY_CURATED,
		OrganiserKeys: [][]byte{organiser.Public().(ed25519.PublicKey)},
	}
	records.SignLetter(organiser, origin, letter)

	// The endorsement commits to the signer's name with a salt, and is
	// locked with a withdrawal secret that only the receipt holds.
	fields := records.CanonicalFields(records.Fields{Name: "Ada Lovelace", Country: "GB"})
	salt := bytes.Repeat([]byte{1}, records.SaltSize)
	secret := bytes.Repeat([]byte{2}, records.SecretSize)
	endorsement := &pb.Endorsement{
		LetterId: letter.Id, LetterDigest: letter.TextDigest,
		Commitment:     records.Commitment(salt, fields),
		WithdrawalLock: records.WithdrawalLock(secret),
		Verification:   pb.Verification_VERIFICATION_EMAIL,
		Visibility:     pb.Visibility_VISIBILITY_PUBLIC,
	}
	records.SignEndorsementAsOrganiser(organiser, origin, endorsement)

	// The log: two leaves, an RFC 6962 tree and a signed checkpoint.
	leaf0, _ := records.Encode(&pb.Record{Version: records.Version, Kind: &pb.Record_Letter{Letter: letter}})
	leaf1, _ := records.Encode(&pb.Record{Version: records.Version, Kind: &pb.Record_Endorsement{Endorsement: endorsement}})
	h0, h1 := tlog.RecordHash(leaf0), tlog.RecordHash(leaf1)
	root := tlog.NodeHash(h0, h1)
	skey, vkey, _ := note.GenerateKey(bytes.NewReader(seed[:]), origin)
	signer, _ := note.NewSigner(skey)
	checkpoint, _ := note.Sign(&note.Note{
		Text: fmt.Sprintf("%s\n%d\n%s\n", origin, 2, base64.StdEncoding.EncodeToString(root[:])),
	}, signer)

	// The signer's receipt for leaf 1: its proof is the hash of leaf 0.
	file, _ := (&receipt.Receipt{
		Index:      1,
		Proof:      [][]byte{h0[:]},
		Checkpoint: checkpoint,
		Extra: &pb.ReceiptExtra{
			Record:           leaf1,
			Disclosure:       &pb.Disclosure{Salt: salt, Name: fields.Name, Affiliation: fields.Affiliation, Country: fields.Country},
			WithdrawalSecret: secret,
		},
	}).Marshal()

	// Later, offline, with only the log's verifier key.
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := receipt.Parse(file)
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := r.Verify(verifier)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("record %d of a tree of %d in %s\n", v.Index, v.Checkpoint.Size, v.Checkpoint.Origin)
	fmt.Printf("endorses %s: %s (%s)\n", v.Record.GetEndorsement().GetLetterId(), v.Disclosure.GetName(), v.Disclosure.GetCountry())
	fmt.Println("can withdraw:", v.HasSecret)

	// Someone edits the name in the receipt: the commitment no longer
	// opens.
	r.Extra = proto.CloneOf(r.Extra)
	r.Extra.Disclosure.Name = "Ada Byron"
	_, err = r.Verify(verifier)
	fmt.Println("edited name verifies:", err == nil, errors.Is(err, receipt.ErrVerification))

	// Output:
	// record 1 of a tree of 2 in example.org/undersigned/example
	// endorses keep-the-square-open: Ada Lovelace (GB)
	// can withdraw: true
	// edited name verifies: false true
}

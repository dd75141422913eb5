package receipt_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// This file builds real receipts without the server: real records, signed
// with real keys, appended to an in-memory RFC 6962 tree (hashed with
// golang.org/x/mod/sumdb/tlog, so that package receipt, which verifies
// with transparency-dev/merkle, is checked against another
// implementation), and checkpoints signed as C2SP signed notes.

const testOrigin = "example.org/undersigned/receipt-test"

// fixedReader returns the bytes of SHA-256(label) and then fails: enough
// for one deterministic Ed25519 key.
func fixedReader(label string) *bytes.Reader {
	h := sha256.Sum256([]byte("receipt test key: " + label))
	return bytes.NewReader(h[:])
}

func testKey(label string) ed25519.PrivateKey {
	h := sha256.Sum256([]byte("receipt test key: " + label))
	return ed25519.NewKeyFromSeed(h[:])
}

// testLog is an in-memory log: its leaves, what the holder of each leaf's
// receipt knows (disclosure and withdrawal secret), and the stored hashes
// of package tlog.
type testLog struct {
	origin      string
	signer      note.Signer
	verifier    note.Verifier
	verifierKey string

	leaves  [][]byte
	extras  []*pb.ReceiptExtra
	hashes  []tlog.Hash
	letters map[string]*pb.Letter
}

func newTestLog(t testing.TB, origin, keyLabel string) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(fixedReader(keyLabel), origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, signer: s, verifier: v, verifierKey: vkey, letters: map[string]*pb.Letter{}}
}

func (l *testLog) reader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("no stored hash %d", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// appendLeaf appends raw leaf bytes and what its receipt carries beside
// them, and returns its index.
func (l *testLog) appendLeaf(t testing.TB, leaf []byte, d *pb.Disclosure, secret []byte) uint64 {
	t.Helper()
	n := int64(len(l.leaves))
	hs, err := tlog.StoredHashes(n, leaf, l.reader())
	if err != nil {
		t.Fatal(err)
	}
	l.hashes = append(l.hashes, hs...)
	l.leaves = append(l.leaves, leaf)
	l.extras = append(l.extras, &pb.ReceiptExtra{Record: leaf, Disclosure: d, WithdrawalSecret: secret})
	return uint64(n)
}

// appendRecord encodes r as the server would and appends it.
func (l *testLog) appendRecord(t testing.TB, r *pb.Record, d *pb.Disclosure, secret []byte) uint64 {
	t.Helper()
	r.Version = records.Version
	r.AcceptedAt = 1_767_225_600 + 60*int64(len(l.leaves))
	b, err := records.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.Decode(b); err != nil {
		t.Fatalf("the test built a record that does not decode: %v", err)
	}
	return l.appendLeaf(t, b, d, secret)
}

func (l *testLog) root(t testing.TB, size uint64) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(int64(size), l.reader())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// signedCheckpoint signs the checkpoint body "origin\nsize\nroot\n" with
// signer.
func signedCheckpoint(t testing.TB, origin string, size uint64, root []byte, signer note.Signer) []byte {
	t.Helper()
	body := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(root))
	b, err := note.Sign(&note.Note{Text: body}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *testLog) checkpoint(t testing.TB, size uint64) []byte {
	t.Helper()
	root := l.root(t, size)
	return signedCheckpoint(t, l.origin, size, root[:], l.signer)
}

func (l *testLog) proof(t testing.TB, index, size uint64) [][]byte {
	t.Helper()
	p, err := tlog.ProveRecord(int64(size), int64(index), l.reader())
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i][:])
	}
	return out
}

// receiptText writes a tlog-proof file by hand, from the C2SP spec, so that
// the tests do not build receipts with the code they test.
func receiptText(extra []byte, index uint64, proof [][]byte, checkpoint []byte) []byte {
	var b strings.Builder
	b.WriteString("c2sp.org/tlog-proof@v1\n")
	if extra != nil {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(extra) + "\n")
	}
	b.WriteString("index " + strconv.FormatUint(index, 10) + "\n")
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(checkpoint)
	return []byte(b.String())
}

func marshalExtra(t testing.TB, e *pb.ReceiptExtra) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// receipt returns the receipt of the leaf at index in the tree of size.
func (l *testLog) receipt(t testing.TB, index, size uint64) []byte {
	t.Helper()
	return receiptText(marshalExtra(t, l.extras[index]), index, l.proof(t, index, size), l.checkpoint(t, size))
}

// The keys of the sample log.
var (
	organiser1 = testKey("organiser 1")
	organiser2 = testKey("organiser 2")
	signerSeed = sha256.Sum256([]byte("receipt test: signer key file"))
)

func pub(k ed25519.PrivateKey) []byte { return k.Public().(ed25519.PublicKey) }

// sampleLetter returns the curated letter of client/testdata, signed by
// organiser1.
func sampleLetter(t testing.TB, origin string) *pb.Letter {
	t.Helper()
	text, err := os.ReadFile("../testdata/sample-letter.txt")
	if err != nil {
		t.Fatal(err)
	}
	l := &pb.Letter{
		Id:            "sample-letter",
		Title:         "An open letter on the right to sign without fear",
		Text:          records.CanonicalText(string(text)),
		Language:      "en",
		Policy:        pb.Policy_POLICY_CURATED,
		OrganiserKeys: [][]byte{pub(organiser1), pub(organiser2)},
	}
	l.TextDigest = records.TextDigest(l.Text)
	records.SignLetter(organiser1, origin, l)
	if err := records.CheckLetter(origin, l); err != nil {
		t.Fatal(err)
	}
	return l
}

// endorse builds an endorsement of l with a fresh salt and secret derived
// from label, signed by the organiser and, if signerKey is not nil, by the
// signer; it returns the record, the disclosure and the secret.
func endorse(t testing.TB, origin string, l *pb.Letter, label string, f records.Fields, vis pb.Visibility, signerKey ed25519.PrivateKey, supersedes *uint64) (*pb.Record, *pb.Disclosure, []byte) {
	t.Helper()
	salt := sha256.Sum256([]byte("salt " + label))
	secret := sha256.Sum256([]byte("secret " + label))
	f = records.CanonicalFields(f)
	if err := records.CheckFields("disclosure", f); err != nil {
		t.Fatal(err)
	}
	d := &pb.Disclosure{Salt: salt[:], Name: f.Name, Affiliation: f.Affiliation, Country: f.Country}
	e := &pb.Endorsement{
		LetterId:       l.Id,
		LetterDigest:   l.TextDigest,
		Commitment:     records.Commitment(d.Salt, f),
		WithdrawalLock: records.WithdrawalLock(secret[:]),
		Verification:   pb.Verification_VERIFICATION_EMAIL,
		Visibility:     vis,
		Supersedes:     supersedes,
	}
	if signerKey != nil {
		e.Verification = pb.Verification_VERIFICATION_SIGNER_KEY
		records.SignEndorsementAsSigner(signerKey, origin, e)
	}
	records.SignEndorsementAsOrganiser(organiser1, origin, e)
	if err := records.CheckEndorsement(origin, l, e); err != nil {
		t.Fatal(err)
	}
	if err := records.CheckDisclosure(e, d); err != nil {
		t.Fatal(err)
	}
	return &pb.Record{Kind: &pb.Record_Endorsement{Endorsement: e}}, d, secret[:]
}

// Indexes of the sample log.
const (
	idxLetter     = 0
	idxAda        = 1 // public, disclosure and secret
	idxCyrillic   = 2 // public, signer-signed
	idxPrivate    = 3 // private, Łacinka; the disclosure lives only in the receipt
	idxNoAff      = 4 // empty affiliation and country
	idxWithdrawal = 5
	idxRedaction  = 6
	idxStatus     = 7
	idxSupersedes = 8
	sampleSize    = 9
)

// sampleLog returns a log of nine records of every kind.
func sampleLog(t testing.TB) *testLog {
	t.Helper()
	lg := newTestLog(t, testOrigin, "log key")
	letter := sampleLetter(t, testOrigin)
	lg.letters[letter.Id] = letter
	lg.appendRecord(t, &pb.Record{Kind: &pb.Record_Letter{Letter: letter}}, nil, nil)

	signer := records.SignerKeyForLetter(signerSeed[:], testOrigin, letter.Id)
	add := func(label string, f records.Fields, vis pb.Visibility, k ed25519.PrivateKey, sup *uint64) uint64 {
		r, d, s := endorse(t, testOrigin, letter, label, f, vis, k, sup)
		return lg.appendRecord(t, r, d, s)
	}
	add("ada", records.Fields{Name: "Ada Lovelace", Affiliation: "Analytical Engine Society", Country: "GB"}, pb.Visibility_VISIBILITY_PUBLIC, nil, nil)
	add("cyrillic", records.Fields{Name: "Таццяна Уладзіміраўна", Affiliation: "Грамадскае аб'яднанне «Разам»", Country: "Беларусь"}, pb.Visibility_VISIBILITY_PUBLIC, signer, nil)
	add("private", records.Fields{Name: "Taciana Z\u030cadzimiraśna", Affiliation: "Łacinka spelling", Country: "BY"}, pb.Visibility_VISIBILITY_PRIVATE, nil, nil)
	add("no affiliation", records.Fields{Name: "  Sasha  "}, pb.Visibility_VISIBILITY_PUBLIC, nil, nil)

	target := func(i uint64) []byte {
		h := tlog.RecordHash(lg.leaves[i])
		return h[:]
	}
	w := &pb.Withdrawal{TargetIndex: idxAda, TargetLeafHash: target(idxAda), Reason: pb.Reason_REASON_SIGNER_REQUEST,
		Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: lg.extras[idxAda].WithdrawalSecret}}}
	if _, err := records.CheckWithdrawal(testOrigin, endorsementAt(t, lg, idxAda), target(idxAda), w); err != nil {
		t.Fatal(err)
	}
	lg.appendRecord(t, &pb.Record{Kind: &pb.Record_Withdrawal{Withdrawal: w}}, nil, nil)

	r := &pb.Redaction{TargetIndex: idxCyrillic, TargetLeafHash: target(idxCyrillic), Reason: pb.Reason_REASON_SAFETY}
	r.Authorisation = &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignRedaction(organiser2, testOrigin, r)}}
	if _, err := records.CheckRedaction(testOrigin, endorsementAt(t, lg, idxCyrillic), target(idxCyrillic), r); err != nil {
		t.Fatal(err)
	}
	lg.appendRecord(t, &pb.Record{Kind: &pb.Record_Redaction{Redaction: r}}, nil, nil)

	s := &pb.LetterStatus{LetterId: letter.Id, Status: pb.Status_STATUS_DELIVERED, Note: "Handed to the council secretary"}
	records.SignStatus(organiser1, testOrigin, s)
	if err := records.CheckStatus(testOrigin, letter, s); err != nil {
		t.Fatal(err)
	}
	lg.appendRecord(t, &pb.Record{Kind: &pb.Record_LetterStatus{LetterStatus: s}}, nil, nil)

	sup := uint64(idxNoAff)
	add("supersedes", records.Fields{Name: "Sasha K.", Country: "LT"}, pb.Visibility_VISIBILITY_PUBLIC, nil, &sup)
	if len(lg.leaves) != sampleSize {
		t.Fatalf("sample log has %d leaves, want %d", len(lg.leaves), sampleSize)
	}
	return lg
}

func endorsementAt(t testing.TB, lg *testLog, i uint64) *pb.Endorsement {
	t.Helper()
	r, err := records.Decode(lg.leaves[i])
	if err != nil {
		t.Fatal(err)
	}
	return r.GetEndorsement()
}

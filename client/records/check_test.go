package records_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

const testOrigin = "example.org/undersigned/records-test"

// testKey returns a fixed Ed25519 key named by label.
func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("records test key: " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubKey(k ed25519.PrivateKey) []byte { return k.Public().(ed25519.PublicKey) }

var (
	organiser1  = testKey("organiser 1")
	organiser2  = testKey("organiser 2")
	outsider    = testKey("outsider, listed in no letter")
	signer      = testKey("signer")
	otherSigner = testKey("another signer")
)

// testLetter returns a letter with policy, listing organiser1 and
// organiser2, signed by organiser1.
func testLetter(id string, policy pb.Policy) *pb.Letter {
	l := &pb.Letter{
		Id:            id,
		Title:         "Keep the square open",
		Text:          "We, the undersigned,\nask the council to keep the square open.\n",
		Language:      "en",
		Policy:        policy,
		OrganiserKeys: [][]byte{pubKey(organiser1), pubKey(organiser2)},
	}
	l.TextDigest = records.TextDigest(l.Text)
	records.SignLetter(organiser1, testOrigin, l)
	return l
}

var (
	curated    = testLetter("curated-letter", pb.Policy_POLICY_CURATED)
	openLetter = testLetter("open-letter", pb.Policy_POLICY_OPEN)
)

func testDisclosure() *pb.Disclosure {
	return &pb.Disclosure{
		Salt:        bytes.Repeat([]byte{0x5a}, records.SaltSize),
		Name:        "Hanna Łapińska",
		Affiliation: "Teacher",
		Country:     "BY",
	}
}

var testSecret = bytes.Repeat([]byte{0xc3}, records.SecretSize)

// testEndorsement returns an endorsement of l committing to
// testDisclosure and locked with testSecret, signed by the signer and the
// organiser keys that are not nil.
func testEndorsement(l *pb.Letter, signerKey, organiserKey ed25519.PrivateKey) *pb.Endorsement {
	d := testDisclosure()
	e := &pb.Endorsement{
		LetterId:       l.GetId(),
		LetterDigest:   l.GetTextDigest(),
		Commitment:     records.Commitment(d.Salt, records.FieldsOf(d)),
		WithdrawalLock: records.WithdrawalLock(testSecret),
		Verification:   pb.Verification_VERIFICATION_EMAIL,
		Visibility:     pb.Visibility_VISIBILITY_PUBLIC,
	}
	if signerKey != nil {
		e.Verification = pb.Verification_VERIFICATION_SIGNER_KEY
	}
	sign(e, signerKey, organiserKey)
	return e
}

// sign replaces the signatures of e by those of the keys that are not nil.
func sign(e *pb.Endorsement, signerKey, organiserKey ed25519.PrivateKey) {
	e.Signer, e.Organiser = nil, nil
	if signerKey != nil {
		records.SignEndorsementAsSigner(signerKey, testOrigin, e)
	}
	if organiserKey != nil {
		records.SignEndorsementAsOrganiser(organiserKey, testOrigin, e)
	}
}

func leafHashOf(t *testing.T, r *pb.Record) []byte {
	t.Helper()
	b, err := records.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(append([]byte{0}, b...))
	return h[:]
}

// checkResult checks the outcome of a Check function: nil when field is
// empty, else a FieldError for field.
func checkResult(t *testing.T, err error, field string, badSignature bool) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		return
	}
	wantFieldError(t, err, field, "", badSignature)
}

func TestCheckLetter(t *testing.T) {
	organiser3 := testKey("organiser 3")
	tests := []struct {
		name   string
		edit   func(l *pb.Letter) // applied to a valid curated letter
		resign ed25519.PrivateKey // signs the letter after edit, if not nil
		field  string             // "" when valid
		badSig bool
	}{
		{name: "valid curated", edit: func(*pb.Letter) {}},
		{name: "valid open", edit: func(l *pb.Letter) { l.Policy = pb.Policy_POLICY_OPEN }, resign: organiser1},
		{name: "valid signed by the second key", edit: func(*pb.Letter) {}, resign: organiser2},
		{name: "valid without language", edit: func(l *pb.Letter) { l.Language = "" }, resign: organiser1},
		{name: "valid revision", edit: func(l *pb.Letter) { l.Id, l.Revises = "curated-letter-2", "curated-letter" },
			resign: organiser1},
		// Whether the revised letter exists, and lists the key, is a rule
		// of the log's state: client/rules tests it.
		{name: "revision signed by a key the revised letter does not list", edit: func(l *pb.Letter) {
			l.Id, l.Revises = "curated-letter-2", "curated-letter"
			l.OrganiserKeys = append(l.OrganiserKeys, pubKey(organiser3))
		}, resign: organiser3},

		{name: "nil", edit: nil, field: "letter"},
		{name: "id not a slug", edit: func(l *pb.Letter) { l.Id = "Curated_Letter" }, resign: organiser1, field: "letter.id"},
		{name: "empty title", edit: func(l *pb.Letter) { l.Title = "" }, resign: organiser1, field: "letter.title"},
		{name: "title with a control character", edit: func(l *pb.Letter) { l.Title = "a\tb" }, resign: organiser1, field: "letter.title"},
		{name: "title too long", edit: func(l *pb.Letter) { l.Title = strings.Repeat("т", records.MaxTitleLength+1) }, resign: organiser1, field: "letter.title"},
		{name: "text not canonical", edit: func(l *pb.Letter) {
			l.Text = "a\r\nb\n"
			l.TextDigest = records.TextDigest(l.Text)
		}, resign: organiser1, field: "letter.text"},
		{name: "text too large", edit: func(l *pb.Letter) {
			l.Text = strings.Repeat("a", records.MaxTextBytes+1)
			l.TextDigest = records.TextDigest(l.Text)
		}, resign: organiser1, field: "letter.text"},
		{name: "wrong digest", edit: func(l *pb.Letter) { l.TextDigest = records.TextDigest("another text\n") }, resign: organiser1, field: "letter.text_digest"},
		{name: "digest of the wrong size", edit: func(l *pb.Letter) { l.TextDigest = l.TextDigest[:31] }, resign: organiser1, field: "letter.text_digest"},
		{name: "text changed after signing", edit: func(l *pb.Letter) {
			l.Text = "We ask for something else.\n"
			l.TextDigest = records.TextDigest(l.Text)
		}, field: "letter.organiser", badSig: true},
		{name: "language with a control character", edit: func(l *pb.Letter) { l.Language = "e\nn" }, resign: organiser1, field: "letter.language"},
		{name: "no policy", edit: func(l *pb.Letter) { l.Policy = pb.Policy_POLICY_UNSPECIFIED }, resign: organiser1, field: "letter.policy"},
		{name: "unknown policy", edit: func(l *pb.Letter) { l.Policy = 3 }, resign: organiser1, field: "letter.policy"},
		{name: "no organiser keys", edit: func(l *pb.Letter) { l.OrganiserKeys = nil }, resign: organiser1, field: "letter.organiser_keys"},
		{name: "too many organiser keys", edit: func(l *pb.Letter) {
			for i := len(l.OrganiserKeys); i <= records.MaxOrganiserKeys; i++ {
				l.OrganiserKeys = append(l.OrganiserKeys, pubKey(testKey("extra "+strconv.Itoa(i))))
			}
		}, resign: organiser1, field: "letter.organiser_keys"},
		{name: "organiser key of the wrong size", edit: func(l *pb.Letter) { l.OrganiserKeys[1] = l.OrganiserKeys[1][:31] }, resign: organiser1, field: "letter.organiser_keys[1]"},
		{name: "repeated organiser key", edit: func(l *pb.Letter) { l.OrganiserKeys[1] = pubKey(organiser1) }, resign: organiser1, field: "letter.organiser_keys[1]"},
		{name: "signed by a key not listed", edit: func(*pb.Letter) {}, resign: outsider, field: "letter.organiser.public_key"},
		{name: "no signature", edit: func(l *pb.Letter) { l.Organiser = nil }, field: "letter.organiser"},
		{name: "bad signature", edit: func(l *pb.Letter) { l.Organiser.Signature[0] ^= 1 }, field: "letter.organiser", badSig: true},
		{name: "signature of the wrong size", edit: func(l *pb.Letter) { l.Organiser.Signature = l.Organiser.Signature[:63] }, field: "letter.organiser.signature"},
		{name: "public key of the wrong size", edit: func(l *pb.Letter) { l.Organiser.PublicKey = l.Organiser.PublicKey[:31] }, field: "letter.organiser.public_key"},
		{name: "key list changed after signing", edit: func(l *pb.Letter) { l.OrganiserKeys = append(l.OrganiserKeys, pubKey(outsider)) }, field: "letter.organiser", badSig: true},
		{name: "signed for another log", edit: func(l *pb.Letter) { records.SignLetter(organiser1, "example.org/another-log", l) }, field: "letter.organiser", badSig: true},
		{name: "signed with the status tag", edit: func(l *pb.Letter) {
			l.Organiser = records.Sign(organiser1, records.TagStatus, records.LetterStatement(testOrigin, l))
		}, field: "letter.organiser", badSig: true},

		{name: "revises itself", edit: func(l *pb.Letter) { l.Revises = l.Id }, resign: organiser1, field: "letter.revises"},
		{name: "revises a bad id", edit: func(l *pb.Letter) { l.Id, l.Revises = "curated-letter-2", "Curated Letter" }, resign: organiser1, field: "letter.revises"},
		{name: "revises changed after signing", edit: func(l *pb.Letter) { l.Id, l.Revises = "curated-letter-2", "curated-letter" },
			field: "letter.organiser", badSig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l *pb.Letter
			if tt.edit != nil {
				l = proto.CloneOf(curated)
				tt.edit(l)
				if tt.resign != nil {
					records.SignLetter(tt.resign, testOrigin, l)
				}
			}
			checkResult(t, records.CheckLetter(testOrigin, l), tt.field, tt.badSig)
		})
	}
	// The cases edited clones: the shared letters are still valid.
	for _, l := range []*pb.Letter{curated, openLetter} {
		if err := records.CheckLetter(testOrigin, l); err != nil {
			t.Errorf("CheckLetter(%s) = %v", l.Id, err)
		}
	}
}

func TestCheckEndorsement(t *testing.T) {
	tests := []struct {
		name   string
		letter *pb.Letter
		build  func() *pb.Endorsement
		field  string // "" when valid
		badSig bool
	}{
		{name: "curated, organiser only", letter: curated, build: func() *pb.Endorsement { return testEndorsement(curated, nil, organiser1) }},
		{name: "curated, second organiser", letter: curated, build: func() *pb.Endorsement { return testEndorsement(curated, nil, organiser2) }},
		{name: "curated, signer and organiser", letter: curated, build: func() *pb.Endorsement { return testEndorsement(curated, signer, organiser1) }},
		{name: "open, signer only", letter: openLetter, build: func() *pb.Endorsement { return testEndorsement(openLetter, signer, nil) }},
		{name: "open, signer and organiser", letter: openLetter, build: func() *pb.Endorsement { return testEndorsement(openLetter, signer, organiser2) }},
		{name: "private, supersedes 0", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Visibility = pb.Visibility_VISIBILITY_PRIVATE
			e.Supersedes = proto.Uint64(0)
			sign(e, nil, organiser1)
			return e
		}},
		{name: "every verification but signer_key without a signer", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Verification = pb.Verification_VERIFICATION_DOCUMENT
			sign(e, nil, organiser1)
			return e
		}},

		{name: "nil", letter: curated, build: func() *pb.Endorsement { return nil }, field: "endorsement"},
		{name: "letter id not a slug", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.LetterId = "Curated"
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.letter_id"},
		{name: "another letter's id", letter: curated, build: func() *pb.Endorsement { return testEndorsement(openLetter, nil, organiser1) }, field: "endorsement.letter_id"},
		{name: "wrong digest", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.LetterDigest = records.TextDigest("another text\n")
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.letter_digest"},
		{name: "digest of the wrong size", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.LetterDigest = append(e.LetterDigest, 0)
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.letter_digest"},
		{name: "commitment of the wrong size", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Commitment = e.Commitment[:16]
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.commitment"},
		{name: "lock of the wrong size", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.WithdrawalLock = nil
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.withdrawal_lock"},
		{name: "no verification", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Verification = pb.Verification_VERIFICATION_UNSPECIFIED
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.verification"},
		{name: "unknown verification", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Verification = 7
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.verification"},
		{name: "no visibility", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Visibility = pb.Visibility_VISIBILITY_UNSPECIFIED
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.visibility"},
		{name: "supersedes the largest index", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Supersedes = proto.Uint64(^uint64(0))
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.supersedes"},
		{name: "organiser missing in a curated letter", letter: curated, build: func() *pb.Endorsement { return testEndorsement(curated, signer, nil) }, field: "endorsement.organiser"},
		{name: "signer missing in an open letter", letter: openLetter, build: func() *pb.Endorsement { return testEndorsement(openLetter, nil, organiser1) }, field: "endorsement.signer"},
		{name: "signer_key verification without a signer", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Verification = pb.Verification_VERIFICATION_SIGNER_KEY
			sign(e, nil, organiser1)
			return e
		}, field: "endorsement.signer"},
		// Which organiser keys are valid is a rule of the log's state:
		// client/rules refuses a key the letter does not list.
		{name: "organiser key not listed in the letter: the rules' to refuse", letter: curated, build: func() *pb.Endorsement { return testEndorsement(curated, nil, outsider) }},
		{name: "bad organiser signature", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Organiser.Signature[10] ^= 0x80
			return e
		}, field: "endorsement.organiser", badSig: true},
		{name: "bad signer signature", letter: openLetter, build: func() *pb.Endorsement {
			e := testEndorsement(openLetter, signer, nil)
			e.Signer.Signature[10] ^= 0x80
			return e
		}, field: "endorsement.signer", badSig: true},
		{name: "signer signature by another key", letter: openLetter, build: func() *pb.Endorsement {
			e := testEndorsement(openLetter, signer, nil)
			e.Signer.PublicKey = pubKey(otherSigner)
			return e
		}, field: "endorsement.signer", badSig: true},
		{name: "bad signer signature beside a good organiser one", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, signer, organiser1)
			e.Signer.Signature[0] ^= 1
			return e
		}, field: "endorsement.signer", badSig: true},
		{name: "commitment changed after signing", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Commitment = records.Commitment(make([]byte, 32), records.Fields{Name: "Someone Else"})
			return e
		}, field: "endorsement.organiser", badSig: true},
		{name: "supersedes added after signing", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Supersedes = proto.Uint64(3)
			return e
		}, field: "endorsement.organiser", badSig: true},
		{name: "visibility changed after signing", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, organiser1)
			e.Visibility = pb.Visibility_VISIBILITY_PRIVATE
			return e
		}, field: "endorsement.organiser", badSig: true},
		{name: "organiser signed with the signer tag", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, nil)
			e.Organiser = records.Sign(organiser1, records.TagSigner, records.EndorsementStatement(testOrigin, e))
			return e
		}, field: "endorsement.organiser", badSig: true},
		{name: "signer signed with the organiser tag", letter: openLetter, build: func() *pb.Endorsement {
			e := testEndorsement(openLetter, nil, nil)
			e.Verification = pb.Verification_VERIFICATION_SIGNER_KEY
			e.Signer = records.Sign(signer, records.TagOrganiser, records.EndorsementStatement(testOrigin, e))
			return e
		}, field: "endorsement.signer", badSig: true},
		{name: "signed for another log", letter: curated, build: func() *pb.Endorsement {
			e := testEndorsement(curated, nil, nil)
			records.SignEndorsementAsOrganiser(organiser1, "example.org/another-log", e)
			return e
		}, field: "endorsement.organiser", badSig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResult(t, records.CheckEndorsement(testOrigin, tt.letter, tt.build()), tt.field, tt.badSig)
		})
	}
}

func TestCheckDisclosure(t *testing.T) {
	e := testEndorsement(curated, nil, organiser1)
	tests := []struct {
		name  string
		edit  func(d *pb.Disclosure)
		field string
		rule  string
	}{
		{name: "valid", edit: func(*pb.Disclosure) {}},
		{name: "nil", edit: nil, field: "disclosure", rule: "is required"},
		{name: "salt of 31 bytes", edit: func(d *pb.Disclosure) { d.Salt = d.Salt[:31] }, field: "disclosure.salt", rule: "32 bytes"},
		{name: "salt of 33 bytes", edit: func(d *pb.Disclosure) { d.Salt = append(d.Salt, 0) }, field: "disclosure.salt", rule: "32 bytes"},
		{name: "no salt", edit: func(d *pb.Disclosure) { d.Salt = nil }, field: "disclosure.salt", rule: "32 bytes"},
		{name: "another salt", edit: func(d *pb.Disclosure) { d.Salt[31] ^= 1 }, field: "disclosure", rule: "commitment"},
		{name: "another name", edit: func(d *pb.Disclosure) { d.Name = "Hanna Lapinska" }, field: "disclosure", rule: "commitment"},
		{name: "another affiliation", edit: func(d *pb.Disclosure) { d.Affiliation = "" }, field: "disclosure", rule: "commitment"},
		{name: "another country", edit: func(d *pb.Disclosure) { d.Country = "PL" }, field: "disclosure", rule: "commitment"},
		{name: "name moved into affiliation", edit: func(d *pb.Disclosure) { d.Name, d.Affiliation = "Hanna", "ŁapińskaTeacher" }, field: "disclosure", rule: "commitment"},
		{name: "empty name", edit: func(d *pb.Disclosure) { d.Name = "" }, field: "disclosure.name", rule: "must not be empty"},
		{name: "untrimmed name", edit: func(d *pb.Disclosure) { d.Name = " " + d.Name }, field: "disclosure.name", rule: "white space"},
		{name: "NFD name", edit: func(d *pb.Disclosure) { d.Name = "Hanna L\u0301apin\u0301ska" }, field: "disclosure.name", rule: "NFC"},
		{name: "format character in affiliation", edit: func(d *pb.Disclosure) { d.Affiliation = "Tea\u200Bcher" }, field: "disclosure.affiliation", rule: "(Cf)"},
		{name: "country too long", edit: func(d *pb.Disclosure) { d.Country = strings.Repeat("B", 101) }, field: "disclosure.country", rule: "100 code points"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d *pb.Disclosure
			if tt.edit != nil {
				d = testDisclosure()
				tt.edit(d)
			}
			err := records.CheckDisclosure(e, d)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("CheckDisclosure = %v", err)
				}
				return
			}
			wantFieldError(t, err, tt.field, tt.rule, false)
		})
	}

	// A disclosure whose fields break the rules is refused even when it
	// opens the commitment: the client must canonicalise before committing.
	d := testDisclosure()
	d.Name = " Hanna "
	bad := proto.CloneOf(e)
	bad.Commitment = records.Commitment(d.Salt, records.FieldsOf(d))
	wantFieldError(t, records.CheckDisclosure(bad, d), "disclosure.name", "white space", false)
}

// actionCase is one case of TestCheckWithdrawal and TestCheckRedaction.
type actionCase struct {
	name      string
	target    *pb.Endorsement
	leafHash  []byte // the target's real leaf hash; the action claims claimed
	claimed   []byte
	reason    *pb.Reason                                         // nil: signer_request
	authorise func(statement func() []byte, a *pb.Authorisation) // fills in a
	field     string
	badSig    bool
	want      records.Authority
}

func actionCases(t *testing.T, kind string, tag, otherTag string, allowed, refused []pb.Reason) []actionCase {
	organiserEndorsement := testEndorsement(curated, nil, organiser1)
	signerEndorsement := testEndorsement(curated, signer, organiser1)
	leafOf := func(e *pb.Endorsement) []byte {
		return leafHashOf(t, &pb.Record{Version: records.Version, Kind: &pb.Record_Endorsement{Endorsement: e}})
	}
	organiserLeaf, signerLeaf := leafOf(organiserEndorsement), leafOf(signerEndorsement)
	bySecret := func(secret []byte) func(func() []byte, *pb.Authorisation) {
		return func(_ func() []byte, a *pb.Authorisation) {
			a.By = &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: secret}
		}
	}
	bySigner := func(k ed25519.PrivateKey, tag string) func(func() []byte, *pb.Authorisation) {
		return func(s func() []byte, a *pb.Authorisation) {
			a.By = &pb.Authorisation_Signer{Signer: records.Sign(k, tag, s())}
		}
	}
	byOrganiser := func(k ed25519.PrivateKey, tag string) func(func() []byte, *pb.Authorisation) {
		return func(s func() []byte, a *pb.Authorisation) {
			a.By = &pb.Authorisation_Organiser{Organiser: records.Sign(k, tag, s())}
		}
	}
	otherSecret := bytes.Repeat([]byte{0x3c}, records.SecretSize)
	wrongLeaf := bytes.Repeat([]byte{0xee}, 32)
	cases := []actionCase{
		{name: "by the withdrawal secret", target: organiserEndorsement, leafHash: organiserLeaf, authorise: bySecret(testSecret), want: records.AuthoritySecret},
		{name: "by the first organiser", target: organiserEndorsement, leafHash: organiserLeaf, authorise: byOrganiser(organiser1, tag), want: records.AuthorityOrganiser},
		{name: "by the second organiser", target: organiserEndorsement, leafHash: organiserLeaf, authorise: byOrganiser(organiser2, tag), want: records.AuthorityOrganiser},
		{name: "by the signer", target: signerEndorsement, leafHash: signerLeaf, authorise: bySigner(signer, tag), want: records.AuthoritySigner},

		{name: "wrong target leaf hash", target: organiserEndorsement, leafHash: organiserLeaf, claimed: wrongLeaf, authorise: bySecret(testSecret), field: kind + ".target_leaf_hash"},
		{name: "leaf hash of another endorsement", target: organiserEndorsement, leafHash: organiserLeaf, claimed: signerLeaf, authorise: bySecret(testSecret), field: kind + ".target_leaf_hash"},
		{name: "target leaf hash of the wrong size", target: organiserEndorsement, leafHash: organiserLeaf, claimed: organiserLeaf[:31], authorise: bySecret(testSecret), field: kind + ".target_leaf_hash"},
		{name: "secret that does not open the lock", target: organiserEndorsement, leafHash: organiserLeaf, authorise: bySecret(otherSecret), field: kind + ".authorisation.withdrawal_secret"},
		{name: "the lock itself given as the secret", target: organiserEndorsement, leafHash: organiserLeaf, authorise: bySecret(records.WithdrawalLock(testSecret)), field: kind + ".authorisation.withdrawal_secret"},
		{name: "secret of the wrong size", target: organiserEndorsement, leafHash: organiserLeaf, authorise: bySecret(testSecret[:16]), field: kind + ".authorisation.withdrawal_secret"},
		{name: "signer authorisation by a different key", target: signerEndorsement, leafHash: signerLeaf, authorise: bySigner(otherSigner, tag), field: kind + ".authorisation.signer.public_key"},
		{name: "signer authorisation by an organiser key", target: signerEndorsement, leafHash: signerLeaf, authorise: bySigner(organiser1, tag), field: kind + ".authorisation.signer.public_key"},
		{name: "signer authorisation of an endorsement with no signer", target: organiserEndorsement, leafHash: organiserLeaf, authorise: bySigner(signer, tag), field: kind + ".authorisation.signer"},
		{name: "bad signer signature", target: signerEndorsement, leafHash: signerLeaf, authorise: func(s func() []byte, a *pb.Authorisation) {
			sig := records.Sign(signer, tag, s())
			sig.Signature[5] ^= 4
			a.By = &pb.Authorisation_Signer{Signer: sig}
		}, field: kind + ".authorisation.signer", badSig: true},
		{name: "signer signature with the other action's tag", target: signerEndorsement, leafHash: signerLeaf, authorise: bySigner(signer, otherTag), field: kind + ".authorisation.signer", badSig: true},
		// Which organiser keys are valid is a rule of the log's state:
		// client/rules refuses a key the letter does not list.
		{name: "organiser not listed in the letter: the rules' to refuse", target: organiserEndorsement, leafHash: organiserLeaf, authorise: byOrganiser(outsider, tag), want: records.AuthorityOrganiser},
		{name: "bad organiser signature", target: organiserEndorsement, leafHash: organiserLeaf, authorise: func(s func() []byte, a *pb.Authorisation) {
			sig := records.Sign(organiser2, tag, s())
			sig.Signature[63] ^= 1
			a.By = &pb.Authorisation_Organiser{Organiser: sig}
		}, field: kind + ".authorisation.organiser", badSig: true},
		{name: "organiser signature with the other action's tag", target: organiserEndorsement, leafHash: organiserLeaf, authorise: byOrganiser(organiser1, otherTag), field: kind + ".authorisation.organiser", badSig: true},
		{name: "organiser signature with the organiser endorsement tag", target: organiserEndorsement, leafHash: organiserLeaf, authorise: byOrganiser(organiser1, records.TagOrganiser), field: kind + ".authorisation.organiser", badSig: true},
		{name: "organiser signature for another log", target: organiserEndorsement, leafHash: organiserLeaf, authorise: func(s func() []byte, a *pb.Authorisation) {
			st := s()
			// The statement begins with lp(origin); sign the same
			// statement with another origin.
			other := append(lp([]byte("example.org/another-log")), st[4+len(testOrigin):]...)
			a.By = &pb.Authorisation_Organiser{Organiser: records.Sign(organiser1, tag, other)}
		}, field: kind + ".authorisation.organiser", badSig: true},
		{name: "no authorisation", target: organiserEndorsement, leafHash: organiserLeaf, authorise: func(func() []byte, *pb.Authorisation) {}, field: kind + ".authorisation"},
	}
	for _, r := range allowed {
		cases = append(cases, actionCase{name: "reason " + r.String(), target: organiserEndorsement, leafHash: organiserLeaf,
			reason: &r, authorise: byOrganiser(organiser1, tag), want: records.AuthorityOrganiser})
	}
	for _, r := range refused {
		cases = append(cases, actionCase{name: "refused reason " + r.String(), target: organiserEndorsement, leafHash: organiserLeaf,
			reason: &r, authorise: byOrganiser(organiser1, tag), field: kind + ".reason"})
	}
	return cases
}

func TestCheckWithdrawal(t *testing.T) {
	cases := actionCases(t, "withdrawal", records.TagWithdraw, records.TagRedact,
		[]pb.Reason{pb.Reason_REASON_SIGNER_REQUEST, pb.Reason_REASON_NOT_SIGNED, pb.Reason_REASON_DUPLICATE, pb.Reason_REASON_ORGANISER_ERROR},
		[]pb.Reason{pb.Reason_REASON_UNSPECIFIED, pb.Reason_REASON_SAFETY, pb.Reason_REASON_LEGAL, 99})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			w := &pb.Withdrawal{TargetIndex: 7, TargetLeafHash: tt.leafHash, Reason: pb.Reason_REASON_SIGNER_REQUEST, Authorisation: &pb.Authorisation{}}
			if tt.claimed != nil {
				w.TargetLeafHash = tt.claimed
			}
			if tt.reason != nil {
				w.Reason = *tt.reason
			}
			tt.authorise(func() []byte { return records.WithdrawalStatement(testOrigin, w) }, w.Authorisation)
			by, err := records.CheckWithdrawal(testOrigin, tt.target, tt.leafHash, w)
			checkResult(t, err, tt.field, tt.badSig)
			if by != tt.want {
				t.Errorf("authority = %v, want %v", by, tt.want)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		by, err := records.CheckWithdrawal(testOrigin, testEndorsement(curated, nil, organiser1), nil, nil)
		checkResult(t, err, "withdrawal", false)
		if by != records.AuthorityNone {
			t.Errorf("authority = %v", by)
		}
	})
	t.Run("index changed after signing", func(t *testing.T) {
		e := testEndorsement(curated, nil, organiser1)
		leaf := leafHashOf(t, &pb.Record{Version: records.Version, Kind: &pb.Record_Endorsement{Endorsement: e}})
		w := &pb.Withdrawal{TargetIndex: 7, TargetLeafHash: leaf, Reason: pb.Reason_REASON_NOT_SIGNED}
		w.Authorisation = &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignWithdrawal(organiser1, testOrigin, w)}}
		if _, err := records.CheckWithdrawal(testOrigin, e, leaf, w); err != nil {
			t.Fatalf("before the change: %v", err)
		}
		w.TargetIndex = 8
		_, err := records.CheckWithdrawal(testOrigin, e, leaf, w)
		checkResult(t, err, "withdrawal.authorisation.organiser", true)
	})
}

func TestCheckRedaction(t *testing.T) {
	cases := actionCases(t, "redaction", records.TagRedact, records.TagWithdraw,
		[]pb.Reason{pb.Reason_REASON_SIGNER_REQUEST, pb.Reason_REASON_SAFETY, pb.Reason_REASON_LEGAL},
		[]pb.Reason{pb.Reason_REASON_UNSPECIFIED, pb.Reason_REASON_NOT_SIGNED, pb.Reason_REASON_DUPLICATE, pb.Reason_REASON_ORGANISER_ERROR, 99})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r := &pb.Redaction{TargetIndex: 7, TargetLeafHash: tt.leafHash, Reason: pb.Reason_REASON_SIGNER_REQUEST, Authorisation: &pb.Authorisation{}}
			if tt.claimed != nil {
				r.TargetLeafHash = tt.claimed
			}
			if tt.reason != nil {
				r.Reason = *tt.reason
			}
			tt.authorise(func() []byte { return records.RedactionStatement(testOrigin, r) }, r.Authorisation)
			by, err := records.CheckRedaction(testOrigin, tt.target, tt.leafHash, r)
			checkResult(t, err, tt.field, tt.badSig)
			if by != tt.want {
				t.Errorf("authority = %v, want %v", by, tt.want)
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		_, err := records.CheckRedaction(testOrigin, testEndorsement(curated, nil, organiser1), nil, nil)
		checkResult(t, err, "redaction", false)
	})
	t.Run("a withdrawal signature does not authorise a redaction", func(t *testing.T) {
		e := testEndorsement(curated, signer, organiser1)
		leaf := leafHashOf(t, &pb.Record{Version: records.Version, Kind: &pb.Record_Endorsement{Endorsement: e}})
		w := &pb.Withdrawal{TargetIndex: 3, TargetLeafHash: leaf, Reason: pb.Reason_REASON_SIGNER_REQUEST}
		sig := records.SignWithdrawal(signer, testOrigin, w)
		r := &pb.Redaction{TargetIndex: 3, TargetLeafHash: leaf, Reason: pb.Reason_REASON_SIGNER_REQUEST,
			Authorisation: &pb.Authorisation{By: &pb.Authorisation_Signer{Signer: sig}}}
		_, err := records.CheckRedaction(testOrigin, e, leaf, r)
		checkResult(t, err, "redaction.authorisation.signer", true)
	})
}

func TestAuthorityString(t *testing.T) {
	for a, want := range map[records.Authority]string{
		records.AuthorityNone: "none", records.AuthoritySigner: "signer",
		records.AuthoritySecret: "withdrawal secret", records.AuthorityOrganiser: "organiser",
	} {
		if got := a.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", a, got, want)
		}
	}
}

func TestCheckStatus(t *testing.T) {
	valid := func(status pb.Status, note string, key ed25519.PrivateKey) *pb.LetterStatus {
		s := &pb.LetterStatus{LetterId: curated.GetId(), Status: status, Note: note}
		records.SignStatus(key, testOrigin, s)
		return s
	}
	tests := []struct {
		name   string
		build  func() *pb.LetterStatus
		field  string
		badSig bool
	}{
		{name: "closed", build: func() *pb.LetterStatus { return valid(pb.Status_STATUS_CLOSED, "", organiser1) }},
		{name: "delivered with a note", build: func() *pb.LetterStatus {
			return valid(pb.Status_STATUS_DELIVERED, "Перададзена ў канцылярыю, 12 мая", organiser2)
		}},
		{name: "nil", build: func() *pb.LetterStatus { return nil }, field: "status"},
		{name: "letter id not a slug", build: func() *pb.LetterStatus {
			s := valid(pb.Status_STATUS_CLOSED, "", organiser1)
			s.LetterId = "Curated"
			records.SignStatus(organiser1, testOrigin, s)
			return s
		}, field: "status.letter_id"},
		{name: "another letter", build: func() *pb.LetterStatus {
			s := valid(pb.Status_STATUS_CLOSED, "", organiser1)
			s.LetterId = openLetter.GetId()
			records.SignStatus(organiser1, testOrigin, s)
			return s
		}, field: "status.letter_id"},
		{name: "no status", build: func() *pb.LetterStatus { return valid(pb.Status_STATUS_UNSPECIFIED, "", organiser1) }, field: "status.status"},
		{name: "unknown status", build: func() *pb.LetterStatus { return valid(3, "", organiser1) }, field: "status.status"},
		{name: "note with a control character", build: func() *pb.LetterStatus { return valid(pb.Status_STATUS_DELIVERED, "a\x07b", organiser1) }, field: "status.note"},
		{name: "note too long", build: func() *pb.LetterStatus {
			return valid(pb.Status_STATUS_DELIVERED, strings.Repeat("н", records.MaxNoteLength+1), organiser1)
		}, field: "status.note"},
		{name: "untrimmed note", build: func() *pb.LetterStatus { return valid(pb.Status_STATUS_DELIVERED, "note ", organiser1) }, field: "status.note"},
		// client/rules refuses a key the letter does not list.
		{name: "organiser not listed: the rules' to refuse", build: func() *pb.LetterStatus { return valid(pb.Status_STATUS_CLOSED, "", outsider) }},
		{name: "no signature", build: func() *pb.LetterStatus {
			s := valid(pb.Status_STATUS_CLOSED, "", organiser1)
			s.Organiser = nil
			return s
		}, field: "status.organiser"},
		{name: "bad signature", build: func() *pb.LetterStatus {
			s := valid(pb.Status_STATUS_CLOSED, "", organiser1)
			s.Organiser.Signature[1] ^= 2
			return s
		}, field: "status.organiser", badSig: true},
		{name: "status changed after signing", build: func() *pb.LetterStatus {
			s := valid(pb.Status_STATUS_CLOSED, "", organiser1)
			s.Status = pb.Status_STATUS_DELIVERED
			return s
		}, field: "status.organiser", badSig: true},
		{name: "note changed after signing", build: func() *pb.LetterStatus {
			s := valid(pb.Status_STATUS_DELIVERED, "at noon", organiser1)
			s.Note = "at midnight"
			return s
		}, field: "status.organiser", badSig: true},
		{name: "signed with the letter tag", build: func() *pb.LetterStatus {
			s := &pb.LetterStatus{LetterId: curated.GetId(), Status: pb.Status_STATUS_CLOSED}
			s.Organiser = records.Sign(organiser1, records.TagLetter, records.StatusStatement(testOrigin, s))
			return s
		}, field: "status.organiser", badSig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResult(t, records.CheckStatus(testOrigin, curated, tt.build()), tt.field, tt.badSig)
		})
	}
}

func TestVerifySignature(t *testing.T) {
	statement := []byte("a statement")
	good := records.Sign(organiser1, records.TagLetter, statement)
	if !bytes.Equal(good.PublicKey, pubKey(organiser1)) {
		t.Errorf("Sign: public key is not the signer's")
	}
	if !ed25519.Verify(pubKey(organiser1), append([]byte(records.TagLetter), statement...), good.Signature) {
		t.Errorf("Sign does not sign tag ‖ statement")
	}
	tests := []struct {
		name      string
		sig       *pb.Signature
		tag       string
		statement []byte
		field     string
		badSig    bool
	}{
		{name: "valid", sig: good, tag: records.TagLetter, statement: statement},
		{name: "nil", sig: nil, tag: records.TagLetter, statement: statement, field: "x"},
		{name: "another tag", sig: good, tag: records.TagStatus, statement: statement, field: "x", badSig: true},
		{name: "another statement", sig: good, tag: records.TagLetter, statement: []byte("a statemenT"), field: "x", badSig: true},
		// Moving bytes between the tag and the statement changes nothing
		// in the message; the tags end in a line feed so that no
		// statement can be read under two tags.
		{name: "short public key", sig: &pb.Signature{PublicKey: good.PublicKey[:31], Signature: good.Signature}, tag: records.TagLetter, statement: statement, field: "x.public_key"},
		{name: "long signature", sig: &pb.Signature{PublicKey: good.PublicKey, Signature: append(bytes.Clone(good.Signature), 0)}, tag: records.TagLetter, statement: statement, field: "x.signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResult(t, records.VerifySignature("x", tt.sig, tt.tag, tt.statement), tt.field, tt.badSig)
		})
	}
}

func TestSignerKeyForLetter(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	a := records.SignerKeyForLetter(seed, testOrigin, "letter-a")
	if again := records.SignerKeyForLetter(seed, testOrigin, "letter-a"); !a.Equal(again) {
		t.Errorf("not deterministic")
	}
	others := map[string]ed25519.PrivateKey{
		"another letter": records.SignerKeyForLetter(seed, testOrigin, "letter-b"),
		"another log":    records.SignerKeyForLetter(seed, "example.org/another-log", "letter-a"),
		"another seed":   records.SignerKeyForLetter(bytes.Repeat([]byte{8}, 32), testOrigin, "letter-a"),
		// lp framing: moving a byte from the origin to the letter id
		// gives another key.
		"shifted boundary": records.SignerKeyForLetter(seed, testOrigin[:len(testOrigin)-1], testOrigin[len(testOrigin)-1:]+"letter-a"),
	}
	for name, k := range others {
		if bytes.Equal(pubKey(k), pubKey(a)) {
			t.Errorf("%s gives the same key", name)
		}
	}
	if bytes.Equal(a.Seed(), seed) {
		t.Errorf("the derived key is the seed itself")
	}
}

// TestLayoutsFollowDesign builds each statement by hand from DESIGN.md
// §3.1 and compares it with the package's.
func TestLayoutsFollowDesign(t *testing.T) {
	e := testEndorsement(curated, signer, organiser1)
	e.Supersedes = proto.Uint64(5)
	wantS := cat(lp([]byte(testOrigin)), lp([]byte(e.LetterId)), e.LetterDigest, e.Commitment, e.WithdrawalLock,
		u64(6), []byte{byte(pb.Verification_VERIFICATION_SIGNER_KEY), byte(pb.Visibility_VISIBILITY_PUBLIC)},
		lp(e.Signer.PublicKey))
	if got := records.EndorsementStatement(testOrigin, e); !bytes.Equal(got, wantS) {
		t.Errorf("EndorsementStatement = %x, want %x", got, wantS)
	}
	e.Supersedes = nil
	if got := records.EndorsementStatement(testOrigin, e); !bytes.Equal(got[len(got)-46:len(got)-38], make([]byte, 8)) {
		t.Errorf("EndorsementStatement without supersedes: u64 field is %x, want 0", got[len(got)-46:len(got)-38])
	}
	e.Signer = nil
	if got := records.EndorsementStatement(testOrigin, e); !bytes.Equal(got[len(got)-4:], make([]byte, 4)) {
		t.Errorf("EndorsementStatement without a signer ends with %x, want lp(empty) = 00000000", got[len(got)-4:])
	}

	leaf := bytes.Repeat([]byte{0xab}, 32)
	w := &pb.Withdrawal{TargetIndex: 1<<40 + 3, TargetLeafHash: leaf, Reason: pb.Reason_REASON_DUPLICATE}
	wantW := cat(lp([]byte(testOrigin)), []byte{1}, u64(1<<40+3), leaf, []byte{3})
	if got := records.WithdrawalStatement(testOrigin, w); !bytes.Equal(got, wantW) {
		t.Errorf("WithdrawalStatement = %x, want %x", got, wantW)
	}
	r := &pb.Redaction{TargetIndex: 2, TargetLeafHash: leaf, Reason: pb.Reason_REASON_LEGAL}
	wantR := cat(lp([]byte(testOrigin)), []byte{2}, u64(2), leaf, []byte{6})
	if got := records.RedactionStatement(testOrigin, r); !bytes.Equal(got, wantR) {
		t.Errorf("RedactionStatement = %x, want %x", got, wantR)
	}

	l := proto.CloneOf(curated)
	l.Revises = "older-letter"
	wantL := cat(lp([]byte(testOrigin)), lp([]byte(l.Id)), lp([]byte(l.Title)), h([]byte(l.Text)), lp([]byte(l.Language)),
		[]byte{1, 2}, lp(l.OrganiserKeys[0]), lp(l.OrganiserKeys[1]), lp([]byte("older-letter")))
	if got := records.LetterStatement(testOrigin, l); !bytes.Equal(got, wantL) {
		t.Errorf("LetterStatement = %x, want %x", got, wantL)
	}

	s := &pb.LetterStatus{LetterId: "x", Status: pb.Status_STATUS_DELIVERED, Note: "n"}
	wantSt := cat(lp([]byte(testOrigin)), lp([]byte("x")), []byte{2}, lp([]byte("n")))
	if got := records.StatusStatement(testOrigin, s); !bytes.Equal(got, wantSt) {
		t.Errorf("StatusStatement = %x, want %x", got, wantSt)
	}

	salt := bytes.Repeat([]byte{1}, 32)
	f := records.Fields{Name: "Ł", Affiliation: "", Country: "BY"}
	wantC := h(cat([]byte("undersigned/v1/commitment\n"), salt, lp([]byte("Ł")), lp(nil), lp([]byte("BY"))))
	if got := records.Commitment(salt, f); !bytes.Equal(got, wantC) {
		t.Errorf("Commitment = %x, want %x", got, wantC)
	}
	if got, want := records.WithdrawalLock(salt), h(cat([]byte("undersigned/v1/withdrawal-lock\n"), salt)); !bytes.Equal(got, want) {
		t.Errorf("WithdrawalLock = %x, want %x", got, want)
	}
}

// testRecords returns a valid record of each kind.
func testRecords(t *testing.T) map[string]*pb.Record {
	e := testEndorsement(curated, signer, organiser1)
	leaf := leafHashOf(t, &pb.Record{Version: records.Version, Kind: &pb.Record_Endorsement{Endorsement: e}})
	w := &pb.Withdrawal{TargetIndex: 1, TargetLeafHash: leaf, Reason: pb.Reason_REASON_SIGNER_REQUEST,
		Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: testSecret}}}
	r := &pb.Redaction{TargetIndex: 1, TargetLeafHash: leaf, Reason: pb.Reason_REASON_SAFETY}
	r.Authorisation = &pb.Authorisation{By: &pb.Authorisation_Organiser{Organiser: records.SignRedaction(organiser1, testOrigin, r)}}
	s := &pb.LetterStatus{LetterId: curated.Id, Status: pb.Status_STATUS_CLOSED}
	records.SignStatus(organiser1, testOrigin, s)
	const at = 1_700_000_040
	return map[string]*pb.Record{
		"letter":      {Version: records.Version, AcceptedAt: at, Kind: &pb.Record_Letter{Letter: curated}},
		"endorsement": {Version: records.Version, AcceptedAt: at, Kind: &pb.Record_Endorsement{Endorsement: e}},
		"withdrawal":  {Version: records.Version, AcceptedAt: at, Kind: &pb.Record_Withdrawal{Withdrawal: w}},
		"redaction":   {Version: records.Version, AcceptedAt: at, Kind: &pb.Record_Redaction{Redaction: r}},
		"status":      {Version: records.Version, AcceptedAt: at, Kind: &pb.Record_LetterStatus{LetterStatus: s}},
	}
}

func encode(t *testing.T, r *pb.Record) []byte {
	t.Helper()
	b, err := records.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeValid(t *testing.T) {
	for name, r := range testRecords(t) {
		t.Run(name, func(t *testing.T) {
			b := encode(t, r)
			got, err := records.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !proto.Equal(got, r) {
				t.Errorf("Decode(Encode(r)) = %v, want %v", got, r)
			}
			if again := encode(t, got); !bytes.Equal(again, b) {
				t.Errorf("Encode(Decode(b)) != b")
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	letter := testRecords(t)["letter"]
	good := encode(t, letter)
	letterBytes := encode(t, &pb.Record{Kind: letter.Kind}) // field 3 only
	endorsementBytes := encode(t, &pb.Record{Kind: testRecords(t)["endorsement"].Kind})
	version := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
	acceptedAt := protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), uint64(letter.AcceptedAt))
	if !bytes.Equal(cat(version, acceptedAt, letterBytes), good) {
		t.Fatalf("the test's idea of the encoding is wrong: %x != %x", cat(version, acceptedAt, letterBytes), good)
	}

	// A letter whose title field appears twice: proto keeps the last.
	l := proto.CloneOf(letter.GetLetter())
	lb, err := proto.MarshalOptions{Deterministic: true}.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	twiceTitle := cat(protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), l.Title), lb)
	nestedRepeated := cat(version, acceptedAt, protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), twiceTitle))

	// An unknown field inside the letter's signature.
	withUnknown := proto.CloneOf(letter)
	withUnknown.GetLetter().Organiser.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 15, protowire.VarintType), 1))
	nestedUnknown, err := proto.MarshalOptions{Deterministic: true}.Marshal(withUnknown)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		b            []byte
		notCanonical bool   // errors.Is(err, ErrNotCanonical)
		contains     string // the error message contains this
	}{
		{name: "empty", b: nil, contains: "version"},
		{name: "not protobuf", b: []byte{0xff, 0xff, 0xff}},
		{name: "truncated", b: good[:len(good)-1]},
		{name: "version 0", b: cat(acceptedAt, letterBytes), contains: "version 0"},
		{name: "version 2", b: cat(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 2), acceptedAt, letterBytes), contains: "version 2"},
		{name: "no kind", b: cat(version, acceptedAt), contains: "no kind"},
		{name: "unknown top-level field", b: cat(good, protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)), contains: "unknown"},
		{name: "unknown field in a nested message", b: nestedUnknown, contains: "unknown"},
		{name: "version repeated", b: cat(version, good), notCanonical: true},
		{name: "fields out of order", b: cat(acceptedAt, version, letterBytes), notCanonical: true},
		{name: "kind before version", b: cat(letterBytes, version, acceptedAt), notCanonical: true},
		{name: "default value written out", b: cat(version, protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 0), letterBytes), notCanonical: true},
		{name: "non-minimal varint", b: cat([]byte{0x08, 0x81, 0x00}, acceptedAt, letterBytes), notCanonical: true},
		{name: "two kinds", b: cat(good, endorsementBytes), notCanonical: true},
		{name: "field repeated in a nested message", b: nestedRepeated, notCanonical: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := records.Decode(tt.b)
			if err == nil {
				t.Fatalf("Decode = %v, want an error", r)
			}
			if r != nil {
				t.Errorf("Decode returned a record with its error")
			}
			if got := errors.Is(err, records.ErrNotCanonical); got != tt.notCanonical {
				t.Errorf("errors.Is(%v, ErrNotCanonical) = %v, want %v", err, got, tt.notCanonical)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

func TestHasUnknownFields(t *testing.T) {
	r := testRecords(t)["withdrawal"]
	if records.HasUnknownFields(r) {
		t.Fatal("a clean record has unknown fields")
	}
	deep := proto.CloneOf(r)
	deep.GetWithdrawal().Authorisation.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 0))
	if !records.HasUnknownFields(deep) {
		t.Error("an unknown field inside the authorisation is not found")
	}
	withKeys := proto.CloneOf(testRecords(t)["letter"])
	withKeys.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 20, protowire.VarintType), 0))
	if !records.HasUnknownFields(withKeys) {
		t.Error("an unknown field at the top is not found")
	}
}

// TestOrganiserSignatureCoversSignerKey: whoever relays an
// organiser-signed endorsement cannot attach a signer key of their own (or
// strip the one the organiser vouched for), because the statement names it.
func TestOrganiserSignatureCoversSignerKey(t *testing.T) {
	_, intruder, _ := ed25519.GenerateKey(nil)
	e := testEndorsement(curated, nil, organiser1)
	if err := records.CheckEndorsement(testOrigin, curated, e); err != nil {
		t.Fatalf("the organiser's endorsement: %v", err)
	}
	records.SignEndorsementAsSigner(intruder, testOrigin, e)
	err := records.CheckEndorsement(testOrigin, curated, e)
	if fe, ok := records.AsFieldError(err); !ok || fe.Field != "endorsement.organiser" {
		t.Errorf("a signer key attached after the organiser signed: %v, want a bad endorsement.organiser signature", err)
	}

	// Verified by email, signed by both: only the signer key differs
	// once it is stripped.
	both := testEndorsement(curated, nil, nil)
	sign(both, signer, organiser1)
	if err := records.CheckEndorsement(testOrigin, curated, both); err != nil {
		t.Fatalf("the endorsement signed by both: %v", err)
	}
	both.Signer = nil
	err = records.CheckEndorsement(testOrigin, curated, both)
	if fe, ok := records.AsFieldError(err); !ok || fe.Field != "endorsement.organiser" {
		t.Errorf("the signer the organiser vouched for stripped: %v, want a bad endorsement.organiser signature", err)
	}
}

func TestCheckOrganiserChange(t *testing.T) {
	volunteer := testKey("volunteer")
	valid := func(change pb.KeyChange, key []byte, by ed25519.PrivateKey) *pb.OrganiserChange {
		c := &pb.OrganiserChange{LetterId: curated.GetId(), Change: change, Key: key}
		records.SignOrganiserChange(by, testOrigin, c)
		return c
	}
	tests := []struct {
		name   string
		build  func() *pb.OrganiserChange
		field  string
		badSig bool
	}{
		{name: "add", build: func() *pb.OrganiserChange { return valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), organiser1) }},
		{name: "revoke", build: func() *pb.OrganiserChange {
			return valid(pb.KeyChange_KEY_CHANGE_REVOKE, pubKey(organiser2), organiser1)
		}},
		// Whether the signing key is valid for the letter, and whether the
		// change is possible, are rules of the log's state (client/rules).
		{name: "signed by a key not listed: the rules' to refuse", build: func() *pb.OrganiserChange {
			return valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), outsider)
		}},
		{name: "nil", build: func() *pb.OrganiserChange { return nil }, field: "organiser_change"},
		{name: "letter id not a slug", build: func() *pb.OrganiserChange {
			c := valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), organiser1)
			c.LetterId = "Curated Letter"
			records.SignOrganiserChange(organiser1, testOrigin, c)
			return c
		}, field: "organiser_change.letter_id"},
		{name: "no change", build: func() *pb.OrganiserChange {
			return valid(pb.KeyChange_KEY_CHANGE_UNSPECIFIED, pubKey(volunteer), organiser1)
		}, field: "organiser_change.change"},
		{name: "unknown change", build: func() *pb.OrganiserChange { return valid(3, pubKey(volunteer), organiser1) }, field: "organiser_change.change"},
		{name: "key of the wrong size", build: func() *pb.OrganiserChange {
			return valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer)[:31], organiser1)
		}, field: "organiser_change.key"},
		{name: "no key", build: func() *pb.OrganiserChange { return valid(pb.KeyChange_KEY_CHANGE_REVOKE, nil, organiser1) }, field: "organiser_change.key"},
		{name: "revokes the key that signs it", build: func() *pb.OrganiserChange {
			return valid(pb.KeyChange_KEY_CHANGE_REVOKE, pubKey(organiser1), organiser1)
		}, field: "organiser_change.organiser.public_key"},
		{name: "no signature", build: func() *pb.OrganiserChange {
			c := valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), organiser1)
			c.Organiser = nil
			return c
		}, field: "organiser_change.organiser"},
		{name: "bad signature", build: func() *pb.OrganiserChange {
			c := valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), organiser1)
			c.Organiser.Signature[9] ^= 1
			return c
		}, field: "organiser_change.organiser", badSig: true},
		{name: "add turned into a revocation after signing", build: func() *pb.OrganiserChange {
			c := valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(organiser2), organiser1)
			c.Change = pb.KeyChange_KEY_CHANGE_REVOKE
			return c
		}, field: "organiser_change.organiser", badSig: true},
		{name: "key changed after signing", build: func() *pb.OrganiserChange {
			c := valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), organiser1)
			c.Key = pubKey(outsider)
			return c
		}, field: "organiser_change.organiser", badSig: true},
		{name: "signed with the status tag", build: func() *pb.OrganiserChange {
			c := valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), organiser1)
			c.Organiser = records.Sign(organiser1, records.TagStatus, records.OrganiserChangeStatement(testOrigin, c))
			return c
		}, field: "organiser_change.organiser", badSig: true},
		{name: "signed for another log", build: func() *pb.OrganiserChange {
			c := valid(pb.KeyChange_KEY_CHANGE_ADD, pubKey(volunteer), organiser1)
			records.SignOrganiserChange(organiser1, "example.org/another-log", c)
			return c
		}, field: "organiser_change.organiser", badSig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkResult(t, records.CheckOrganiserChange(testOrigin, tt.build()), tt.field, tt.badSig)
		})
	}
}

package records_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// fuzzLetter is a fixed letter for checking fuzzed records against.
func fuzzLetter() (*pb.Letter, ed25519.PrivateKey) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	l := &pb.Letter{Id: "fuzz", Title: "Fuzz", Text: "Text.\n", TextDigest: records.TextDigest("Text.\n"),
		Policy: pb.Policy_POLICY_CURATED, OrganiserKeys: [][]byte{key.Public().(ed25519.PublicKey)}}
	records.SignLetter(key, "fuzz.example/log", l)
	return l, key
}

// FuzzDecode feeds arbitrary leaf bytes to Decode and every check: nothing
// panics, and a leaf that decodes has exactly one encoding.
func FuzzDecode(f *testing.F) {
	l, key := fuzzLetter()
	e := &pb.Endorsement{LetterId: "fuzz", LetterDigest: l.TextDigest, Commitment: make([]byte, 32),
		WithdrawalLock: make([]byte, 32), Verification: pb.Verification_VERIFICATION_EMAIL, Visibility: pb.Visibility_VISIBILITY_PUBLIC}
	records.SignEndorsementAsOrganiser(key, "fuzz.example/log", e)
	for _, r := range []*pb.Record{
		{Version: 1, AcceptedAt: 1700000040, Kind: &pb.Record_Letter{Letter: l}},
		{Version: 1, AcceptedAt: 1700000040, Kind: &pb.Record_Endorsement{Endorsement: e}},
		{Version: 1, Kind: &pb.Record_Withdrawal{Withdrawal: &pb.Withdrawal{TargetIndex: 1, TargetLeafHash: make([]byte, 32),
			Reason: pb.Reason_REASON_NOT_SIGNED, Authorisation: &pb.Authorisation{By: &pb.Authorisation_WithdrawalSecret{WithdrawalSecret: make([]byte, 32)}}}}},
		{Version: 1, Kind: &pb.Record_LetterStatus{LetterStatus: &pb.LetterStatus{LetterId: "fuzz", Status: pb.Status_STATUS_CLOSED}}},
	} {
		b, err := records.Encode(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := records.Decode(b)
		if err != nil {
			return
		}
		again, err := records.Encode(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("a decoded record encodes differently")
		}
		const origin = "fuzz.example/log"
		switch k := r.GetKind().(type) {
		case *pb.Record_Letter:
			records.CheckLetter(origin, k.Letter)
		case *pb.Record_Endorsement:
			records.CheckEndorsement(origin, l, k.Endorsement)
			records.CheckDisclosure(k.Endorsement, &pb.Disclosure{Salt: make([]byte, 32), Name: "x"})
		case *pb.Record_Withdrawal:
			records.CheckWithdrawal(origin, e, make([]byte, 32), k.Withdrawal)
		case *pb.Record_Redaction:
			records.CheckRedaction(origin, e, make([]byte, 32), k.Redaction)
		case *pb.Record_LetterStatus:
			records.CheckStatus(origin, l, k.LetterStatus)
		case *pb.Record_OrganiserChange:
			records.CheckOrganiserChange(origin, k.OrganiserChange)
		}
	})
}

// FuzzCheckField checks the rules of §3.2 on arbitrary strings: the
// canonical form is stable, and whatever passes is canonical, short enough
// and free of forbidden characters.
func FuzzCheckField(f *testing.F) {
	for _, s := range []string{"Łapińska Hanna", "  Spaces  ", "e\u0301milie", "Line\nBreak", "Zero\u200bWidth",
		"Right\u202eLeft", "Ｆｕｌｌ", "Ivan\u00a0Petrov", "ZW\u200cNJ", "\xff", "", "Тацяна"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := records.CanonicalField(s)
		if records.CanonicalField(c) != c {
			t.Fatalf("CanonicalField is not stable on %q", s)
		}
		if err := records.CheckField("f", s, true, records.MaxNameLength); err == nil {
			if s != c || !utf8.ValidString(s) || strings.TrimSpace(s) == "" || utf8.RuneCountInString(s) > records.MaxNameLength {
				t.Fatalf("CheckField accepted %q", s)
			}
		} else if fe, ok := records.AsFieldError(err); !ok || fe.Field != "f" || fe.Rule == "" {
			t.Fatalf("CheckField's error %v does not name the field and the rule", err)
		}
	})
}

// FuzzCanonicalText checks that a canonical text is stable and passes
// CheckText unless it is empty or too long.
func FuzzCanonicalText(f *testing.F) {
	for _, s := range []string{"Dear council,\r\nKeep it open.\r\n", "\ufeffBOM", "\ufeff\ufeffBOM", "e\u0301\rx", "\xfe\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := records.CanonicalText(s)
		if records.CanonicalText(c) != c {
			t.Fatalf("CanonicalText is not stable on %q", s)
		}
		if !utf8.ValidString(s) || strings.TrimSpace(c) == "" || len(c) > records.MaxTextBytes {
			return
		}
		if err := records.CheckText("text", c); err != nil {
			t.Fatalf("CheckText refuses the canonical text of %q: %v", s, err)
		}
	})
}

// FuzzCommitment checks that the commitment's length-prefixed encoding is
// injective: different fields never give the same commitment.
func FuzzCommitment(f *testing.F) {
	f.Add("ab", "c", "", "a", "bc", "")
	f.Add("a", "", "b", "a", "b", "")
	f.Fuzz(func(t *testing.T, n1, a1, c1, n2, a2, c2 string) {
		salt := make([]byte, 32)
		f1 := records.Fields{Name: n1, Affiliation: a1, Country: c1}
		f2 := records.Fields{Name: n2, Affiliation: a2, Country: c2}
		if f1 != f2 && bytes.Equal(records.Commitment(salt, f1), records.Commitment(salt, f2)) {
			t.Fatalf("%+v and %+v have the same commitment", f1, f2)
		}
	})
}

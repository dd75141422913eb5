package policy_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/policy"
)

// key is a deterministic key pair for tests.
type key struct {
	signer note.Signer
	vkey   string
}

func seeded(label string) *bytes.Reader {
	h := sha256.Sum256([]byte("policy test: " + label))
	return bytes.NewReader(h[:])
}

// logKey returns a log's checkpoint key.
func logKey(t testing.TB, origin string) key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(seeded(origin), origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return key{s, vkey}
}

// witnessKey returns a witness's cosignature key (type 0x04).
func witnessKey(t testing.TB, name string) key {
	t.Helper()
	skey, vkey, err := note.GenerateKey(seeded(name), name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	cv, err := fnote.VKeyToCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return key{s, cv}
}

// checkpoint returns a checkpoint of origin signed by the log and the
// given witnesses.
func checkpoint(t testing.TB, log key, witnesses ...key) []byte {
	t.Helper()
	text := log.signer.Name() + "\n42\n" + "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
	signers := []note.Signer{log.signer}
	for _, w := range witnesses {
		signers = append(signers, w.signer)
	}
	b, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse:\n%s\n%v", text, err)
	}
	return p
}

func TestParseErrors(t *testing.T) {
	lg := logKey(t, "example.org/log")
	a, b := witnessKey(t, "w.example/a"), witnessKey(t, "w.example/b")
	cases := []struct{ name, text, want string }{
		{"no quorum", "witness a " + a.vkey + "\n", "no quorum line"},
		{"two quorums", "witness a " + a.vkey + "\nquorum a\nquorum a\n", "a second quorum line"},
		{"unknown keyword", "witnes a " + a.vkey + "\nquorum none\n", "unknown keyword"},
		{"undefined quorum", "quorum a\n", "not a witness or group defined above"},
		{"group before its member", "group g any a\nwitness a " + a.vkey + "\nquorum g\n", "not a witness or group defined above"},
		{"duplicate name", "witness a " + a.vkey + "\nwitness a " + b.vkey + "\nquorum a\n", "defined twice"},
		{"duplicate key", "witness a " + a.vkey + "\nwitness b " + a.vkey + "\nquorum a\n", "appears twice"},
		{"reserved name", "witness none " + a.vkey + "\nquorum none\n", "reserved"},
		{"threshold zero", "witness a " + a.vkey + "\ngroup g 0 a\nquorum g\n", "threshold"},
		{"threshold too big", "witness a " + a.vkey + "\ngroup g 2 a\nquorum g\n", "threshold"},
		{"threshold leading zero", "witness a " + a.vkey + "\nwitness b " + b.vkey + "\ngroup g 01 a b\nquorum g\n", "threshold"},
		{"member twice", "witness a " + a.vkey + "\ngroup g any a a\nquorum g\n", "listed twice"},
		{"log key as witness key", "witness a " + lg.vkey + "\nquorum a\n", "not a cosignature key"},
		{"bad log key", "log nonsense\nquorum none\n", "log key"},
		{"duplicate log", "log " + lg.vkey + "\nlog " + lg.vkey + "\nquorum none\n", "appears twice"},
		{"bad URL", "witness a " + a.vkey + " ftp://x\nquorum a\n", "URL"},
		{"control character", "witness a " + a.vkey + "\r\nquorum a\n", "control character"},
		{"wrong key hash", "witness a " + wrongHash(a.vkey) + "\nquorum a\n", "key hash"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := policy.Parse([]byte(c.text))
			if !errors.Is(err, policy.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%q) = %v, want an error saying %q", c.text, err, c.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	lg := logKey(t, "example.org/log")
	a, b, c := witnessKey(t, "w.example/a"), witnessKey(t, "w.example/b"), witnessKey(t, "w.example/c")
	text := fmt.Sprintf(`# two of three, and c is required
log %s http://127.0.0.1:7421/log/
witness a %s http://127.0.0.1:1/
witness b	%s
  witness c %s

group ab 1 a b
group all-of all ab c
quorum all-of
`, lg.vkey, a.vkey, b.vkey, c.vkey)
	p := mustParse(t, text)
	if got, want := p.Describe(), "all of (ab: 1 of (a, b), c)"; got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
	if err := p.AllowsLog(lg.vkey); err != nil {
		t.Errorf("AllowsLog(the listed log) = %v", err)
	}
	if err := p.AllowsLog(logKey(t, "example.org/other").vkey); err == nil {
		t.Error("AllowsLog(another log) = nil")
	}
	cases := []struct {
		name      string
		cp        []byte
		met       bool
		cosigned  string
		missing   string
		invalidOf string
	}{
		{"all three", checkpoint(t, lg, a, b, c), true, "a b c", "", ""},
		{"a and c", checkpoint(t, lg, c, a), true, "a c", "b", ""},
		{"a and b, not c", checkpoint(t, lg, a, b), false, "a b", "c", ""},
		{"log only", checkpoint(t, lg), false, "", "a b c", ""},
		{"c forged", forge(t, checkpoint(t, lg, a, c), c), false, "a", "b", "c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.Check(tc.cp)
			if err != nil {
				t.Fatal(err)
			}
			var cos []string
			for _, x := range r.Cosigned {
				cos = append(cos, x.Witness)
				if time.Since(x.Time) > time.Minute || time.Since(x.Time) < -time.Minute {
					t.Errorf("cosignature of %s at %v, not now", x.Witness, x.Time)
				}
			}
			var inv []string
			for _, x := range r.Invalid {
				inv = append(inv, x.Witness)
			}
			if r.Met != tc.met || strings.Join(cos, " ") != tc.cosigned || strings.Join(r.Missing, " ") != tc.missing || strings.Join(inv, " ") != tc.invalidOf {
				t.Fatalf("Check = %s", r)
			}
			if (r.Err() == nil) != tc.met {
				t.Fatalf("Err() = %v with Met %v", r.Err(), r.Met)
			}
			if !tc.met && !errors.Is(r.Err(), policy.ErrNotMet) {
				t.Fatalf("Err() = %v, want ErrNotMet", r.Err())
			}
			for _, m := range r.Missing {
				if !tc.met && !strings.Contains(r.Err().Error(), m) {
					t.Errorf("Err() = %v does not name the missing %s", r.Err(), m)
				}
			}
		})
	}
}

// forge replaces the last signature byte of w's cosignature line.
func forge(t testing.TB, cp []byte, w key) []byte {
	t.Helper()
	lines := strings.Split(string(cp), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "— "+w.signer.Name()+" ") {
			b64 := l[len("— "+w.signer.Name()+" "):]
			raw := must(t, b64)
			raw[len(raw)-1] ^= 1
			lines[i] = "— " + w.signer.Name() + " " + enc(raw)
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

func TestCheckTimeAndNone(t *testing.T) {
	lg := logKey(t, "example.org/log")
	a := witnessKey(t, "w.example/a")
	p := mustParse(t, "witness a "+a.vkey+"\nquorum a\n")
	cp := checkpoint(t, lg, a)
	r, err := p.CheckAt(cp, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if r.Met || len(r.Invalid) != 1 || !strings.Contains(r.Invalid[0].Reason, "future") {
		t.Fatalf("a cosignature an hour ahead of the clock: %s", r)
	}
	none := mustParse(t, "witness a "+a.vkey+"\nquorum none\n")
	if r, _ := none.Check(checkpoint(t, lg)); !r.Met {
		t.Fatalf("quorum none: %s", r)
	}
	if _, err := p.Check([]byte("not a note")); err == nil {
		t.Fatal("Check of a malformed note succeeded")
	}
}

func wrongHash(vkey string) string {
	parts := strings.SplitN(vkey, "+", 3)
	return parts[0] + "+00000000+" + parts[2]
}

func enc(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func dec(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func must(t testing.TB, b64 string) []byte {
	t.Helper()
	b, err := dec(b64)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestForVerifiers: the policy for verifiers has no URL, and checks every
// combination of cosignatures as the operator's policy does.
func TestForVerifiers(t *testing.T) {
	lg := logKey(t, "example.org/log")
	a, b, c := witnessKey(t, "witness.example/a"), witnessKey(t, "witness.example/b"), witnessKey(t, "witness.example/c")
	full := mustParse(t, strings.Join([]string{
		"# the operator's",
		"log " + lg.vkey + " https://log.example/",
		"witness a " + a.vkey + " http://10.0.0.5:8080/",
		"witness b " + b.vkey + " https://b.example/w",
		"witness c " + c.vkey,
		"group ab any a b",
		"group unused all a c",
		"group q all ab c",
		"quorum q",
	}, "\n"))
	text := full.ForVerifiers()
	if strings.Contains(string(text), "http") || strings.Contains(string(text), "unused") {
		t.Fatalf("ForVerifiers kept a URL or an unused group:\n%s", text)
	}
	p := mustParse(t, string(text))
	if p.Describe() != full.Describe() || p.AllowsLog(lg.vkey) != nil {
		t.Fatalf("ForVerifiers: %q, want %q\n%s", p.Describe(), full.Describe(), text)
	}
	for _, ws := range [][]key{nil, {a}, {c}, {a, c}, {b, c}, {a, b}, {a, b, c}} {
		cp := checkpoint(t, lg, ws...)
		want, _ := full.Check(cp)
		got, err := p.Check(cp)
		if err != nil || got.Met != want.Met || got.String() != want.String() {
			t.Errorf("%d cosignatures: %v %v, want %v", len(ws), err, got, want)
		}
	}
	if none := mustParse(t, "quorum none\n").ForVerifiers(); string(none) != "quorum none\n" {
		t.Errorf("quorum none: %q", none)
	}
}

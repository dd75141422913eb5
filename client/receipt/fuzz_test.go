package receipt_test

import (
	"bytes"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/undersigned/undersigned/client/receipt"
)

// FuzzParse feeds arbitrary files to Parse and Verify: nothing panics, and a
// file that parses has one spelling (Marshal gives back the same bytes).
func FuzzParse(f *testing.F) {
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\norigin\n1\nAAAA\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra CgA=\nindex 10\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx\n"))
	_, vkey, err := note.GenerateKey(nil, "fuzz.example/log")
	if err != nil {
		f.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := receipt.Parse(b)
		if err != nil {
			return
		}
		again, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("a parsed receipt marshals differently:\n%q\n%q", b, again)
		}
		r.Verify(v)
	})
}

package receipt_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/receipt"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func TestParseMarshalRoundTrip(t *testing.T) {
	lg := sampleLog(t)
	for _, tc := range []struct {
		name        string
		index, size uint64
	}{
		{"letter alone", idxLetter, 1},
		{"endorsement with disclosure and secret", idxAda, sampleSize},
		{"private endorsement", idxPrivate, 5},
		{"withdrawal", idxWithdrawal, 8},
		{"last leaf", sampleSize - 1, sampleSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := lg.receipt(t, tc.index, tc.size)
			r, err := receipt.Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Index != tc.index {
				t.Errorf("Index = %d, want %d", r.Index, tc.index)
			}
			if want := lg.proof(t, tc.index, tc.size); len(r.Proof) != len(want) {
				t.Errorf("%d proof hashes, want %d", len(r.Proof), len(want))
			} else {
				for i := range want {
					if !bytes.Equal(r.Proof[i], want[i]) {
						t.Errorf("proof hash %d differs", i)
					}
				}
			}
			if !bytes.Equal(r.Checkpoint, lg.checkpoint(t, tc.size)) {
				t.Errorf("Checkpoint is not the signed checkpoint verbatim")
			}
			if !proto.Equal(r.Extra, lg.extras[tc.index]) {
				t.Errorf("Extra = %v, want %v", r.Extra, lg.extras[tc.index])
			}
			again, err := r.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(again, b) {
				t.Errorf("Marshal(Parse(b)) != b:\n%s\nwant\n%s", again, b)
			}
		})
	}

	t.Run("no extra", func(t *testing.T) {
		r := &receipt.Receipt{Index: 0, Checkpoint: lg.checkpoint(t, 1)}
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if want := receiptText(nil, 0, nil, r.Checkpoint); !bytes.Equal(b, want) {
			t.Errorf("Marshal = %q, want %q", b, want)
		}
		back, err := receipt.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if back.Extra != nil || back.Index != 0 || len(back.Proof) != 0 || !bytes.Equal(back.Checkpoint, r.Checkpoint) {
			t.Errorf("Parse(Marshal(r)) = %+v, want %+v", back, r)
		}
	})

	t.Run("Parse does not keep the caller's buffer", func(t *testing.T) {
		b := lg.receipt(t, idxAda, sampleSize)
		r, err := receipt.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Clone(r.Checkpoint)
		for i := range b {
			b[i] = 'x'
		}
		if !bytes.Equal(r.Checkpoint, want) {
			t.Errorf("the parsed checkpoint changed with the input buffer")
		}
	})
}

func TestParseRejects(t *testing.T) {
	lg := sampleLog(t)
	good := lg.receipt(t, idxAda, 5)
	r, err := receipt.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	cp := string(r.Checkpoint)
	extraLine := "extra " + base64.StdEncoding.EncodeToString(marshalExtra(t, r.Extra)) + "\n"
	hash := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 32)) + "\n"
	hashes := func(n int) string { return strings.Repeat(hash, n) }
	const hdr = "c2sp.org/tlog-proof@v1\n"

	// A base64 string whose last character carries non-zero padding bits:
	// lenient decoders read the same bytes as from the canonical string.
	paddingBits := func(s string) string {
		i := strings.IndexByte(s, '=') - 1
		alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		v := strings.IndexByte(alphabet, s[i])
		return s[:i] + string(alphabet[v|1]) + s[i+1:]
	}
	hashBits := paddingBits(strings.TrimSuffix(hash, "\n")) + "\n"
	if lenient, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(hashBits)); !bytes.Equal(lenient, bytes.Repeat([]byte{0xab}, 32)) {
		t.Fatalf("the padding-bits hash does not decode to the same bytes leniently")
	}
	extraBits := "extra " + paddingBits(strings.TrimSuffix(strings.TrimPrefix(extraLine, "extra "), "\n")) + "\n"
	if !strings.Contains(extraLine, "=") {
		t.Fatalf("the sample extra has no padding; choose another sample")
	}

	tests := []struct {
		name string
		b    string
	}{
		{"empty", ""},
		{"header only, no line feed", "c2sp.org/tlog-proof@v1"},
		{"header only", hdr},
		{"another version", "c2sp.org/tlog-proof@v2\n" + "index 0\n\n" + cp},
		{"header with CR LF", "c2sp.org/tlog-proof@v1\r\nindex 0\n\n" + cp},
		{"header with a space", " c2sp.org/tlog-proof@v1\nindex 0\n\n" + cp},
		{"extra not base64", hdr + "extra !!!!\nindex 0\n\n" + cp},
		{"extra with non-zero padding bits", hdr + extraBits + "index 1\n" + hashes(3) + "\n" + cp},
		{"extra without padding", hdr + strings.TrimRight(extraLine, "=\n") + "\nindex 1\n\n" + cp},
		{"extra URL-safe base64", hdr + "extra " + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff}) + "\nindex 1\n\n" + cp},
		{"extra not protobuf", hdr + "extra " + base64.StdEncoding.EncodeToString([]byte{0xff, 0xff, 0xff}) + "\nindex 1\n\n" + cp},
		{"extra, then end of file", hdr + extraLine},
		{"no index line", hdr + extraLine + "\n" + cp},
		{"index line misspelt", hdr + "Index 1\n\n" + cp},
		{"index with leading zeroes", hdr + "index 01\n\n" + cp},
		{"index 00", hdr + "index 00\n\n" + cp},
		{"empty index", hdr + "index \n\n" + cp},
		{"negative index", hdr + "index -1\n\n" + cp},
		{"index with a plus sign", hdr + "index +1\n\n" + cp},
		{"index with a trailing space", hdr + "index 1 \n\n" + cp},
		{"index in hex", hdr + "index 0x1\n\n" + cp},
		{"index too large", hdr + "index 18446744073709551616\n\n" + cp},
		{"hash of 31 bytes", hdr + "index 1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n\n" + cp},
		{"hash of 33 bytes", hdr + "index 1\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n\n" + cp},
		{"hash not base64", hdr + "index 1\n" + strings.Repeat("*", 44) + "\n\n" + cp},
		{"hash without padding", hdr + "index 1\n" + strings.TrimRight(hash, "=\n") + "\n\n" + cp},
		{"hash with non-zero padding bits", hdr + "index 1\n" + hashBits + "\n" + cp},
		{"hash with a trailing CR", hdr + "index 1\n" + strings.TrimSuffix(hash, "\n") + "\r\n\n" + cp},
		{"extra with a trailing CR", hdr + strings.TrimSuffix(extraLine, "\n") + "\r\nindex 1\n" + hashes(3) + "\n" + cp},
		{"two hashes on one line", hdr + "index 1\n" + strings.TrimSuffix(hash, "\n") + hash + "\n" + cp},
		{"64 hashes", hdr + "index 1\n" + hashes(64) + "\n" + cp},
		{"no empty line", hdr + "index 1\n" + hashes(2)},
		{"no empty line, checkpoint right after the hashes", hdr + "index 1\n" + hashes(2) + cp},
		{"no checkpoint", hdr + "index 1\n" + hashes(2) + "\n"},
		{"oversize", hdr + "index 1\n\n" + cp + strings.Repeat("x", receipt.MaxSize)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := receipt.Parse([]byte(tt.b))
			if err == nil {
				t.Fatalf("Parse accepted it: index %d, %d proof hashes, extra %v", r.Index, len(r.Proof), r.Extra != nil)
			}
			if !errors.Is(err, receipt.ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if r != nil {
				t.Errorf("Parse returned a receipt with its error")
			}
		})
	}
}

// TestParseAccepts checks the edges of what Parse allows.
func TestParseAccepts(t *testing.T) {
	lg := sampleLog(t)
	cp := string(lg.checkpoint(t, 1))
	hash := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xab}, 32)) + "\n"
	const hdr = "c2sp.org/tlog-proof@v1\n"
	tests := []struct {
		name  string
		b     string
		index uint64
		n     int
	}{
		{"index 0, no extra, no hashes", hdr + "index 0\n\n" + cp, 0, 0},
		{"largest index", hdr + "index 18446744073709551615\n\n" + cp, 1<<64 - 1, 0},
		{"63 hashes", hdr + "index 5\n" + strings.Repeat(hash, 63) + "\n" + cp, 5, 63},
		{"exactly MaxSize", hdr + "index 0\n\n" + cp + strings.Repeat("x", receipt.MaxSize-len(hdr+"index 0\n\n"+cp)), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := receipt.Parse([]byte(tt.b))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if r.Index != tt.index || len(r.Proof) != tt.n {
				t.Errorf("index %d with %d hashes, want %d with %d", r.Index, len(r.Proof), tt.index, tt.n)
			}
		})
	}
}

func TestMarshalExtraIsDeterministic(t *testing.T) {
	lg := sampleLog(t)
	r := &receipt.Receipt{Index: idxAda, Proof: lg.proof(t, idxAda, 4), Checkpoint: lg.checkpoint(t, 4),
		Extra: &pb.ReceiptExtra{Record: lg.leaves[idxAda], Disclosure: lg.extras[idxAda].Disclosure, WithdrawalSecret: lg.extras[idxAda].WithdrawalSecret}}
	first, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		again, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, first) {
			t.Fatal("Marshal is not deterministic")
		}
	}
	if want := lg.receipt(t, idxAda, 4); !bytes.Equal(first, want) {
		t.Errorf("Marshal = \n%s\nwant\n%s", first, want)
	}
}

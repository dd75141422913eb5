package receipt_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// TestVerifyEveryLeaf verifies the receipt of every leaf in trees of every
// size from 1 to 9: size 1, powers of two and sizes that are not.
func TestVerifyEveryLeaf(t *testing.T) {
	lg := sampleLog(t)
	for size := uint64(1); size <= sampleSize; size++ {
		root := lg.root(t, size)
		for index := uint64(0); index < size; index++ {
			t.Run(fmt.Sprintf("size %d index %d", size, index), func(t *testing.T) {
				r, err := receipt.Parse(lg.receipt(t, index, size))
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				v, err := r.Verify(lg.verifier)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				leaf := tlog.RecordHash(lg.leaves[index])
				if v.Index != index || !bytes.Equal(v.LeafHash, leaf[:]) || !bytes.Equal(v.LeafHash, receipt.LeafHash(lg.leaves[index])) {
					t.Errorf("Verified index %d leaf %x, want %d %x", v.Index, v.LeafHash, index, leaf)
				}
				if v.Checkpoint.Origin != testOrigin || v.Checkpoint.Size != size || !bytes.Equal(v.Checkpoint.Hash, root[:]) {
					t.Errorf("Verified checkpoint %s/%d/%x, want %s/%d/%x", v.Checkpoint.Origin, v.Checkpoint.Size, v.Checkpoint.Hash, testOrigin, size, root)
				}
				want, err := records.Decode(lg.leaves[index])
				if err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(v.Record, want) {
					t.Errorf("Verified record differs from the leaf")
				}
				extra := lg.extras[index]
				if !proto.Equal(v.Disclosure, extra.GetDisclosure()) {
					t.Errorf("Verified disclosure = %v, want %v", v.Disclosure, extra.GetDisclosure())
				}
				if v.HasSecret != (len(extra.GetWithdrawalSecret()) > 0) {
					t.Errorf("HasSecret = %v", v.HasSecret)
				}
			})
		}
	}
}

// verifyBytes parses and verifies a receipt file, and checks that a
// failure wraps the sentinel of the step that failed.
func verifyBytes(b []byte, v note.Verifier) error {
	r, err := receipt.Parse(b)
	if err != nil {
		if !errors.Is(err, receipt.ErrMalformed) {
			return fmt.Errorf("Parse error %w does not wrap ErrMalformed", err)
		}
		return err
	}
	if _, err := r.Verify(v); err != nil {
		if !errors.Is(err, receipt.ErrVerification) {
			return fmt.Errorf("Verify error %w does not wrap ErrVerification", err)
		}
		return err
	}
	return nil
}

func TestVerifyRejects(t *testing.T) {
	lg := sampleLog(t)
	parse := func(t *testing.T, index, size uint64) *receipt.Receipt {
		t.Helper()
		r, err := receipt.Parse(lg.receipt(t, index, size))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	otherLog := newTestLog(t, testOrigin, "another key with the same origin")
	otherOrigin := newTestLog(t, "example.org/undersigned/another-log", "log key")

	// A leaf that is included in the tree but is not a canonical record.
	odd := newTestLog(t, testOrigin, "log key")
	letterRecord := lg.leaves[idxLetter]
	nonCanonical := append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1), letterRecord...)
	odd.appendLeaf(t, nonCanonical, nil, nil)

	tests := []struct {
		name     string
		receipt  func(t *testing.T) *receipt.Receipt
		verifier note.Verifier
	}{
		{name: "no extra", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, idxAda, 4)
			r.Extra = nil
			return r
		}},
		{name: "extra without a record", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, idxAda, 4)
			r.Extra.Record = nil
			return r
		}},
		{name: "index equal to the tree size", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, 3, 4)
			r.Index = 4
			return r
		}},
		{name: "index far outside the tree", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, 3, 4)
			r.Index = 1 << 63
			return r
		}},
		{name: "verifier of another key with the same origin", receipt: func(t *testing.T) *receipt.Receipt { return parse(t, idxAda, 4) }, verifier: otherLog.verifier},
		{name: "verifier of another origin", receipt: func(t *testing.T) *receipt.Receipt { return parse(t, idxAda, 4) }, verifier: otherOrigin.verifier},
		{name: "included but not a canonical record", receipt: func(t *testing.T) *receipt.Receipt {
			r, err := receipt.Parse(odd.receipt(t, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			return r
		}},
		{name: "disclosure with a record that is not an endorsement", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, idxLetter, 4)
			r.Extra.Disclosure = lg.extras[idxAda].Disclosure
			return r
		}},
		{name: "secret with a record that is not an endorsement", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, idxWithdrawal, 7)
			r.Extra.WithdrawalSecret = lg.extras[idxAda].WithdrawalSecret
			return r
		}},
		{name: "disclosure of another endorsement", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, idxAda, 4)
			r.Extra.Disclosure = lg.extras[idxPrivate].Disclosure
			return r
		}},
		{name: "secret of another endorsement", receipt: func(t *testing.T) *receipt.Receipt {
			r := parse(t, idxAda, 4)
			r.Extra.WithdrawalSecret = lg.extras[idxPrivate].WithdrawalSecret
			return r
		}},
		{name: "disclosure that opens the commitment but breaks the rules", receipt: func(t *testing.T) *receipt.Receipt {
			// Build a log whose endorsement commits to an untrimmed name.
			bad := newTestLog(t, testOrigin, "log key")
			letter := sampleLetter(t, testOrigin)
			r, d, s := endorse(t, testOrigin, letter, "untrimmed", records.Fields{Name: "Ada"}, pb.Visibility_VISIBILITY_PUBLIC, nil, nil)
			d.Name = " Ada "
			e := r.GetEndorsement()
			e.Commitment = records.Commitment(d.Salt, records.FieldsOf(d))
			records.SignEndorsementAsOrganiser(organiser1, testOrigin, e)
			bad.appendRecord(t, r, d, s)
			rc, err := receipt.Parse(bad.receipt(t, 0, 1))
			if err != nil {
				t.Fatal(err)
			}
			return rc
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.verifier
			if v == nil {
				v = lg.verifier
			}
			got, err := tt.receipt(t).Verify(v)
			if err == nil {
				t.Fatalf("Verify succeeded: %+v", got)
			}
			if !errors.Is(err, receipt.ErrVerification) {
				t.Errorf("error %v does not wrap ErrVerification", err)
			}
			if got != nil {
				t.Errorf("Verify returned a result with its error")
			}
		})
	}
}

// TestVerifyWithoutDisclosure checks that a receipt whose holder keeps the
// disclosure elsewhere (or never had it) verifies the inclusion alone.
func TestVerifyWithoutDisclosure(t *testing.T) {
	lg := sampleLog(t)
	r, err := receipt.Parse(lg.receipt(t, idxPrivate, sampleSize))
	if err != nil {
		t.Fatal(err)
	}
	r.Extra.Disclosure = nil
	r.Extra.WithdrawalSecret = nil
	v, err := r.Verify(lg.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if v.Disclosure != nil || v.HasSecret {
		t.Errorf("Verified claims a disclosure or a secret the receipt does not carry")
	}
}

// TestTamperTargeted changes one thing in a real receipt, re-encodes it and
// checks that Parse or Verify refuses it.
func TestTamperTargeted(t *testing.T) {
	lg := sampleLog(t)
	const index, size = idxPrivate, 7 // proof of 3 hashes
	good := lg.receipt(t, index, size)
	if err := verifyBytes(good, lg.verifier); err != nil {
		t.Fatalf("the untouched receipt: %v", err)
	}
	base, err := receipt.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Proof) < 3 {
		t.Fatalf("proof of %d hashes; the test wants at least 3", len(base.Proof))
	}
	cp := string(base.Checkpoint)
	body, sigs, _ := strings.Cut(cp, "\n\n")
	bodyLines := strings.Split(body, "\n") // origin, size, root
	root := lg.root(t, size)

	// edit returns a marshalled copy of base after f.
	edit := func(f func(r *receipt.Receipt)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			r, err := receipt.Parse(good)
			if err != nil {
				t.Fatal(err)
			}
			f(r)
			b, err := r.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	withCheckpoint := func(c string) func(t *testing.T) []byte {
		return edit(func(r *receipt.Receipt) { r.Checkpoint = []byte(c) })
	}
	// rawExtra returns the receipt with its extra bytes replaced.
	rawExtra := func(f func(extra []byte) []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			extra := f(marshalExtra(t, base.Extra))
			return receiptText(extra, base.Index, base.Proof, base.Checkpoint)
		}
	}
	otherKey := newTestLog(t, testOrigin, "another key with the same origin")
	otherOrigin := newTestLog(t, "example.org/undersigned/another-log", "another origin")

	type tc struct {
		name  string
		build func(t *testing.T) []byte
	}
	tests := []tc{
		{"record first byte", edit(func(r *receipt.Receipt) { r.Extra.Record[0] ^= 1 })},
		{"record middle byte", edit(func(r *receipt.Receipt) { r.Extra.Record[len(r.Extra.Record)/2] ^= 0x40 })},
		{"record last byte", edit(func(r *receipt.Receipt) { r.Extra.Record[len(r.Extra.Record)-1] ^= 0x80 })},
		{"record truncated", edit(func(r *receipt.Receipt) { r.Extra.Record = r.Extra.Record[:len(r.Extra.Record)-1] })},
		{"record of another leaf", edit(func(r *receipt.Receipt) { r.Extra.Record = lg.leaves[idxAda] })},
		{"disclosure name byte", edit(func(r *receipt.Receipt) {
			n := []byte(r.Extra.Disclosure.Name)
			n[0]++ // 'T' becomes 'U'
			r.Extra.Disclosure.Name = string(n)
		})},
		{"disclosure name, one more space inside", edit(func(r *receipt.Receipt) {
			r.Extra.Disclosure.Name = strings.Replace(r.Extra.Disclosure.Name, " ", "  ", 1)
		})},
		{"disclosure affiliation byte", edit(func(r *receipt.Receipt) {
			a := []byte(r.Extra.Disclosure.Affiliation)
			a[len(a)-1] ^= 0x20
			r.Extra.Disclosure.Affiliation = string(a)
		})},
		{"disclosure country byte", edit(func(r *receipt.Receipt) { r.Extra.Disclosure.Country = "BZ" })},
		{"disclosure salt first byte", edit(func(r *receipt.Receipt) { r.Extra.Disclosure.Salt[0] ^= 1 })},
		{"disclosure salt last byte", edit(func(r *receipt.Receipt) { r.Extra.Disclosure.Salt[31] ^= 0x80 })},
		{"withdrawal secret first byte", edit(func(r *receipt.Receipt) { r.Extra.WithdrawalSecret[0] ^= 1 })},
		{"withdrawal secret last byte", edit(func(r *receipt.Receipt) { r.Extra.WithdrawalSecret[31] ^= 0x80 })},
		{"withdrawal secret truncated", edit(func(r *receipt.Receipt) { r.Extra.WithdrawalSecret = r.Extra.WithdrawalSecret[:31] })},
		{"index plus one", edit(func(r *receipt.Receipt) { r.Index++ })},
		{"index minus one", edit(func(r *receipt.Receipt) { r.Index-- })},
		{"index of the sibling", edit(func(r *receipt.Receipt) { r.Index ^= 1 })},
		{"index equal to the size", edit(func(r *receipt.Receipt) { r.Index = size })},
		{"proof hash removed", edit(func(r *receipt.Receipt) { r.Proof = r.Proof[:len(r.Proof)-1] })},
		{"proof hash added", edit(func(r *receipt.Receipt) { r.Proof = append(r.Proof, root[:]) })},
		{"proof hashes swapped", edit(func(r *receipt.Receipt) { r.Proof[0], r.Proof[1] = r.Proof[1], r.Proof[0] })},
		{"proof of another leaf", edit(func(r *receipt.Receipt) { r.Proof = lg.proof(t, idxAda, size) })},
		{"checkpoint size, unsigned", withCheckpoint(strings.Replace(cp, "\n7\n", "\n8\n", 1))},
		// A checkpoint the log signed for another size with the same root
		// fails only when the proof's shape differs for that size; see
		// TestVerifyFalseSizeSignedByTheLog.
		{"checkpoint size, signed by the log, proof of another shape", withCheckpoint(string(signedCheckpoint(t, testOrigin, size+2, root[:], lg.signer)))},
		{"checkpoint size, signed by the log, smaller than the index", withCheckpoint(string(signedCheckpoint(t, testOrigin, index, root[:], lg.signer)))},
		{"checkpoint of a larger tree with the old proof", withCheckpoint(string(lg.checkpoint(t, sampleSize)))},
		{"checkpoint root, unsigned", withCheckpoint(bodyLines[0] + "\n" + bodyLines[1] + "\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n\n" + sigs)},
		{"checkpoint root, signed by the log", withCheckpoint(string(signedCheckpoint(t, testOrigin, size, make([]byte, 32), lg.signer)))},
		{"checkpoint origin, unsigned", withCheckpoint(strings.Replace(cp, testOrigin+"\n", "example.org/undersigned/receipt-tesT\n", 1))},
		{"checkpoint signed by another key with the same origin", withCheckpoint(string(signedCheckpoint(t, testOrigin, size, root[:], otherKey.signer)))},
		{"checkpoint of another origin, signed by that origin's key", withCheckpoint(string(signedCheckpoint(t, otherOrigin.origin, size, root[:], otherOrigin.signer)))},
		{"checkpoint with an extension line, unsigned", withCheckpoint(body + "\nextension\n\n" + sigs)},
		{"checkpoint without its signature", withCheckpoint(body + "\n")},
	}
	for i := range base.Proof {
		tests = append(tests, tc{fmt.Sprintf("proof hash %d", i), edit(func(r *receipt.Receipt) { r.Proof[i][i] ^= 1 })})
	}
	// The signature line: "— <name> <base64(key hash ‖ signature)>".
	sigLine := strings.TrimSuffix(sigs, "\n")
	sigB64 := sigLine[strings.LastIndexByte(sigLine, ' ')+1:]
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != 68 {
		t.Fatalf("signature line %q", sigLine)
	}
	for _, at := range []int{0, 4, 20, 67} { // key hash, first, middle and last signature byte
		s := bytes.Clone(sig)
		s[at] ^= 1
		tampered := strings.Replace(cp, sigB64, base64.StdEncoding.EncodeToString(s), 1)
		tests = append(tests, tc{fmt.Sprintf("checkpoint signature byte %d", at), withCheckpoint(tampered)})
	}
	// The last base64 character of the signature carries two padding bits
	// that a lenient decoder ignores: the same signature bytes, another
	// file.
	if !strings.HasSuffix(sigB64, "=") {
		t.Fatalf("signature %q has no padding", sigB64)
	}
	last := strings.IndexByte(base64Alphabet, sigB64[len(sigB64)-2])
	padded := sigB64[:len(sigB64)-2] + string(base64Alphabet[last^1]) + "="
	if lenient, _ := base64.StdEncoding.DecodeString(padded); !bytes.Equal(lenient, sig) {
		t.Fatalf("the padding-bit change changed the signature bytes")
	}
	tests = append(tests, tc{"checkpoint signature with non-zero padding bits", withCheckpoint(strings.Replace(cp, sigB64, padded, 1))})

	tests = append(tests,
		// Bytes of the extra message, changed in its protobuf encoding.
		tc{"extra: an unknown field added", rawExtra(func(b []byte) []byte {
			return protowire.AppendVarint(protowire.AppendTag(b, 9, protowire.VarintType), 1)
		})},
		tc{"extra: the withdrawal secret renumbered to an unknown field", rawExtra(func(b []byte) []byte {
			return renumber(t, b, 3, 4)
		})},
		tc{"extra: the disclosure renumbered to an unknown field", rawExtra(func(b []byte) []byte {
			return renumber(t, b, 2, 6)
		})},
		tc{"extra: the disclosure's country renumbered to an unknown field", rawExtra(func(b []byte) []byte {
			e := proto.CloneOf(base.Extra)
			d, err := proto.MarshalOptions{Deterministic: true}.Marshal(e.Disclosure)
			if err != nil {
				t.Fatal(err)
			}
			e.Disclosure = nil
			out := marshalExtra(t, e)
			// Re-insert the disclosure, its country as field 5, in
			// field order: record (1), disclosure (2), secret (3).
			rec, _ := protowire.ConsumeBytes(out[protowire.SizeTag(1):])
			head := protowire.SizeTag(1) + protowire.SizeBytes(len(rec))
			dis := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), renumber(t, d, 4, 5))
			return append(append(bytes.Clone(out[:head]), dis...), out[head:]...)
		})},
		tc{"extra: the record repeated", rawExtra(func(b []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), lg.leaves[index])
		})},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.build(t)
			if bytes.Equal(b, good) {
				t.Fatal("the change left the receipt as it was")
			}
			if err := verifyBytes(b, lg.verifier); err == nil {
				t.Errorf("Parse and Verify accept the tampered receipt")
			} else if strings.Contains(err.Error(), "does not wrap") {
				t.Error(err)
			}
		})
	}
}

// renumber changes the number of the length-delimited field old of a
// message to new, in place: a change of one byte for small numbers.
func renumber(t *testing.T, b []byte, old, new protowire.Number) []byte {
	t.Helper()
	var out []byte
	found := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal("bad protobuf")
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			t.Fatal("bad protobuf")
		}
		if num == old && typ == protowire.BytesType {
			out = protowire.AppendTag(out, new, protowire.BytesType)
			out = append(out, b[n:n+m]...)
			found = true
		} else {
			out = append(out, b[:n+m]...)
		}
		b = b[n+m:]
	}
	if !found {
		t.Fatalf("no field %d", old)
	}
	return out
}

// tamperRegion names the part of a receipt that byte i is in, for
// messages.
func tamperRegion(b []byte, i int) string {
	lineStart := bytes.LastIndexByte(b[:i], '\n') + 1
	lineEnd := bytes.IndexByte(b[i:], '\n')
	if lineEnd < 0 {
		lineEnd = len(b) - i
	}
	line := string(b[lineStart : i+lineEnd])
	if len(line) > 30 {
		line = line[:30] + "…"
	}
	return fmt.Sprintf("line %d %q, column %d", bytes.Count(b[:i], []byte("\n"))+1, line, i-lineStart)
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// fullSweep reports whether the tamper tests also replace each base64
// character with every other one, besides flipping each bit of each byte:
// not with -short, nor under the race detector.
func fullSweep() bool { return !testing.Short() && !raceEnabled }

// TestTamperEveryByte changes every byte of real receipts, one at a time,
// in every way that flips one of its bits; and every base64 character into
// every other base64 character (see fullSweep). Parse or
// Verify must refuse each result.
func TestTamperEveryByte(t *testing.T) {
	lg := sampleLog(t)
	for _, tc := range []struct {
		name        string
		index, size uint64
		// sweepExtra replaces each base64 character of the extra line
		// with every other; without it only the bit flips reach the
		// extra line (the letter's long record is all hashed bytes).
		sweepExtra bool
	}{
		{"private endorsement with disclosure and secret", idxPrivate, 7, true},
		{"signer-signed endorsement, last leaf of a power of two", idxCyrillic, 3, true},
		{"redaction", idxRedaction, sampleSize, true},
		{"letter in a tree of size 1", idxLetter, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good := lg.receipt(t, tc.index, tc.size)
			if err := verifyBytes(good, lg.verifier); err != nil {
				t.Fatalf("the untouched receipt: %v", err)
			}
			var accepted []string
			try := func(i int, c byte, how string) {
				b := bytes.Clone(good)
				b[i] = c
				err := verifyBytes(b, lg.verifier)
				if err != nil && strings.Contains(err.Error(), "does not wrap") {
					t.Error(err)
				}
				if err == nil {
					accepted = append(accepted, fmt.Sprintf("byte %d (%s) %q→%q by %s", i, tamperRegion(good, i), good[i], c, how))
				}
			}
			tries := 0
			for i := range good {
				for bit := range 8 {
					try(i, good[i]^(1<<bit), fmt.Sprintf("flipping bit %d", bit))
					tries++
				}
				if !fullSweep() || strings.IndexByte(base64Alphabet, good[i]) < 0 {
					continue
				}
				if !tc.sweepExtra && bytes.HasPrefix(good[bytes.LastIndexByte(good[:i], '\n')+1:], []byte("extra ")) {
					continue
				}
				for _, c := range []byte(base64Alphabet + "=") {
					if c != good[i] {
						try(i, c, "replacing it")
						tries++
					}
				}
			}
			if len(accepted) > 0 {
				const show = 20
				t.Errorf("%d of %d single-byte changes of a %d-byte receipt were accepted; the first ones:\n%s",
					len(accepted), tries, len(good), strings.Join(accepted[:min(show, len(accepted))], "\n"))
			}
		})
	}
}

// TestVerifyFalseSizeSignedByTheLog records what an offline check cannot
// catch. An RFC 6962 inclusion proof fixes the path from the leaf to the
// root, and the path of leaf 3 has the same shape in every tree of 5 to 8
// leaves; the tree size is bound to the root only by the checkpoint's
// signature. So a checkpoint that the log itself signs for size 8 with the
// root of the first 7 leaves verifies with the proof from the tree of 7.
// Nobody but the log can make one; it is caught online, where the
// checkpoint must be consistent with the log's others (DESIGN.md §5).
func TestVerifyFalseSizeSignedByTheLog(t *testing.T) {
	lg := sampleLog(t)
	root := lg.root(t, 7)
	for _, size := range []uint64{5, 6, 8} {
		r, err := receipt.Parse(lg.receipt(t, idxPrivate, 7))
		if err != nil {
			t.Fatal(err)
		}
		r.Checkpoint = signedCheckpoint(t, testOrigin, size, root[:], lg.signer)
		v, err := r.Verify(lg.verifier)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if v.Checkpoint.Size != size {
			t.Errorf("size %d: Verified size %d", size, v.Checkpoint.Size)
		}
	}
}

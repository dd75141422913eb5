// Package receipt reads, writes and verifies undersigned receipts.
//
// A receipt is a C2SP tlog-proof file (https://c2sp.org/tlog-proof): the
// index of a record in the log, the RFC 6962 inclusion proof of its leaf
// hash, and a signed checkpoint of the log. Its extra data is a protobuf
// ReceiptExtra holding the record bytes exactly as stored (field 1), the
// disclosure when the holder has it (field 2) and the withdrawal secret
// (field 3). Any tlog-proof verifier can check the inclusion: the record
// hash is the RFC 6962 leaf hash of field 1. [Receipt.Verify] also checks
// the record, the disclosure against the commitment and the secret against
// the lock.
package receipt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Header is the first line of every receipt.
const Header = "c2sp.org/tlog-proof@v1"

// Extension is the file extension receipts are saved with.
const Extension = ".tlog-proof"

// MaxSize is the largest receipt Parse accepts, in bytes.
const MaxSize = 1 << 20

// maxProofHashes bounds the inclusion proof of a tree of up to 2^63 leaves.
const maxProofHashes = 63

// ErrMalformed is wrapped by every error of [Parse].
var ErrMalformed = errors.New("malformed receipt")

// Receipt is a parsed receipt. Nothing in it is trusted before [Receipt.Verify]
// succeeds.
type Receipt struct {
	// Index is the record's index in the log.
	Index uint64
	// Proof is the inclusion proof, from the leaf's sibling up.
	Proof [][]byte
	// Checkpoint is the signed checkpoint, verbatim.
	Checkpoint []byte
	// Extra is the record and what the holder knows of it. Nil when the
	// file has no extra line.
	Extra *pb.ReceiptExtra
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Parse parses a tlog-proof file. It is strict: standard base64 only, an
// index without leading zeroes, 32-byte hashes, and a checkpoint after the
// empty line. It fails with an error wrapping [ErrMalformed].
func Parse(b []byte) (*Receipt, error) {
	if len(b) > MaxSize {
		return nil, malformed("larger than %d bytes", MaxSize)
	}
	ls := &lines{rest: b}
	l, ok := ls.next()
	if !ok || l != Header {
		return nil, malformed("first line must be %q", Header)
	}
	r := new(Receipt)
	l, ok = ls.next()
	if !ok {
		return nil, malformed("truncated after the header")
	}
	if data, found := strings.CutPrefix(l, "extra "); found {
		var err error
		if r.Extra, err = parseExtra(data); err != nil {
			return nil, err
		}
		if l, ok = ls.next(); !ok {
			return nil, malformed("truncated after the extra line")
		}
	}
	var err error
	if r.Index, err = parseIndex(l); err != nil {
		return nil, err
	}
	for {
		l, ok = ls.next()
		if !ok {
			return nil, malformed("missing the empty line before the checkpoint")
		}
		if l == "" {
			break
		}
		if len(r.Proof) == maxProofHashes {
			return nil, malformed("more than %d proof hashes", maxProofHashes)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(h) != 32 {
			return nil, malformed("proof line %d is not a base64 SHA-256 hash", len(r.Proof)+1)
		}
		r.Proof = append(r.Proof, h)
	}
	if ls.badLine {
		return nil, malformed("a line holds a carriage return")
	}
	if len(ls.rest) == 0 {
		return nil, malformed("missing the checkpoint")
	}
	r.Checkpoint = bytes.Clone(ls.rest)
	return r, nil
}

// lines reads a receipt line by line.
type lines struct {
	rest []byte
	// badLine is set once a line holds a carriage return. Go's base64
	// skips CR and LF even when strict: they are refused, so that a
	// receipt has one spelling.
	badLine bool
}

// next returns the next line, without its newline, or false when no
// newline is left.
func (ls *lines) next() (string, bool) {
	i := bytes.IndexByte(ls.rest, '\n')
	if i < 0 {
		return "", false
	}
	l := string(ls.rest[:i])
	ls.rest = ls.rest[i+1:]
	ls.badLine = ls.badLine || strings.IndexByte(l, '\r') >= 0
	return l, true
}

// parseExtra parses the data of the extra line. One meaning, one
// encoding: it refuses unknown fields, and bytes that are not the
// deterministic encoding of what they hold.
func parseExtra(data string) (*pb.ReceiptExtra, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(data)
	if err != nil {
		return nil, malformed("extra: %v", err)
	}
	extra := new(pb.ReceiptExtra)
	if err := proto.Unmarshal(raw, extra); err != nil {
		return nil, malformed("extra: %v", err)
	}
	if records.HasUnknownFields(extra) {
		return nil, malformed("extra: unknown fields")
	}
	again, err := proto.MarshalOptions{Deterministic: true}.Marshal(extra)
	if err != nil || !bytes.Equal(again, raw) {
		return nil, malformed("extra: not canonically encoded")
	}
	return extra, nil
}

// parseIndex parses the index line: a decimal without leading zeroes.
func parseIndex(l string) (uint64, error) {
	index, found := strings.CutPrefix(l, "index ")
	if !found {
		return 0, malformed("missing the index line")
	}
	if index == "" || len(index) > 1 && index[0] == '0' {
		return 0, malformed("index %q must be a decimal without leading zeroes", index)
	}
	n, err := strconv.ParseUint(index, 10, 64)
	if err != nil {
		return 0, malformed("index %q: %v", index, err)
	}
	return n, nil
}

// Marshal returns the receipt as a tlog-proof file.
func (r *Receipt) Marshal() ([]byte, error) {
	var raw []byte
	if r.Extra != nil {
		var err error
		if raw, err = (proto.MarshalOptions{Deterministic: true}).Marshal(r.Extra); err != nil {
			return nil, fmt.Errorf("marshal receipt extra: %w", err)
		}
	}
	// One allocation of the right size: a server writes one receipt per
	// endorsement.
	enc := base64.StdEncoding
	n := len(Header) + len("\nextra \n") + enc.EncodedLen(len(raw)) + len("index \n\n") + 20 + len(r.Checkpoint)
	for _, h := range r.Proof {
		n += enc.EncodedLen(len(h)) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, Header+"\n"...)
	if r.Extra != nil {
		b = append(b, "extra "...)
		b = append(enc.AppendEncode(b, raw), '\n')
	}
	b = append(b, "index "...)
	b = append(strconv.AppendUint(b, r.Index, 10), '\n')
	for _, h := range r.Proof {
		b = append(enc.AppendEncode(b, h), '\n')
	}
	b = append(b, '\n')
	return append(b, r.Checkpoint...), nil
}

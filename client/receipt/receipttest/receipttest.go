// Package receipttest is an independent verifier of undersigned receipts,
// used by tests.
//
// [VerifyIndependently] checks a receipt without package receipt, package
// records, the generated protobuf types or transparency-dev/merkle: it
// parses the C2SP tlog-proof text by hand, opens the checkpoint with
// golang.org/x/mod/sumdb/note, checks the inclusion with
// golang.org/x/mod/sumdb/tlog, reads the receipt's extra data with
// google.golang.org/protobuf/encoding/protowire, and computes the
// commitment and the withdrawal lock of DESIGN.md §3.1 itself. A test that
// runs both verifiers over the same receipts checks the client library
// against a second reading of the formats.
//
// It is stricter than a receipt verifier needs to be, so that any change to
// the bytes of a receipt is noticed: every base64 string must be the
// canonical encoding of its bytes, the checkpoint must have no extension
// lines, and the extra data must be the deterministic encoding of a
// ReceiptExtra with no unknown fields.
package receipttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	header       = "c2sp.org/tlog-proof@v1"
	maxSize      = 1 << 20
	maxHashes    = 63
	commitTag    = "undersigned/v1/commitment\n"
	lockTag      = "undersigned/v1/withdrawal-lock\n"
	saltSize     = 32
	secretSize   = 32
	hashSize     = 32
	endorsement  = 4 // Record.endorsement
	commitment   = 3 // Endorsement.commitment
	lock         = 4 // Endorsement.withdrawal_lock
	extraRecord  = 1 // ReceiptExtra.record
	extraDisc    = 2 // ReceiptExtra.disclosure
	extraSecret  = 3 // ReceiptExtra.withdrawal_secret
	discSalt     = 1 // Disclosure.salt
	discCountry  = 4 // Disclosure.country, the last field
	maxExtraSize = maxSize
)

// VerifyIndependently verifies proof, a receipt, with verifierKey, the
// log's note verifier key ("<origin>+<hash>+<key>"). It checks that the
// checkpoint is signed by that key and names its origin, that field 1 of
// the extra data (the record) is included at the receipt's index, and,
// when the extra data holds a disclosure or a withdrawal secret, that the
// record is an endorsement whose commitment the disclosure opens and whose
// lock the secret opens. It returns the index and the record bytes, or an
// error saying what is wrong.
func VerifyIndependently(proof []byte, verifierKey string) (index uint64, record []byte, err error) {
	p, err := parseProof(proof)
	if err != nil {
		return 0, nil, err
	}
	index = p.index
	size, root, err := openCheckpoint(p.checkpoint, verifierKey)
	if err != nil {
		return 0, nil, err
	}
	if index >= size {
		return 0, nil, fmt.Errorf("receipttest: index %d is not below the tree size %d", index, size)
	}
	if size > 1<<62 {
		return 0, nil, fmt.Errorf("receipttest: tree size %d is too large", size)
	}
	fields, err := strictFields(p.extra, extraSecret)
	if err != nil {
		return 0, nil, fmt.Errorf("receipttest: extra: %w", err)
	}
	record = fields[extraRecord]
	if len(record) == 0 {
		return 0, nil, errors.New("receipttest: the extra data holds no record")
	}
	if err := tlog.CheckRecord(p.hashes, int64(size), root, int64(index), tlog.RecordHash(record)); err != nil {
		return 0, nil, fmt.Errorf("receipttest: inclusion of the record at %d in the tree of size %d: %w", index, size, err)
	}
	if err := checkSecrets(record, fields); err != nil {
		return 0, nil, err
	}
	return index, record, nil
}

// parsedProof is a tlog-proof file taken apart, its checkpoint not yet
// verified.
type parsedProof struct {
	extra      []byte
	index      uint64
	hashes     []tlog.Hash
	checkpoint []byte
}

// parseProof takes a tlog-proof file apart, refusing any spelling but the
// canonical one.
func parseProof(proof []byte) (*parsedProof, error) {
	if len(proof) > maxSize {
		return nil, fmt.Errorf("receipttest: receipt of %d bytes", len(proof))
	}
	rest := proof
	line := func() (string, error) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return "", errors.New("receipttest: line without a line feed")
		}
		l := string(rest[:i])
		rest = rest[i+1:]
		return l, nil
	}
	l, err := line()
	if err != nil || l != header {
		return nil, fmt.Errorf("receipttest: first line is not %q", header)
	}
	if l, err = line(); err != nil {
		return nil, err
	}
	p := new(parsedProof)
	if data, ok := strings.CutPrefix(l, "extra "); ok {
		if p.extra, err = canonicalBase64(data, -1); err != nil {
			return nil, fmt.Errorf("receipttest: extra: %w", err)
		}
		if l, err = line(); err != nil {
			return nil, err
		}
	}
	digits, ok := strings.CutPrefix(l, "index ")
	if !ok {
		return nil, fmt.Errorf("receipttest: %q is not an index line", l)
	}
	if p.index, err = canonicalDecimal(digits); err != nil {
		return nil, fmt.Errorf("receipttest: index: %w", err)
	}
	for {
		if l, err = line(); err != nil {
			return nil, errors.New("receipttest: no empty line before the checkpoint")
		}
		if l == "" {
			break
		}
		if len(p.hashes) == maxHashes {
			return nil, errors.New("receipttest: too many proof hashes")
		}
		h, err := canonicalBase64(l, hashSize)
		if err != nil {
			return nil, fmt.Errorf("receipttest: proof hash %d: %w", len(p.hashes), err)
		}
		p.hashes = append(p.hashes, tlog.Hash(h))
	}
	p.checkpoint = rest
	return p, nil
}

// checkSecrets checks, when the extra data holds a disclosure or a
// withdrawal secret, that the record is an endorsement whose commitment
// the disclosure opens and whose lock the secret opens.
func checkSecrets(record []byte, fields map[protowire.Number][]byte) error {
	disclosure, hasDisclosure := fields[extraDisc]
	secret, hasSecret := fields[extraSecret]
	if !hasDisclosure && !hasSecret {
		return nil
	}
	e, err := endorsementOf(record)
	if err != nil {
		return err
	}
	if hasDisclosure {
		if err := checkDisclosure(disclosure, e[commitment]); err != nil {
			return err
		}
	}
	if hasSecret {
		if len(secret) != secretSize {
			return fmt.Errorf("receipttest: withdrawal secret of %d bytes", len(secret))
		}
		h := sha256.Sum256(append([]byte(lockTag), secret...))
		if !bytes.Equal(h[:], e[lock]) {
			return errors.New("receipttest: the withdrawal secret does not open the lock")
		}
	}
	return nil
}

// openCheckpoint verifies a signed checkpoint and returns its size and
// root hash.
func openCheckpoint(cp []byte, verifierKey string) (uint64, tlog.Hash, error) {
	v, err := note.NewVerifier(verifierKey)
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("receipttest: verifier key: %w", err)
	}
	n, err := note.Open(cp, note.VerifierList(v))
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("receipttest: checkpoint: %w", err)
	}
	signed := false
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			signed = true
		}
	}
	if !signed {
		return 0, tlog.Hash{}, errors.New("receipttest: checkpoint not signed by the log key")
	}
	// note.Open decodes signatures with non-strict base64, which ignores
	// the padding bits of the last character: require the canonical text.
	for _, s := range append(n.Sigs, n.UnverifiedSigs...) {
		if _, err := canonicalBase64(s.Base64, -1); err != nil {
			return 0, tlog.Hash{}, fmt.Errorf("receipttest: signature of %s: %w", s.Name, err)
		}
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) != 4 || lines[3] != "" {
		return 0, tlog.Hash{}, fmt.Errorf("receipttest: checkpoint body has %d lines, want origin, size and root only", len(lines)-1)
	}
	if lines[0] != v.Name() {
		return 0, tlog.Hash{}, fmt.Errorf("receipttest: checkpoint origin %q is not the key's name %q", lines[0], v.Name())
	}
	size, err := canonicalDecimal(lines[1])
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("receipttest: checkpoint size: %w", err)
	}
	root, err := canonicalBase64(lines[2], hashSize)
	if err != nil {
		return 0, tlog.Hash{}, fmt.Errorf("receipttest: checkpoint root: %w", err)
	}
	return size, tlog.Hash(root), nil
}

// canonicalBase64 decodes s, which must be the standard, padded base64 of
// its bytes exactly, and of size bytes unless size < 0.
func canonicalBase64(s string, size int) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not the canonical base64 of its bytes")
	}
	if size >= 0 && len(b) != size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, nil
}

// canonicalDecimal parses a decimal without sign or leading zeroes.
func canonicalDecimal(s string) (uint64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q is not a canonical decimal", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a canonical decimal", s)
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// strictFields reads a message made only of length-delimited fields
// numbered 1 to max, each at most once, in increasing order, with minimal
// varints: the deterministic encoding of such a message.
func strictFields(b []byte, max protowire.Number) (map[protowire.Number][]byte, error) {
	if len(b) > maxExtraSize {
		return nil, errors.New("too large")
	}
	fields := map[protowire.Number][]byte{}
	var last protowire.Number
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		if n != protowire.SizeTag(num) {
			return nil, fmt.Errorf("field %d: tag not minimally encoded", num)
		}
		if num < 1 || num > max || typ != protowire.BytesType {
			return nil, fmt.Errorf("unknown field %d of wire type %d", num, typ)
		}
		if num <= last {
			return nil, fmt.Errorf("field %d out of order or repeated", num)
		}
		last = num
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, fmt.Errorf("field %d: %w", num, protowire.ParseError(m))
		}
		if m != protowire.SizeBytes(len(v)) {
			return nil, fmt.Errorf("field %d: length not minimally encoded", num)
		}
		fields[num] = v
		b = b[n+m:]
	}
	return fields, nil
}

// endorsementOf returns the length-delimited fields of the endorsement a
// record holds. The record's bytes are authenticated by the inclusion
// proof, so only its meaning is read here, not its form.
func endorsementOf(record []byte) (map[protowire.Number][]byte, error) {
	r, err := lastValues(record)
	if err != nil {
		return nil, fmt.Errorf("receipttest: record: %w", err)
	}
	e, ok := r[endorsement]
	if !ok {
		return nil, errors.New("receipttest: a disclosure or a withdrawal secret comes with a record that is not an endorsement")
	}
	fields, err := lastValues(e)
	if err != nil {
		return nil, fmt.Errorf("receipttest: endorsement: %w", err)
	}
	return fields, nil
}

// lastValues returns the last value of each length-delimited field of a
// message, skipping the fields of other wire types.
func lastValues(b []byte) (map[protowire.Number][]byte, error) {
	fields := map[protowire.Number][]byte{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[n:])
			fields[num] = v
		}
		b = b[n+m:]
	}
	return fields, nil
}

// checkDisclosure checks that a marshalled Disclosure opens commitment
// want: H("undersigned/v1/commitment\n" ‖ salt ‖ lp(name) ‖
// lp(affiliation) ‖ lp(country)).
func checkDisclosure(disclosure, want []byte) error {
	d, err := strictFields(disclosure, discCountry)
	if err != nil {
		return fmt.Errorf("receipttest: disclosure: %w", err)
	}
	salt := d[discSalt]
	if len(salt) != saltSize {
		return fmt.Errorf("receipttest: disclosure salt of %d bytes", len(salt))
	}
	b := append([]byte(commitTag), salt...)
	for num := protowire.Number(2); num <= discCountry; num++ {
		b = binary.BigEndian.AppendUint32(b, uint32(len(d[num])))
		b = append(b, d[num]...)
	}
	h := sha256.Sum256(b)
	if !bytes.Equal(h[:], want) {
		return errors.New("receipttest: the disclosure does not open the commitment")
	}
	return nil
}

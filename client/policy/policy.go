// Package policy reads witness policies and checks the cosignatures of
// checkpoints against them.
//
// A policy is a C2SP tlog-policy file (https://c2sp.org/tlog-policy): the
// logs it accepts, the witnesses it knows, and a quorum that says which
// witnesses must have cosigned a checkpoint for a client to accept it:
//
//	log example.org/undersigned+3c5c2a1e+AbC...
//	witness omni witness.example/omni+8a4b2c3d+BAx... https://omni.example/
//	witness lite witness.example/lite+1f2e3d4c+BAy... https://lite.example/
//	group both 2 omni lite
//	quorum both
//
// A witness cosigns a checkpoint only after checking that it is consistent
// with every checkpoint of that log it cosigned before (C2SP tlog-witness),
// so a checkpoint that carries the cosignatures of a quorum is one that a
// log could not show to some and hide from others without a quorum of
// witnesses taking part. Cosignatures are C2SP tlog-cosignature lines
// (cosignature/v1, Ed25519 or ML-DSA-44, with the time of cosigning) added
// to the checkpoint's signed note.
//
// # Checking a checkpoint
//
// [Policy.Check] reads the cosignature lines of a signed checkpoint and
// reports, in a [Result], whether the quorum is met, which witnesses
// cosigned it and when, and which witnesses of the quorum have no
// cosignature or an invalid one. It does not check the log's own signature:
// that is the job of whoever verifies the checkpoint with the log's pinned
// key (see [Policy.AllowsLog] for the policy's list of logs).
package policy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// MaxSize is the largest policy file Parse accepts, in bytes.
const MaxSize = 64 << 10

// maxEntries bounds the logs, witnesses and groups of a policy (the
// specification asks implementations to support at least 32 of each).
const maxEntries = 256

// The key types of C2SP signed-note verifier keys that a witness may use.
const (
	keyEd25519Cosignature = 0x04
	keyMLDSA44Cosignature = 0x06
)

// ErrInvalid is wrapped by every error of [Parse].
var ErrInvalid = errors.New("invalid witness policy")

// Policy is a parsed witness policy. Its methods are safe for concurrent
// use.
type Policy struct {
	// Logs are the logs the policy accepts; empty when the policy leaves
	// the log to be known from elsewhere (a pinned key).
	Logs []Log
	// Witnesses are the witnesses the policy names, in the file's order.
	Witnesses []Witness
	// Quorum is the name of the quorum: a witness, a group, or "none".
	Quorum string

	quorum *component // nil for "none"
}

// Log is a log a policy accepts.
type Log struct {
	// Key is the log's note verifier key; its name is the log's origin.
	Key string
	// URL is the log's URL, or "".
	URL string

	verifier note.Verifier
}

// Witness is a witness a policy names.
type Witness struct {
	// Name is the witness's name in the policy (not its key name).
	Name string
	// Key is its cosignature verifier key ("<key name>+<hash>+<key>").
	Key string
	// URL is its tlog-witness submission prefix, or "" when the policy is
	// only for verifying.
	URL string

	verifier note.Verifier
}

// KeyName returns the name in the witness's key, which its cosignature
// lines carry.
func (w Witness) KeyName() string { return w.verifier.Name() }

// Verifier returns the verifier of the witness's cosignatures.
func (w Witness) Verifier() note.Verifier { return w.verifier }

// component is a witness or a group of a policy.
type component struct {
	name      string
	witness   int // index in Witnesses, or -1 for a group
	threshold int
	members   []*component
}

func invalid(line int, format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrInvalid, line, fmt.Sprintf(format, args...))
}

// Parse parses a tlog-policy file. It follows the specification strictly:
// only space and tab separate items, comment lines start with "#", names
// are unique and defined before use, a group's threshold is "all", "any"
// or a decimal k with 1 <= k <= members, no log or witness key appears
// twice, witness keys are cosignature keys (type 0x04 or 0x06) whose key
// hash matches, and there is exactly one quorum line. It fails with an
// error wrapping [ErrInvalid] that names the line.
func Parse(b []byte) (*Policy, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxSize)
	}
	for i, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' || c == 0x7f {
			return nil, fmt.Errorf("%w: control character 0x%02x at byte %d", ErrInvalid, c, i)
		}
	}
	p := &Policy{}
	names := map[string]*component{}
	keys := map[string]bool{}
	quorumSeen := false
	lines := strings.Split(string(b), "\n")
	for i, raw := range lines {
		n := i + 1
		fields := strings.FieldsFunc(raw, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		var err error
		switch fields[0] {
		case "log":
			err = p.parseLog(n, fields, keys)
		case "witness":
			err = p.parseWitness(n, fields, keys, names)
		case "group":
			err = parseGroup(n, fields, names)
		case "quorum":
			if quorumSeen {
				return nil, invalid(n, "a second quorum line")
			}
			quorumSeen = true
			err = p.parseQuorum(n, fields, names)
		default:
			err = invalid(n, "unknown keyword %q (want log, witness, group or quorum)", fields[0])
		}
		if err != nil {
			return nil, err
		}
		if len(p.Logs) > maxEntries || len(p.Witnesses) > maxEntries || len(names) > 2*maxEntries {
			return nil, invalid(n, "more than %d logs, witnesses or groups", maxEntries)
		}
	}
	if !quorumSeen {
		return nil, fmt.Errorf("%w: no quorum line", ErrInvalid)
	}
	return p, nil
}

func (p *Policy) parseLog(n int, f []string, keys map[string]bool) error {
	if len(f) < 2 || len(f) > 3 {
		return invalid(n, "want \"log <vkey> [<url>]\"")
	}
	v, err := note.NewVerifier(f[1])
	if err != nil {
		return invalid(n, "log key %q: %v", f[1], err)
	}
	pub, _ := keyBytes(f[1])
	if keys["log "+string(pub)] {
		return invalid(n, "the log key of %q appears twice", v.Name())
	}
	keys["log "+string(pub)] = true
	l := Log{Key: f[1], verifier: v}
	if len(f) == 3 {
		if l.URL, err = checkURL(f[2]); err != nil {
			return invalid(n, "%v", err)
		}
	}
	p.Logs = append(p.Logs, l)
	return nil
}

func (p *Policy) parseWitness(n int, f []string, keys map[string]bool, names map[string]*component) error {
	if len(f) < 3 || len(f) > 4 {
		return invalid(n, "want \"witness <name> <vkey> [<url>]\"")
	}
	name := f[1]
	if err := newName(name, names); err != nil {
		return invalid(n, "%v", err)
	}
	v, err := cosignatureVerifier(f[2])
	if err != nil {
		return invalid(n, "witness %s: %v", name, err)
	}
	pub, _ := keyBytes(f[2])
	if keys["witness "+string(pub[1:])] {
		return invalid(n, "witness %s: its key appears twice", name)
	}
	keys["witness "+string(pub[1:])] = true
	w := Witness{Name: name, Key: f[2], verifier: v}
	if len(f) == 4 {
		if w.URL, err = checkURL(f[3]); err != nil {
			return invalid(n, "witness %s: %v", name, err)
		}
	}
	names[name] = &component{name: name, witness: len(p.Witnesses)}
	p.Witnesses = append(p.Witnesses, w)
	return nil
}

func parseGroup(n int, f []string, names map[string]*component) error {
	if len(f) < 4 {
		return invalid(n, "want \"group <name> all|any|<k> <name>...\"")
	}
	name, k, members := f[1], f[2], f[3:]
	if err := newName(name, names); err != nil {
		return invalid(n, "%v", err)
	}
	g := &component{name: name, witness: -1}
	seen := map[string]bool{}
	for _, m := range members {
		c, ok := names[m]
		if !ok {
			return invalid(n, "group %s: %q is not a witness or group defined above", name, m)
		}
		if seen[m] {
			return invalid(n, "group %s: %q is listed twice", name, m)
		}
		seen[m] = true
		g.members = append(g.members, c)
	}
	switch k {
	case "all":
		g.threshold = len(members)
	case "any":
		g.threshold = 1
	default:
		t, err := strconv.Atoi(k)
		if err != nil || strconv.Itoa(t) != k || t < 1 || t > len(members) {
			return invalid(n, "group %s: threshold %q must be all, any or a decimal from 1 to %d", name, k, len(members))
		}
		g.threshold = t
	}
	names[name] = g
	return nil
}

func (p *Policy) parseQuorum(n int, f []string, names map[string]*component) error {
	if len(f) != 2 {
		return invalid(n, "want \"quorum <name>\"")
	}
	p.Quorum = f[1]
	if f[1] == "none" {
		return nil
	}
	c, ok := names[f[1]]
	if !ok {
		return invalid(n, "quorum %q is not a witness or group defined above", f[1])
	}
	p.quorum = c
	return nil
}

var keywords = map[string]bool{"log": true, "witness": true, "group": true, "quorum": true, "none": true, "all": true, "any": true}

func newName(name string, names map[string]*component) error {
	if keywords[name] {
		return fmt.Errorf("%q is reserved and cannot name a witness or group", name)
	}
	if _, err := strconv.Atoi(name); err == nil {
		return fmt.Errorf("%q is a number and cannot name a witness or group", name)
	}
	if names[name] != nil {
		return fmt.Errorf("%q is defined twice", name)
	}
	return nil
}

func checkURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("URL %q: want an http:// or https:// URL", s)
	}
	return s, nil
}

// keyBytes returns the decoded key of a verifier key: its type byte and
// the public key.
func keyBytes(vkey string) ([]byte, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("a verifier key is <name>+<hash>+<key>")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(b) < 2 {
		return nil, errors.New("the key is not canonical base64")
	}
	return b, nil
}

// cosignatureVerifier returns the verifier of a witness's cosignature
// key, checking its type and key hash.
func cosignatureVerifier(vkey string) (note.Verifier, error) {
	b, err := keyBytes(vkey)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", vkey, err)
	}
	if b[0] != keyEd25519Cosignature && b[0] != keyMLDSA44Cosignature {
		return nil, fmt.Errorf("key %q is of type 0x%02x, not a cosignature key (0x04 for Ed25519, 0x06 for ML-DSA-44)", vkey, b[0])
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", vkey, err)
	}
	hash := strings.SplitN(vkey, "+", 3)[1]
	if hash != fmt.Sprintf("%08x", v.KeyHash()) {
		return nil, fmt.Errorf("key %q: its key hash is not %08x", vkey, v.KeyHash())
	}
	return v, nil
}

// AllowsLog reports whether the policy accepts the log of the verifier key
// vkey: it does when its log list is empty or names that key. Otherwise
// the error says so.
func (p *Policy) AllowsLog(vkey string) error {
	if len(p.Logs) == 0 {
		return nil
	}
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return fmt.Errorf("log key: %w", err)
	}
	for _, l := range p.Logs {
		if l.verifier.Name() == v.Name() && l.verifier.KeyHash() == v.KeyHash() && l.Key == strings.TrimSpace(vkey) {
			return nil
		}
	}
	return fmt.Errorf("the witness policy does not list the log %s with this key", v.Name())
}

// Describe returns the quorum in words, such as "2 of (omni, lite)".
func (p *Policy) Describe() string {
	if p.quorum == nil {
		return "no cosignature"
	}
	return describe(p.quorum, true)
}

func describe(c *component, top bool) string {
	if c.witness >= 0 {
		return c.name
	}
	parts := make([]string, len(c.members))
	for i, m := range c.members {
		parts[i] = describe(m, false)
	}
	s := fmt.Sprintf("%d of (%s)", c.threshold, strings.Join(parts, ", "))
	if c.threshold == len(c.members) {
		s = fmt.Sprintf("all of (%s)", strings.Join(parts, ", "))
	}
	if !top {
		return c.name + ": " + s
	}
	return s
}

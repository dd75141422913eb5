package policy

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// MaxClockSkew is how far in the future a cosignature's time may be before
// [Policy.Check] counts it as invalid.
const MaxClockSkew = 10 * time.Minute

// Result is what [Policy.Check] found in a checkpoint.
type Result struct {
	// Quorum is the policy's quorum name; Required describes it.
	Quorum, Required string
	// Met is true when the valid cosignatures satisfy the quorum.
	Met bool
	// Cosigned are the valid cosignatures, in the policy's order of
	// witnesses.
	Cosigned []Cosignature
	// Missing names the witnesses of the quorum that did not cosign.
	Missing []string
	// Invalid are the witnesses of the quorum whose cosignature lines are
	// there but do not verify.
	Invalid []InvalidCosignature
}

// Cosignature is a valid cosignature.
type Cosignature struct {
	// Witness is the witness's name in the policy.
	Witness string
	// Time is when the witness cosigned, as it says.
	Time time.Time
}

// InvalidCosignature is a cosignature line that names a witness of the
// policy but does not verify.
type InvalidCosignature struct {
	// Witness is the witness's name in the policy.
	Witness string
	// Reason says why it does not verify.
	Reason string
}

// Problems names the witnesses whose cosignature is missing or invalid,
// as "missing: a, b; invalid: c (bad signature)", or "" when there are
// none.
func (r *Result) Problems() string {
	var parts []string
	if len(r.Missing) > 0 {
		parts = append(parts, "missing: "+strings.Join(r.Missing, ", "))
	}
	if len(r.Invalid) > 0 {
		var inv []string
		for _, i := range r.Invalid {
			inv = append(inv, fmt.Sprintf("%s (%s)", i.Witness, i.Reason))
		}
		parts = append(parts, "invalid: "+strings.Join(inv, ", "))
	}
	return strings.Join(parts, "; ")
}

// String says in one line whether the quorum is met, by whom, and which
// witnesses are missing or invalid.
func (r *Result) String() string {
	var names []string
	for _, c := range r.Cosigned {
		names = append(names, c.Witness)
	}
	cosigned := "no witness"
	if len(names) > 0 {
		cosigned = strings.Join(names, ", ")
	}
	s := fmt.Sprintf("witness quorum %q (%s) ", r.Quorum, r.Required)
	if r.Met {
		s += "met: cosigned by " + cosigned
	} else {
		s += "NOT met: cosigned by " + cosigned
	}
	if p := r.Problems(); p != "" {
		s += "; " + p
	}
	return s
}

// ErrNotMet is wrapped by the error of [Result.Err] when the quorum is not
// met.
var ErrNotMet = errors.New("the witness quorum is not met")

// Err returns nil when the quorum is met, and otherwise an error wrapping
// [ErrNotMet] that names the witnesses whose cosignature is missing or
// invalid.
func (r *Result) Err() error {
	if r.Met {
		return nil
	}
	return fmt.Errorf("%w: %s requires %s; %s", ErrNotMet, r.Quorum, r.Required, r.Problems())
}

// unknownVerifiers makes note.Open report every signature as unverified,
// so that Check can judge each cosignature line itself.
type unknownVerifiers struct{}

func (unknownVerifiers) Verifier(name string, hash uint32) (note.Verifier, error) {
	return nil, &note.UnknownVerifierError{Name: name, KeyHash: hash}
}

// Check reads the cosignatures of a signed checkpoint and checks them
// against the quorum, with the current time. See [Policy.CheckAt].
func (p *Policy) Check(checkpoint []byte) (*Result, error) {
	return p.CheckAt(checkpoint, time.Now())
}

// CheckAt reads the cosignature lines of a signed checkpoint (a C2SP
// signed note) and checks each against the witness whose key name and key
// hash it carries: a line verifies if its signature over the checkpoint's
// text, with its timestamp, is valid, its base64 is canonical and its time
// is at most [MaxClockSkew] after now. Lines of keys the policy does not
// know are ignored, as the log's own signature is. It fails only when the
// checkpoint is not a signed note; a quorum not met is reported in the
// [Result] (see [Result.Err]).
func (p *Policy) CheckAt(checkpoint []byte, now time.Time) (*Result, error) {
	_, err := note.Open(checkpoint, unknownVerifiers{})
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("the checkpoint is not a signed note: %w", err)
	}
	n := unverified.Note
	valid := make([]bool, len(p.Witnesses))
	times := make([]time.Time, len(p.Witnesses))
	reasons := make([]string, len(p.Witnesses))
	for i, w := range p.Witnesses {
		for _, s := range n.UnverifiedSigs {
			if s.Name != w.verifier.Name() || s.Hash != w.verifier.KeyHash() {
				continue
			}
			t, reason := verifyLine(w.verifier, n.Text, s, now)
			if reason == "" {
				valid[i], times[i], reasons[i] = true, t, ""
				break
			}
			reasons[i] = reason
		}
	}
	r := &Result{Quorum: p.Quorum, Required: p.Describe(), Met: p.quorum == nil || satisfied(p.quorum, valid)}
	inQuorum := make([]bool, len(p.Witnesses))
	if p.quorum != nil {
		mark(p.quorum, inQuorum)
	}
	for i, w := range p.Witnesses {
		switch {
		case valid[i]:
			r.Cosigned = append(r.Cosigned, Cosignature{Witness: w.Name, Time: times[i]})
		case !inQuorum[i]:
		case reasons[i] != "":
			r.Invalid = append(r.Invalid, InvalidCosignature{Witness: w.Name, Reason: reasons[i]})
		default:
			r.Missing = append(r.Missing, w.Name)
		}
	}
	return r, nil
}

// verifyLine checks one cosignature line; it returns the time it carries,
// or why it is invalid.
func verifyLine(v note.Verifier, text string, s note.Signature, now time.Time) (time.Time, string) {
	raw, err := base64.StdEncoding.Strict().DecodeString(s.Base64)
	if err != nil {
		return time.Time{}, "its base64 is not canonical"
	}
	sig := raw[4:]
	if len(sig) < 8 {
		return time.Time{}, "too short for a timestamped cosignature"
	}
	ts := binary.BigEndian.Uint64(sig)
	if ts > 1<<63-1 {
		return time.Time{}, "its time is out of range"
	}
	if !v.Verify([]byte(text), sig) {
		return time.Time{}, "bad signature"
	}
	t := time.Unix(int64(ts), 0).UTC()
	if t.After(now.Add(MaxClockSkew)) {
		return t, fmt.Sprintf("its time %s is in the future", t.Format(time.RFC3339))
	}
	return t, ""
}

func satisfied(c *component, valid []bool) bool {
	if c.witness >= 0 {
		return valid[c.witness]
	}
	n := 0
	for _, m := range c.members {
		if satisfied(m, valid) {
			n++
		}
	}
	return n >= c.threshold
}

func mark(c *component, in []bool) {
	if c.witness >= 0 {
		in[c.witness] = true
		return
	}
	for _, m := range c.members {
		mark(m, in)
	}
}

// WitnessNames returns the names of the witnesses the quorum involves, in
// the policy's order.
func (p *Policy) WitnessNames() []string {
	in := make([]bool, len(p.Witnesses))
	if p.quorum != nil {
		mark(p.quorum, in)
	}
	var out []string
	for i, w := range p.Witnesses {
		if in[i] {
			out = append(out, w.Name)
		}
	}
	return slices.Clip(out)
}

// MetBy reports whether valid cosignatures from the named witnesses (names
// in the policy) would meet the quorum.
func (p *Policy) MetBy(witnesses ...string) bool {
	if p.quorum == nil {
		return true
	}
	valid := make([]bool, len(p.Witnesses))
	for i, w := range p.Witnesses {
		valid[i] = slices.Contains(witnesses, w.Name)
	}
	return satisfied(p.quorum, valid)
}

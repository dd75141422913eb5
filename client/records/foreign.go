package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The foreign marks of an entry bundle are the JSON array of indexes that
// the HTTP API serves at /log/foreign/<N> (and <N>.p/<W>) beside entry
// bundle N: the entries of that bundle which no server of the log
// admitted (a leaf queued on the log's storage directly, or a second copy
// of an entry), in ascending order. Readers skip them in the rules, as the
// server does; an auditor reports each. A log that orders its own entries
// (the embedded engine) has none, and serves an empty array.
const (
	// bundleWidth is the number of entries of a full entry bundle, and
	// of the indexes a bundle's foreign marks may name.
	bundleWidth = 256
	// MaxForeignMarksBytes is the most a foreign marks resource can hold:
	// 256 indexes of at most 20 digits, each with a separator and a little
	// whitespace, in brackets.
	MaxForeignMarksBytes = bundleWidth*24 + 16
)

// ForeignMarkError is a foreign marks resource that names an index twice
// or outside its bundle.
type ForeignMarkError struct {
	// Index is the index named.
	Index uint64
	// Problem says what is wrong with it.
	Problem string
}

func (e *ForeignMarkError) Error() string { return fmt.Sprintf("index %d: %s", e.Index, e.Problem) }

// DecodeForeignMarks reads the foreign marks of entry bundle n from r as
// they arrive, and returns them in ascending order. An index repeated or
// outside bundle n is a [*ForeignMarkError]; anything but a JSON array of
// integers is an error. The caller bounds what r holds
// ([MaxForeignMarksBytes]).
func DecodeForeignMarks(n uint64, r io.Reader) ([]uint64, error) {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, fmt.Errorf("foreign marks: not a JSON array (%v)", err)
	}
	first := n * bundleWidth
	var out []uint64
	for dec.More() {
		var i uint64
		if err := dec.Decode(&i); err != nil {
			return nil, fmt.Errorf("foreign marks: %w", err)
		}
		switch {
		case i < first || i-first >= bundleWidth:
			return nil, &ForeignMarkError{Index: i, Problem: fmt.Sprintf("outside entry bundle %d (indexes %d to %d)", n, first, first+bundleWidth-1)}
		case slices.Contains(out, i):
			return nil, &ForeignMarkError{Index: i, Problem: fmt.Sprintf("marked twice in the foreign marks of bundle %d", n)}
		}
		out = append(out, i)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return nil, fmt.Errorf("foreign marks: the JSON array does not end (%v)", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("foreign marks: data after the JSON array")
	}
	slices.Sort(out)
	return out, nil
}

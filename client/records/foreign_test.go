package records_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/records"
)

func TestDecodeForeignMarks(t *testing.T) {
	for _, c := range []struct {
		name, body string
		bundle     uint64
		want       []uint64
		// index is the index a *ForeignMarkError names, or -1 for another
		// error, or -2 for none.
		index int64
	}{
		{"empty", "[]\n", 0, nil, -2},
		{"sorted", "[ 3,1 ,\n 255 ]", 0, []uint64{1, 3, 255}, -2},
		{"second bundle", "[256, 511]", 1, []uint64{256, 511}, -2},
		{"repeated", "[1, 2, 1]", 0, nil, 1},
		{"below the bundle", "[255]", 1, nil, 255},
		{"above the bundle", "[512]", 1, nil, 512},
		{"negative", "[-1]", 0, nil, -1},
		{"a fraction", "[1.5]", 0, nil, -1},
		{"a string", `["1"]`, 0, nil, -1},
		{"not an array", `{"1": true}`, 0, nil, -1},
		{"unended", "[1, 2", 0, nil, -1},
		{"data after", "[1] [2]", 0, nil, -1},
		{"nothing", "", 0, nil, -1},
	} {
		got, err := records.DecodeForeignMarks(c.bundle, strings.NewReader(c.body))
		var fe *records.ForeignMarkError
		switch {
		case c.index == -2 && (err != nil || !slices.Equal(got, c.want)):
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		case c.index == -1 && (err == nil || errors.As(err, &fe)):
			t.Errorf("%s: %v, %v; want an error of format", c.name, got, err)
		case c.index >= 0 && (!errors.As(err, &fe) || fe.Index != uint64(c.index)):
			t.Errorf("%s: %v, %v; want a ForeignMarkError naming %d", c.name, got, err, c.index)
		}
	}
}

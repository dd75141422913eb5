package policy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/undersigned/undersigned/client/policy"
)

// A checkpoint cosigned by one of two witnesses meets a quorum of any one
// of them, and not a quorum of both, which names the one missing.
func Example() {
	t := &testing.T{}
	lg := logKey(t, "example.org/log")
	a, b := witnessKey(t, "w.example/a"), witnessKey(t, "w.example/b")
	cp := checkpoint(t, lg, a)
	for _, quorum := range []string{"group q any a b", "group q all a b"} {
		text := strings.Join([]string{"log " + lg.vkey, "witness a " + a.vkey, "witness b " + b.vkey, quorum, "quorum q"}, "\n")
		p, err := policy.Parse([]byte(text))
		if err != nil {
			fmt.Println(err)
			return
		}
		r, err := p.Check(cp)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(r.Met, r.Err())
	}
	// Output:
	// true <nil>
	// false the witness quorum is not met: q requires all of (a, b); missing: b
}

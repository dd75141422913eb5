package policy

import (
	"fmt"
	"strings"
)

// ForVerifiers returns the policy as a tlog-policy file for those who
// verify checkpoints: its logs and witnesses without their URLs (a
// witness's submission prefix is for the log alone, and may be an address
// only the log can reach), the groups its quorum involves, each defined
// before use, and the quorum. It parses to a policy that checks
// checkpoints as p does.
func (p *Policy) ForVerifiers() []byte {
	var b strings.Builder
	for _, l := range p.Logs {
		fmt.Fprintf(&b, "log %s\n", l.Key)
	}
	for _, w := range p.Witnesses {
		fmt.Fprintf(&b, "witness %s %s\n", w.Name, w.Key)
	}
	seen := map[*component]bool{}
	var group func(c *component)
	group = func(c *component) {
		if c.witness >= 0 || seen[c] {
			return
		}
		seen[c] = true
		names := make([]string, len(c.members))
		for i, m := range c.members {
			group(m)
			names[i] = m.name
		}
		fmt.Fprintf(&b, "group %s %d %s\n", c.name, c.threshold, strings.Join(names, " "))
	}
	if p.quorum != nil {
		group(p.quorum)
	}
	fmt.Fprintf(&b, "quorum %s\n", p.Quorum)
	return []byte(b.String())
}

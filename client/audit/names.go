package audit

import (
	"slices"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
)

// Match is a published name paired with a name in the ledger.
type Match struct {
	// Published is the name as published, or "" for a name in the ledger
	// that was not published.
	Published string `json:"published,omitempty"`
	// Ledger is the name in the ledger, and Index its endorsement's index.
	Ledger string `json:"ledger"`
	Index  uint64 `json:"index"`
}

// Ambiguous is a group of published names and ledger names that match one
// another, but not one to one: a name published once that two endorsements
// carry, say. A person has to decide which is which.
type Ambiguous struct {
	// How is the comparison that matched them: "exact", "folded",
	// "confusable" or "transliterated".
	How       string   `json:"how"`
	Published []string `json:"published"`
	Ledger    []Match  `json:"ledger"`
}

// Comparison is the outcome of [CompareNames].
type Comparison struct {
	// Exact are names equal after NFC and trimming.
	Exact []Match `json:"exact"`
	// Folded are names that differ only in case, spacing, diacritics or
	// character width (see names.Fold).
	Folded []Match `json:"folded"`
	// Confusable are names that differ only by look-alike characters, such
	// as a Cyrillic А in a Latin name (see names.Skeleton).
	Confusable []Match `json:"confusable"`
	// Transliterated are probable matches across scripts and
	// romanisations (see names.TransliterationKeys).
	Transliterated []Match `json:"transliterated"`
	// Ambiguous are matches that are not one to one.
	Ambiguous []Ambiguous `json:"ambiguous"`
	// NotInLedger are published names that match nothing in the ledger.
	NotInLedger []string `json:"not_in_ledger"`
	// Withdrawn are published names that match no endorsement that counts
	// but one that was withdrawn (see [Comparison.MarkWithdrawn]).
	Withdrawn []Match `json:"withdrawn"`
	// NotPublished are named endorsements that match no published name.
	NotPublished []Match `json:"not_published"`
}

// Identical reports whether every name matched exactly, both ways.
func (c *Comparison) Identical() bool {
	return len(c.Folded)+len(c.Confusable)+len(c.Transliterated)+len(c.Ambiguous)+len(c.NotInLedger)+len(c.Withdrawn)+len(c.NotPublished) == 0
}

// side is one name on either side of a comparison.
type side struct {
	name  string
	index uint64
	used  bool
}

// CompareNames compares a published list of names with the named entries
// of a roster. Each name is used once: a name listed twice needs two
// endorsements. Names are matched exactly (after NFC and trimming), then by
// names.Fold, then by names.Skeleton, then by names.TransliterationKeys. At
// each step, names that share a key match one to one when each side has as
// many of them; otherwise they are reported together as ambiguous. What is
// left is reported as not in the ledger, or not published. Entries without
// a name (private, redacted, withheld) are ignored.
func CompareNames(published []string, roster []RosterEntry) *Comparison {
	var pub, led []*side
	for _, p := range published {
		if p = records.CanonicalField(p); p != "" {
			pub = append(pub, &side{name: p})
		}
	}
	for _, e := range roster {
		if e.Disclosure != nil {
			led = append(led, &side{name: records.CanonicalField(e.Disclosure.GetName()), index: e.Index})
		}
	}
	c := &Comparison{}
	one := func(f func(string) string) func(string) []string {
		return func(s string) []string { return []string{f(s)} }
	}
	c.pass(pub, led, "exact", one(func(s string) string { return s }), &c.Exact)
	c.pass(pub, led, "folded", one(names.Fold), &c.Folded)
	c.pass(pub, led, "confusable", one(names.Skeleton), &c.Confusable)
	c.pass(pub, led, "transliterated", names.TransliterationKeys, &c.Transliterated)
	for _, p := range pub {
		if !p.used {
			c.NotInLedger = append(c.NotInLedger, p.name)
		}
	}
	for _, l := range led {
		if !l.used {
			c.NotPublished = append(c.NotPublished, Match{Ledger: l.name, Index: l.index})
		}
	}
	return c
}

// member is a name of a comparison with its keys.
type member struct {
	s    *side
	pub  bool
	keys []string
}

// groupByKeys groups the unused names of both sides that are linked by
// shared keys (a union-find over the keys), in the order first seen.
func groupByKeys(pub, led []*side, keys func(string) []string) [][]member {
	parent := map[string]string{}
	find := func(k string) string {
		for parent[k] != k {
			parent[k] = parent[parent[k]]
			k = parent[k]
		}
		return k
	}
	var members []member
	add := func(s *side, isPub bool) {
		ks := slices.DeleteFunc(keys(s.name), func(k string) bool { return k == "" })
		if s.used || len(ks) == 0 {
			return
		}
		for _, k := range ks {
			if _, ok := parent[k]; !ok {
				parent[k] = k
			}
		}
		for _, k := range ks[1:] {
			parent[find(k)] = find(ks[0])
		}
		members = append(members, member{s, isPub, ks})
	}
	for _, l := range led {
		add(l, false)
	}
	for _, p := range pub {
		add(p, true)
	}
	index := map[string]int{}
	var groups [][]member
	for _, m := range members {
		root := find(m.keys[0])
		i, ok := index[root]
		if !ok {
			i = len(groups)
			index[root] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], m)
	}
	return groups
}

// pass matches the unused names that share a key: a group of as many
// published names as ledger names, all with the same keys, matches one to
// one in order; any other group with names on both sides is ambiguous.
func (c *Comparison) pass(pub, led []*side, how string, keys func(string) []string, out *[]Match) {
	for _, g := range groupByKeys(pub, led, keys) {
		var ps, ls []member
		for _, m := range g {
			if m.pub {
				ps = append(ps, m)
			} else {
				ls = append(ls, m)
			}
		}
		if len(ps) == 0 || len(ls) == 0 {
			continue
		}
		same := len(ps) == len(ls)
		for _, m := range g[1:] {
			same = same && slices.Equal(m.keys, g[0].keys)
		}
		if same {
			for i := range ps {
				ps[i].s.used, ls[i].s.used = true, true
				*out = append(*out, Match{Published: ps[i].s.name, Ledger: ls[i].s.name, Index: ls[i].s.index})
			}
			continue
		}
		a := Ambiguous{How: how}
		for _, p := range ps {
			p.s.used = true
			a.Published = append(a.Published, p.s.name)
		}
		for _, l := range ls {
			l.s.used = true
			a.Ledger = append(a.Ledger, Match{Ledger: l.s.name, Index: l.s.index})
		}
		c.Ambiguous = append(c.Ambiguous, a)
	}
}

// MarkWithdrawn moves the published names that match no endorsement that
// counts, but match a withdrawn one (by any of the comparisons of
// [CompareNames]), from NotInLedger to Withdrawn.
func (c *Comparison) MarkWithdrawn(withdrawn []Match) {
	var keep []string
	for _, p := range c.NotInLedger {
		i := slices.IndexFunc(withdrawn, func(w Match) bool { return sameName(p, w.Ledger) })
		if i < 0 {
			keep = append(keep, p)
			continue
		}
		c.Withdrawn = append(c.Withdrawn, Match{Published: p, Ledger: withdrawn[i].Ledger, Index: withdrawn[i].Index})
	}
	c.NotInLedger = keep
}

// sameName reports whether two names match by any comparison.
func sameName(a, b string) bool {
	if names.Fold(a) == names.Fold(b) || names.Skeleton(a) == names.Skeleton(b) {
		return true
	}
	kb := names.TransliterationKeys(b)
	return slices.ContainsFunc(names.TransliterationKeys(a), func(k string) bool { return slices.Contains(kb, k) })
}

package audit

import (
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

// Comparison is the outcome of [CompareNames].
type Comparison struct {
	// Exact are names equal after NFC and trimming.
	Exact []Match `json:"exact"`
	// Folded are names that differ only in case, spacing, diacritics or
	// character width (see names.Fold).
	Folded []Match `json:"folded"`
	// Transliterated are probable matches across scripts and
	// romanisations (see names.TransliterationKey).
	Transliterated []Match `json:"transliterated"`
	// NotInLedger are published names that match nothing in the ledger.
	NotInLedger []string `json:"not_in_ledger"`
	// NotPublished are named endorsements that match no published name.
	NotPublished []Match `json:"not_published"`
}

// Identical reports whether every name matched exactly, both ways.
func (c *Comparison) Identical() bool {
	return len(c.Folded) == 0 && len(c.Transliterated) == 0 && len(c.NotInLedger) == 0 && len(c.NotPublished) == 0
}

// CompareNames compares a published list of names with the named entries
// of a roster. Each name is used once: a name listed twice needs two
// endorsements. Names are first matched exactly (after NFC and trimming),
// then by names.Fold, then by names.TransliterationKey; what is left is reported
// as not in the ledger, or not published. Entries without a name (private,
// redacted, withheld) are ignored.
func CompareNames(published []string, roster []RosterEntry) *Comparison {
	type side struct {
		name  string
		index uint64
		used  bool
	}
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
	pass := func(key func(string) string, out *[]Match) {
		byKey := map[string][]*side{}
		for _, l := range led {
			if !l.used {
				k := key(l.name)
				byKey[k] = append(byKey[k], l)
			}
		}
		for _, p := range pub {
			if p.used {
				continue
			}
			k := key(p.name)
			if k == "" {
				continue
			}
			cands := byKey[k]
			if len(cands) == 0 {
				continue
			}
			l := cands[0]
			byKey[k] = cands[1:]
			p.used, l.used = true, true
			*out = append(*out, Match{Published: p.name, Ledger: l.name, Index: l.index})
		}
	}
	pass(func(s string) string { return s }, &c.Exact)
	pass(names.Fold, &c.Folded)
	pass(names.TransliterationKey, &c.Transliterated)
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

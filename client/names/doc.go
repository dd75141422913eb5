// Package names compares names the way people read them: the keys under
// which the server searches a letter, the audit warns of probable
// duplicates, and diff matches a published list with a roster. Every such
// key is defined here, once, so that the server, the audit and the command
// line cannot drift apart.
//
// # Keys
//
//   - [Fold]: case, spacing, diacritics, strokes and character width
//     removed. "ŁAPIŃSKA  Hanna" and "lapinska hanna" fold alike. The server
//     stores it with each public disclosure to search by name, the audit
//     compares it to warn of probable duplicates, and diff uses it for the
//     names that differ "only in case, spacing, diacritics or width".
//   - [TransliterationKey]: a looser key under which spellings of one name in
//     Belarusian or Russian Cyrillic, Łacinka and common Latin romanisations
//     meet, to find probable matches for a person to check.
//
// # Not for deduplication
//
// None of these keys decides whether two endorsements are the same person.
// Deduplication (DESIGN.md §3.2) uses the exact fields after NFC and
// trimming (records.CanonicalFields): two people may share a folded name,
// and a name is never transliterated or case-folded in the log.
package names

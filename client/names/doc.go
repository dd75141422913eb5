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
//   - [Skeleton]: the confusables skeleton of Unicode UTS #39, after
//     [Fold]: names that differ only by look-alike characters (a Cyrillic
//     "А" in a Latin name) share it; [LookAlike] says so of two names.
//   - [TransliterationKeys]: looser keys under which spellings of one name
//     in Belarusian or Russian Cyrillic, Łacinka, the official passport
//     systems and the Polish, Lithuanian and German spellings of the
//     diaspora meet, one key per reading where a spelling is ambiguous, to
//     find probable matches for a person to check.
//
// # Not for deduplication
//
// None of these keys decides whether two endorsements are the same person.
// Deduplication (DESIGN.md §3.2) uses the exact fields after NFC and
// trimming (records.CanonicalFields): two people may share a folded name,
// and a name is never transliterated or case-folded in the log.
package names

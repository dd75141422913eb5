// Package rules holds the rules of a letter (DESIGN.md §3.2), written once:
// given the state of the log before a record, [Apply] says what the record
// does ([Change]) or which rule it breaks. The server's admission, the
// audit's replay, the stores' counts (checked against it in tests) and the
// browser verifier all use it, so that what the server accepts is exactly
// what an auditor accepts.
//
// The package imports only [github.com/undersigned/undersigned/client/records],
// the generated messages and the standard library, so that it links into a
// WebAssembly build.
//
// # What Apply checks, and what it leaves to its caller
//
// Apply checks the rules that depend on the log's state: the letter exists
// and is open, every organiser signature is by a key valid for the letter
// at that point (the keys it lists, as organiser changes added and revoked
// them: a revocation applies from its index on, and what a key signed
// before stays valid), a commitment and a withdrawal lock appear at most once in the
// whole log (withdrawn or not), the target of a withdrawal, redaction or
// correction is live, a withdrawal secret is spent once (a redaction may
// reveal a spent one: it can only hide a name), "the same person" appears
// once in a letter and only as an exact repeat, a redacted person comes back
// only when asked for explicitly, a letter id is used once, and an
// organiser change adds a key that is neither valid nor revoked (a revoked
// key is never valid again for that letter), or revokes a valid key that
// is not the letter's last.
//
// It assumes that the record's own fields and signatures were checked with
// records.CheckLetter, CheckEndorsement, CheckDisclosure, CheckWithdrawal,
// CheckRedaction, CheckStatus or CheckOrganiserChange: those are expensive
// and stateless, so the server checks them before admission and the audit
// checks them in parallel. Apply never verifies a signature: it reads the
// key an organiser signature names, and checks that key against the
// letter's keys at that point.
//
// # State
//
// A [State] answers questions about the log before the record: a letter by
// id (with the organiser keys valid at that point, those revoked, and its
// last organiser change), an endorsement by index,
// where a commitment or a lock was accepted, the live endorsement of "the
// same person" in a letter, and tombstones left by redactions. The server
// implements it over its store transaction, with every person key turned
// into a hash keyed with its secret; the audit implements it over its
// in-memory model, and knows only what the log and the public disclosures
// say: it answers no idempotency key, no tombstone and no fields of a private
// endorsement, so the audit checks the person rules only where the log shows
// them (signer keys).
//
// Two States are here: [Memory], which keeps everything it is given (the
// reference the stores are checked against in tests), and [Follower], the
// compact state of a reader that follows a whole log as anyone reads it
// (the browser's verifier and the server's pages), which like the audit
// knows signer keys as the only person keys.
//
// # The same person
//
// Two endorsements of a letter are of the same person when they share a
// [PersonKey] (DESIGN.md §6, [PersonKeysOf]): the idempotency key the
// writer gave; the signer key; or, for an endorsement with neither, the
// exact fields (name, affiliation, country after NFC and trimming). Looser
// folding (case, diacritics, script) is for search and warnings, never for
// this. A write for the same person repeats the earlier record only if every
// signed field but the commitment and the lock is equal; otherwise it
// conflicts. Both are an [*ExistsError]: the server answers an exact repeat
// with the earlier record to the principal that wrote it, and AlreadyExists
// with no content to anyone else.
//
// # Errors
//
// A record that breaks a rule gets a [*records.FieldError] (a field and a
// rule), a [*StateError] (a rule of the log's state, such as a closed
// letter) or an [*ExistsError] (the record is about what an earlier record
// settled). No error names a person. Any other error comes from the State.
package rules

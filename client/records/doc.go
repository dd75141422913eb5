// Package records defines what an undersigned log holds and how it is signed:
// the byte layouts of DESIGN.md §3.1, the commitments and locks that keep
// names out of the log, the signatures of organisers and signers, and the
// rules of §3.2 that every record obeys.
//
// The server, the command line and auditors all use this package, so that
// the server produces exactly what clients verify. Other implementations can
// check themselves against the test vectors in client/testdata/vectors.json.
//
// # Byte layouts
//
// lp(x) is the 4-byte big-endian length of x followed by x; u8 and u64 are
// big-endian; H is SHA-256. Every signature is over a tag followed by a
// statement:
//
//   - endorsement statement S = lp(origin) ‖ lp(letter id) ‖ digest ‖
//     commitment ‖ withdrawal lock ‖ u64(supersedes + 1, or 0) ‖
//     u8(verification) ‖ u8(visibility) ‖ lp(signer public key, or empty
//     when there is none), signed with [TagSigner] or [TagOrganiser]: the
//     organiser vouches for whether a signer key is attached, and which;
//   - withdrawal and redaction statement W = lp(origin) ‖ u8(kind) ‖
//     u64(target index) ‖ target leaf hash ‖ u8(reason), signed with
//     [TagWithdraw] or [TagRedact];
//   - letter statement = lp(origin) ‖ lp(id) ‖ lp(title) ‖ text digest ‖
//     lp(language) ‖ u8(policy) ‖ u8(number of keys) ‖ lp(key)… ‖
//     lp(revises), signed with [TagLetter];
//   - status statement = lp(origin) ‖ lp(letter id) ‖ u8(status) ‖ lp(note),
//     signed with [TagStatus];
//   - organiser-change statement = lp(origin) ‖ lp(letter id) ‖ u8(change) ‖
//     lp(key), signed with [TagOrganiserChange].
//
// A commitment is H([TagCommitment] ‖ salt ‖ lp(name) ‖ lp(affiliation) ‖
// lp(country)) and a withdrawal lock is H([TagWithdrawalLock] ‖ secret).
//
// # Organiser keys
//
// A letter lists its organiser keys, and OrganiserChange records add and
// revoke them later. Which keys are valid at a record's index is a fact of
// the log's state, so the checks here verify each organiser signature
// against the key it names, and rules.Apply (package client/rules) checks
// that the key was valid for the letter at that point. Only a letter's own
// signature is checked against a list here: the keys it lists itself.
//
// # Errors
//
// Every rule that a record or a disclosure breaks is reported as a
// [*FieldError] naming the field (a dotted path such as "disclosure.name")
// and the rule. A bad signature is a [*FieldError] too, whose rule wraps
// [ErrBadSignature].
package records

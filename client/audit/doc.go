// Package audit mirrors and verifies a whole undersigned log, as a
// journalist, a watchdog or a letter's addressee would, against a server
// they do not trust.
//
// An [Auditor] reads the log from a [Source] (the gRPC API, see
// [NewGRPCSource], or plain HTTP with the tlog-tiles API and the disclosure
// bundles, see [NewHTTPSource], which also reads a mirror or a CDN copy),
// from the last checkpoint it trusted to the latest one. It recomputes the
// Merkle tree and checks it against the new signed checkpoint, checks that
// checkpoint's consistency with the old one, decodes every record and
// checks every rule of DESIGN.md §3 and §4, and keeps what it learnt in a
// [State] folder, so that the next audit fetches only the new entries.
//
// # What is checked
//
// For every entry: that it is a canonical version 1 record (see
// records.Decode) and that its leaf is in the signed tree. Then, by kind:
//
//   - a letter: its fields and its organiser's signature
//     (records.CheckLetter), a unique id, and that a revised letter exists;
//   - an endorsement: that its letter exists and was not closed, the digest
//     and the signatures its letter's policy requires
//     (records.CheckEndorsement), and a supersedes that points at an
//     earlier endorsement of the same letter that was neither withdrawn nor
//     superseded, signed by the same signer key when that one was;
//   - a withdrawal or a redaction: that its target is an earlier
//     endorsement, its authorisation (records.CheckWithdrawal,
//     records.CheckRedaction), that the target was not already withdrawn
//     (or superseded) or redacted, that a withdrawal is not authorised by a
//     secret already revealed (a redaction may be: it can only hide a
//     name), and that only a public endorsement is redacted;
//   - a status change: its letter, its signature (records.CheckStatus) and
//     that a letter is closed only once;
//   - an organiser change: its letter, its signature
//     (records.CheckOrganiserChange, by another key than the one it
//     changes), and that it adds a key neither valid nor revoked, or
//     revokes a valid key that is not the letter's last.
//
// Every organiser signature (of a letter revising another, an
// endorsement, a withdrawal or redaction, a status, an organiser change)
// must be by a key valid for the letter at that index: the keys the letter
// lists, as organiser changes added and revoked them. A record signed by a
// key after its revocation is a violation naming the record's index; what
// the key signed before stays valid. [State.Changes] lists the organiser
// changes with the key each added or revoked and the key that signed it.
//
// Every public endorsement must have a disclosure that opens its
// commitment, or a redaction: otherwise it is withheld ([RuleWithheld]). A
// disclosure must not be served for a private endorsement, nor once its
// endorsement was redacted. A commitment or a withdrawal lock accepted
// twice in the log is a replay ([RuleReplay]), reported with the earlier
// index; so is a signer key that still counts in its letter used again.
//
// The rules that depend on the log's state are not written here: the
// replay applies the one rules function (package client/rules) that the
// server applies when it admits a write, to a state the model answers from
// what the log and the public disclosures show, and its errors are the
// violations. So an honest log never breaks one.
//
// # Entries no server admitted
//
// Trillian accepts leaves from anyone who can reach it. A leaf that no
// server of the log admitted (queued on Trillian directly, or a second
// copy of an entry) stays in the log; the server marks it as foreign when
// it serves the entries over gRPC, and lists it over plain HTTP in the
// foreign marks of its entry bundle (/log/foreign/<N>, see
// records.DecodeForeignMarks). The audit reports it ([RuleForeign]) and
// skips it: the rules are not applied to it, and it changes no roster, as
// it changes nothing on the server. A source that serves no foreign marks
// (a mirror of the tlog-tiles resources alone) gives entries marked
// NoForeignMarks, counted in [Report.ForeignNotChecked]: such a leaf is
// then judged by the rules alone, and counts if it keeps them.
//
// # Violations, forks and evidence
//
// A broken rule is a [Violation] naming the index of the entry and the
// [Rule]. A checkpoint that does not extend the last trusted one (a fork, a
// rewritten history) is reported with both signed checkpoints written to an
// evidence file, which can be published: anyone can check the two
// signatures.
//
// # Witnesses and other sources
//
// With a witness policy (Config.Policy, see package policy), a checkpoint
// the audit would trust must carry the cosignatures of the policy's quorum:
// otherwise it is a [RuleWitnesses] violation naming the witnesses whose
// cosignature is missing or invalid, and the state does not advance.
// [Auditor.Compare] checks a checkpoint that another source holds (a
// mirror, a witness's view of the log) against the trusted one: two
// histories are a [RuleFork] violation, with both signed checkpoints
// written as evidence.
//
// # Hostile sources
//
// A source may be hostile. [NewHTTPSource] bounds every fetch in time and
// in size, to what the resource can hold (a checkpoint, a tile of 256
// hashes, an entry bundle of 256 entries, a disclosure bundle of 256
// disclosures of bounded fields, the foreign marks of 256 indexes), and
// decodes disclosure bundles and foreign marks as they arrive;
// [NewGRPCSource] bounds every call, and a stream between two messages. A
// resource that breaks its format (too large, a disclosure index or a
// foreign mark repeated or outside its bundle) is a [RuleSource] violation
// naming its URL and the index; a source that does not answer in time is
// an error saying so.
//
// # The state
//
// A [State] folder holds the last trusted checkpoint, the compact range of
// its tree, and a mirror of every entry with its disclosure; redacted
// disclosures are erased from the mirror too. The checkpoint and the
// range are in a small JSON file replaced atomically after the mirror is
// synced, so that a crash leaves the state as it was before or after an
// audit. One audit at a time holds a folder ([OpenState]); readers open it
// with [ReadState]. Rosters at any tree size ([State.Roster]) and the
// changes between two sizes ([State.Changes]) are computed from it offline.
//
// # Names
//
// [CompareNames] compares a published list with a roster, with the keys of
// package client/names (names.Fold, names.Skeleton,
// names.TransliterationKeys); the audit's probable-duplicate warnings
// compare names.Skeleton, so that names differing only by look-alike
// characters are flagged too.
package audit

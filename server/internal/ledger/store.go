package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"

	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Kind is the kind of a record, as the store indexes it.
type Kind int

// The kinds of record.
const (
	KindLetter      Kind = 1
	KindEndorsement Kind = 2
	KindWithdrawal  Kind = 3
	KindRedaction   Kind = 4
	KindStatus      Kind = 5
	// KindOrganiserChange is an organiser key added to a letter or
	// revoked.
	KindOrganiserChange Kind = 6
)

// KindOf returns the kind of a record.
func KindOf(r *pb.Record) Kind {
	switch r.GetKind().(type) {
	case *pb.Record_Letter:
		return KindLetter
	case *pb.Record_Endorsement:
		return KindEndorsement
	case *pb.Record_Withdrawal:
		return KindWithdrawal
	case *pb.Record_Redaction:
		return KindRedaction
	case *pb.Record_LetterStatus:
		return KindStatus
	case *pb.Record_OrganiserChange:
		return KindOrganiserChange
	}
	return 0
}

// NoIndex marks an admitted entry whose log index is not known yet.
const NoIndex = -1

// Entry is an admitted record as the store keeps it. Seq is the admission
// order (on the embedded engine also the order of the log); Index is the
// log index, or [NoIndex] while the entry is pending.
type Entry struct {
	Seq       int64
	Index     int64
	LeafHash  []byte
	Kind      Kind
	LetterID  string
	Record    []byte
	Principal string
}

// Endorsement is the state of an admitted endorsement.
type Endorsement struct {
	Entry
	Endorsement *pb.Endorsement
	// WithdrawnBy, RedactedBy and SupersededBy are the seqs of the records
	// that did so, or 0.
	WithdrawnBy, RedactedBy, SupersededBy int64
	// SecretSpent is true once the withdrawal secret was revealed.
	SecretSpent bool
}

// NewEntry is an entry to admit.
type NewEntry struct {
	Entry
	// DedupKeys are the keys under which the entry is found again, until
	// it is withdrawn, redacted or superseded.
	DedupKeys [][]byte
	// PermanentKeys are dedup keys that are never freed.
	PermanentKeys [][]byte
	// Disclosure is kept for a public endorsement; nil otherwise.
	Disclosure *pb.Disclosure
	// FoldedName is the disclosure's name folded for search.
	FoldedName string
	// Endorsement fields the store indexes, for KindEndorsement.
	Visibility   pb.Visibility
	Verification pb.Verification
	SignerKey    []byte
}

// Target names what a withdrawal, redaction or correction did to an
// endorsement.
type Target int

// The things that can happen to an endorsement.
const (
	TargetWithdrawn Target = iota + 1
	TargetRedacted
	TargetSuperseded
)

// AdmitTx is the transaction in which a batch of writes is admitted. Reads
// see the writes made earlier in the same transaction.
type AdmitTx interface {
	// LookupDedup returns the seq of the entry stored under key.
	LookupDedup(ctx context.Context, key []byte) (seq int64, found bool, err error)
	// EntryBySeq returns an admitted entry.
	EntryBySeq(ctx context.Context, seq int64) (*Entry, error)
	// EndorsementByIndex returns the endorsement at a log index, or nil.
	EndorsementByIndex(ctx context.Context, index uint64) (*Endorsement, error)
	// Insert admits an entry and returns its seq. A dedup key already in
	// the index passes to the new entry: a correction takes over the keys
	// it shares with the endorsement it supersedes.
	Insert(ctx context.Context, e *NewEntry) (int64, error)
	// Mark records that the endorsement at seq was withdrawn, redacted or
	// superseded by the entry bySeq; spent records that its withdrawal
	// secret was revealed. A redaction also deletes the disclosure, and
	// every mark deletes the endorsement's dedup keys.
	Mark(ctx context.Context, seq int64, what Target, bySeq int64, spent bool) error
	// SetLetterStatus records a status of a letter.
	SetLetterStatus(ctx context.Context, letterID string, status pb.Status, seq int64) error
	// SetOrganiserKeys records the organiser keys of a letter after the
	// organiser change at seq: those valid, and those revoked.
	SetOrganiserKeys(ctx context.Context, letterID string, keys, revoked [][]byte, seq int64) error
	// Letter returns the letter with this id as admitted so far (its
	// Record may be left out), or nil when there is none. Admission reads
	// a letter's state here, within the transaction, rather than from a
	// cache: another frontend may have closed it.
	Letter(ctx context.Context, id string) (*LetterRow, error)
}

// Prefetcher is an [AdmitTx] that can load, in a few round trips, the rows
// a batch of writes is about to look up one by one. The ledger calls
// Prefetch once per batch, before the writes, when the transaction offers
// it; a store across a network (PostgreSQL) does, an embedded one need not.
type Prefetcher interface {
	Prefetch(ctx context.Context, p Prefetch) error
}

// Prefetch lists what a batch of writes will look up.
type Prefetch struct {
	// DedupKeys are the keys the writes will look up, with the entries
	// stored under them.
	DedupKeys [][]byte
	// Letters are the letter ids whose state the writes will read.
	Letters []string
	// Targets are the log indexes of the endorsements the writes act on.
	Targets []uint64
}

// Assignment is the log index of an admitted entry.
type Assignment struct {
	Seq   int64
	Index uint64
}

// LetterRow is a letter as the store keeps it.
type LetterRow struct {
	Seq          int64
	Index        int64
	Record       []byte
	ClosedSeq    int64
	DeliveredSeq int64
	// KeysSeq is the seq of the letter's last organiser change, or 0 when
	// it had none; OrganiserKeys and RevokedKeys are the keys valid and
	// revoked after it (when KeysSeq is 0, the keys the letter lists, and
	// none).
	KeysSeq                    int64
	OrganiserKeys, RevokedKeys [][]byte
}

// Counts tallies a letter's endorsements at a tree size.
type Counts struct {
	Public, Private, Redacted, Withdrawn, Superseded uint64
}

// RosterRow is one endorsement that counts.
type RosterRow struct {
	Index      uint64
	Record     []byte
	Disclosure *pb.Disclosure
	Redacted   bool
}

// DisclosureRow is a public disclosure at an index.
type DisclosureRow struct {
	Index      uint64
	Disclosure *pb.Disclosure
}

// EndorsementState is what became of an endorsement by a tree size.
type EndorsementState struct {
	Index                                 uint64
	WithdrawnBy, RedactedBy, SupersededBy int64 // log indexes, or -1
}

// Store keeps everything beside the log: admitted entries (the intents),
// the dedup index, public disclosures and the indexes that answer reads.
// Implementations: SQLite in the data folder (package sqlitestore, the
// embedded engine), PostgreSQL (package pgstore, the Trillian engine).
type Store interface {
	// Admit runs fn in one transaction and commits it durably.
	Admit(ctx context.Context, fn func(AdmitTx) error) error
	// Assign records the log indexes of admitted entries, and that every
	// entry below watermark has its index.
	Assign(ctx context.Context, a []Assignment, watermark uint64) error
	// Unassign forgets the indexes from from on, and moves the watermark
	// back to from: the log lost those entries and they will be appended
	// again.
	Unassign(ctx context.Context, from uint64) error
	// Watermark returns the size of the log prefix whose entries all have
	// their index recorded.
	Watermark(ctx context.Context) (uint64, error)
	// Unassigned returns, in seq order, the entries whose index is not
	// recorded or is at least from.
	Unassigned(ctx context.Context, from uint64) ([]Entry, error)
	// Letters returns every admitted letter, in seq order.
	Letters(ctx context.Context) ([]LetterRow, error)
	// EntryByIndex returns the entry at a log index.
	EntryByIndex(ctx context.Context, index uint64) (*Entry, error)
	// IndexOfSeq returns the log index of an admitted entry, or NoIndex.
	IndexOfSeq(ctx context.Context, seq int64) (int64, error)
	// Disclosures returns the public, unredacted disclosures of the
	// entries in [from, to).
	Disclosures(ctx context.Context, from, to uint64) ([]DisclosureRow, error)
	// Redacted returns which of the endorsements in [from, to) are
	// redacted.
	Redacted(ctx context.Context, from, to uint64) (map[uint64]bool, error)
	// Roster returns up to limit endorsements of a letter that count at
	// tree size, with index above after (or from the start when after is
	// -1), and the counts at that size.
	Roster(ctx context.Context, letterID string, size uint64, after int64, limit int) ([]RosterRow, Counts, error)
	// Find returns public endorsements of a letter that count at size and
	// whose folded name contains folded.
	Find(ctx context.Context, letterID, folded string, size uint64, limit int) ([]RosterRow, error)
	// Endorsement returns the state of the endorsement at index, as of
	// size, or nil when there is none.
	Endorsement(ctx context.Context, index, size uint64) (*EndorsementState, error)
	// Purge makes the rows deleted by redactions unrecoverable from the
	// store's files and caches.
	Purge(ctx context.Context) error
	// Tokens returns the token store.
	Tokens() TokenStore
	// Close closes the store.
	Close() error
}

// Token is an API token as stored: only its hash.
type Token struct {
	ID      string
	Hash    []byte
	Name    string
	Letters []string // empty: every letter
	Created int64
	Revoked int64
}

// TokenStore keeps API tokens, hashed.
type TokenStore interface {
	// Create stores a new token.
	Create(ctx context.Context, t Token) error
	// ByHash returns the unrevoked token with this hash, or nil.
	ByHash(ctx context.Context, hash []byte) (*Token, error)
	// List returns every token.
	List(ctx context.Context) ([]Token, error)
	// Revoke revokes a token by id; it reports whether one was revoked.
	Revoke(ctx context.Context, id string, at int64) (bool, error)
}

// LeafEntry is what a store knows of the entry with a given leaf hash.
type LeafEntry struct {
	// Seq is the entry's seq, or 0 when no admitted entry has that hash.
	Seq int64
	// Index is its recorded log index, or [NoIndex].
	Index int64
}

// UnorderedStore is a [Store] for a log that orders entries itself
// ([UnorderedLog]): indexes are matched to entries by leaf hash, and
// several frontends may share the store, so what admission reads of a
// letter comes from the store.
type UnorderedStore interface {
	Store
	// LeafEntries returns, for each leaf hash, the entry that has it.
	LeafEntries(ctx context.Context, leafHashes [][]byte) ([]LeafEntry, error)
	// UnindexedBefore reports whether an entry of letterID admitted before
	// seq has no index yet.
	UnindexedBefore(ctx context.Context, letterID string, seq int64) (bool, error)
	// LetterByID returns the admitted letter with this id, or nil.
	LetterByID(ctx context.Context, id string) (*LetterRow, error)
	// Unindexed returns, in seq order, the entries whose index is not
	// recorded.
	Unindexed(ctx context.Context) ([]Entry, error)
}

// EncodeKeys returns Ed25519 public keys as a store keeps them: one after
// the other, 32 bytes each.
func EncodeKeys(keys [][]byte) []byte {
	b := make([]byte, 0, len(keys)*ed25519.PublicKeySize)
	for _, k := range keys {
		b = append(b, k...)
	}
	return b
}

// DecodeKeys reads keys written by [EncodeKeys].
func DecodeKeys(b []byte) ([][]byte, error) {
	if len(b)%ed25519.PublicKeySize != 0 {
		return nil, fmt.Errorf("stored organiser keys: %d bytes, not a multiple of %d", len(b), ed25519.PublicKeySize)
	}
	keys := make([][]byte, 0, len(b)/ed25519.PublicKeySize)
	for ; len(b) > 0; b = b[ed25519.PublicKeySize:] {
		keys = append(keys, bytes.Clone(b[:ed25519.PublicKeySize]))
	}
	return keys, nil
}

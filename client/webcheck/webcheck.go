// Package webcheck is what the web page's WebAssembly does: it verifies
// receipts with the same packages as `undersigned verify` (client/receipt,
// client/records), and builds and signs endorsements of open letters with
// the command line's code (client/signing).
//
// # What the page fetches
//
// A receipt must never leave the browser, and no request may reveal
// anything of it: not its bytes, and not its index or its checkpoint's
// size either, which the paths of tiles and consistency proofs would give
// away. So the online check fetches only what every visitor fetches, before
// any receipt is given: the latest checkpoint, every entry bundle of the
// log ([Log.BundlePaths]) and the foreign marks of each ([Log.ForeignPaths]).
// From them [Log] recomputes the tree (it must give the checkpoint's root)
// and the state of every endorsement, and a receipt is then checked
// locally: its checkpoint's root must be the tree's root at that size
// (consistency), and its endorsement's state is read from the log's own
// withdrawals, redactions and corrections.
//
// An entry the server marks as foreign (no server of the log admitted it:
// it was queued on the log's storage directly) is skipped by the rules, as
// the server and the audit skip it: it changes nothing, and a receipt for
// it is invalid, so that the page agrees with the server's counts.
//
// What each record does is decided by the rules of a letter (package
// client/rules, through a rules.Follower), the function the server's
// admission and the audit apply: a withdrawal by a key revoked before it,
// a second withdrawal or a correction of a withdrawn endorsement does
// nothing here either, and the page says that the log holds records that
// break its rules ([Log.Broken]). The page does not verify the records'
// signatures (the audit does): it checks the state they lead to, and the
// leaf hash each withdrawal, redaction or correction names.
//
// The cost is the whole log, once per page load: about 300 bytes per entry
// (30 MB for 100,000 entries), from bundles that browsers and caches keep
// (full bundles are immutable). That is the price of revealing nothing.
//
// It needs no network and links no gRPC.
package webcheck

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/receipt"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// State is the outcome of a check, as the page shows it in the data-state
// attribute of its result.
type State string

// The states of a checked receipt.
const (
	// Counted: the endorsement counts.
	Counted State = "counted"
	// Withdrawn: a later withdrawal removed it.
	Withdrawn State = "withdrawn"
	// Redacted: it counts, but its name was redacted.
	Redacted State = "redacted"
	// Superseded: a later correction replaced it.
	Superseded State = "superseded"
	// Invalid: the receipt does not verify; the reason says why.
	Invalid State = "invalid"
	// Included: the receipt verifies offline (signature, inclusion, name)
	// but its current state was not checked: no log was loaded.
	Included State = "included"
)

// Result is what a check found.
type Result struct {
	State State `json:"state"`
	// Reason says why a receipt is invalid.
	Reason string `json:"reason,omitempty"`
	// Kind is the record's kind: letter, endorsement, withdrawal, redaction
	// or letter_status.
	Kind   string `json:"kind,omitempty"`
	Index  uint64 `json:"index"`
	Letter string `json:"letter,omitempty"`
	// Name is the name in the receipt's disclosure, if it carries one.
	Name string `json:"name,omitempty"`
	// Private is true for an endorsement that is counted but never named.
	Private bool `json:"private,omitempty"`
	// CheckpointSize is the size of the receipt's checkpoint, LatestSize
	// that of the log's latest one (0 offline).
	CheckpointSize uint64 `json:"checkpoint_size"`
	LatestSize     uint64 `json:"latest_size,omitempty"`
	// By is the index of the withdrawal, redaction or correction.
	By *uint64 `json:"by,omitempty"`
	// LogBroken, when the loaded log holds records that break its rules,
	// says how many and names the first (they changed nothing here).
	LogBroken string `json:"log_broken,omitempty"`
	// Witnesses says, with a witness policy, which quorum the receipt's
	// checkpoint meets and by whom (see [VerifyWitnessed]).
	Witnesses string `json:"witnesses,omitempty"`
}

// Log is the log as the page loaded it: the tree of every entry and what
// became of each endorsement. Build it with [NewLog], add every bundle of
// [Log.BundlePaths] in order with [Log.AddBundle], then call
// [Log.Complete].
type Log struct {
	verifier   note.Verifier
	checkpoint *log.Checkpoint
	// raw is the latest checkpoint as signed, and witnessed what the
	// policy found in it (nil until [Log.CheckPolicy] accepts it).
	raw        []byte
	witnessed  fmt.Stringer
	hashes     []tlog.Hash // stored hashes, as golang.org/x/mod/sumdb/tlog lays them out
	size       uint64
	leafHashes []tlog.Hash
	// rules follows what each record does.
	rules    *rules.Follower
	broken   []Broken
	foreign  []uint64
	complete bool
}

// Broken is a record of the log that breaks its rules: it changed nothing.
type Broken struct {
	Index uint64
	// Rule is the rule it breaks, for people.
	Rule string
}

// NewLog starts loading the log whose latest checkpoint is checkpoint,
// which must be signed by v.
func NewLog(v note.Verifier, checkpoint []byte) (*Log, error) {
	cp, _, _, err := log.ParseCheckpoint(checkpoint, v.Name(), v)
	if err != nil {
		return nil, fmt.Errorf("the log's latest checkpoint: %w", err)
	}
	l := &Log{verifier: v, checkpoint: cp, raw: bytes.Clone(checkpoint), rules: rules.NewFollower()}
	l.rules.Reserve(int(min(cp.Size, 1<<24)))
	return l, nil
}

// Size returns the size of the latest checkpoint.
func (l *Log) Size() uint64 { return l.checkpoint.Size }

// BundlePaths returns the paths, relative to the log's tlog-tiles root,
// of every entry bundle of the latest checkpoint, in order.
func (l *Log) BundlePaths() []string {
	var paths []string
	for n := uint64(0); n*layout.EntryBundleWidth < l.checkpoint.Size; n++ {
		paths = append(paths, layout.EntriesPath(n, layout.PartialTileSize(0, n, l.checkpoint.Size)))
	}
	return paths
}

// ForeignPaths returns the paths, relative to the log's tlog-tiles root,
// of the foreign marks of every entry bundle of [Log.BundlePaths], in the
// same order (see records.DecodeForeignMarks).
func (l *Log) ForeignPaths() []string {
	var paths []string
	for n := uint64(0); n*layout.EntryBundleWidth < l.checkpoint.Size; n++ {
		paths = append(paths, "foreign/"+layout.NWithSuffix(0, n, layout.PartialTileSize(0, n, l.checkpoint.Size)))
	}
	return paths
}

func (l *Log) hashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(indexes))
		for i, x := range indexes {
			if x < 0 || x >= int64(len(l.hashes)) {
				return nil, fmt.Errorf("hash %d is not loaded", x)
			}
			out[i] = l.hashes[x]
		}
		return out, nil
	})
}

// AddBundle adds the next entry bundle, and its foreign marks as served
// at the matching path of [Log.ForeignPaths]: a JSON array of the indexes
// of the bundle's entries that no server of the log admitted. A full
// bundle holds 256 entries; the last may be partial. Marks that repeat an
// index or name one outside the bundle are refused.
func (l *Log) AddBundle(data, foreignMarks []byte) error {
	if l.complete {
		return errors.New("the log is complete")
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(data); err != nil {
		return fmt.Errorf("entry bundle at %d: %w", l.size, err)
	}
	want := min(uint64(layout.EntryBundleWidth), l.checkpoint.Size-l.size)
	if uint64(len(b.Entries)) < want || l.size%layout.EntryBundleWidth != 0 {
		return fmt.Errorf("entry bundle at %d holds %d entries, want %d", l.size, len(b.Entries), want)
	}
	if len(foreignMarks) > records.MaxForeignMarksBytes {
		return fmt.Errorf("the foreign marks of the entry bundle at %d: larger than the %d bytes they can hold", l.size, records.MaxForeignMarksBytes)
	}
	marks, err := records.DecodeForeignMarks(l.size/layout.EntryBundleWidth, bytes.NewReader(foreignMarks))
	if err != nil {
		return fmt.Errorf("the entry bundle at %d: %w", l.size, err)
	}
	for _, e := range b.Entries[:want] {
		if err := l.add(e, slices.Contains(marks, l.size)); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) add(entry []byte, foreign bool) error {
	h := tlog.RecordHash(entry)
	stored, err := tlog.StoredHashesForRecordHash(int64(l.size), h, l.hashReader())
	if err != nil {
		return fmt.Errorf("entry %d: %w", l.size, err)
	}
	l.hashes = append(l.hashes, stored...)
	l.leafHashes = append(l.leafHashes, h)
	index := l.size
	l.size++
	if foreign {
		l.rules.Skip()
		l.foreign = append(l.foreign, index)
		return nil
	}
	l.apply(index, entry)
	return nil
}

// apply applies the entry at index with the rules of a letter. The page
// checks no signature and leaves the canonical encoding of records to the
// audit (both cost more than the rest of loading), but a withdrawal or a
// redaction must name its target's leaf hash. A record that breaks a rule
// changes nothing, and is kept in [Log.Broken].
func (l *Log) apply(index uint64, entry []byte) {
	rec, err := decode(entry)
	if err == nil {
		err = l.checkTarget(index, rec)
	}
	if err == nil {
		_, err = l.rules.Append(rec, l.leafHashes[index][:])
	} else {
		// The index is taken all the same.
		_, _ = l.rules.Append(&pb.Record{}, l.leafHashes[index][:])
	}
	if err != nil {
		l.broken = append(l.broken, Broken{Index: index, Rule: err.Error()})
	}
}

// decode reads a version 1 record of one kind.
func decode(entry []byte) (*pb.Record, error) {
	rec := new(pb.Record)
	if err := proto.Unmarshal(entry, rec); err != nil {
		return nil, fmt.Errorf("not a record: %w", err)
	}
	if rec.GetVersion() != records.Version || rec.GetKind() == nil {
		return nil, fmt.Errorf("not a version %d record of one kind", records.Version)
	}
	return rec, nil
}

// checkTarget checks the leaf hash a withdrawal or a redaction names.
func (l *Log) checkTarget(index uint64, rec *pb.Record) error {
	var t uint64
	var leaf []byte
	switch k := rec.GetKind().(type) {
	case *pb.Record_Withdrawal:
		t, leaf = k.Withdrawal.GetTargetIndex(), k.Withdrawal.GetTargetLeafHash()
	case *pb.Record_Redaction:
		t, leaf = k.Redaction.GetTargetIndex(), k.Redaction.GetTargetLeafHash()
	default:
		return nil
	}
	if t >= index || !bytes.Equal(l.leafHashes[t][:], leaf) {
		return fmt.Errorf("%s: the target leaf hash is not that of the entry at %d", kindOf(rec), t)
	}
	return nil
}

// Broken returns the records of the loaded log that break its rules, in
// index order: an honest log has none.
func (l *Log) Broken() []Broken { return l.broken }

// Foreign returns the indexes of the entries of the loaded log that its
// server marks as foreign, in order: they changed nothing. A log that
// orders its own entries has none.
func (l *Log) Foreign() []uint64 { return l.foreign }

// isForeign reports whether the entry at index is marked foreign.
func (l *Log) isForeign(index uint64) bool {
	_, found := slices.BinarySearch(l.foreign, index)
	return found
}

// notAdmitted is why a foreign entry does not count.
const notAdmitted = "the log holds this record, but its server says that no server of the log admitted it (it was queued on the log's storage directly): it does not count"

// Complete checks that every entry of the latest checkpoint was added and
// that they give its root. Until it succeeds, [Verify] does not use the
// log.
func (l *Log) Complete() error {
	if l.size != l.checkpoint.Size {
		return fmt.Errorf("loaded %d entries of %d", l.size, l.checkpoint.Size)
	}
	root, err := l.treeHash(l.size)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, l.checkpoint.Hash) {
		return errors.New("the log's entries do not give the root of its signed checkpoint")
	}
	l.complete = true
	return nil
}

func (l *Log) treeHash(n uint64) ([]byte, error) {
	if n == 0 {
		return nil, errors.New("empty tree")
	}
	h, err := tlog.TreeHash(int64(n), l.hashReader())
	if err != nil {
		return nil, err
	}
	return h[:], nil
}

func kindOf(r *pb.Record) string {
	switch r.GetKind().(type) {
	case *pb.Record_Letter:
		return "letter"
	case *pb.Record_Endorsement:
		return "endorsement"
	case *pb.Record_Withdrawal:
		return "withdrawal"
	case *pb.Record_Redaction:
		return "redaction"
	case *pb.Record_LetterStatus:
		return "letter_status"
	}
	return "unknown"
}

func invalid(err error) Result {
	return Result{State: Invalid, Reason: err.Error()}
}

// Verify checks a receipt with the log key v: offline (the checkpoint's
// signature, the inclusion proof, the record, the name against the
// commitment and the withdrawal secret against the lock), then, when l is a
// complete log, its consistency with the latest checkpoint and what became
// of the endorsement. Without a complete log the state of a valid receipt
// is [Included].
func Verify(v note.Verifier, b []byte, l *Log) Result {
	r, err := receipt.Parse(b)
	if err != nil {
		return invalid(err)
	}
	ver, err := r.Verify(v)
	if err != nil {
		return invalid(err)
	}
	res := Result{State: Included, Kind: kindOf(ver.Record), Index: ver.Index, CheckpointSize: ver.Checkpoint.Size}
	if e := ver.Record.GetEndorsement(); e != nil {
		res.Letter = e.GetLetterId()
		res.Private = e.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE
	}
	if d := ver.Disclosure; d != nil {
		res.Name = d.GetName()
	}
	if l == nil || !l.complete {
		return res
	}
	res.LatestSize = l.checkpoint.Size
	res.LogBroken = l.brokenLine()
	if ver.Checkpoint.Size > l.checkpoint.Size {
		return invalid(fmt.Errorf("the log's latest checkpoint (size %d) is smaller than the receipt's (size %d): the log went back", l.checkpoint.Size, ver.Checkpoint.Size))
	}
	root, err := l.treeHash(ver.Checkpoint.Size)
	if err != nil {
		return invalid(err)
	}
	if !bytes.Equal(root, ver.Checkpoint.Hash) {
		return invalid(errors.New("the receipt's checkpoint is not consistent with the log's latest checkpoint: the log showed two histories"))
	}
	if res.Kind != "endorsement" {
		return res
	}
	if l.isForeign(res.Index) {
		return invalid(errors.New(notAdmitted))
	}
	res.State = Counted
	if !l.state(&res) {
		return invalid(fmt.Errorf("the log holds this endorsement, but it breaks the log's rules, and does not count: %s", l.brokenAt(res.Index)))
	}
	return res
}

// brokenAt returns the rule the record at index breaks, or "".
func (l *Log) brokenAt(index uint64) string {
	for _, b := range l.broken {
		if b.Index == index {
			return b.Rule
		}
	}
	return ""
}

// state sets what became of the endorsement at res.Index, as the rules
// say; it reports whether there is an endorsement there.
func (l *Log) state(res *Result) bool {
	e, _ := l.rules.Endorsement(res.Index)
	if e == nil {
		return false
	}
	set := func(s State, by *rules.Ref) {
		u := uint64(by.Index)
		res.State, res.By = s, &u
	}
	switch {
	case e.WithdrawnBy != nil:
		set(Withdrawn, e.WithdrawnBy)
	case e.SupersededBy != nil:
		set(Superseded, e.SupersededBy)
	case e.RedactedBy != nil:
		set(Redacted, e.RedactedBy)
	}
	return true
}

// brokenLine sums up Broken and Foreign for the page, or is empty.
func (l *Log) brokenLine() string {
	if l == nil || !l.complete || len(l.broken)+len(l.foreign) == 0 {
		return ""
	}
	var parts []string
	if len(l.broken) > 0 {
		b := l.broken[0]
		parts = append(parts, fmt.Sprintf("%d record(s) of the log break its rules and changed nothing here; the first, at index %d: %s", len(l.broken), b.Index, b.Rule))
	}
	if len(l.foreign) > 0 {
		entries := "entries"
		if len(l.foreign) == 1 {
			entries = "entry"
		}
		parts = append(parts, fmt.Sprintf("%d %s of the log that no server of it admitted (foreign) changed nothing here; the first at index %d", len(l.foreign), entries, l.foreign[0]))
	}
	return strings.Join(parts, "; ") + " (an audit names them all)"
}

// VerifyReference checks a reference to an endorsement instead of a
// receipt: the log's origin, the index and the leaf hash of the record,
// which is what a link carries when the whole receipt would be too long
// for a QR code (#o=ORIGIN&i=INDEX&h=LEAF). It needs a complete log (the
// page never fetches anything for one entry): the entry at index must have
// that leaf hash, and its state is read as for a receipt. There is no name
// to check.
func VerifyReference(origin string, index uint64, leafHash []byte, l *Log) Result {
	if l == nil || !l.complete {
		return invalid(errors.New("a reference without its receipt can be checked only against the log, which is not loaded"))
	}
	if origin != l.checkpoint.Origin {
		return invalid(fmt.Errorf("the reference names the log %q, this page checks %q", origin, l.checkpoint.Origin))
	}
	if index >= l.size || !bytes.Equal(l.leafHashes[index][:], leafHash) {
		return invalid(fmt.Errorf("the log holds no such record at index %d", index))
	}
	if l.isForeign(index) {
		return invalid(fmt.Errorf("index %d: %s", index, notAdmitted))
	}
	e, _ := l.rules.Endorsement(index)
	if e == nil {
		return invalid(fmt.Errorf("the record at index %d is not an endorsement (or breaks the log's rules)", index))
	}
	res := Result{State: Counted, Kind: "endorsement", Index: index, Letter: e.Endorsement.GetLetterId(),
		Private:        e.Endorsement.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE,
		CheckpointSize: l.checkpoint.Size, LatestSize: l.checkpoint.Size, LogBroken: l.brokenLine()}
	l.state(&res)
	return res
}

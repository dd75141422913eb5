// Package letters keeps the letters of the log in memory, as of the latest
// checkpoint: each letter with its status, its counts and its endorsements,
// brought up to date by applying each new entry in log order, the way an
// audit replays a log. It is the one maintained source of letter state
// that the reads of a letter (GetLetter, ListLetters) and the web pages
// answer from, so that a read costs a lookup, not a count.
//
// What each record does is what the rules of a letter say (package
// client/rules, through a rules.Follower: the function the server's
// admission, the audit and the browser apply), so a view shows what an
// auditor finds: a letter starts a roster, an endorsement joins it, a
// withdrawal, a correction or a redaction changes the endorsement it
// names, a status closes or delivers the letter, an organiser change adds
// or revokes a key; a record that breaks the rules changes nothing, and is
// logged for the operator. A letter's [Counts] are kept as each record
// applies, never recounted.
//
// Private and redacted names never reach a view: the source serves only
// public, unredacted disclosures, and a redaction read from the log drops
// the name it hides (even one that breaks the rules: hiding a name is
// always safe).
package letters

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"
	"google.golang.org/protobuf/proto"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// Source is the log a [View] follows.
type Source interface {
	// Checkpoint returns the latest published checkpoint and its size.
	Checkpoint(ctx context.Context) (raw []byte, size uint64, err error)
	// Entries calls fn with the entries [start, end) in order, each with
	// its public, unredacted disclosure if it has one, and marked redacted
	// if it is.
	Entries(ctx context.Context, start, end uint64, fn func([]*pb.Entry) error) error
}

// NoIndex is the index of a status a letter does not have.
const NoIndex = -1

// Counts tallies a letter's endorsements, as the store's roster does: an
// endorsement withdrawn is Withdrawn; else one superseded by a correction
// is Superseded; else a private one is Private, a redacted one Redacted,
// and the rest Public.
type Counts struct {
	Public, Private, Redacted, Withdrawn, Superseded uint64
}

// Counted is every endorsement that counts, named or not.
func (c Counts) Counted() uint64 { return c.Public + c.Private + c.Redacted }

// Letter is a letter as of the view's size. Its fields are read under the
// view's lock ([View.Read]).
type Letter struct {
	// Index is the letter record's index, At when the server accepted it,
	// Record its bytes as stored and Letter the record decoded.
	Index  uint64
	At     int64
	Record []byte
	Letter *pb.Letter
	// Status is the later of the close and the first delivery; Note is
	// the note of the latest status record.
	Status pb.Status
	Note   string
	// ClosedIndex is the index of the status record that closed the
	// letter, DeliveredIndex of the first that marked it delivered, or
	// NoIndex.
	ClosedIndex, DeliveredIndex int64
	// OrganiserKeys are the keys valid for the letter's next record: those
	// it lists, as organiser changes added and revoked them since;
	// RevokedKeys those they revoked.
	OrganiserKeys, RevokedKeys [][]byte
	// Counts are the letter's counts, kept as records apply.
	Counts Counts
	// All is every endorsement of the letter, in index order.
	All []*Endorsement
	// History is every withdrawal, redaction and correction, in order.
	History []Change

	namedMu sync.Mutex
	named   []*Endorsement // nil when stale
	// folded is how many of All have their names folded.
	folded int
}

// Endorsement is an endorsement as of the view's size.
type Endorsement struct {
	Index uint64
	At    int64
	// Private is an endorsement counted, never named.
	Private bool
	// Name, Affiliation and Country are its public disclosure; Name is
	// empty when there is none (private, redacted, or withheld).
	Name, Affiliation, Country string
	// Fold and Key are the name folded for search (client/names: the
	// folding of `undersigned diff`, see names.Fold and
	// names.TransliterationKey), once [Letter.FoldNames] made them.
	Fold, Key                     string
	Withdrawn, Redacted, Replaced bool
	// Letter is the endorsement's letter.
	Letter *Letter
}

// Counted reports whether the endorsement counts: neither withdrawn nor
// superseded.
func (e *Endorsement) Counted() bool { return !e.Withdrawn && !e.Replaced }

// count returns the counter the endorsement adds to.
func (e *Endorsement) count(c *Counts) *uint64 {
	switch {
	case e.Withdrawn:
		return &c.Withdrawn
	case e.Replaced:
		return &c.Superseded
	case e.Private:
		return &c.Private
	case e.Redacted:
		return &c.Redacted
	}
	return &c.Public
}

// Change is a withdrawal, a redaction, a correction or an organiser
// change.
type Change struct {
	Index, Target uint64
	Kind          string // withdrawal, redaction, correction, organiser_added, organiser_revoked
	By            string // signer, secret, organiser
	// ByKey is the fingerprint of the organiser key that signed it, Key
	// that of the key an organiser change added or revoked.
	ByKey, Key string
	Reason     string // a reason key: signer_request, safety, ...; "correction"; "keys"
	At         int64
}

// View is the letters of a log as of a size. Its methods are safe for
// concurrent use.
type View struct {
	mu sync.RWMutex
	// size and checkpoint are what the view was built to.
	size       uint64
	checkpoint []byte
	letters    []*Letter
	byID       map[string]*Letter
	// endorsements is every endorsement, in index order.
	endorsements []*Endorsement
	// rules follows the log's state as the rules of a letter see it;
	// broken counts the records that break them, which log tells the
	// operator of.
	rules  *rules.Follower
	broken int
	log    *slog.Logger
	// loading serialises updates.
	loading sync.Mutex
}

// New returns an empty view, which [View.Update] brings up to a log. log
// is told of the records that break the rules of a letter; nil discards.
func New(log *slog.Logger) *View {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &View{byID: map[string]*Letter{}, rules: rules.NewFollower(), log: log}
}

// Update brings the view to the source's latest checkpoint. Callers
// updating at once wait for one another: the entries are read once.
func (v *View) Update(ctx context.Context, src Source) error {
	raw, size, err := src.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("latest checkpoint: %w", err)
	}
	if v.Size() >= size {
		return nil
	}
	v.loading.Lock()
	defer v.loading.Unlock()
	current := v.Size()
	if current >= size {
		return nil
	}
	err = src.Entries(ctx, current, size, func(batch []*pb.Entry) error {
		v.mu.Lock()
		defer v.mu.Unlock()
		for _, e := range batch {
			if e.GetIndex() != v.size {
				return fmt.Errorf("entry %d came where %d was expected", e.GetIndex(), v.size)
			}
			v.apply(e)
			v.size++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("entries %d to %d: %w", current, size, err)
	}
	v.mu.Lock()
	v.checkpoint = raw
	v.mu.Unlock()
	return nil
}

// Broken returns how many records of the log break the rules of a letter,
// which the view ignored.
func (v *View) Broken() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.broken
}

// Size returns the size the view was built to.
func (v *View) Size() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.size
}

// Snapshot is the view as fn of [View.Read] sees it.
type Snapshot struct {
	// Size and Checkpoint are the size the view was built to, and the
	// signed checkpoint of that size (nil for entries applied since).
	Size       uint64
	Checkpoint []byte
	// Letters are the letters, in index order.
	Letters []*Letter
	v       *View
}

// Letter returns the letter with this id, or nil.
func (s *Snapshot) Letter(id string) *Letter { return s.v.byID[id] }

// Read calls fn with the view, which does not change until fn returns. fn
// must not keep what it reads beyond its return, nor change it.
func (v *View) Read(fn func(*Snapshot)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	fn(&Snapshot{Size: v.size, Checkpoint: v.checkpoint, Letters: v.letters, v: v})
}

// Named returns the letter's endorsements that count and have a public
// name, in index order: the roster the pages show. It is computed once
// after each change of the letter; the caller is within [View.Read].
func (l *Letter) Named() []*Endorsement {
	l.namedMu.Lock()
	defer l.namedMu.Unlock()
	if l.named == nil {
		named := make([]*Endorsement, 0, l.Counts.Public)
		for _, e := range l.All {
			if e.Counted() && !e.Private && !e.Redacted && e.Name != "" {
				named = append(named, e)
			}
		}
		l.named = named
	}
	return l.named
}

// FoldNames folds, for search, the names of the letter's endorsements not
// folded yet: folding costs more than the rest of a read, so it is done
// for the letters people search, when they first do. The caller is within
// [View.Read]; after FoldNames, Fold and Key may be read there.
func (l *Letter) FoldNames() {
	l.namedMu.Lock()
	defer l.namedMu.Unlock()
	for _, e := range l.All[l.folded:] {
		if e.Name != "" {
			e.Fold, e.Key = names.Fold(e.Name), names.TransliterationKey(e.Name)
		}
	}
	l.folded = len(l.All)
}

// apply follows one entry, as the rules say; the caller holds mu for
// writing.
func (v *View) apply(e *pb.Entry) {
	if e.GetForeign() {
		// No server of the log admitted it: the rules skip it, as the
		// admission and the audit do.
		v.rules.Skip()
		return
	}
	var rec pb.Record
	if err := proto.Unmarshal(e.GetRecord(), &rec); err != nil {
		rec.Reset()
	}
	ch, err := v.rules.Append(&rec, rfc6962.DefaultHasher.HashLeaf(e.GetRecord()))
	if err != nil {
		v.broken++
		v.log.Warn("a record of the log breaks the rules of a letter; the letters' view ignores it (an audit reports it)",
			slog.Uint64("index", e.GetIndex()), slog.Any("rule", err), slog.Int("broken", v.broken))
		// Hiding a name is always safe: even a redaction that breaks the
		// rules hides the name it targets.
		if r := rec.GetRedaction(); r != nil {
			if t := v.endorsement(r.GetTargetIndex()); t != nil && t.Name != "" {
				t.Name, t.Affiliation, t.Country, t.Fold, t.Key = "", "", "", "", ""
				t.Letter.named = nil
			}
		}
		return
	}
	i, at := e.GetIndex(), rec.GetAcceptedAt()
	switch k := rec.GetKind().(type) {
	case *pb.Record_Letter:
		l := &Letter{Index: i, At: at, Record: e.GetRecord(), Letter: k.Letter, ClosedIndex: NoIndex, DeliveredIndex: NoIndex,
			OrganiserKeys: k.Letter.GetOrganiserKeys()}
		v.letters = append(v.letters, l)
		v.byID[k.Letter.GetId()] = l
	case *pb.Record_LetterStatus:
		v.byID[k.LetterStatus.GetLetterId()].setStatus(i, k.LetterStatus)
	case *pb.Record_Endorsement:
		v.endorse(i, at, k.Endorsement, e, ch)
	case *pb.Record_Withdrawal:
		w := k.Withdrawal
		t := v.endorsement(uint64(ch.Target.Ref.Index))
		t.change(func() { t.Withdrawn = true })
		by, key := authority(w.GetAuthorisation())
		t.Letter.History = append(t.Letter.History, Change{Index: i, Target: t.Index, Kind: "withdrawal",
			By: by, ByKey: key, Reason: reasonKey(w.GetReason()), At: at})
	case *pb.Record_Redaction:
		r := k.Redaction
		t := v.endorsement(uint64(ch.Target.Ref.Index))
		t.change(func() { t.Redacted, t.Name, t.Affiliation, t.Country, t.Fold, t.Key = true, "", "", "", "", "" })
		by, key := authority(r.GetAuthorisation())
		t.Letter.History = append(t.Letter.History, Change{Index: i, Target: t.Index, Kind: "redaction",
			By: by, ByKey: key, Reason: reasonKey(r.GetReason()), At: at})
	case *pb.Record_OrganiserChange:
		c := k.OrganiserChange
		l := v.byID[c.GetLetterId()]
		l.OrganiserKeys, l.RevokedKeys = ch.OrganiserKeys, ch.Revoked
		kind := "organiser_added"
		if c.GetChange() == pb.KeyChange_KEY_CHANGE_REVOKE {
			kind = "organiser_revoked"
		}
		l.History = append(l.History, Change{Index: i, Kind: kind, By: "organiser", ByKey: records.KeyFingerprint(c.GetOrganiser().GetPublicKey()),
			Key: records.KeyFingerprint(c.GetKey()), Reason: "keys", At: at})
	}
}

// setStatus applies a status record at index i.
func (l *Letter) setStatus(i uint64, s *pb.LetterStatus) {
	switch s.GetStatus() {
	case pb.Status_STATUS_CLOSED:
		if l.ClosedIndex == NoIndex {
			l.ClosedIndex = int64(i)
		}
	case pb.Status_STATUS_DELIVERED:
		if l.DeliveredIndex == NoIndex {
			l.DeliveredIndex = int64(i)
		}
	}
	l.Note = s.GetNote()
	// The status is the later of the two.
	switch {
	case l.ClosedIndex > l.DeliveredIndex:
		l.Status = pb.Status_STATUS_CLOSED
	case l.DeliveredIndex > l.ClosedIndex:
		l.Status = pb.Status_STATUS_DELIVERED
	}
}

// endorsement returns the endorsement at index, or nil.
func (v *View) endorsement(index uint64) *Endorsement {
	k, ok := slices.BinarySearchFunc(v.endorsements, index, func(e *Endorsement, i uint64) int { return cmp.Compare(e.Index, i) })
	if !ok {
		return nil
	}
	return v.endorsements[k]
}

// change applies fn to the endorsement and moves it between its letter's
// counts.
func (e *Endorsement) change(fn func()) {
	l := e.Letter
	*e.count(&l.Counts)--
	fn()
	*e.count(&l.Counts)++
	l.named = nil
}

func (v *View) endorse(i uint64, at int64, en *pb.Endorsement, e *pb.Entry, ch *rules.Change) {
	l := v.byID[en.GetLetterId()]
	ev := &Endorsement{Index: i, At: at, Private: en.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE, Letter: l,
		Redacted: e.GetRedacted()}
	if d := e.GetDisclosure(); d != nil && !ev.Private && !ev.Redacted {
		ev.Name, ev.Affiliation, ev.Country = d.GetName(), d.GetAffiliation(), d.GetCountry()
	}
	v.endorsements = append(v.endorsements, ev)
	l.All = append(l.All, ev)
	*ev.count(&l.Counts)++
	l.named = nil
	if ch.Target != nil {
		t := v.endorsement(uint64(ch.Target.Ref.Index))
		t.change(func() { t.Replaced = true })
		by, key := "signer", ""
		if o := en.GetOrganiser(); o != nil {
			by, key = "organiser", records.KeyFingerprint(o.GetPublicKey())
		}
		l.History = append(l.History, Change{Index: i, Target: t.Index, Kind: "correction", By: by, ByKey: key, Reason: "correction", At: at})
	}
}

func reasonKey(r pb.Reason) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "REASON_"))
}

// authority says who authorised a withdrawal or a redaction, and the
// fingerprint of the organiser key that did.
func authority(a *pb.Authorisation) (by, key string) {
	switch k := a.GetBy().(type) {
	case *pb.Authorisation_Signer:
		return "signer", ""
	case *pb.Authorisation_WithdrawalSecret:
		return "secret", ""
	case *pb.Authorisation_Organiser:
		return "organiser", records.KeyFingerprint(k.Organiser.GetPublicKey())
	}
	return "organiser", ""
}

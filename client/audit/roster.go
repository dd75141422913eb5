package audit

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/undersigned/undersigned/client/records"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// ErrUnknownLetter is returned for a letter id that is not in the audited
// log.
var ErrUnknownLetter = fmt.Errorf("no such letter in the audited log")

// LetterInfo describes a letter of the audited log.
type LetterInfo struct {
	// Index is the index of the letter's record.
	Index uint64
	// Letter is the letter as published.
	Letter *pb.Letter
	// ClosedIndex and DeliveredIndex are the indexes of the status records
	// that closed it and first marked it delivered, or -1.
	ClosedIndex, DeliveredIndex int64
	// DeliveryNote is the note of that delivery.
	DeliveryNote string
	// OrganiserKeys are the organiser keys valid for the letter at the
	// audited size (or the roster's): those it lists, as organiser changes
	// added and revoked them.
	OrganiserKeys [][]byte
}

// Letters returns the letters of the audited log, in the order they were
// published.
func (s *State) Letters() []LetterInfo {
	out := make([]LetterInfo, 0, len(s.m.letters))
	for _, ls := range s.m.letters {
		out = append(out, s.letterInfo(ls))
	}
	return out
}

func (s *State) letterInfo(ls *letterState) LetterInfo {
	li := LetterInfo{Index: ls.index, Letter: ls.letter, ClosedIndex: ls.closedBy, DeliveredIndex: ls.deliveredBy, OrganiserKeys: ls.keys}
	if ls.deliveredBy >= 0 {
		li.DeliveryNote = s.m.statuses[s.m.refs[ls.deliveredBy].i].note
	}
	return li
}

// keysAt returns the organiser keys of a letter at a tree size: those it
// lists, as the organiser changes below size that took effect left them.
func (s *State) keysAt(ls *letterState, size uint64) [][]byte {
	keys := ls.letter.GetOrganiserKeys()
	for _, idx := range ls.keyChanges {
		if idx >= size {
			break
		}
		kc := s.m.keyChanges[s.m.refs[idx].i]
		if !kc.effected {
			continue
		}
		if kc.change == pb.KeyChange_KEY_CHANGE_ADD {
			keys = append(slices.Clone(keys), kc.key)
		} else {
			keys = slices.DeleteFunc(slices.Clone(keys), func(k []byte) bool { return bytes.Equal(k, kc.key) })
		}
	}
	return keys
}

// Letter returns the letter with id, or fails with [ErrUnknownLetter].
func (s *State) Letter(id string) (LetterInfo, error) {
	i, ok := s.m.byID[id]
	if !ok {
		return LetterInfo{}, fmt.Errorf("%w: %q", ErrUnknownLetter, id)
	}
	return s.letterInfo(s.m.letters[i]), nil
}

// Counts tallies a letter's endorsements at a tree size, as the server's
// GetRoster does. Withheld and NotChecked are among Public.
type Counts struct {
	// Public endorsements that count and were not redacted.
	Public uint64 `json:"public"`
	// Private endorsements that count: counted, never named.
	Private uint64 `json:"private"`
	// Redacted public endorsements that count but whose name was redacted.
	Redacted uint64 `json:"redacted"`
	// Withdrawn endorsements.
	Withdrawn uint64 `json:"withdrawn"`
	// Superseded endorsements, corrected by a later one.
	Superseded uint64 `json:"superseded"`
	// Withheld public endorsements whose name is served by no one: a
	// violation.
	Withheld uint64 `json:"withheld"`
	// NotChecked public endorsements whose name the source could not
	// serve (a mirror without disclosures).
	NotChecked uint64 `json:"not_checked"`
}

// RosterEntry is one endorsement that counts.
type RosterEntry struct {
	// Index is the endorsement's index in the log.
	Index uint64
	// Visibility is public or private.
	Visibility pb.Visibility
	// Verification is how the signer was verified, as the organiser says.
	Verification pb.Verification
	// SignerSigned is true when the signer signed with a key of their own.
	SignerSigned bool
	// AcceptedAt is the time the server accepted it (advisory).
	AcceptedAt time.Time
	// Disclosure is the name, for a public endorsement whose disclosure
	// was served and not redacted; nil otherwise.
	Disclosure *pb.Disclosure
	// Redacted, Withheld and NotChecked say why a public endorsement has
	// no Disclosure.
	Redacted, Withheld, NotChecked bool
	// AfterDelivery is true for an endorsement added after the letter was
	// marked delivered.
	AfterDelivery bool
	// Supersedes is the index of the endorsement it corrects, or -1.
	Supersedes int64
}

// Roster is a letter's roster at a tree size.
type Roster struct {
	// Letter is the letter, with its status at TreeSize.
	Letter LetterInfo
	// TreeSize is the size of the tree the roster is taken at.
	TreeSize uint64
	// Entries are the endorsements that count, in index order.
	Entries []RosterEntry
	// Counts are the counts at TreeSize.
	Counts Counts
}

// Roster returns the roster of a letter at a tree size (0: the trusted
// checkpoint's). An endorsement counts at size N when it is below N and
// neither withdrawn nor superseded by a record below N. A disclosure
// redacted at any time is not shown: the state no longer has it.
func (s *State) Roster(letterID string, size uint64) (*Roster, error) {
	if size == 0 {
		size = s.h.Size
	}
	if size > s.h.Size {
		return nil, fmt.Errorf("tree size %d is beyond the audited size %d: audit again first", size, s.h.Size)
	}
	li, ok := s.m.byID[letterID]
	if !ok || s.m.letters[li].index >= size {
		return nil, fmt.Errorf("%w at tree size %d: %q", ErrUnknownLetter, size, letterID)
	}
	ls := s.m.letters[li]
	r := &Roster{Letter: s.letterInfo(ls), TreeSize: size}
	if r.Letter.ClosedIndex >= int64(size) {
		r.Letter.ClosedIndex = -1
	}
	if r.Letter.DeliveredIndex >= int64(size) {
		r.Letter.DeliveredIndex, r.Letter.DeliveryNote = -1, ""
	}
	r.Letter.OrganiserKeys = s.keysAt(ls, size)
	before := func(by int64) bool { return by >= 0 && by < int64(size) }
	for _, idx := range ls.endorsements {
		if idx >= size {
			break
		}
		e := s.m.endorsementAt(idx)
		switch {
		case before(e.withdrawnBy):
			r.Counts.Withdrawn++
			continue
		case before(e.supersededBy):
			r.Counts.Superseded++
			continue
		}
		re := RosterEntry{
			Index: idx, Visibility: e.visibility, Verification: e.verification, SignerSigned: e.signerKey != nil,
			AcceptedAt: time.Unix(s.m.refs[idx].at, 0).UTC(), Supersedes: e.supersedes,
			AfterDelivery: r.Letter.DeliveredIndex >= 0 && int64(idx) > r.Letter.DeliveredIndex,
		}
		if e.visibility == pb.Visibility_VISIBILITY_PRIVATE {
			r.Counts.Private++
		} else if e.redactedBy >= 0 {
			r.Counts.Redacted++
			re.Redacted = true
		} else {
			r.Counts.Public++
			switch e.disc {
			case discServed:
				re.Disclosure = e.disclosure
			case discNotChecked:
				r.Counts.NotChecked++
				re.NotChecked = true
			default:
				r.Counts.Withheld++
				re.Withheld = true
			}
		}
		r.Entries = append(r.Entries, re)
	}
	return r, nil
}

// ChangeKind is what a record did to a letter's roster.
type ChangeKind string

// The kinds of change: the letter's publication, an endorsement added,
// one added to correct an earlier one, a withdrawal, a redaction, the
// letter closed or marked delivered, and an organiser key added or
// revoked.
const (
	ChangePublished        ChangeKind = "published"
	ChangeAdded            ChangeKind = "added"
	ChangeCorrected        ChangeKind = "corrected"
	ChangeWithdrawn        ChangeKind = "withdrawn"
	ChangeRedacted         ChangeKind = "redacted"
	ChangeClosed           ChangeKind = "closed"
	ChangeDelivered        ChangeKind = "delivered"
	ChangeOrganiserAdded   ChangeKind = "organiser-added"
	ChangeOrganiserRevoked ChangeKind = "organiser-revoked"
)

// Change is one record that changed a letter's roster.
type Change struct {
	// Index is the record's index.
	Index uint64     `json:"index"`
	Kind  ChangeKind `json:"kind"`
	// AcceptedAt is the record's time, as the server says.
	AcceptedAt time.Time `json:"accepted_at"`
	// Target is the endorsement withdrawn, redacted or corrected, or -1.
	Target int64 `json:"target"`
	// Name is the name of the endorsement added, or of the target, when
	// the state has it.
	Name string `json:"name,omitempty"`
	// Visibility is the endorsement's, for an endorsement added.
	Visibility pb.Visibility `json:"-"`
	// Private is true for a private endorsement added or withdrawn.
	Private bool `json:"private,omitempty"`
	// Reason is the reason of a withdrawal or a redaction.
	Reason pb.Reason `json:"-"`
	// Note is the note of a status change.
	Note string `json:"note,omitempty"`
	// AfterDelivery is true for an endorsement added after delivery.
	AfterDelivery bool `json:"after_delivery,omitempty"`
	// AuthorisedBy says who authorised a withdrawal or a redaction: "the
	// signer's key", "the signer's withdrawal secret" or "organiser key"
	// and the key's fingerprint (records.KeyFingerprint); and which
	// organiser key signed a status or an organiser change.
	AuthorisedBy string `json:"authorised_by,omitempty"`
	// OrganiserKey is the fingerprint of the key an organiser change added
	// or revoked.
	OrganiserKey string `json:"organiser_key,omitempty"`
	// NoEffect is true for an organiser change that changed nothing (the
	// audit reports it as a violation).
	NoEffect bool `json:"no_effect,omitempty"`
}

// Changes returns every record in [from, to) that changed the roster of a
// letter: its publication, endorsements added (or corrected), withdrawals,
// redactions, status changes and organiser changes, in index order.
func (s *State) Changes(letterID string, from, to uint64) ([]Change, error) {
	if to == 0 {
		to = s.h.Size
	}
	if to > s.h.Size {
		return nil, fmt.Errorf("tree size %d is beyond the audited size %d: audit again first", to, s.h.Size)
	}
	if from > to {
		return nil, fmt.Errorf("from %d is after to %d", from, to)
	}
	li, ok := s.m.byID[letterID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLetter, letterID)
	}
	return s.changes(li, from, to), nil
}

func (s *State) changes(li int32, from, to uint64) []Change {
	m := s.m
	ls := m.letters[li]
	name := func(e *endorsement) string {
		if e != nil && e.disclosure != nil {
			return e.disclosure.GetName()
		}
		return ""
	}
	var out []Change
	add := func(c Change) {
		c.AcceptedAt = time.Unix(m.refs[c.Index].at, 0).UTC()
		out = append(out, c)
	}
	if ls.index >= from && ls.index < to {
		add(Change{Index: ls.index, Kind: ChangePublished, Target: -1})
	}
	// Endorsements of the letter.
	idxs := ls.endorsements
	lo := sort.Search(len(idxs), func(i int) bool { return idxs[i] >= from })
	for _, idx := range idxs[lo:] {
		if idx >= to {
			break
		}
		e := m.endorsementAt(idx)
		c := Change{Index: idx, Kind: ChangeAdded, Target: -1, Name: name(e), Visibility: e.visibility,
			Private:       e.visibility == pb.Visibility_VISIBILITY_PRIVATE,
			AfterDelivery: ls.deliveredBy >= 0 && int64(idx) > ls.deliveredBy}
		if e.supersedes >= 0 {
			c.Kind, c.Target = ChangeCorrected, e.supersedes
		}
		add(c)
	}
	// Withdrawals and redactions of its endorsements.
	for _, idx := range idxs {
		if idx >= to {
			break
		}
		e := m.endorsementAt(idx)
		if by := e.withdrawnBy; by >= int64(from) && by < int64(to) {
			add(Change{Index: uint64(by), Kind: ChangeWithdrawn, Target: int64(idx), Name: name(e), Reason: e.withdrawReason,
				Private: e.visibility == pb.Visibility_VISIBILITY_PRIVATE, AuthorisedBy: e.withdrawAuth})
		}
		if by := e.redactedBy; by >= int64(from) && by < int64(to) {
			add(Change{Index: uint64(by), Kind: ChangeRedacted, Target: int64(idx), Reason: e.redactReason, AuthorisedBy: e.redactAuth})
		}
	}
	for _, idx := range ls.statuses {
		if idx >= from && idx < to {
			st := m.statuses[m.refs[idx].i]
			k := ChangeClosed
			if st.status == pb.Status_STATUS_DELIVERED {
				k = ChangeDelivered
			}
			add(Change{Index: idx, Kind: k, Target: -1, Note: st.note, AuthorisedBy: organiserKey(st.by)})
		}
	}
	for _, idx := range ls.keyChanges {
		if idx >= from && idx < to {
			kc := m.keyChanges[m.refs[idx].i]
			k := ChangeOrganiserAdded
			if kc.change == pb.KeyChange_KEY_CHANGE_REVOKE {
				k = ChangeOrganiserRevoked
			}
			add(Change{Index: idx, Kind: k, Target: -1, AuthorisedBy: organiserKey(kc.by), OrganiserKey: records.KeyFingerprint(kc.key), NoEffect: !kc.effected})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// FirstIndexAfter returns the index of the first record accepted at or
// after t, or the size of the audited tree when there is none. Times are
// the server's and only advisory.
func (s *State) FirstIndexAfter(t time.Time) uint64 {
	u := t.Unix()
	for i, r := range s.m.refs {
		if r.at >= u {
			return uint64(i)
		}
	}
	return s.m.size()
}

// LetterChanges sums up the changes of one letter in an audit: how many
// endorsements were added (of them, how many private and how many after
// delivery), corrected, withdrawn and redacted, and whether the letter was
// published, closed or delivered.
type LetterChanges struct {
	LetterID           string `json:"letter"`
	Published          bool   `json:"published,omitempty"`
	Added              uint64 `json:"added"`
	AddedPrivate       uint64 `json:"added_private"`
	AddedAfterDelivery uint64 `json:"added_after_delivery"`
	Corrected          uint64 `json:"corrected"`
	Withdrawn          uint64 `json:"withdrawn"`
	Redacted           uint64 `json:"redacted"`
	Closed             bool   `json:"closed,omitempty"`
	Delivered          bool   `json:"delivered,omitempty"`
	OrganisersAdded    uint64 `json:"organisers_added,omitempty"`
	OrganisersRevoked  uint64 `json:"organisers_revoked,omitempty"`
	// Changes are the records, in index order.
	Changes []Change `json:"changes"`
	// Counts are the letter's counts at the end of the audit.
	Counts Counts `json:"counts"`
}

// summarise returns the changes of every letter in [from, to).
func (s *State) summarise(from, to uint64) []LetterChanges {
	var out []LetterChanges
	for li, ls := range s.m.letters {
		cs := s.changes(int32(li), from, to)
		if len(cs) == 0 {
			continue
		}
		lc := LetterChanges{LetterID: ls.letter.GetId(), Changes: cs}
		for _, c := range cs {
			switch c.Kind {
			case ChangePublished:
				lc.Published = true
			case ChangeAdded:
				lc.Added++
				if c.Private {
					lc.AddedPrivate++
				}
				if c.AfterDelivery {
					lc.AddedAfterDelivery++
				}
			case ChangeCorrected:
				lc.Corrected++
				if c.AfterDelivery {
					lc.AddedAfterDelivery++
				}
			case ChangeWithdrawn:
				lc.Withdrawn++
			case ChangeRedacted:
				lc.Redacted++
			case ChangeClosed:
				lc.Closed = true
			case ChangeDelivered:
				lc.Delivered = true
			case ChangeOrganiserAdded:
				lc.OrganisersAdded++
			case ChangeOrganiserRevoked:
				lc.OrganisersRevoked++
			}
		}
		if r, err := s.Roster(ls.letter.GetId(), to); err == nil {
			lc.Counts = r.Counts
		}
		out = append(out, lc)
	}
	return out
}

// organiserKey names an organiser key for people, by its fingerprint.
func organiserKey(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	return "organiser key " + records.KeyFingerprint(key)
}

package web

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/client/records"
	"github.com/undersigned/undersigned/client/rules"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// view is the log as the pages show it, kept in memory and brought up to
// the latest checkpoint by applying each new entry in order, the way an
// audit replays a log. What each record does is what the rules of a letter
// say (package client/rules, through a rules.Follower: the function the
// server's admission, the audit and the browser apply), so the pages show
// what an auditor finds; a record that breaks them changes nothing and is
// counted in broken.
type view struct {
	mu sync.RWMutex
	// size and checkpoint are what the view was built to.
	size       uint64
	checkpoint []byte
	letters    []*letterView
	byID       map[string]*letterView
	// endorsements by log index.
	endorsements map[uint64]*endorsementView
	// rules follows the log's state as the rules of a letter see it;
	// broken counts the records that break them, which log tells the
	// operator of.
	rules  *rules.Follower
	broken int
	log    *slog.Logger
	// loading serialises updates.
	loading sync.Mutex
}

type letterView struct {
	index      uint64
	at         int64
	letter     *pb.Letter
	status     pb.Status
	note       string
	all        []*endorsementView // every endorsement, in index order
	history    []historyItem
	named      []*endorsementView // the public, counted, unredacted ones; nil when stale
	counts     counts
	countsDone bool
}

type endorsementView struct {
	index      uint64
	at         int64
	private    bool
	disclosure *pb.Disclosure
	// fold and key are the name folded for search (client/names: the folding of `undersigned diff`, see names.Fold and
	// names.TransliterationKey).
	fold, key                     string
	withdrawn, redacted, replaced bool
	letter                        *letterView
}

func (e *endorsementView) counted() bool { return !e.withdrawn && !e.replaced }

type counts struct {
	Public, Private, Redacted, Withdrawn, Superseded uint64
}

// Counted is every endorsement that counts, named or not.
func (c counts) Counted() uint64 { return c.Public + c.Private + c.Redacted }

// historyItem is a withdrawal, a redaction, a correction or an organiser
// change.
type historyItem struct {
	Index, Target uint64
	Kind          string // withdrawal, redaction, correction, organiser_added, organiser_revoked
	By            string // signer, secret, organiser
	// ByKey is the fingerprint of the organiser key that signed it, Key
	// that of the key an organiser change added or revoked.
	ByKey, Key string
	Reason     string // a reason key
	At         int64
}

func newView(log *slog.Logger) *view {
	return &view{byID: map[string]*letterView{}, endorsements: map[uint64]*endorsementView{}, rules: rules.NewFollower(), log: log}
}

// update brings the view to the source's latest checkpoint.
func (v *view) update(ctx context.Context, src Source) error {
	raw, size, err := src.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("latest checkpoint: %w", err)
	}
	v.mu.RLock()
	current := v.size
	v.mu.RUnlock()
	if size <= current {
		return nil
	}
	v.loading.Lock()
	defer v.loading.Unlock()
	v.mu.RLock()
	current = v.size
	v.mu.RUnlock()
	if size <= current {
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

// apply follows one entry, as the rules say; the caller holds mu.
func (v *view) apply(e *pb.Entry) {
	var rec pb.Record
	if err := unmarshal(e.GetRecord(), &rec); err != nil {
		rec.Reset()
	}
	ch, err := v.rules.Append(&rec, rfc6962.DefaultHasher.HashLeaf(e.GetRecord()))
	if err != nil {
		v.broken++
		v.log.Warn("web: a record of the log breaks the rules of a letter; the pages ignore it (an audit reports it)",
			slog.Uint64("index", e.GetIndex()), slog.Any("rule", err), slog.Int("broken", v.broken))
		// Hiding a name is always safe: even a redaction that breaks the
		// rules hides the name it targets from the pages.
		if t := v.endorsements[rec.GetRedaction().GetTargetIndex()]; rec.GetRedaction() != nil && t != nil && t.disclosure != nil {
			t.disclosure, t.fold, t.key = nil, "", ""
			t.letter.named = nil
		}
		return
	}
	i, at := e.GetIndex(), rec.GetAcceptedAt()
	switch k := rec.GetKind().(type) {
	case *pb.Record_Letter:
		l := &letterView{index: i, at: at, letter: k.Letter}
		v.letters = append(v.letters, l)
		v.byID[k.Letter.GetId()] = l
	case *pb.Record_LetterStatus:
		l := v.byID[k.LetterStatus.GetLetterId()]
		l.status, l.note = k.LetterStatus.GetStatus(), k.LetterStatus.GetNote()
	case *pb.Record_Endorsement:
		v.endorse(i, at, k.Endorsement, e, ch)
	case *pb.Record_Withdrawal:
		w := k.Withdrawal
		t := v.endorsements[uint64(ch.Target.Ref.Index)]
		t.withdrawn = true
		by, key := authority(w.GetAuthorisation())
		t.letter.changed(historyItem{Index: i, Target: t.index, Kind: "withdrawal", By: by, ByKey: key, Reason: reasonKey(w.GetReason()), At: at})
	case *pb.Record_Redaction:
		r := k.Redaction
		t := v.endorsements[uint64(ch.Target.Ref.Index)]
		t.redacted, t.disclosure, t.fold, t.key = true, nil, "", ""
		by, key := authority(r.GetAuthorisation())
		t.letter.changed(historyItem{Index: i, Target: t.index, Kind: "redaction", By: by, ByKey: key, Reason: reasonKey(r.GetReason()), At: at})
	case *pb.Record_OrganiserChange:
		c := k.OrganiserChange
		kind := "organiser_added"
		if c.GetChange() == pb.KeyChange_KEY_CHANGE_REVOKE {
			kind = "organiser_revoked"
		}
		v.byID[c.GetLetterId()].changed(historyItem{Index: i, Kind: kind, By: "organiser", ByKey: records.KeyFingerprint(c.GetOrganiser().GetPublicKey()),
			Key: records.KeyFingerprint(c.GetKey()), Reason: "keys", At: at})
	}
}

func (v *view) endorse(i uint64, at int64, en *pb.Endorsement, e *pb.Entry, ch *rules.Change) {
	l := v.byID[en.GetLetterId()]
	ev := &endorsementView{index: i, at: at, private: en.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE, letter: l,
		redacted: e.GetRedacted()}
	if d := e.GetDisclosure(); d != nil && !ev.private && !ev.redacted {
		ev.disclosure = d
		ev.fold, ev.key = names.Fold(d.GetName()), names.TransliterationKey(d.GetName())
	}
	v.endorsements[i] = ev
	l.all = append(l.all, ev)
	l.named, l.countsDone = nil, false
	if ch.Target != nil {
		t := v.endorsements[uint64(ch.Target.Ref.Index)]
		t.replaced = true
		by, key := "signer", ""
		if o := en.GetOrganiser(); o != nil {
			by, key = "organiser", records.KeyFingerprint(o.GetPublicKey())
		}
		l.changed(historyItem{Index: i, Target: t.index, Kind: "correction", By: by, ByKey: key, Reason: "correction", At: at})
	}
}

func (l *letterView) changed(h historyItem) {
	l.history = append(l.history, h)
	l.named, l.countsDone = nil, false
}

// prepare computes what a letter's page reads: its counts and its named
// signatories. The caller holds mu for writing.
func (l *letterView) prepare() {
	if l.countsDone && l.named != nil {
		return
	}
	var c counts
	named := make([]*endorsementView, 0, len(l.all))
	for _, e := range l.all {
		switch {
		case e.withdrawn:
			c.Withdrawn++
		case e.replaced:
			c.Superseded++
		case e.private:
			c.Private++
		case e.redacted:
			c.Redacted++
		default:
			c.Public++
			if e.disclosure != nil {
				named = append(named, e)
			}
		}
	}
	l.counts, l.countsDone, l.named = c, true, named
}

// search returns the named signatories whose name matches q: every word of
// q, folded like `undersigned diff` folds names (case, diacritics, and
// Latin or Cyrillic spelling), is part of the name.
func search(named []*endorsementView, q string) []*endorsementView {
	var folds, keys []string
	for _, w := range strings.Fields(q) {
		folds = append(folds, names.Fold(w))
		keys = append(keys, names.TransliterationKey(w))
	}
	if len(folds) == 0 {
		return named
	}
	var out []*endorsementView
	for _, e := range named {
		if matchAll(e.fold, folds) || matchAll(e.key, keys) {
			out = append(out, e)
		}
	}
	return out
}

func matchAll(s string, words []string) bool {
	return !slices.ContainsFunc(words, func(w string) bool { return w == "" || !strings.Contains(s, w) })
}

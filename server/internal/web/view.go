package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/undersigned/undersigned/client/names"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

// view is the log as the pages show it, kept in memory and brought up to
// the latest checkpoint by applying each new entry in order, the way an
// audit replays a log. The server admitted every entry under the rules of
// its letter, so the view only follows what each record does.
type view struct {
	mu sync.RWMutex
	// size and checkpoint are what the view was built to.
	size       uint64
	checkpoint []byte
	letters    []*letterView
	byID       map[string]*letterView
	// endorsements by log index.
	endorsements map[uint64]*endorsementView
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

// historyItem is a withdrawal, a redaction or a correction.
type historyItem struct {
	Index, Target uint64
	Kind          string // withdrawal, redaction, correction
	By            string // signer, secret, organiser
	Reason        string // a reason key
	At            int64
}

func newView() *view {
	return &view{byID: map[string]*letterView{}, endorsements: map[uint64]*endorsementView{}}
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

func authority(a *pb.Authorisation) string {
	switch a.GetBy().(type) {
	case *pb.Authorisation_Signer:
		return "signer"
	case *pb.Authorisation_WithdrawalSecret:
		return "secret"
	}
	return "organiser"
}

// apply follows one entry; the caller holds mu.
func (v *view) apply(e *pb.Entry) {
	var rec pb.Record
	if err := unmarshal(e.GetRecord(), &rec); err != nil {
		return
	}
	i, at := e.GetIndex(), rec.GetAcceptedAt()
	switch k := rec.GetKind().(type) {
	case *pb.Record_Letter:
		l := &letterView{index: i, at: at, letter: k.Letter}
		v.letters = append(v.letters, l)
		v.byID[k.Letter.GetId()] = l
	case *pb.Record_LetterStatus:
		if l := v.byID[k.LetterStatus.GetLetterId()]; l != nil {
			l.status, l.note = k.LetterStatus.GetStatus(), k.LetterStatus.GetNote()
		}
	case *pb.Record_Endorsement:
		v.endorse(i, at, k.Endorsement, e)
	case *pb.Record_Withdrawal:
		w := k.Withdrawal
		if t := v.endorsements[w.GetTargetIndex()]; t != nil {
			t.withdrawn = true
			t.letter.changed(historyItem{Index: i, Target: t.index, Kind: "withdrawal", By: authority(w.GetAuthorisation()), Reason: reasonKey(w.GetReason()), At: at})
		}
	case *pb.Record_Redaction:
		r := k.Redaction
		if t := v.endorsements[r.GetTargetIndex()]; t != nil {
			t.redacted, t.disclosure, t.fold, t.key = true, nil, "", ""
			t.letter.changed(historyItem{Index: i, Target: t.index, Kind: "redaction", By: authority(r.GetAuthorisation()), Reason: reasonKey(r.GetReason()), At: at})
		}
	}
}

func (v *view) endorse(i uint64, at int64, en *pb.Endorsement, e *pb.Entry) {
	l := v.byID[en.GetLetterId()]
	if l == nil {
		return
	}
	ev := &endorsementView{index: i, at: at, private: en.GetVisibility() == pb.Visibility_VISIBILITY_PRIVATE, letter: l,
		redacted: e.GetRedacted()}
	if d := e.GetDisclosure(); d != nil && !ev.private && !ev.redacted {
		ev.disclosure = d
		ev.fold, ev.key = names.Fold(d.GetName()), names.TransliterationKey(d.GetName())
	}
	v.endorsements[i] = ev
	l.all = append(l.all, ev)
	l.named, l.countsDone = nil, false
	if s := en.Supersedes; s != nil {
		if t := v.endorsements[*s]; t != nil {
			t.replaced = true
			by := "signer"
			if en.GetOrganiser() != nil {
				by = "organiser"
			}
			l.changed(historyItem{Index: i, Target: t.index, Kind: "correction", By: by, Reason: "correction", At: at})
		}
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

package web

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"strings"

	"github.com/undersigned/undersigned/client/webui"
	pb "github.com/undersigned/undersigned/proto/undersignedv1"
)

func readStatic(name string) ([]byte, error) {
	if strings.Contains(name, "/") {
		return nil, errors.New("no such file")
	}
	return fs.ReadFile(webui.Static(), name)
}

func etag(b []byte) string {
	h := sha256.Sum256(b)
	return `"` + hex.EncodeToString(h[:12]) + `"`
}

// letterSummary is a letter as the index lists it.
type letterSummary struct {
	ID, Title, Status string
	Href              string
	Counted           uint64
}

type indexPage struct {
	webui.Page
	Letters []letterSummary
	Size    uint64
}

func statusKey(l *letterView) string {
	switch l.status {
	case pb.Status_STATUS_CLOSED:
		return "status.closed"
	case pb.Status_STATUS_DELIVERED:
		return "status.delivered"
	}
	return "status.open"
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	if err := h.view.update(r.Context(), h.src); err != nil {
		h.unavailable(w, err)
		return
	}
	p := h.page(r, "index.title")
	data := indexPage{Page: p}
	h.view.mu.Lock()
	data.Size = h.view.size
	for _, l := range h.view.letters {
		l.prepare()
		data.Letters = append(data.Letters, letterSummary{
			ID: l.letter.GetId(), Title: l.letter.GetTitle(), Status: p.T(statusKey(l)),
			Href: withLang("/letters/"+l.letter.GetId(), p.Lang), Counted: l.counts.Counted(),
		})
	}
	h.view.mu.Unlock()
	h.render(w, "index", data)
}

// rosterPageSize is how many names one page of a roster shows.
const rosterPageSize = 100

// historyShown is how many of the latest changes a letter's page lists.
const historyShown = 200

type rosterRow struct {
	Index                      uint64
	Name, Affiliation, Country string
}

type historyRow struct {
	historyItem
	What, Who, Why string
}

type letterPage struct {
	webui.Page
	ID, LetterTitle, Text, TextLang, Digest string
	Status, Note, Policy                    string
	Open                                    bool
	Counts                                  counts
	Chart                                   chart
	Query                                   string
	Matches                                 int
	Rows                                    []rosterRow
	PageNumber, Pages                       int
	PrevHref, NextHref                      string
	History                                 []historyRow
	HistoryTotal                            int
	Size                                    uint64
	Origin, LogKey, Endpoint                string
	// Checkpoint is the signed checkpoint the page was built from.
	Checkpoint string
}

func (h *Handler) letter(w http.ResponseWriter, r *http.Request) {
	if err := h.view.update(r.Context(), h.src); err != nil {
		h.unavailable(w, err)
		return
	}
	id := r.PathValue("id")
	h.view.mu.Lock()
	l := h.view.byID[id]
	if l == nil {
		h.view.mu.Unlock()
		p := h.page(r, "letter.notfound")
		w.WriteHeader(http.StatusNotFound)
		h.render(w, "notfound", p)
		return
	}
	data := h.letterData(r, l)
	h.view.mu.Unlock()
	h.render(w, "letter", data)
}

// letterData builds a letter's page; the caller holds the view's lock.
func (h *Handler) letterData(r *http.Request, l *letterView) letterPage {
	p := h.page(r, "")
	p.Title = l.letter.GetTitle()
	l.prepare()
	lt := l.letter
	d := letterPage{
		Page: p, ID: lt.GetId(), LetterTitle: lt.GetTitle(), Text: lt.GetText(), TextLang: lt.GetLanguage(),
		Digest: hex.EncodeToString(lt.GetTextDigest()), Status: p.T(statusKey(l)), Note: l.note,
		Open:   lt.GetPolicy() == pb.Policy_POLICY_OPEN && l.status == pb.Status_STATUS_UNSPECIFIED,
		Counts: l.counts, Size: h.view.size, Origin: h.src.Origin(), LogKey: h.src.VerifierKey(), Checkpoint: string(h.view.checkpoint),
		Endpoint: "/letters/" + lt.GetId() + "/sign",
	}
	d.Policy = p.T("policy.curated")
	if lt.GetPolicy() == pb.Policy_POLICY_OPEN {
		d.Policy = p.T("policy.open")
	}
	d.Chart = newChart(p, l)
	q := r.URL.Query()
	d.Query = strings.TrimSpace(q.Get("q"))
	list := l.named
	if d.Query != "" {
		list = search(list, d.Query)
		d.Matches = len(list)
	}
	d.Pages = max(1, (len(list)+rosterPageSize-1)/rosterPageSize)
	d.PageNumber = min(atoi(q.Get("page"), 1), d.Pages)
	from := (d.PageNumber - 1) * rosterPageSize
	for _, e := range list[from:min(from+rosterPageSize, len(list))] {
		ds := e.disclosure
		d.Rows = append(d.Rows, rosterRow{Index: e.index, Name: ds.GetName(), Affiliation: ds.GetAffiliation(), Country: ds.GetCountry()})
	}
	pageHref := func(n int) string {
		q := r.URL.Query()
		q.Set("page", itoa(n))
		q.Set("lang", p.Lang)
		return r.URL.Path + "?" + q.Encode() + "#roster"
	}
	if d.PageNumber > 1 {
		d.PrevHref = pageHref(d.PageNumber - 1)
	}
	if d.PageNumber < d.Pages {
		d.NextHref = pageHref(d.PageNumber + 1)
	}
	d.HistoryTotal = len(l.history)
	for i := len(l.history) - 1; i >= 0 && len(d.History) < historyShown; i-- {
		it := l.history[i]
		row := historyRow{historyItem: it, What: p.T("history."+it.Kind, it.Target), Who: p.T("by." + it.By), Why: p.T("reason." + it.Reason)}
		if it.Key != "" {
			row.What = p.T("history."+it.Kind, it.Key)
		}
		if it.ByKey != "" {
			row.Who = p.T("by.organiser_key", it.ByKey)
		}
		d.History = append(d.History, row)
	}
	return d
}

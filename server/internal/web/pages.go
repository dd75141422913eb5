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
	"github.com/undersigned/undersigned/server/internal/letters"
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

func statusKey(l *letters.Letter) string {
	switch l.Status {
	case pb.Status_STATUS_CLOSED:
		return "status.closed"
	case pb.Status_STATUS_DELIVERED:
		return "status.delivered"
	}
	return "status.open"
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	if err := h.view.Update(r.Context(), h.src); err != nil {
		h.unavailable(w, err)
		return
	}
	p := h.page(r, "index.title")
	data := indexPage{Page: p}
	h.view.Read(func(v *letters.Snapshot) {
		data.Size = v.Size
		for _, l := range v.Letters {
			data.Letters = append(data.Letters, letterSummary{
				ID: l.Letter.GetId(), Title: l.Letter.GetTitle(), Status: p.T(statusKey(l)),
				Href: withLang("/letters/"+l.Letter.GetId(), p.Lang), Counted: l.Counts.Counted(),
			})
		}
	})
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
	letters.Change
	What, Who, Why string
}

type letterPage struct {
	webui.Page
	ID, LetterTitle, Text, TextLang, Digest string
	Status, Note, Policy                    string
	Open                                    bool
	Counts                                  letters.Counts
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
	if err := h.view.Update(r.Context(), h.src); err != nil {
		h.unavailable(w, err)
		return
	}
	id := r.PathValue("id")
	var data *letterPage
	h.view.Read(func(v *letters.Snapshot) {
		if l := v.Letter(id); l != nil {
			data = h.letterData(r, v, l)
		}
	})
	if data == nil {
		p := h.page(r, "letter.notfound")
		w.WriteHeader(http.StatusNotFound)
		h.render(w, "notfound", p)
		return
	}
	h.render(w, "letter", data)
}

// letterData builds a letter's page, within the view's Read.
func (h *Handler) letterData(r *http.Request, v *letters.Snapshot, l *letters.Letter) *letterPage {
	p := h.page(r, "")
	p.Title = l.Letter.GetTitle()
	lt := l.Letter
	d := &letterPage{
		Page: p, ID: lt.GetId(), LetterTitle: lt.GetTitle(), Text: lt.GetText(), TextLang: lt.GetLanguage(),
		Digest: hex.EncodeToString(lt.GetTextDigest()), Status: p.T(statusKey(l)), Note: l.Note,
		Open:   lt.GetPolicy() == pb.Policy_POLICY_OPEN && l.Status == pb.Status_STATUS_UNSPECIFIED,
		Counts: l.Counts, Size: v.Size, Origin: h.src.Origin(), LogKey: h.src.VerifierKey(), Checkpoint: string(v.Checkpoint),
		Endpoint: "/letters/" + lt.GetId() + "/sign",
	}
	d.Policy = p.T("policy.curated")
	if lt.GetPolicy() == pb.Policy_POLICY_OPEN {
		d.Policy = p.T("policy.open")
	}
	d.Chart = newChart(p, l)
	q := r.URL.Query()
	d.Query = strings.TrimSpace(q.Get("q"))
	list := l.Named()
	if d.Query != "" {
		l.FoldNames()
		list = search(list, d.Query)
		d.Matches = len(list)
	}
	d.Pages = max(1, (len(list)+rosterPageSize-1)/rosterPageSize)
	d.PageNumber = min(atoi(q.Get("page"), 1), d.Pages)
	from := (d.PageNumber - 1) * rosterPageSize
	for _, e := range list[from:min(from+rosterPageSize, len(list))] {
		d.Rows = append(d.Rows, rosterRow{Index: e.Index, Name: e.Name, Affiliation: e.Affiliation, Country: e.Country})
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
	d.HistoryTotal = len(l.History)
	for i := len(l.History) - 1; i >= 0 && len(d.History) < historyShown; i-- {
		it := l.History[i]
		row := historyRow{Change: it, What: p.T("history."+it.Kind, it.Target), Who: p.T("by." + it.By), Why: p.T("reason." + it.Reason)}
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

package web

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/undersigned/undersigned/client/webui"
	"github.com/undersigned/undersigned/server/internal/letters"
)

// chart is a line of the signatures counted over time, drawn by the
// server as SVG (no script, no third-party library).
type chart struct {
	Title, Desc   string
	Points        string // the polyline's points
	Area          string // the polygon under it
	Empty         bool
	FromLabel     string
	ToLabel       string
	MaxLabel      string
	Width, Height int
	Left, Bottom  int
	Right, Top    int
}

const (
	chartWidth   = 640
	chartHeight  = 220
	chartBuckets = 60
)

// newChart counts, from the letter's publication and at the end of each
// of chartBuckets equal stretches of time up to its last record, the
// signatures that counted then: each endorsement adds one, and a withdrawal or a correction takes
// its target away. The caller holds the view's lock.
func newChart(p webui.Page, l *letters.Letter) chart {
	c := chart{Title: p.T("letter.chart"), Width: chartWidth, Height: chartHeight, Left: 50, Bottom: chartHeight - 30, Right: chartWidth - 10, Top: 10}
	type event struct {
		at    int64
		delta int
	}
	var events []event
	for _, e := range l.All {
		events = append(events, event{e.At, 1})
	}
	for _, h := range l.History {
		if h.Kind == "withdrawal" || h.Kind == "correction" {
			events = append(events, event{h.At, -1})
		}
	}
	if len(l.All) == 0 {
		c.Empty, c.Desc = true, p.T("chart.empty")
		return c
	}
	start, end := l.At, l.At
	for _, e := range events {
		start, end = min(start, e.at), max(end, e.at)
	}
	if end == start {
		end = start + 60
	}
	// Point 0 is the start, before any signature; point k counts what
	// happened by the end of the k-th stretch.
	counts := make([]int, chartBuckets+1)
	for _, e := range events {
		b := min(1+int((e.at-start)*chartBuckets/(end-start)), chartBuckets)
		counts[b] += e.delta
	}
	top := 1
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	for _, n := range counts {
		top = max(top, n)
	}
	var pts []string
	w, h := float64(c.Right-c.Left), float64(c.Bottom-c.Top)
	for i, n := range counts {
		x := float64(c.Left) + w*float64(i)/chartBuckets
		y := float64(c.Bottom) - h*float64(n)/float64(top)
		pts = append(pts, strconv.FormatFloat(x, 'f', 1, 64)+","+strconv.FormatFloat(y, 'f', 1, 64))
	}
	c.Points = strings.Join(pts, " ")
	c.Area = fmt.Sprintf("%d,%d %s %d,%d", c.Left, c.Bottom, c.Points, c.Right, c.Bottom)
	c.FromLabel, c.ToLabel, c.MaxLabel = day(start), day(end), strconv.Itoa(top)
	c.Desc = p.T("chart.desc", day(start), counts[0], day(end), counts[len(counts)-1])
	return c
}

func day(unix int64) string { return time.Unix(unix, 0).UTC().Format("2006-01-02 15:04") }

func itoa(n int) string { return strconv.Itoa(n) }

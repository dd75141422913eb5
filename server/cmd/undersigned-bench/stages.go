package main

// The stages of a write, as the server measures them: the histograms of
// its /metrics read before and after the measured window, so that a
// run's latency is split into admission, queuing, integration, the
// follower's steps, the checkpoint and the receipt.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// stageHistograms are the histograms read, by metric name, with the label
// that names their series.
var stageHistograms = map[string]string{
	"undersigned_ledger_write_stage_seconds": "stage",
	"undersigned_trillian_step_seconds":      "part",
	"undersigned_trillian_step_leaves":       "",
}

// histogramSums is, for each series ("metric/label"), its count and sum.
type histogramSums map[string][2]float64

// scrapeStages reads the server's stage histograms.
func scrapeStages(ctx context.Context, httpAddr string) (histogramSums, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read the server's metrics: %w", err)
	}
	defer resp.Body.Close()
	return parseStages(resp.Body)
}

// parseStages picks the stage histograms out of Prometheus' text format.
func parseStages(r io.Reader) (histogramSums, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse the server's metrics: %w", err)
	}
	out := histogramSums{}
	for name, label := range stageHistograms {
		f := families[name]
		if f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range f.GetMetric() {
			key := name
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					key += "/" + lp.GetValue()
				}
			}
			h := m.GetHistogram()
			out[key] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
		}
	}
	return out, nil
}

// stageMean is one series' mean over a window: the sum's growth over the
// count's.
type stageMean struct {
	Series string  `json:"series"`
	Count  float64 `json:"count"`
	Mean   float64 `json:"mean"`
}

// stageMeans returns each series' mean between two reads, in name order.
func stageMeans(before, after histogramSums) []stageMean {
	var out []stageMean
	for k, a := range after {
		b := before[k]
		if n := a[0] - b[0]; n > 0 {
			out = append(out, stageMean{Series: k, Count: n, Mean: (a[1] - b[1]) / n})
		}
	}
	slices.SortFunc(out, func(x, y stageMean) int { return strings.Compare(x.Series, y.Series) })
	return out
}

// formatStages prints stage means: times in milliseconds, leaves as they
// are.
func formatStages(ms []stageMean) string {
	var b strings.Builder
	for _, m := range ms {
		name := strings.TrimPrefix(strings.TrimPrefix(m.Series, "undersigned_"), "ledger_")
		if strings.HasSuffix(strings.SplitN(m.Series, "/", 2)[0], "_seconds") {
			fmt.Fprintf(&b, "  %-40s %8.1f ms mean over %.0f\n", name, 1000*m.Mean, m.Count)
		} else {
			fmt.Fprintf(&b, "  %-40s %8.1f mean over %.0f\n", name, m.Mean, m.Count)
		}
	}
	return b.String()
}

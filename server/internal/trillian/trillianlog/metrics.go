package trillianlog

import "github.com/prometheus/client_golang/prometheus"

// metrics are the log's measurements: how far the tile builder follows
// Trillian, and what it stores and signs.
type metrics struct {
	trillianSize  prometheus.Gauge
	followedSize  prometheus.Gauge
	publishedSize prometheus.Gauge
	stepFailures  prometheus.Counter
	tilesStored   prometheus.Counter
	signed        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		trillianSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "undersigned_trillian_tree_size",
			Help: "Size of Trillian's latest root, as last read.",
		}),
		followedSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "undersigned_trillian_followed_size",
			Help: "Entries the tile builder has followed.",
		}),
		publishedSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "undersigned_trillian_published_size",
			Help: "Size of the checkpoint this frontend serves.",
		}),
		stepFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_trillian_follow_failures_total",
			Help: "Attempts to follow the tree that failed (and were retried).",
		}),
		tilesStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_trillian_tiles_stored_total",
			Help: "Full tiles and entry bundles stored by this frontend's tile builder.",
		}),
		signed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_trillian_checkpoints_signed_total",
			Help: "Checkpoints this frontend signed (not counting those adopted from another frontend).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.trillianSize, m.followedSize, m.publishedSize, m.stepFailures, m.tilesStored, m.signed)
	}
	return m
}

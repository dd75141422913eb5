package trillianlog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the log's measurements: how far the tile builder follows
// Trillian, and what it stores and signs.
type metrics struct {
	trillianSize  prometheus.Gauge
	followedSize  prometheus.Gauge
	publishedSize prometheus.Gauge
	stepFailures  prometheus.Counter
	tilesStored   prometheus.Counter
	signed        prometheus.Counter
	// step times each part of a step of the follower (see the part
	// names below), and stepLeaves counts the leaves each step followed.
	step       *prometheus.HistogramVec
	stepLeaves prometheus.Histogram
}

// The parts of a step of the follower, the label of
// undersigned_trillian_step_seconds.
const (
	partRoot = "root" // Trillian's latest root read
	partRead = "read" // the new leaves read (GetLeavesByRange)
	// partReadAhead is the first leaves read with their root, in one call
	// (a step that follows a step which found leaves).
	partReadAhead = "read_ahead"
	partFollow    = "follow" // the ledger's follower: indexes matched and recorded
	partTiles     = "tiles"  // full tiles and bundles stored
	partSign      = "sign"   // the checkpoint signed by the guard, or adopted
	partRecord    = "record" // the signed checkpoint recorded (Config.Record)
	partStep      = "step"   // the whole step
)

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
		step: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "undersigned_trillian_step_seconds",
			Help:    "Time of each part of a step of the follower: root, read_ahead, read, follow, tiles, sign, record, and the whole step.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"part"}),
		stepLeaves: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "undersigned_trillian_step_leaves",
			Help:    "Leaves followed by one step of the follower.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.trillianSize, m.followedSize, m.publishedSize, m.stepFailures, m.tilesStored, m.signed, m.step, m.stepLeaves)
	}
	return m
}

// part records the time a part of a step took, since start, and returns
// now.
func (m *metrics) part(name string, start time.Time) time.Time {
	now := time.Now()
	m.step.WithLabelValues(name).Observe(now.Sub(start).Seconds())
	return now
}

package ledger

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ledger's measurements.
type Metrics struct {
	pushback    prometheus.Counter
	appended    prometheus.Counter
	admitBatch  prometheus.Histogram
	appendBatch prometheus.Histogram
	writes      *prometheus.CounterVec
	// othersRecord counts writes answered about a record that another
	// principal wrote: a duplicate, a conflict or a probe.
	othersRecord prometheus.Counter
	// behind counts calls answered Unavailable because the caller knew a
	// larger tree size than this server had caught up with.
	behind prometheus.Counter
	// badProofs counts proofs from the log that did not verify against
	// the published checkpoint, and were not served.
	badProofs prometheus.Counter
	// foreign counts the leaves of the log no frontend admitted.
	foreign prometheus.Counter
	// stages times each stage of a write, from the call to its receipt
	// (see the stage names below).
	stages *prometheus.HistogramVec
}

// The stages of a write, the label of undersigned_ledger_write_stage_seconds.
// Every write goes through admit, index, checkpoint and receipt, which add up
// to its whole time in the ledger; on a log that orders entries itself
// (Trillian) the index stage is also split into held, queue and integrate.
const (
	// stageAdmit is from the call to its admission committed: the wait
	// for a batch and the batch's transaction.
	stageAdmit = "admit"
	// stageIndex is from admission to the entry's index known.
	stageIndex = "index"
	// stageHeld is the wait for a dependency's index before queuing.
	stageHeld = "held"
	// stageQueue is from an entry ready to the log taking it (Trillian's
	// QueueLeaf returned), the wait for a free call included.
	stageQueue = "queue"
	// stageIntegrate is from the log taking an entry to the follower
	// matching it at its index: the log's integration and the follower's
	// next read.
	stageIntegrate = "integrate"
	// stageCheckpoint is from the index known to a published checkpoint
	// that includes it.
	stageCheckpoint = "checkpoint"
	// stageReceipt is the inclusion proof, its check and the receipt.
	stageReceipt = "receipt"
)

// NewMetrics creates the ledger's metrics and registers them with reg,
// unless reg is nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pushback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_ledger_pushback_total",
			Help: "Writes refused because the admission queue was full.",
		}),
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_ledger_appended_total",
			Help: "Records appended to the log.",
		}),
		admitBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "undersigned_ledger_admit_batch_seconds",
			Help:    "Time to check and durably admit one batch of writes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		appendBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "undersigned_ledger_append_batch_seconds",
			Help:    "Time for one admitted batch to get its indexes from the log.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undersigned_ledger_writes_total",
			Help: "Writes by kind and outcome.",
		}, []string{"kind", "outcome"}),
		othersRecord: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_ledger_others_record_total",
			Help: "Writes refused because they repeat or conflict with a record another principal wrote (each is also logged).",
		}),
		behind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_ledger_behind_total",
			Help: "Calls answered Unavailable with a retry hint because the caller knew a larger tree size than this server had caught up with in time.",
		}),
		badProofs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_ledger_bad_proofs_total",
			Help: "Proofs from the log that did not verify against the published checkpoint, and were refused rather than served (each is also logged).",
		}),
		foreign: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_ledger_foreign_entries_total",
			Help: "Entries of the log that no frontend admitted (queued on Trillian directly, or a second copy), found by this frontend; each is also logged with its index.",
		}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "undersigned_ledger_write_stage_seconds",
			Help:    "Time a write spends in each stage, from the call to its receipt: admit, index (held, queue and integrate on Trillian), checkpoint, receipt.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"stage"}),
	}
	if reg != nil {
		reg.MustRegister(m.pushback, m.appended, m.admitBatch, m.appendBatch, m.writes, m.othersRecord, m.behind, m.badProofs, m.foreign, m.stages)
	}
	return m
}

// stage records the time a write spent in a stage, since start, and
// returns now.
func (m *Metrics) stage(name string, start time.Time) time.Time {
	now := time.Now()
	m.stages.WithLabelValues(name).Observe(now.Sub(start).Seconds())
	return now
}

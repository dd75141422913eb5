package witnessing

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a cosigner's metrics; nil records nothing.
type metrics struct {
	latency  *prometheus.HistogramVec
	failures *prometheus.CounterVec
	size     *prometheus.GaugeVec
	rounds   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	buckets := []float64{.005, .01, .025, .05, .1, .2, .5, 1, 2, 5, 10}
	m := &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "undersigned_witness_request_seconds", Help: "Latency of add-checkpoint requests to each witness, by HTTP status (0: no answer).", Buckets: buckets,
		}, []string{"witness", "status"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undersigned_witness_failures_total", Help: "Requests to each witness that did not give a cosignature, by reason (unanswered, conflict, refused, rejected, invalid).",
		}, []string{"witness", "reason"}),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "undersigned_witness_cosigned_size", Help: "Size of the last checkpoint each witness cosigned.",
		}, []string{"witness"}),
		rounds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "undersigned_witness_round_seconds", Help: "Time to get a checkpoint cosigned by the quorum, by result (met, failed).", Buckets: buckets,
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.latency, m.failures, m.size, m.rounds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) request(w string, d time.Duration, status int) {
	if m != nil {
		m.latency.WithLabelValues(w, strconv.Itoa(status)).Observe(d.Seconds())
	}
}

func (m *metrics) failure(w, reason string) {
	if m != nil {
		m.failures.WithLabelValues(w, reason).Inc()
	}
}

func (m *metrics) cosigned(w string, size uint64) {
	if m != nil {
		m.size.WithLabelValues(w).Set(float64(size))
	}
}

func (m *metrics) round(d time.Duration, result string) {
	if m != nil {
		m.rounds.WithLabelValues(result).Observe(d.Seconds())
	}
}

// logMetrics are a Log's metrics; nil records nothing.
type logMetrics struct {
	size     prometheus.Gauge
	timeouts prometheus.Counter
}

func newLogMetrics(reg prometheus.Registerer) (*logMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &logMetrics{
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "undersigned_witness_published_size", Help: "Size of the latest checkpoint published with the quorum's cosignatures.",
		}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "undersigned_witness_wait_timeouts_total", Help: "Writes that gave up waiting for a checkpoint cosigned by the quorum (answered Unavailable).",
		}),
	}
	for _, c := range []prometheus.Collector{m.size, m.timeouts} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *logMetrics) published(size uint64) {
	if m != nil {
		m.size.Set(float64(size))
	}
}

func (m *logMetrics) timedOut() {
	if m != nil {
		m.timeouts.Inc()
	}
}

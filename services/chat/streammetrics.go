package chat

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// streamMetrics are what an operator watches of the stream.
type streamMetrics struct {
	subscribers prometheus.Gauge
	events      prometheus.Counter
	deliveries  prometheus.Counter
	behind      prometheus.Counter
	undecided   prometheus.Counter
	repeated    prometheus.Counter
	lag         prometheus.Histogram
}

func newStreamMetrics(reg prometheus.Registerer) *streamMetrics {
	m := &streamMetrics{
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "beep_stream_subscribers",
			Help: "Streams open on this instance."}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "beep_stream_events_total",
			Help: "Events of the log dispatched by this instance."}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{Name: "beep_stream_deliveries_total",
			Help: "Events queued to a subscriber of this instance."}),
		behind: prometheus.NewCounter(prometheus.CounterOpts{Name: "beep_stream_behind_total",
			Help: "Streams ended because they fell behind (they resume)."}),
		undecided: prometheus.NewCounter(prometheus.CounterOpts{Name: "beep_stream_undecided_total",
			Help: "Events whose recipients the graph could not decide (they got a Resync)."}),
		repeated: prometheus.NewCounter(prometheus.CounterOpts{Name: "beep_stream_repeated_total",
			Help: "Events of the log handed out a second time, and dropped (a bug: never expected)."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "beep_stream_dispatch_lag_seconds",
			Help:    "From an event's commit to its dispatch by this instance.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
	}
	if reg != nil {
		reg.MustRegister(m.subscribers, m.events, m.deliveries, m.behind, m.undecided, m.repeated, m.lag)
	}
	return m
}

// dispatched counts an event of the log, committed at, handed out now.
func (m *streamMetrics) dispatched(at time.Time) {
	m.events.Inc()
	m.lag.Observe(time.Since(at).Seconds())
}

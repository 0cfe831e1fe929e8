package main

import (
	"math"
	"sync/atomic"
	"time"
)

// histogram counts durations in logarithmic buckets 1% wide, from 1 µs to
// about 20 minutes; safe for concurrent use, cheap to record.
type histogram struct {
	buckets [histBuckets]atomic.Int64
	count   atomic.Int64
	max     atomic.Int64
}

const (
	histBuckets = 2100
	histGrowth  = 1.01
)

var logGrowth = math.Log(histGrowth)

// record adds one duration.
func (h *histogram) record(d time.Duration) {
	us := float64(d) / float64(time.Microsecond)
	i := 0
	if us > 1 {
		i = min(int(math.Log(us)/logGrowth)+1, histBuckets-1)
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// quantile is the duration below which a share q of the records fall (the
// upper edge of its bucket: at most 1% above the truth).
func (h *histogram) quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for i := range h.buckets {
		if seen += h.buckets[i].Load(); seen >= rank {
			if i == 0 {
				return time.Microsecond
			}
			edge := time.Duration(math.Pow(histGrowth, float64(i)) * float64(time.Microsecond))
			return min(edge, time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// Latency is a distribution in milliseconds, for the report.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *histogram) latency() Latency {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }
	return Latency{Count: h.count.Load(), P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)), P99: ms(h.quantile(0.99)), Max: ms(time.Duration(h.max.Load()))}
}

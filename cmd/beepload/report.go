package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is what a run measured, and whether every subscriber received
// exactly what it should.
type Report struct {
	Config  ConfigSummary `json:"config"`
	Machine Machine       `json:"machine"`

	SetupSeconds     float64 `json:"setup_seconds"`
	SubscribeSeconds float64 `json:"subscribe_seconds"`
	DrainSeconds     float64 `json:"drain_seconds"`
	// Warmup is the first message of each channel (-warmup).
	Warmup WarmupStats `json:"warmup"`

	Subscribers SubscriberCounts `json:"subscribers"`
	Sends       SendStats        `json:"sends"`
	Delivery    DeliveryStats    `json:"delivery"`
	Memory      MemoryStats      `json:"memory"`
	CPU         CPUStats         `json:"cpu"`
	SpiceDB     SpiceDBCalls     `json:"spicedb_calls,omitempty"`

	// Verified: every subscriber received each message of its server once,
	// and none of another's; every stream lasted the run.
	Verified bool     `json:"verified"`
	Problems []string `json:"problems,omitempty"`
}

// ConfigSummary is the run's shape.
type ConfigSummary struct {
	Users            int     `json:"users"`
	Servers          int     `json:"servers"`
	Subscribers      int     `json:"subscribers"`
	Outsiders        int     `json:"outsiders"`
	SendersPerServer int     `json:"senders_per_server"`
	Rate             float64 `json:"target_rate"`
	DurationSeconds  float64 `json:"duration_seconds"`
	Concurrency      int     `json:"concurrency"`
	StreamTransport  string  `json:"stream_transport"`
	StreamsPerConn   int     `json:"streams_per_conn,omitempty"`
	SpiceDBEngine    string  `json:"spicedb_engine"`
}

// Machine is where it ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Host      string `json:"host"`
}

// WarmupStats are the first message in each server's channel: the
// stream's visibility cache filled, cold.
type WarmupStats struct {
	Seconds  float64 `json:"seconds"`
	Received int64   `json:"received"`
	Expected int64   `json:"expected"`
}

// SubscriberCounts are the streams.
type SubscriberCounts struct {
	Requested int `json:"requested"`
	Ready     int `json:"ready"`
	// EndedEarly are the streams that ended before the run stopped them.
	EndedEarly int `json:"ended_early"`
	// FanOut is the subscribers per server (the members' streams a message
	// goes to).
	FanOut float64 `json:"fan_out"`
}

// SendStats are the sends.
type SendStats struct {
	Attempted int64            `json:"attempted"`
	OK        int64            `json:"ok"`
	Failed    int64            `json:"failed"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	// Missed are sends the rate called for while all were in flight.
	Missed int64 `json:"missed"`
	// PerSecond is the successful sends over the send phase.
	PerSecond float64 `json:"msgs_per_second"`
	Latency   Latency `json:"latency"`
}

// DeliveryStats are the messages received by the subscribers.
type DeliveryStats struct {
	Expected int64 `json:"expected"`
	Received int64 `json:"received"`
	// PerSecond is deliveries over the send phase and the drain.
	PerSecond float64 `json:"deliveries_per_second"`
	// Late are messages of an earlier phase received in this one.
	Late int64 `json:"late_from_earlier_phase"`
	// Lag is from the send's start to the receipt.
	Lag Latency `json:"lag"`
}

// MemoryStats are Beep's memory before subscribing, with every subscriber
// ready, and at the end.
type MemoryStats struct {
	Before Sample `json:"before_subscribing"`
	After  Sample `json:"subscribed"`
	End    Sample `json:"end"`
	// PerSubscriberKiB is the resident set's growth by subscriber.
	PerSubscriberKiB float64 `json:"rss_per_subscriber_kib"`
	// HeapPerSubscriberKiB is the Go heap's.
	HeapPerSubscriberKiB float64 `json:"heap_per_subscriber_kib"`
}

// SpiceDBCalls are the in-process SpiceDB's API calls by method, and its
// datastore queries ("datastore"), during the phase (sends and drain).
type SpiceDBCalls map[string]int64

// CPUStats are the CPU seconds spent during the send phase.
type CPUStats struct {
	SendSeconds   float64 `json:"send_phase_seconds"`
	BeepSendPhase float64 `json:"beep_cpu_seconds"`
	LoadSendPhase float64 `json:"beepload_cpu_seconds"`
	// PostgresSendPhase is what every PostgreSQL process of the machine
	// used (the server is shared: Beep's queries and anything else's).
	PostgresSendPhase float64 `json:"postgres_cpu_seconds"`
	// MachineSendPhase is what the whole machine used (all CPUs, /proc/stat).
	MachineSendPhase float64 `json:"machine_cpu_seconds"`
	// StolenSendPhase is the part of it the hypervisor gave to other
	// virtual machines (steal).
	StolenSendPhase float64 `json:"stolen_cpu_seconds"`
}

func (cfg Config) summary(rate float64) ConfigSummary {
	s := ConfigSummary{Users: cfg.Users, Servers: cfg.Servers, Subscribers: cfg.Subscribers, Outsiders: cfg.Outsiders,
		SendersPerServer: cfg.SendersPerServer, Rate: rate, DurationSeconds: cfg.Duration.Seconds(),
		Concurrency: cfg.Concurrency, StreamTransport: cfg.StreamTransport}
	if cfg.StreamTransport == "h2" {
		s.StreamsPerConn = cfg.StreamsPerConn
	}
	return s
}

// fill computes the report's numbers and checks every subscriber.
func (r *Report) fill(cfg Config, subs *subscribers, sent *sends, expected int64) {
	for j := range sent.ok {
		r.Sends.OK += sent.ok[j].Load()
		r.Sends.Failed += sent.failed[j].Load()
	}
	r.Sends.Missed = sent.missed.Load()
	r.Sends.Attempted = r.Sends.OK + r.Sends.Failed
	if len(sent.errs) > 0 {
		r.Sends.Errors = map[string]int64{}
		for code, n := range sent.errs {
			r.Sends.Errors[code.String()] = n
		}
	}
	r.Sends.PerSecond = round1(float64(r.Sends.OK) / sent.elapsed.Seconds())
	r.Sends.Latency = sent.latency.latency()
	r.Delivery.Expected, r.Delivery.Received = expected, subs.received.Load()
	r.Delivery.PerSecond = round1(float64(r.Delivery.Received) / (sent.elapsed.Seconds() + r.DrainSeconds))
	r.Delivery.Lag = subs.lag.Load().latency()
	r.Delivery.Late = subs.late.Load()
	r.Subscribers.FanOut = round1(float64(cfg.Subscribers) / float64(cfg.Servers))
	if n := r.Subscribers.Ready; n > 0 {
		if r.Memory.Before.RSSKiB > 0 && r.Memory.After.RSSKiB > 0 {
			r.Memory.PerSubscriberKiB = round1(float64(r.Memory.After.RSSKiB-r.Memory.Before.RSSKiB) / float64(n))
		}
		r.Memory.HeapPerSubscriberKiB = round1(float64(r.Memory.After.HeapInuseBytes-r.Memory.Before.HeapInuseBytes) / 1024 / float64(n))
	}

	// Every subscriber: its server's messages, each once (a send that failed
	// may still have posted), nothing of another server's.
	problem := func(format string, args ...any) {
		if len(r.Problems) < 20 {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	wrong := 0
	for _, s := range subs.all {
		switch {
		case !s.ready.Load():
			wrong++
			problem("subscriber %d never became ready: %v", s.user, s.err)
			continue
		case s.err != nil:
			r.Subscribers.EndedEarly++
			wrong++
			problem("subscriber %d: the stream ended: %v", s.user, s.err)
		}
		if f := s.foreign.Load(); f > 0 {
			wrong++
			problem("subscriber %d (server %d) received %d messages of other servers", s.user, s.server, f)
		}
		if d := s.duplicates.Load(); d > 0 {
			first := ""
			if f := s.firstDuplicate.Load(); f != nil {
				first = *f
			}
			wrong++
			problem("subscriber %d (server %d) received %d messages twice (the first: %s)", s.user, s.server, d, first)
		}
		if s.server < 0 {
			if own := s.own.Load(); own > 0 {
				wrong++
				problem("outsider %d received %d messages", s.user, own)
			}
			continue
		}
		lo := sent.ok[s.server].Load()
		hi := lo + sent.failed[s.server].Load()
		if own := s.own.Load(); own < lo || own > hi {
			wrong++
			problem("subscriber %d (server %d) received %d of its server's messages, want %d", s.user, s.server, own, lo)
		}
	}
	if wrong > 0 {
		problem("%d of %d subscribers did not receive exactly what they should", wrong, len(subs.all))
	}
	if r.Sends.OK == 0 {
		problem("no send succeeded")
	}
	r.Verified = wrong == 0 && r.Sends.OK > 0
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// WriteJSON prints the report as JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText prints the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "beepload: %d users in %d servers, %d subscribers (+%d outsiders, fan-out %.0f), %d sender(s) per server\n",
		c.Users, c.Servers, c.Subscribers, c.Outsiders, r.Subscribers.FanOut, c.SendersPerServer)
	streams := "one HTTP/1.1 connection each"
	switch c.StreamTransport {
	case "h2":
		streams = fmt.Sprintf("%d per HTTP/2 connection", c.StreamsPerConn)
	case "ws":
		streams = "WebSocket, one connection each"
	}
	fmt.Fprintf(&b, "  target %.0f msg/s for %.0fs, %d in flight at most; streams %s; SpiceDB engine %s; %d CPUs, %s\n",
		c.Rate, c.DurationSeconds, c.Concurrency, streams, c.SpiceDBEngine, r.Machine.CPUs, r.Machine.GoVersion)
	fmt.Fprintf(&b, "setup %.1fs, subscribing %.1fs (%d of %d ready), warm-up %.1fs (%d of %d delivered), drain %.1fs\n",
		r.SetupSeconds, r.SubscribeSeconds, r.Subscribers.Ready, r.Subscribers.Requested, r.Warmup.Seconds, r.Warmup.Received, r.Warmup.Expected, r.DrainSeconds)
	s := r.Sends
	fmt.Fprintf(&b, "sends:      %.1f msg/s sustained (%d ok, %d failed, %d missed)  p50 %s  p90 %s  p99 %s  max %s\n",
		s.PerSecond, s.OK, s.Failed, s.Missed, ms(s.Latency.P50), ms(s.Latency.P90), ms(s.Latency.P99), ms(s.Latency.Max))
	if len(s.Errors) > 0 {
		codes := make([]string, 0, len(s.Errors))
		for code, n := range s.Errors {
			codes = append(codes, fmt.Sprintf("%s ×%d", code, n))
		}
		slices.Sort(codes)
		fmt.Fprintf(&b, "            errors: %s\n", strings.Join(codes, ", "))
	}
	d := r.Delivery
	fmt.Fprintf(&b, "deliveries: %d of %d (%.0f/s, %d late from an earlier phase)  lag p50 %s  p90 %s  p99 %s  max %s\n",
		d.Received, d.Expected, d.PerSecond, d.Late, ms(d.Lag.P50), ms(d.Lag.P90), ms(d.Lag.P99), ms(d.Lag.Max))
	m := r.Memory
	fmt.Fprintf(&b, "memory:     RSS %s → %s with %d subscribers (%s at the end): %.1f KiB RSS, %.1f KiB heap per subscriber; goroutines %d → %d\n",
		mib(m.Before.RSSKiB), mib(m.After.RSSKiB), r.Subscribers.Ready, mib(m.End.RSSKiB), m.PerSubscriberKiB, m.HeapPerSubscriberKiB, m.Before.Goroutines, m.After.Goroutines)
	if len(r.SpiceDB) > 0 && r.Sends.OK > 0 {
		names := make([]string, 0, len(r.SpiceDB))
		for name := range r.SpiceDB {
			names = append(names, name)
		}
		slices.Sort(names)
		var calls []string
		for _, name := range names {
			calls = append(calls, fmt.Sprintf("%s %.2f", name, float64(r.SpiceDB[name])/float64(r.Sends.OK)))
		}
		fmt.Fprintf(&b, "spicedb:    per message sent: %s\n", strings.Join(calls, ", "))
	}
	per := func(s float64) float64 { return s / max(r.CPU.SendSeconds, 0.001) }
	fmt.Fprintf(&b, "cpu:        during the %.1fs of sends, Beep used %.2f cores, PostgreSQL %.2f, beepload %.2f; the machine %.2f of %d (%.2f stolen by the hypervisor)\n",
		r.CPU.SendSeconds, per(r.CPU.BeepSendPhase), per(r.CPU.PostgresSendPhase), per(r.CPU.LoadSendPhase), per(r.CPU.MachineSendPhase), r.Machine.CPUs, per(r.CPU.StolenSendPhase))
	if r.Verified {
		b.WriteString("verified:   every subscriber received each message of its server once, and nothing else\n")
	} else {
		b.WriteString("NOT VERIFIED:\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  - %s\n", p)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(v float64) string {
	return (time.Duration(v * float64(time.Millisecond))).Round(10 * time.Microsecond).String()
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

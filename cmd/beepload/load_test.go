package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoadAgainstBeep runs the generator at a tiny scale against a real
// beep (built from ./cmd/beep, started on fresh databases, stopped and its
// databases dropped after): every subscriber in a server must receive each
// of its channel's messages once, members of other servers and outsiders
// none of them, and every stream must last the run.
func TestLoadAgainstBeep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts beep")
	}
	bin := filepath.Join(t.TempDir(), "beep")
	build := exec.Command("go", "build", "-o", bin, "../beep")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building beep: %v\n%s", err, out)
	}
	// Over HTTP/2 (3 streams a connection) with SpiceDB on PostgreSQL, and
	// over HTTP/1.1 (one connection a stream) on the memory engine, and
	// over WebSocket on PostgreSQL, on fresh databases each time.
	for _, c := range []struct{ transport, engine string }{{"h2", "postgres"}, {"http1", "memory"}, {"ws", "postgres"}} {
		t.Run(c.transport+"-"+c.engine, func(t *testing.T) { loadOnce(t, bin, c.transport, c.engine) })
	}
}

// loadOnce runs two phases on the same subscribers: 30 msg/s, then 15,
// for 2 s each, with subscriptions over transport and SpiceDB on engine.
func loadOnce(t *testing.T, bin, transport, engine string) {
	var stdout, stderr bytes.Buffer
	reps, err := run(t.Context(), []string{"-beep", bin, "-spicedb-engine", engine, "-users", "12", "-servers", "3", "-outsiders", "2",
		"-senders-per-server", "2", "-rate", "30,15", "-duration", "2s", "-drain", "10s", "-timeout", "4m",
		"-stream-transport", transport, "-streams-per-conn", "3", "-o", "json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if len(reps) != 2 {
		t.Fatalf("%d reports, want 2", len(reps))
	}
	if reps[0].Config.StreamTransport != transport {
		t.Errorf("the report says stream transport %q, want %q", reps[0].Config.StreamTransport, transport)
	}
	// Each server's channel reaches its 4 members; 60 messages, then 30.
	for i, want := range []int64{60, 30} {
		rep := reps[i]
		if !rep.Verified {
			t.Fatalf("phase %d not verified: %s\n%s", i+1, strings.Join(rep.Problems, "\n"), stderr.String())
		}
		if rep.Sends.OK != want || rep.Delivery.Received != 4*want || rep.Delivery.Expected != 4*want {
			t.Errorf("phase %d: sent %d, delivered %d of %d; want %d, %d", i+1, rep.Sends.OK, rep.Delivery.Received, rep.Delivery.Expected, want, 4*want)
		}
		if rep.Subscribers.Ready != 14 || rep.Memory.Before.RSSKiB == 0 {
			t.Errorf("phase %d: ready %d (want 14), RSS before %d KiB", i+1, rep.Subscribers.Ready, rep.Memory.Before.RSSKiB)
		}
	}
	var decoded []Report
	if err := json.Unmarshal(stdout.Bytes(), &decoded); err != nil || len(decoded) != 2 || decoded[1].Sends.OK != reps[1].Sends.OK {
		t.Errorf("the JSON report: %v\n%s", err, stdout.String())
	}
}

// TestVerificationFails: the check that makes the test above meaningful
// fails when a subscriber receives another server's message, misses one
// of its own, or when an outsider receives anything.
func TestVerificationFails(t *testing.T) {
	check := func(own, foreign, outsider int64) *Report {
		sent := &sends{ok: make([]atomic.Int64, 2), failed: make([]atomic.Int64, 2), elapsed: time.Second}
		sent.ok[0].Store(5)
		sent.ok[1].Store(3)
		subs := &subscribers{}
		subs.lag.Store(&histogram{})
		member, other, out := &subscriber{user: 0, server: 0}, &subscriber{user: 1, server: 1}, &subscriber{user: 2, server: -1}
		member.own.Store(own)
		member.foreign.Store(foreign)
		other.own.Store(3)
		out.foreign.Store(outsider)
		for _, s := range []*subscriber{member, other, out} {
			s.ready.Store(true)
			subs.all = append(subs.all, s)
		}
		rep := &Report{}
		rep.fill(Config{Servers: 2, Subscribers: 2}, subs, sent, expectedDeliveries(subs, sent))
		return rep
	}
	if rep := check(5, 0, 0); !rep.Verified || rep.Delivery.Expected != 8 {
		t.Errorf("exact deliveries: verified %v, expected %d, problems %v", rep.Verified, rep.Delivery.Expected, rep.Problems)
	}
	for name, rep := range map[string]*Report{"missed": check(4, 0, 0), "twice": check(6, 0, 0), "foreign": check(5, 1, 0), "outsider": check(5, 0, 1)} {
		if rep.Verified {
			t.Errorf("%s: verified", name)
		}
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Run runs one load: it starts Beep if asked, sets the population up,
// subscribes, then for each rate sends, drains and checks what each
// subscriber received; it stops what it started. One report per rate.
func Run(ctx context.Context, cfg Config) (reps []*Report, err error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, "beepload: "+format+"\n", args...)
		}
	}
	addr, key, pid, pprofAddr := cfg.Addr, cfg.DevTokenKey, cfg.PID, cfg.PprofAddr
	engine := "(the running Beep's)"
	if cfg.Beep.Binary != "" {
		logf("starting %s (SpiceDB engine %s)", cfg.Beep.Binary, cfg.Beep.Engine)
		proc, err := cfg.Beep.start(ctx)
		if err != nil {
			return nil, err
		}
		defer func() {
			if stopErr := proc.stop(); stopErr != nil && err == nil {
				err = stopErr
			}
		}()
		addr, key, pid, pprofAddr, engine = proc.addr, proc.key, proc.pid(), proc.pprofAddr, cfg.Beep.Engine
	}
	base := "http://" + addr
	var shared Report
	shared.Machine = machine()

	began := time.Now()
	c := newBeepClient(base, key, 8)
	p, err := setup(ctx, c, cfg)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	shared.SetupSeconds = seconds(time.Since(began))
	c.withSenders(cfg.Servers * cfg.SendersPerServer)
	logf("setup: %d users in %d servers in %.1fs", cfg.Users, cfg.Servers, shared.SetupSeconds)

	shared.Memory.Before = sample(ctx, base, pid)
	users := make([]int, 0, cfg.Subscribers+cfg.Outsiders)
	for i := range cfg.Subscribers {
		users = append(users, i)
	}
	for i := range cfg.Outsiders {
		users = append(users, cfg.Users+i)
	}
	began = time.Now()
	subs := subscribe(ctx, base, p, users, cfg.StreamTransport, cfg.StreamsPerConn, 64)
	defer subs.stop()
	shared.SubscribeSeconds = seconds(time.Since(began))
	shared.Memory.After = sample(ctx, base, pid)
	for _, s := range subs.all {
		if s.ready.Load() {
			shared.Subscribers.Ready++
		}
	}
	shared.Subscribers.Requested = len(users)
	logf("subscribed: %d of %d ready in %.1fs", shared.Subscribers.Ready, len(users), shared.SubscribeSeconds)

	// Joins become visible to checks at the lowest consistency within
	// SpiceDB's revision quantization (5 s): let them settle before sending.
	if wait := 6*time.Second - time.Since(p.settled); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if cfg.Warmup > 0 {
		logf("warming up: one message per server")
		took, got, want := warm(ctx, c, p, subs, cfg, cfg.Warmup)
		shared.Warmup = WarmupStats{Seconds: seconds(took), Received: got, Expected: want}
		logf("warm-up: %d of %d deliveries in %.1fs", got, want, shared.Warmup.Seconds)
	}
	for i, rate := range cfg.Rates {
		rep := shared
		rep.Config = cfg.summary(rate)
		rep.Config.SpiceDBEngine = engine
		phase(ctx, cfg, c, p, subs, &rep, int64(i+1), base, pid, pprofAddr, logf)
		reps = append(reps, &rep)
		if ctx.Err() != nil {
			return reps, ctx.Err()
		}
	}
	return reps, nil
}

// phase sends at rep's rate, drains, and fills rep in.
func phase(ctx context.Context, cfg Config, c *beepClient, p *population, subs *subscribers, rep *Report, n int64, base string, pid int, pprofAddr string, logf func(string, ...any)) {
	subs.next(n)
	profile := make(chan error, 1)
	if cfg.CPUProfile != "" {
		path := phaseFile(cfg, cfg.CPUProfile, rep.Config.Rate)
		go func() { profile <- cpuProfile(ctx, pprofAddr, cfg.Duration, path) }()
	} else {
		profile <- nil
	}
	stopSelfProfile := func() {}
	if cfg.LoadCPUProfile != "" {
		stop, err := selfCPUProfile(phaseFile(cfg, cfg.LoadCPUProfile, rep.Config.Rate))
		if err != nil {
			rep.Problems = append(rep.Problems, "beepload's CPU profile: "+err.Error())
		} else {
			stopSelfProfile = stop
		}
	}
	calls0 := sample(ctx, base, pid).SpiceDB
	cpu0, self0, pg0 := cpuSeconds(pid), selfCPUSeconds(), postgresCPUSeconds()
	all0, steal0 := machineCPUSeconds()
	logf("sending %.0f msg/s for %s", rep.Config.Rate, cfg.Duration)
	sent := send(ctx, c, p, cfg, rep.Config.Rate, n)
	stopSelfProfile()
	rep.CPU.BeepSendPhase, rep.CPU.LoadSendPhase = cpuSeconds(pid)-cpu0, selfCPUSeconds()-self0
	all1, steal1 := machineCPUSeconds()
	rep.CPU.PostgresSendPhase, rep.CPU.MachineSendPhase, rep.CPU.StolenSendPhase = postgresCPUSeconds()-pg0, all1-all0, steal1-steal0
	rep.CPU.SendSeconds = seconds(sent.elapsed)

	// The last deliveries.
	expected := expectedDeliveries(subs, sent)
	drainStart := time.Now()
	for subs.received.Load() < expected && time.Since(drainStart) < cfg.Drain && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	rep.DrainSeconds = seconds(time.Since(drainStart))
	rep.Memory.End = sample(ctx, base, pid)
	rep.SpiceDB = SpiceDBCalls{}
	for name, n := range rep.Memory.End.SpiceDB {
		if d := n - calls0[name]; d > 0 {
			rep.SpiceDB[name] = d
		}
	}
	if err := <-profile; err != nil {
		rep.Problems = append(rep.Problems, "CPU profile: "+err.Error())
	}
	if n == int64(len(cfg.Rates)) {
		subs.stop() // the streams' ends are part of the last phase's check
	}
	rep.fill(cfg, subs, sent, expected)
	logf("%.0f msg/s: %.1f sustained, send p99 %.1f ms, delivery p99 %.1f ms, verified %v",
		rep.Config.Rate, rep.Sends.PerSecond, rep.Sends.Latency.P99, rep.Delivery.Lag.P99, rep.Verified)
}

// expectedDeliveries is how many of the load's messages the subscribers
// should receive: each successful send, once per subscriber of its server.
func expectedDeliveries(subs *subscribers, sent *sends) int64 {
	var n int64
	for _, s := range subs.all {
		if s.server >= 0 && s.ready.Load() {
			n += sent.ok[s.server].Load()
		}
	}
	return n
}

// phaseFile is path for the phase at rate: path itself if there is one
// phase, else with the rate before its extension.
func phaseFile(cfg Config, path string, rate float64) string {
	if len(cfg.Rates) == 1 {
		return path
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "-" + strconv.FormatFloat(rate, 'f', -1, 64) + ext
}

// selfCPUProfile starts beepload's own CPU profile into path; stop ends it.
func selfCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// cpuProfile saves Beep's CPU profile of the next d.
func cpuProfile(ctx context.Context, pprofAddr string, d time.Duration, path string) error {
	secs := max(int(d.Seconds()), 1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiler: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// postgresCPUSeconds is the CPU time the machine's PostgreSQL processes
// have used (those alive now: its backends live as long as the pools'
// connections).
func postgresCPUSeconds() float64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total float64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			total += cpuSeconds(pid)
		}
	}
	return total
}

// machineCPUSeconds is the CPU time all of the machine's CPUs have spent
// busy (/proc/stat: neither idle nor waiting for I/O), and of it the time
// the hypervisor gave to other guests (steal): a virtual machine's
// neighbours slow every process of it alike, which runs side by side
// cannot tell apart otherwise.
func machineCPUSeconds() (busy, steal float64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0
	}
	var ticks, stolen uint64
	for i, f := range fields[1:] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, 0
		}
		if i != 3 && i != 4 && i < 8 { // not idle, not iowait; no guest time (counted in user)
			ticks += n
		}
		if i == 7 {
			stolen = n
		}
	}
	const clockTicks = 100
	return float64(ticks) / clockTicks, float64(stolen) / clockTicks
}

// cpuSeconds is the CPU time pid has used (user and system; 0 if unknown).
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces), from the state.
	i := len(raw) - 1
	for i > 0 && raw[i] != ')' {
		i--
	}
	var (
		state                                   string
		ppid, pgrp, session, tty, tpgid         int64
		flags, minflt, cminflt, majflt, cmajflt uint64
		utime, stime                            uint64
	)
	if _, err := fmt.Sscan(string(raw[i+1:]), &state, &ppid, &pgrp, &session, &tty, &tpgid, &flags, &minflt, &cminflt, &majflt, &cmajflt, &utime, &stime); err != nil {
		return 0
	}
	const clockTicks = 100 // USER_HZ on Linux
	return float64(utime+stime) / clockTicks
}

// selfCPUSeconds is the CPU time this process has used.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// machine describes where the run ran.
func machine() Machine {
	host, _ := os.Hostname()
	return Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Host: host}
}

// Command beepload is Beep's load generator for the chat service and its
// real-time stream. It drives a running Beep (or one it starts, -beep)
// through the gateway over loopback: N users in M servers, S live
// subscribers (StreamService.Subscribe) and senders posting at a target
// rate for a fixed time. It reports the sustained message rate, the send
// latency, the delivery lag to every subscriber, and the Beep process's
// memory per subscriber, and checks that every subscriber received exactly
// the messages of its server's channel and nothing else.
//
//	beepload -beep bin/beep -users 1000 -servers 100 -subscribers 1000 -rate 500 -duration 20s
//	beepload -addr 127.0.0.1:8080 -dev-token-key KEY -pid 1234 ...
//
// It is bounded in count and time and stops by itself. See
// docs/benchmarks.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reps, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "beepload:", err)
		os.Exit(1)
	}
	for _, rep := range reps {
		if !rep.Verified {
			os.Exit(2)
		}
	}
}

// Config is one load run.
type Config struct {
	// Addr is the running Beep's public port (host:port); empty with Beep set.
	Addr string
	// DevTokenKey signs the users' development tokens (Beep's -dev-token-key).
	DevTokenKey string
	// PID is the Beep process, for its memory (0: not measured).
	PID int
	// Beep, when set, is a beep binary to start for the run (and stop after).
	Beep Spawn

	Users       int
	Servers     int
	Subscribers int
	// Outsiders are extra subscribers in no server: they must receive no
	// message.
	Outsiders int
	// SendersPerServer are the members of each server who send (the owner
	// first).
	SendersPerServer int
	// Rates are the target messages per second of the send phases, one
	// after the other on the same population and subscribers.
	Rates    []float64
	Duration time.Duration
	// Concurrency bounds the sends in flight.
	Concurrency int
	// Warmup bounds the warm-up (one message per server, delivered before
	// the measured phases); 0 skips it.
	Warmup time.Duration
	// Drain is how long to wait for the last deliveries after the sends.
	Drain time.Duration
	// StreamTransport is how subscriptions reach Beep: "h2", HTTP/2 with
	// StreamsPerConn subscriptions on each connection, or "http1", one
	// HTTP/1.1 connection per subscription (a browser on plain HTTP, or a
	// proxy that speaks HTTP/1.1 to its upstream).
	StreamTransport string
	// StreamsPerConn is how many subscriptions share one HTTP/2 connection.
	StreamsPerConn int
	// Timeout bounds the whole run.
	Timeout time.Duration
	// CPUProfile, when set, receives Beep's CPU profile of the send phase
	// (needs Beep's -pprof-addr: PprofAddr, or set by -beep).
	CPUProfile string
	PprofAddr  string
	// LoadCPUProfile, when set, receives beepload's own CPU profile of the
	// send phase.
	LoadCPUProfile string
	// JSON prints the report as JSON.
	JSON bool
	// Log receives progress lines.
	Log io.Writer
}

// run parses args, runs the load and prints the reports to stdout (as
// one JSON array with -o json).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) ([]*Report, error) {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	reps, err := Run(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return reps, enc.Encode(reps)
	}
	for _, rep := range reps {
		if err := rep.WriteText(stdout); err != nil {
			return reps, err
		}
	}
	return reps, nil
}

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	cfg := Config{Log: stderr}
	fs := flag.NewFlagSet("beepload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Addr, "addr", "", "a running Beep's public port, host:port (loopback); or use -beep")
	fs.StringVar(&cfg.DevTokenKey, "dev-token-key", "", "the running Beep's -dev-token-key (with -addr)")
	fs.IntVar(&cfg.PID, "pid", 0, "the running Beep's process id, for its memory (with -addr; 0: not measured)")
	fs.StringVar(&cfg.PprofAddr, "pprof-addr", "", "the running Beep's -pprof-addr (with -addr and -cpu-profile)")
	fs.StringVar(&cfg.Beep.Binary, "beep", "", "start this beep binary for the run, on fresh databases and a free loopback port, and stop it after")
	fs.StringVar(&cfg.Beep.Engine, "spicedb-engine", "postgres", "with -beep: the in-process SpiceDB's datastore, postgres (Beep's default; needs track_commit_timestamp = on) or memory")
	fs.StringVar(&cfg.Beep.PostgresURL, "postgres-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "with -beep: the PostgreSQL server Beep's databases are made on (and dropped from)")
	beepArgs := fs.String("beep-args", "", "with -beep: more flags for beep serve, space-separated")
	fs.StringVar(&cfg.Beep.LogFile, "beep-log", "", "with -beep: write Beep's log to this file (default: shown only if it fails)")
	fs.IntVar(&cfg.Users, "users", 100, "users (N), spread over the servers")
	fs.IntVar(&cfg.Servers, "servers", 10, "servers (M), each with one channel")
	fs.IntVar(&cfg.Subscribers, "subscribers", -1, "live subscribers among the users (S; -1: every user)")
	fs.IntVar(&cfg.Outsiders, "outsiders", 1, "extra subscribers in no server (they must receive nothing)")
	fs.IntVar(&cfg.SendersPerServer, "senders-per-server", 1, "members of each server who send")
	rates := fs.String("rate", "100", "target messages per second, all servers together; a comma-separated list runs one send phase per rate")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&cfg.Concurrency, "concurrency", 128, "sends in flight at most")
	fs.DurationVar(&cfg.Warmup, "warmup", 5*time.Minute, "wait at most this long for a first message per server to reach every subscriber before measuring (0: no warm-up)")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "how long to wait for the last deliveries")
	fs.StringVar(&cfg.StreamTransport, "stream-transport", "h2", "subscriptions' transport: h2 (HTTP/2, -streams-per-conn on each connection), http1 (one HTTP/1.1 connection each) or ws (WebSocket, binary events, one connection each)")
	fs.IntVar(&cfg.StreamsPerConn, "streams-per-conn", 100, "with -stream-transport h2: subscriptions per HTTP/2 connection")
	fs.DurationVar(&cfg.Timeout, "timeout", 15*time.Minute, "bound on the whole run")
	fs.StringVar(&cfg.CPUProfile, "cpu-profile", "", "write Beep's CPU profile of the send phase here (needs -beep or -pprof-addr)")
	fs.StringVar(&cfg.LoadCPUProfile, "load-cpu-profile", "", "write beepload's own CPU profile of the send phase here")
	out := fs.String("o", "text", "report format: text or json")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg.Beep.Args = strings.Fields(*beepArgs)
	for _, r := range strings.Split(*rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || v <= 0 {
			return Config{}, fmt.Errorf("-rate %q: want positive numbers, comma-separated", *rates)
		}
		cfg.Rates = append(cfg.Rates, v)
	}
	switch *out {
	case "text":
	case "json":
		cfg.JSON = true
	default:
		return Config{}, fmt.Errorf("-o %q: want text or json", *out)
	}
	if cfg.Subscribers < 0 {
		cfg.Subscribers = cfg.Users
	}
	return cfg, cfg.check()
}

func (cfg Config) check() error {
	switch {
	case (cfg.Addr == "") == (cfg.Beep.Binary == ""):
		return errors.New("want -addr (a running Beep) or -beep (a binary to start), not both")
	case cfg.Addr != "" && cfg.DevTokenKey == "":
		return errors.New("-addr needs -dev-token-key")
	case cfg.Addr != "" && !loopback(cfg.Addr):
		return fmt.Errorf("-addr %q: beepload drives a Beep on loopback only", cfg.Addr)
	case cfg.Servers < 1 || cfg.Users < cfg.Servers:
		return errors.New("want at least one server and at least as many users as servers")
	case cfg.Subscribers > cfg.Users:
		return errors.New("-subscribers: at most -users")
	case cfg.SendersPerServer < 1 || cfg.SendersPerServer*cfg.Servers > cfg.Users:
		return errors.New("-senders-per-server: at least 1, and senders must be users")
	case len(cfg.Rates) == 0 || len(cfg.Rates) > 10 || cfg.Duration <= 0 || cfg.Concurrency < 1 || cfg.StreamsPerConn < 1:
		return errors.New("-rate (1 to 10 rates), -duration, -concurrency and -streams-per-conn must be positive")
	case cfg.Users > 100000 || cfg.Subscribers+cfg.Outsiders > 50000 || cfg.Duration > 10*time.Minute:
		return errors.New("bounded: at most 100,000 users, 50,000 subscribers, 10 minutes")
	case cfg.StreamTransport != "h2" && cfg.StreamTransport != "http1" && cfg.StreamTransport != "ws":
		return fmt.Errorf("-stream-transport %q: want h2, http1 or ws", cfg.StreamTransport)
	case cfg.CPUProfile != "" && cfg.Beep.Binary == "" && cfg.PprofAddr == "":
		return errors.New("-cpu-profile needs -beep or -pprof-addr")
	}
	return nil
}

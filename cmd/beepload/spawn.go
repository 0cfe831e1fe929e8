package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Spawn is a beep binary beepload starts for a run: `beep serve` with the
// memory (or postgres) engine, development tokens, Kratos off, the rate
// limit out of the way, a free loopback port and databases of its own,
// dropped once it stopped.
type Spawn struct {
	Binary      string
	Engine      string
	PostgresURL string
	// Args are more flags for beep serve.
	Args []string
	// LogFile receives Beep's log ("" keeps its tail for errors).
	LogFile string
}

// beepProcess is a started Beep.
type beepProcess struct {
	cmd       *exec.Cmd
	addr      string
	pprofAddr string
	key       string
	databases []string
	pgURL     string
	log       *tail
	logFile   *os.File
	exited    chan error
}

// start runs the binary and waits until it is ready.
func (s Spawn) start(ctx context.Context) (*beepProcess, error) {
	if s.Engine == "postgres" {
		if err := canWatch(ctx, s.PostgresURL); err != nil {
			return nil, err
		}
	}
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	pprofAddr, err := freePort()
	if err != nil {
		return nil, err
	}
	key := randomHex(16)
	run := "beep_load_" + randomHex(4)
	p := &beepProcess{addr: addr, pprofAddr: pprofAddr, key: key, pgURL: s.PostgresURL, log: &tail{max: 64 << 10}, exited: make(chan error, 1)}
	args := []string{"serve", "-http-addr", addr, "-pprof-addr", pprofAddr, "-postgres-url", s.PostgresURL,
		"-spicedb-engine", s.Engine, "-spicedb-grpc-addr", "", "-dev-token-key", key,
		"-rate-limit", "1000000", "-rate-burst", "1000000", "-log-level", "warn"}
	for _, db := range []string{"spicedb", "community", "user", "chat", "notification"} {
		name := run + "_" + db
		p.databases = append(p.databases, name)
		args = append(args, "-"+db+"-database", name)
	}
	args = append(args, s.Args...)
	// Not tied to ctx: stop ends it gracefully, then drops its databases.
	p.cmd = exec.Command(s.Binary, args...)
	// Should beepload itself be killed, Beep goes with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	var logOut io.Writer = p.log
	if s.LogFile != "" {
		if p.logFile, err = os.Create(s.LogFile); err != nil {
			return nil, err
		}
		logOut = io.MultiWriter(p.log, p.logFile)
	}
	p.cmd.Stdout, p.cmd.Stderr = logOut, logOut
	// Its environment without BEEP_* settings that would override the run's.
	for _, kv := range os.Environ() {
		if len(kv) < 5 || kv[:5] != "BEEP_" {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- p.cmd.Wait() }()
	if err := p.waitReady(ctx); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// canWatch refuses a PostgreSQL on which SpiceDB could not watch: without
// its Watch, Beep caches no authorization answer and asks every check fully
// consistent, a different system from the one deployed (Beep only warns).
func canWatch(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	var on string
	if err := conn.QueryRow(ctx, "SHOW track_commit_timestamp").Scan(&on); err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	if on != "on" {
		return errors.New("PostgreSQL runs with track_commit_timestamp off: SpiceDB's Watch, hence Beep's decision cache, would be off " +
			"(scripts/ensure-postgres turns it on; or -spicedb-engine memory)")
	}
	return nil
}

// waitReady polls /readyz.
func (p *beepProcess) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("beep exited before it was ready (%v):\n%s", err, p.log)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("beep was not ready within 3 minutes:\n%s", p.log)
}

// stop ends Beep (SIGTERM, then SIGKILL after 20 s) and drops its
// databases.
func (p *beepProcess) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if p.logFile != nil {
		p.logFile.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.pgURL)
	if err != nil {
		return fmt.Errorf("dropping the run's databases: %w", err)
	}
	defer conn.Close(ctx)
	var errs []error
	for _, db := range p.databases {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// freePort is a loopback address nothing listens on right now.
func freePort() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer lis.Close()
	return lis.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// loopback is whether addr's host is a loopback address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// pid is the process's id, as text for the report.
func (p *beepProcess) pid() int { return p.cmd.Process.Pid }

package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/internal/pgtest"
)

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// isolated is the flags of a beep on fresh databases and a free port.
func isolated(t *testing.T, extra ...string) []string {
	return append([]string{"-postgres-url", pgtest.AdminURL(),
		"-spicedb-database", pgtest.NewDatabaseName(t, "beep_serve_spicedb"),
		"-community-database", pgtest.NewDatabaseName(t, "beep_serve_community"),
		"-user-database", pgtest.NewDatabaseName(t, "beep_serve_user"),
		"-chat-database", pgtest.NewDatabaseName(t, "beep_serve_chat"),
		"-notification-database", pgtest.NewDatabaseName(t, "beep_serve_notification"),
		"-http-addr", "127.0.0.1:0",
		// Any free port: tests run side by side.
		"-spicedb-grpc-addr", "127.0.0.1:0"}, extra...)
}

// start runs `beep serve` with args until the test ends.
func start(t *testing.T, args ...string) (*Instance, *logBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan *Instance, 1)
	done := make(chan error, 1)
	logs := &logBuffer{}
	go func() { done <- run(ctx, append([]string{"serve"}, args...), io.Discard, logs, ready) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("beep exited with %v\n%s", err, logs)
			}
		case <-time.After(30 * time.Second):
			t.Error("beep did not stop within 30s")
		}
	}
	select {
	case inst := <-ready:
		return inst, logs, stop
	case err := <-done:
		t.Fatalf("beep exited before serving: %v\n%s", err, logs)
	case <-time.After(90 * time.Second):
		t.Fatalf("beep did not start within 90s\n%s", logs)
	}
	return nil, nil, nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServeOnPostgres starts Beep as the README's run command does: SpiceDB
// in-process on PostgreSQL (database created, migrated), the schema written,
// the gRPC API and the health endpoints served; then restarts it on the same
// database.
func TestServeOnPostgres(t *testing.T) {
	args := isolated(t, "-spicedb-grpc-addr", "127.0.0.1:0")

	inst, logs, stop := start(t, args...)
	if code, body := get(t, "http://"+inst.HTTPAddr+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	if code, body := get(t, "http://"+inst.HTTPAddr+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if !strings.Contains(logs.String(), "schema written") {
		t.Errorf("first start did not write the schema:\n%s", logs)
	}

	// The standard SpiceDB API answers on its port, with the key.
	remote, err := authz.Dial(authz.RemoteConfig{Endpoint: inst.SpiceDBAddr, PresharedKey: inst.SpiceDBKey, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	at, err := remote.Write(t.Context(), []authz.Update{authz.Touch(authz.Relationship{Relation: authz.Server.Owner, ResourceID: "s1", Subject: authz.UserSubject("ann")})})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Require(t.Context(), authz.Check{Subject: authz.UserSubject("ann"), Permission: authz.Server.ManageServer, ResourceID: "s1"}, authz.AtLeastAsFresh(at)); err != nil {
		t.Fatal(err)
	}
	stop()

	// Second start: same database, schema unchanged, data still there.
	inst, logs, stop = start(t, args...)
	defer stop()
	if !strings.Contains(logs.String(), "schema unchanged") {
		t.Errorf("restart rewrote the schema:\n%s", logs)
	}
	if err := inst.Authz.Require(t.Context(), authz.Check{Subject: authz.UserSubject("ann"), Permission: authz.Server.ManageServer, ResourceID: "s1"}, authz.FullyConsistent()); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-spicedb-engine", "cassandra"},
		{"-spicedb-endpoint", "spicedb:50051"},
		{"-log-level", "loud"},
		{"-rate-limit", "0"},
		{"-rate-burst", "x"},
		{"-pprof-addr", "0.0.0.0:6060"},
		{"-postgres-max-conns", "-1"},
		{"stray"},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("parseConfig(%v) accepted", args)
		}
	}
	if err := run(t.Context(), []string{"fly"}, io.Discard, io.Discard, nil); err == nil {
		t.Error("unknown command accepted")
	}
}

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/beepchat/beep/internal/telemetry"
)

// TestOneTraceFromEdgeToStores: a request that arrives with a traceparent
// is traced through the gateway, the forwarded hop, the community service's
// RPC, SpiceDB and PostgreSQL, all in the caller's trace and each span's
// parent in it; and the request's log lines carry the trace id.
func TestOneTraceFromEdgeToStores(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	cfg, err := parseConfig(isolated(t, "-dev-token-key", devKey, "-spicedb-grpc-addr", ""), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.spanExporter = exporter
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	ready, done := make(chan *Instance, 1), make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slogTo(logs), ready)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var inst *Instance
	select {
	case inst = <-ready:
	case err := <-done:
		t.Fatalf("beep exited: %v\n%s", err, logs)
	case <-time.After(90 * time.Second):
		t.Fatal("beep did not start")
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodPost, "http://"+inst.HTTPAddr+"/beep.community.v1.CommunityService/CreateServer",
		bytes.NewReader([]byte(`{"name":"Traced"}`)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+mustToken(t, "ann", 600))
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateServer: %d %s", resp.StatusCode, body)
	}

	// The edge's span ends just after the response is written: wait for it.
	var spans tracetest.SpanStubs
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		spans = exporter.GetSpans()
		if slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool {
			return s.Name == "POST /beep.community.v1.CommunityService/CreateServer"
		}) {
			break
		}
	}
	inTrace := map[string]tracetest.SpanStub{}
	var names []string
	for _, s := range spans {
		if s.SpanContext.TraceID().String() == traceID {
			inTrace[s.SpanContext.SpanID().String()] = s
			names = append(names, s.Name)
		}
	}
	t.Logf("spans in the trace: %q", names)
	for _, want := range []string{
		"POST /beep.community.v1.CommunityService/CreateServer", // the edge
		"beep.community.v1.CommunityService/CreateServer",       // the service's RPC
		"authzed.api.v1.PermissionsService/WriteRelationships",  // SpiceDB
		"postgresql.query", // PostgreSQL
	} {
		if !slices.Contains(names, want) {
			t.Errorf("no %q span in the trace; it has %v", want, names)
		}
	}
	// Beep's spans (an in-process SpiceDB adds its own, which it may still
	// be ending when the response arrives).
	ours := func(name string) bool {
		return strings.HasPrefix(name, "postgresql.") || strings.HasPrefix(name, "authzed.api.v1.") ||
			strings.HasPrefix(name, "beep.") || strings.HasPrefix(name, "POST ") || name == "HTTP POST"
	}
	for _, s := range inTrace {
		if !ours(s.Name) {
			continue
		}
		parent := s.Parent.SpanID().String()
		if _, ok := inTrace[parent]; !ok && parent != "00f067aa0ba902b7" {
			t.Errorf("span %q has a parent (%s) outside the trace", s.Name, parent)
		}
	}
	// The service's span descends from the edge's, through the forwarded hop.
	for _, s := range inTrace {
		if s.Name != "beep.community.v1.CommunityService/CreateServer" {
			continue
		}
		if !descendsFrom(inTrace, s, "POST /beep.community.v1.CommunityService/CreateServer") {
			t.Error("the service's span does not descend from the gateway's")
		}
	}
	if !strings.Contains(logs.String(), "trace_id="+traceID) {
		t.Errorf("no log line carries the trace id:\n%s", logs)
	}
}

func descendsFrom(spans map[string]tracetest.SpanStub, s tracetest.SpanStub, name string) bool {
	for range len(spans) {
		p, ok := spans[s.Parent.SpanID().String()]
		if !ok {
			return false
		}
		if p.Name == name {
			return true
		}
		s = p
	}
	return false
}

// slogTo is how `beep serve` logs, into w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, nil)))
}

package main

import (
	"context"
	"encoding/json"
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
	status, body := tracedCall(t, inst, traceID, mustToken(t, "ann", 600), "CreateServer", `{"name":"Traced"}`)
	if status != http.StatusOK {
		t.Fatalf("CreateServer: %d %s", status, body)
	}
	var created struct {
		Server struct{ ID string }
	}
	if err := json.Unmarshal(body, &created); err != nil || created.Server.ID == "" {
		t.Fatalf("CreateServer: %v %s", err, body)
	}
	// Bob may not rename Ann's server: the refusal is logged in his
	// request's trace, after a CheckPermission to SpiceDB in it.
	const refusedTraceID = "5bf92f3577b34da6a3ce929d0e0e4736"
	status, body = tracedCall(t, inst, refusedTraceID, mustToken(t, "bob", 600), "UpdateServer",
		`{"serverId":"`+created.Server.ID+`","name":"Mine"}`)
	if status != http.StatusForbidden {
		t.Fatalf("UpdateServer by bob: %d %s", status, body)
	}
	// Probes make no spans, even in a trace.
	probe, _ := http.NewRequest(http.MethodGet, "http://"+inst.HTTPAddr+"/healthz", nil)
	probe.Header.Set("traceparent", "00-6bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if resp, err := http.DefaultClient.Do(probe); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	// The edge's span ends just after the response is written: wait for it.
	var spans tracetest.SpanStubs
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		spans = exporter.GetSpans()
		if slices.ContainsFunc(spans, func(s tracetest.SpanStub) bool {
			return s.Name == "POST /beep.community.v1.CommunityService/UpdateServer"
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
	// The gateway's line of each request, and the refusal, carry their
	// request's trace id.
	if !hasLogLine(logs.String(), "msg=request", "path=/beep.community.v1.CommunityService/CreateServer", "trace_id="+traceID) {
		t.Errorf("the gateway's line of CreateServer lacks its trace id:\n%s", logs)
	}
	if !hasLogLine(logs.String(), `msg="permission refused"`, "principal=bob", "permission=server#manage_server",
		"resource="+created.Server.ID, "trace_id="+refusedTraceID) {
		t.Errorf("the refusal is not logged with principal, permission, resource and trace id:\n%s", logs)
	}

	// The refusal's trace: the edge, the RPC, and SpiceDB's CheckPermission
	// in it; none made by the probe.
	var refused []string
	for _, s := range spans {
		switch s.SpanContext.TraceID().String() {
		case refusedTraceID:
			refused = append(refused, s.Name)
		case "6bf92f3577b34da6a3ce929d0e0e4736":
			t.Errorf("the probe made a span: %s", s.Name)
		}
	}
	for _, want := range []string{
		"POST /beep.community.v1.CommunityService/UpdateServer",
		"beep.community.v1.CommunityService/UpdateServer",
		"authzed.api.v1.PermissionsService/CheckPermission",
	} {
		if !slices.Contains(refused, want) {
			t.Errorf("no %q span in the refused request's trace; it has %v", want, refused)
		}
	}
}

// tracedCall calls a community RPC with JSON through the gateway, as part
// of the caller's trace traceID (a sampled traceparent).
func tracedCall(t *testing.T, inst *Instance, traceID, token, method, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+inst.HTTPAddr+"/beep.community.v1.CommunityService/"+method, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer
}

// hasLogLine says whether one line of logs has every one of parts.
func hasLogLine(logs string, parts ...string) bool {
	for line := range strings.Lines(logs) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
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

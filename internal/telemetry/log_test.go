package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/beepchat/beep/internal/telemetry"
)

func TestLogHandlerAddsTheSpan(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewTextHandler(&out, nil))).With("component", "test")
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))

	log.InfoContext(ctx, "in a span")
	log.InfoContext(context.Background(), "outside")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", lines)
	}
	if !strings.Contains(lines[0], "trace_id=4bf92f3577b34da6a3ce929d0e0e4736") || !strings.Contains(lines[0], "span_id=00f067aa0ba902b7") ||
		!strings.Contains(lines[0], "component=test") {
		t.Errorf("in a span: %s", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Errorf("outside any span: %s", lines[1])
	}
}

// TestTraceIDsWithoutExporter: with nowhere to send spans, none are
// recorded, but requests still get trace ids (continuing the caller's) for
// the logs.
func TestTraceIDsWithoutExporter(t *testing.T) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	ctx, span := otel.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	if span.IsRecording() || !span.SpanContext().TraceID().IsValid() {
		t.Fatalf("recording %v, trace id %v: want a trace id and no recording", span.IsRecording(), span.SpanContext().TraceID())
	}
	_, child := otel.Tracer("test").Start(ctx, "query")
	if child.SpanContext().TraceID() != span.SpanContext().TraceID() {
		t.Error("a child span does not continue its parent's trace")
	}
}

// TestLogHandlerKeepsTheIDsOutsideGroups: a logger with groups still puts
// trace_id and span_id at the top, where a search for them looks, and its
// own attributes where they belong.
func TestLogHandlerKeepsTheIDsOutsideGroups(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&out, nil))).
		With("component", "test").WithGroup("request").With("id", "r1")
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID}))

	log.InfoContext(ctx, "grouped", "status", 200)
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if line["trace_id"] != traceID.String() || line["span_id"] != spanID.String() || line["component"] != "test" {
		t.Errorf("top level: %s", out.String())
	}
	if group, _ := line["request"].(map[string]any); group["id"] != "r1" || group["status"] != float64(200) || group["trace_id"] != nil {
		t.Errorf("group: %s", out.String())
	}
	if !log.Handler().Enabled(ctx, slog.LevelInfo) || log.Handler().Enabled(ctx, slog.LevelDebug) {
		t.Error("Enabled is not the wrapped handler's")
	}
}

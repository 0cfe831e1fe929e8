package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/beepchat/beep/internal/telemetry"
)

// collected is what a stand-in collector received: span names by the
// service.name of their process.
type collected struct {
	mu    sync.Mutex
	spans map[string][]string
}

func (c *collected) add(req *coltracepb.ExportTraceServiceRequest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spans == nil {
		c.spans = map[string][]string{}
	}
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans[service] = append(c.spans[service], s.GetName())
			}
		}
	}
}

func (c *collected) names(service string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.spans[service]
}

// exportOneSpan sets up telemetry with cfg, makes one span and shuts down,
// which flushes it to the collector.
func exportOneSpan(t *testing.T, cfg telemetry.Config) {
	t.Helper()
	shutdown, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "exported")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown (flush): %v", err)
	}
}

func TestExportsOverOTLPHTTP(t *testing.T) {
	var got collected
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := &coltracepb.ExportTraceServiceRequest{}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || proto.Unmarshal(body, req) != nil {
			http.Error(w, "not OTLP", http.StatusBadRequest)
			return
		}
		got.add(req)
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(nil)
	}))
	defer collector.Close()
	exportOneSpan(t, telemetry.Config{
		Endpoint: strings.TrimPrefix(collector.URL, "http://"), Protocol: "http", Insecure: true,
		ServiceName: "beep-test", SampleRatio: 1,
	})
	if names := got.names("beep-test"); len(names) != 1 || names[0] != "exported" {
		t.Errorf("the collector received %v", got.spans)
	}
}

// traceService is a stand-in OTLP gRPC collector.
type traceService struct {
	coltracepb.UnimplementedTraceServiceServer
	got *collected
}

func (s traceService) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	s.got.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func TestExportsOverOTLPGRPC(t *testing.T) {
	var got collected
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, traceService{got: &got})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	// OTEL_SERVICE_NAME, a standard variable, names the process over Beep's name.
	t.Setenv("OTEL_SERVICE_NAME", "renamed")
	exportOneSpan(t, telemetry.Config{
		Endpoint: lis.Addr().String(), Insecure: true, // the protocol defaults to grpc
		ServiceName: "beep-test", SampleRatio: 1,
	})
	if names := got.names("renamed"); len(names) != 1 || names[0] != "exported" {
		t.Errorf("the collector received %v", got.spans)
	}
}

// TestSampling: a share of new traces is kept, but a caller's sampled trace
// always is, and its unsampled one never.
func TestSampling(t *testing.T) {
	exporter := tracetest.NewInMemoryExporter()
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test", SampleRatio: 0, Exporter: exporter})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	tracer := otel.Tracer("test")

	_, root := tracer.Start(context.Background(), "new trace")
	root.End()
	for _, c := range []struct {
		traceparent string
		kept        bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", false},
	} {
		// As the edge does: the W3C propagator reads the caller's header.
		ctx := otel.GetTextMapPropagator().Extract(context.Background(), propagation.MapCarrier{"traceparent": c.traceparent})
		_, span := tracer.Start(ctx, c.traceparent)
		span.End()
		if span.IsRecording() {
			t.Errorf("%s: still recording after End", c.traceparent)
		}
		if span.SpanContext().TraceID().String() != c.traceparent[3:35] {
			t.Errorf("%s: the span is in trace %s", c.traceparent, span.SpanContext().TraceID())
		}
		if span.SpanContext().IsSampled() != c.kept {
			t.Errorf("%s: sampled %v, want %v", c.traceparent, span.SpanContext().IsSampled(), c.kept)
		}
	}
	spans := exporter.GetSpans()
	if len(spans) != 1 || spans[0].Name != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("exported %v, want only the caller's sampled trace", spans.Snapshots())
	}
}

// TestTraceIDsWithoutExporterFromTheCaller: with nothing to export to, a
// caller's trace id still reaches the request's spans, for the logs.
func TestTraceIDsWithoutExporterFromTheCaller(t *testing.T) {
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{ServiceName: "test", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	ctx := otel.GetTextMapPropagator().Extract(context.Background(),
		propagation.MapCarrier{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})
	_, span := otel.Tracer("test").Start(ctx, "request")
	defer span.End()
	if span.IsRecording() || span.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("recording %v, trace %s", span.IsRecording(), span.SpanContext().TraceID())
	}
	if span.SpanContext().SpanID().String() == "00f067aa0ba902b7" {
		t.Error("the request's span reuses the caller's span id")
	}
}

func TestSetupRefuses(t *testing.T) {
	for _, cfg := range []telemetry.Config{
		{Endpoint: "http://collector:4317", SampleRatio: 1},
		{Endpoint: "collector:4317", Protocol: "thrift", SampleRatio: 1},
		{SampleRatio: 1.5},
	} {
		if _, err := telemetry.Setup(context.Background(), cfg); err == nil {
			t.Errorf("%+v: accepted", cfg)
		}
	}
}

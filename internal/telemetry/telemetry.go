// Package telemetry sets up Beep's OpenTelemetry tracing: a trace for every
// request, propagated edge → service → SpiceDB and PostgreSQL, exported by
// OTLP when an endpoint is configured, and its ids in every log line.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// instrumentationName names the spans this package makes itself.
const instrumentationName = "github.com/beepchat/beep/internal/telemetry"

// Config says where traces go.
type Config struct {
	// Endpoint is the OTLP collector (host:port, no scheme). Empty exports
	// nothing and records nothing; trace ids are still made and passed on,
	// so that logs carry them. The exporter's standard variables
	// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE, and
	// their _TRACES_ forms) apply; Endpoint replaces OTEL_EXPORTER_OTLP_ENDPOINT.
	Endpoint string
	// Protocol is "grpc" (default) or "http" (http/protobuf).
	Protocol string
	// Insecure sends without TLS.
	Insecure bool
	// ServiceName and ServiceVersion name this process in traces;
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them.
	ServiceName, ServiceVersion string
	// SampleRatio is the share of new traces kept (0 to 1); a request
	// arriving with a sampled parent is always kept.
	SampleRatio float64
	// Exporter, when set, receives spans instead of an OTLP endpoint
	// (tests record them).
	Exporter sdktrace.SpanExporter
}

// Setup installs the global tracer provider and the W3C trace-context
// propagator. shutdown flushes what is buffered.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("telemetry: sample ratio %v is not between 0 and 1", cfg.SampleRatio)
	}
	if strings.Contains(cfg.Endpoint, "://") {
		return nil, fmt.Errorf("telemetry: OTLP endpoint %q: want host:port, without a scheme (TLS unless insecure)", cfg.Endpoint)
	}
	process := []attribute.KeyValue{semconv.ServiceName(cfg.ServiceName)}
	if cfg.ServiceVersion != "" {
		process = append(process, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(process...), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry: describing the process: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
		sdktrace.WithResource(res),
	}
	exporter := cfg.Exporter
	if exporter == nil && cfg.Endpoint != "" {
		if exporter, err = otlpExporter(ctx, cfg); err != nil {
			return nil, err
		}
	}
	switch {
	case exporter == nil:
		// Nothing would receive spans: record none. Spans still carry
		// (and pass on) trace ids, for the logs.
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	case cfg.Exporter != nil:
		opts = append(opts, sdktrace.WithSyncer(exporter))
	default:
		opts = append(opts, sdktrace.WithBatcher(exporter))
	}
	provider := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return provider.Shutdown, nil
}

func otlpExporter(ctx context.Context, cfg Config) (sdktrace.SpanExporter, error) {
	switch cfg.Protocol {
	case "", "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	case "http":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.Endpoint)}
		if cfg.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	}
	return nil, errors.New(`telemetry: the OTLP protocol is "grpc" or "http"`)
}

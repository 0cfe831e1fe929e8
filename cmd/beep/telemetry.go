package main

import (
	"context"
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/beepchat/beep/internal/telemetry"
)

// startTracing installs the process's tracer provider (see
// internal/telemetry); traces are exported only when -otlp-endpoint is set.
func startTracing(ctx context.Context, cfg Config) (func(context.Context) error, error) {
	return telemetry.Setup(ctx, telemetry.Config{
		Endpoint:       cfg.OTLPEndpoint,
		Protocol:       cfg.OTLPProtocol,
		Insecure:       cfg.OTLPInsecure,
		ServiceName:    "beep-" + cfg.Role,
		ServiceVersion: version,
		SampleRatio:    cfg.TraceSampleRatio,
		Exporter:       cfg.spanExporter,
	})
}

// traceEdge makes a server span of every request at the public port,
// continuing a trace the client started (traceparent); probes and metric
// scrapes make none.
func traceEdge(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "gateway",
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}),
		otelhttp.WithFilter(func(r *http.Request) bool { return !isProbe(r) }))
}

// isProbe says whether r is a health probe or a metrics scrape.
func isProbe(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return r.Method == http.MethodGet
	}
	return false
}

// traceUpstream makes a client span of every forwarded request and passes
// the trace on to the service.
func traceUpstream(client *http.Client) *http.Client {
	return &http.Client{Transport: otelhttp.NewTransport(client.Transport)}
}

// traceRPCs makes a server span of every RPC a service handles, child of the
// gateway's (the gateway is trusted: it is the edge that started or
// continued the trace).
func traceRPCs() (connect.HandlerOption, error) {
	interceptor, err := otelconnect.NewInterceptor(otelconnect.WithTrustRemote(), otelconnect.WithoutMetrics())
	if err != nil {
		return nil, err
	}
	return connect.WithInterceptors(interceptor), nil
}

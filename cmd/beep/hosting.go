package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/internal/memnet"
)

// hosted is a service with a Connect handler.
type hosted interface {
	Handler(opts ...connect.HandlerOption) (string, http.Handler)
}

// namedService is a hosted service and its full name.
type namedService struct {
	name string
	svc  hosted
}

// internallyHosted is a service that also has an internal API, for other
// Beep services only: served beside its public one, never routed by the
// gateway.
type internallyHosted interface {
	InternalHandler(opts ...connect.HandlerOption) (string, http.Handler)
}

// socketHosted is a service that also serves a WebSocket route (the
// stream's), authorized by the host's checks as its RPCs are.
type socketHosted interface {
	WebSocketHandler(checks *connectauthz.Interceptor) (string, http.Handler)
}

// serviceHost serves one service: its RPCs (the principal verified from the
// gateway's signature, each RPC's permission checked), health, reflection,
// readiness and metrics. also are more services served beside it, on the
// same port (the admin service beside the community service), each named
// by its full name.
func serviceHost(name string, svc hosted, checks *connectauthz.Interceptor, readyz http.Handler, metrics *prometheus.Registry, tracing connect.HandlerOption, also ...namedService) http.Handler {
	mux := http.NewServeMux()
	// Answers under 1 KiB go uncompressed even to clients that accept
	// gzip: most are a few hundred bytes, and setting a gzip writer up
	// costs more CPU than sending them (it was 6% of Beep's CPU under the
	// chat load, docs/benchmarks.md).
	opts := []connect.HandlerOption{tracing, connect.WithInterceptors(checks), connect.WithReadMaxBytes(4 << 20), connect.WithCompressMinBytes(1024)}
	mux.Handle(svc.Handler(opts...))
	if internal, ok := svc.(internallyHosted); ok {
		mux.Handle(internal.InternalHandler(opts...))
	}
	names := []string{name}
	for _, a := range also {
		mux.Handle(a.svc.Handler(opts...))
		names = append(names, a.name)
		if ws, ok := a.svc.(socketHosted); ok {
			mux.Handle(ws.WebSocketHandler(checks))
		}
	}
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(names...)))
	reflector := grpcreflect.NewStaticReflector(names...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.Handle("GET /healthz", versioned(http.HandlerFunc(healthz)))
	mux.Handle("GET /readyz", versioned(readyz))
	mux.Handle("GET /metrics", metricsHandler(metrics))
	return mux
}

// serveInMemory serves a service host in this process and returns the
// HTTP client that reaches it: each request calls the host's handler
// directly (memnet.HandlerClient), with HTTP's semantics (headers,
// streams both ways, trailers, cancellation) and none of a connection's
// framing. Callers use it as they would a TCP client when split.
func serveInMemory(host http.Handler) *http.Client {
	return memnet.HandlerClient(host)
}

func healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }

// metricsHandler serves Beep's metrics (reg) and SpiceDB's, Go's and the
// process's (the default registry).
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{reg, prometheus.DefaultGatherer}, promhttp.HandlerOpts{})
}

func h2c() *http.Protocols {
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC without TLS
	return protocols
}

// listen opens the process's port.
func listen(cfg Config) (net.Listener, error) {
	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.HTTPAddr, err)
	}
	return lis, nil
}

// publicURL is where clients reach Beep: -public-url, or the port itself.
func publicURL(cfg Config, lis net.Listener) string {
	if cfg.PublicURL != "" {
		return cfg.PublicURL
	}
	return "http://" + lis.Addr().String() + "/"
}

// serveOn serves handler on lis until ctx ends.
func serveOn(ctx context.Context, lis net.Listener, cfg Config, log *slog.Logger, handler http.Handler, inst *Instance, ready chan<- *Instance) error {
	inst.HTTPAddr = lis.Addr().String()
	httpServer := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, Protocols: h2c()}
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(lis) }()
	log.Info("Beep is running", "role", cfg.Role, "http", inst.HTTPAddr)
	if ready != nil {
		ready <- inst
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("HTTP server: %w", err)
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return httpServer.Shutdown(shutdownCtx)
}

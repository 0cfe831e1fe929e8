package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/internal/database"
	"github.com/beepchat/beep/services/community"
	"github.com/beepchat/beep/services/gateway"
)

// Instance is a running Beep process.
type Instance struct {
	// HTTPAddr is the address the public port listens on.
	HTTPAddr string
	// SpiceDBAddr is where the in-process SpiceDB serves gRPC ("" if not served).
	SpiceDBAddr string
	// SpiceDBKey is its preshared key.
	SpiceDBKey string
	// Authz is the process's client of the authorization graph.
	Authz *authz.Client
}

// openAuthz connects to the authorization graph: a remote SpiceDB, or one
// started in-process. It writes the schema if it changed.
func openAuthz(ctx context.Context, cfg Config, log *slog.Logger, inst *Instance) (func() error, error) {
	if cfg.SpiceDBEndpoint != "" {
		c, err := authz.Dial(authz.RemoteConfig{
			Endpoint:     cfg.SpiceDBEndpoint,
			PresharedKey: cfg.SpiceDBPresharedKey,
			Insecure:     cfg.SpiceDBInsecure,
			CACertFile:   cfg.SpiceDBCACert,
		})
		if err != nil {
			return nil, err
		}
		inst.Authz = c
		log.Info("using remote SpiceDB", "endpoint", cfg.SpiceDBEndpoint)
		return c.Close, ensureSchema(ctx, c, log)
	}
	spice := inprocess.Config{
		Engine:             cfg.SpiceDBEngine,
		GRPCAddr:           cfg.SpiceDBGRPCAddr,
		PresharedKey:       cfg.SpiceDBPresharedKey,
		NoDatastoreMetrics: cfg.noMetrics,
	}
	if cfg.SpiceDBEngine == inprocess.Postgres {
		uri, err := database.Ensure(ctx, cfg.PostgresURL, cfg.SpiceDBDatabase)
		if err != nil {
			return nil, err
		}
		spice.DatastoreURI = uri
	}
	started := time.Now()
	srv, err := inprocess.Start(ctx, spice)
	if err != nil {
		return nil, err
	}
	inst.Authz, inst.SpiceDBAddr, inst.SpiceDBKey = srv.Client(), srv.Addr(), srv.PresharedKey()
	attrs := []any{"engine", cfg.SpiceDBEngine, "took", time.Since(started).Round(time.Millisecond)}
	if srv.Addr() != "" {
		attrs = append(attrs, "grpc", srv.Addr())
		if cfg.SpiceDBPresharedKey == "" {
			attrs = append(attrs, "preshared_key", srv.PresharedKey())
		}
	}
	log.Info("SpiceDB started in-process", attrs...)
	return srv.Close, ensureSchema(ctx, srv.Client(), log)
}

func ensureSchema(ctx context.Context, c *authz.Client, log *slog.Logger) error {
	res, err := c.EnsureSchema(ctx, authz.SchemaText)
	if errors.Is(err, authz.ErrSchemaBreaking) {
		return fmt.Errorf("the schema of this build cannot replace the running one: %w\n"+
			"Migrate the relationships that depend on what the new schema removes, then start again", err)
	}
	if err != nil {
		return fmt.Errorf("writing the schema: %w", err)
	}
	if res.Written {
		log.Info("schema written", "revision", res.At)
	} else {
		log.Info("schema unchanged")
	}
	return nil
}

// openCommunity opens the community service's database and the service.
func openCommunity(ctx context.Context, cfg Config, c *authz.Client, log *slog.Logger) (*community.Service, *pgxpool.Pool, error) {
	uri, err := database.Ensure(ctx, cfg.PostgresURL, cfg.CommunityDatabase)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.New(ctx, uri)
	if err != nil {
		return nil, nil, err
	}
	svc, err := community.New(ctx, pool, c, log.With("service", "community"))
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return svc, pool, nil
}

// components are what every command of the process runs on.
type components struct {
	inst      *Instance
	community *community.Service
	pool      *pgxpool.Pool
	close     func()
}

// open starts the authorization graph and the community service.
func open(ctx context.Context, cfg Config, log *slog.Logger) (*components, error) {
	inst := &Instance{}
	closeAuthz, err := openAuthz(ctx, cfg, log, inst)
	stop := func() {
		if closeAuthz == nil {
			return
		}
		if err := closeAuthz(); err != nil {
			log.Error("stopping SpiceDB", "err", err)
		}
	}
	if err != nil {
		stop()
		return nil, err
	}
	svc, pool, err := openCommunity(ctx, cfg, inst.Authz, log)
	if err != nil {
		stop()
		return nil, err
	}
	return &components{inst: inst, community: svc, pool: pool, close: func() { pool.Close(); stop() }}, nil
}

// serve runs Beep until ctx ends.
func serve(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- *Instance) error {
	c, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.close()
	inst, svc, pool := c.inst, c.community, c.pool
	reconcileCtx, stopReconciler := context.WithCancel(ctx)
	defer stopReconciler()
	go svc.RunReconciler(reconcileCtx, 10*time.Second)

	// Beep's metrics on their own registry; SpiceDB's, Go's and the
	// process's on the default one. /metrics serves both.
	metrics := prometheus.NewRegistry()
	interceptors := connect.WithInterceptors(connectauthz.New(inst.Authz, log, connectauthz.WithMetrics(metrics)))
	path, handler := communityv1connect.NewCommunityServiceHandler(svc, interceptors, connect.WithReadMaxBytes(4<<20))
	gw := gateway.New(gateway.Config{
		DevTokenKey:    []byte(cfg.DevTokenKey),
		AllowedOrigins: cfg.CORSOrigins,
		Log:            log.With("component", "gateway"),
		Metrics:        metrics,
		RatePerSecond:  cfg.RateLimit,
		Burst:          cfg.RateBurst,
	}, gateway.Service{Name: communityv1connect.CommunityServiceName, Path: path, Handler: handler})
	gw.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	gw.Handle("GET /readyz", readiness(inst.Authz, pool))
	gw.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{metrics, prometheus.DefaultGatherer}, promhttp.HandlerOpts{}))
	if cfg.DevTokenKey != "" {
		log.Warn("development tokens are accepted: never do this in production")
	}

	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.HTTPAddr, err)
	}
	inst.HTTPAddr = lis.Addr().String()
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // gRPC without TLS (h2c)
	httpServer := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, Protocols: protocols}
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(lis) }()
	log.Info("Beep is running", "http", inst.HTTPAddr)
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

// readiness answers /readyz: SpiceDB holds Beep's schema and PostgreSQL answers.
func readiness(c *authz.Client, pool *pgxpool.Pool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		schema, err := c.ReadSchema(ctx)
		if err == nil && schema == "" {
			err = errors.New("SpiceDB holds no schema")
		}
		if err == nil {
			err = pool.Ping(ctx)
		}
		if err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}

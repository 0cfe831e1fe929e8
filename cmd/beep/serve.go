package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"connectrpc.com/otelconnect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/gen/beep/user/v1/userv1connect"
	"github.com/beepchat/beep/internal/accesstoken"
	"github.com/beepchat/beep/internal/database"
	"github.com/beepchat/beep/internal/memnet"
	"github.com/beepchat/beep/internal/telemetry"
	"github.com/beepchat/beep/services/community"
	"github.com/beepchat/beep/services/gateway"
	"github.com/beepchat/beep/services/user"
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

// openPool opens a service's database (creating it if absent), its queries
// traced.
func openPool(ctx context.Context, cfg Config, name string) (*pgxpool.Pool, error) {
	uri, err := database.Ensure(ctx, cfg.PostgresURL, name)
	if err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(uri)
	if err != nil {
		return nil, err
	}
	poolCfg.ConnConfig.Tracer = telemetry.PostgresTracer{Database: name}
	return pgxpool.NewWithConfig(ctx, poolCfg)
}

// openCommunity opens the community service's database and the service.
func openCommunity(ctx context.Context, cfg Config, c *authz.Client, log *slog.Logger) (*community.Service, *pgxpool.Pool, error) {
	pool, err := openPool(ctx, cfg, cfg.CommunityDatabase)
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

// openUser opens the user service's database and the service, which calls
// the community service through its client.
func openUser(ctx context.Context, cfg Config, c *authz.Client, log *slog.Logger, community communityv1connect.CommunityServiceClient) (*user.Service, *pgxpool.Pool, error) {
	pool, err := openPool(ctx, cfg, cfg.UserDatabase)
	if err != nil {
		return nil, nil, err
	}
	svc, err := user.New(ctx, pool, c, log.With("service", "user"), community)
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

// The roles `beep serve` runs: every component in one process (the
// default), or one of them (the distributed mode).
const (
	roleAll       = "all"
	roleCommunity = "community"
	roleUser      = "user"
	roleGateway   = "gateway"
)

// Where the services' RPCs live.
const (
	communityPath = "/" + communityv1connect.CommunityServiceName + "/"
	userPath      = "/" + userv1connect.UserServiceName + "/"
)

// serve runs Beep in cfg.Role until ctx ends.
func serve(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- *Instance) error {
	signer, err := connectauthz.NewSigner(cfg.InternalKey)
	if err != nil {
		return err
	}
	stopTracing, err := startTracing(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(flushCtx); err != nil {
			log.Warn("flushing traces", "err", err)
		}
	}()
	rpcTracing, err := traceRPCs()
	if err != nil {
		return err
	}
	if cfg.DevTokenKey != "" && cfg.Role != roleCommunity {
		log.Warn("development tokens are accepted: never do this in production")
	}
	p := process{cfg: cfg, log: log, metrics: prometheus.NewRegistry(), signer: signer, rpcTracing: rpcTracing, ready: ready}
	switch cfg.Role {
	case roleGateway:
		return p.serveGateway(ctx)
	case roleCommunity:
		return p.serveCommunity(ctx)
	case roleUser:
		return p.serveUser(ctx)
	}
	return p.serveAll(ctx)
}

// process is what every role of `beep serve` is made with.
type process struct {
	cfg        Config
	log        *slog.Logger
	metrics    *prometheus.Registry
	signer     *connectauthz.Signer
	rpcTracing connect.HandlerOption
	ready      chan<- *Instance
}

// serveGateway runs the gateway alone, forwarding over TCP.
func (p process) serveGateway(ctx context.Context) error {
	cfg, log, metrics, signer, ready := p.cfg, p.log, p.metrics, p.signer, p.ready
	base, err := url.Parse(cfg.CommunityURL)
	if err != nil {
		return fmt.Errorf("-community-url: %w", err)
	}
	client := &http.Client{Transport: memnet.H2CTransport(nil)}
	upstreams := []gateway.Service{gateway.Upstream(communityv1connect.CommunityServiceName, communityPath, base, traceUpstream(client))}
	if cfg.UserURL != "" {
		userBase, err := url.Parse(cfg.UserURL)
		if err != nil {
			return fmt.Errorf("-user-url: %w", err)
		}
		upstreams = append(upstreams, gateway.Upstream(userv1connect.UserServiceName, userPath, userBase, traceUpstream(client)))
	}
	gw, err := newGateway(ctx, cfg, log, metrics, signer, &identity{publicURL: cfg.KratosURL}, upstreams...)
	if err != nil {
		return err
	}
	gw.Handle("GET /readyz", upstreamReadiness(client, base))
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	return serveOn(ctx, lis, cfg, log, traceEdge(gw), &Instance{}, ready)
}

// serveCommunity runs the community service alone, on its own port.
func (p process) serveCommunity(ctx context.Context) error {
	cfg, log, metrics, signer, rpcTracing, ready := p.cfg, p.log, p.metrics, p.signer, p.rpcTracing, p.ready
	c, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.close()
	stop := c.runReconciler(ctx)
	defer stop()
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	checks := connectauthz.New(c.inst.Authz, log, connectauthz.WithMetrics(metrics), connectauthz.WithSigner(signer))
	host := serviceHost(communityv1connect.CommunityServiceName, c.community, checks, readiness(c.inst.Authz, c.pool), metrics, rpcTracing)
	return serveOn(ctx, lis, cfg, log, host, c.inst, ready)
}

// serveUser runs the user service alone, on its own port.
func (p process) serveUser(ctx context.Context) error {
	cfg, log, metrics, signer, rpcTracing, ready := p.cfg, p.log, p.metrics, p.signer, p.rpcTracing, p.ready
	inst := &Instance{}
	closeAuthz, err := openAuthz(ctx, cfg, log, inst)
	if closeAuthz != nil {
		defer closeAuthz()
	}
	if err != nil {
		return err
	}
	community, err := communityClient(cfg.CommunityURL, &http.Client{Transport: memnet.H2CTransport(nil)}, signer)
	if err != nil {
		return err
	}
	svc, pool, err := openUser(ctx, cfg, inst.Authz, log, community)
	if err != nil {
		return err
	}
	defer pool.Close()
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	checks := connectauthz.New(inst.Authz, log, connectauthz.WithMetrics(metrics), connectauthz.WithSigner(signer))
	return serveOn(ctx, lis, cfg, log, serviceHost(userv1connect.UserServiceName, svc, checks, readiness(inst.Authz, pool), metrics, rpcTracing), inst, ready)
}

// serveAll runs every component in this process: the services behind the
// gateway on in-memory connections, Kratos as a child.
func (p process) serveAll(ctx context.Context) error {
	cfg, log, metrics, signer, rpcTracing, ready := p.cfg, p.log, p.metrics, p.signer, p.rpcTracing, p.ready
	c, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.close()
	stop := c.runReconciler(ctx)
	defer stop()
	// Each service on its own HTTP server, reached in memory: the gateway
	// forwards to it, and services call each other, exactly as over TCP
	// when split.
	checks := connectauthz.New(c.inst.Authz, log, connectauthz.WithMetrics(metrics), connectauthz.WithSigner(signer))
	communityHTTP, stopCommunity := serveInMemory(roleCommunity,
		serviceHost(communityv1connect.CommunityServiceName, c.community, checks, readiness(c.inst.Authz, c.pool), metrics, rpcTracing))
	defer stopCommunity()
	community, err := communityClient("http://"+roleCommunity, communityHTTP, signer)
	if err != nil {
		return err
	}
	users, userPool, err := openUser(ctx, cfg, c.inst.Authz, log, community)
	if err != nil {
		return err
	}
	defer userPool.Close()
	userHTTP, stopUser := serveInMemory(roleUser,
		serviceHost(userv1connect.UserServiceName, users, checks, readiness(c.inst.Authz, userPool), metrics, rpcTracing))
	defer stopUser()
	public, err := listen(cfg)
	if err != nil {
		return err
	}
	// Kratos, its links pointing at the public port, which forwards to it;
	// the Polytech bridge, served there too.
	providers, bridge, err := signInProviders(cfg, publicURL(cfg, public))
	if err != nil {
		public.Close()
		return err
	}
	id, err := startIdentity(ctx, cfg, log, publicURL(cfg, public), providers)
	if err != nil {
		public.Close()
		return err
	}
	defer id.stop()
	gw, err := newGateway(ctx, cfg, log, metrics, signer, id,
		gateway.Upstream(communityv1connect.CommunityServiceName, communityPath, &url.URL{Scheme: "http", Host: roleCommunity}, traceUpstream(communityHTTP)),
		gateway.Upstream(userv1connect.UserServiceName, userPath, &url.URL{Scheme: "http", Host: roleUser}, traceUpstream(userHTTP)))
	if err != nil {
		public.Close()
		return err
	}
	gw.Handle("GET /readyz", readiness(c.inst.Authz, c.pool))
	if bridge != nil {
		gw.Handle(polytechPath+"/", bridge)
	}
	return serveOn(ctx, public, cfg, log, traceEdge(gw), c.inst, ready)
}

// runReconciler converges dirty servers in the background until stopped.
func (c *components) runReconciler(ctx context.Context) (stop func()) {
	ctx, stop = context.WithCancel(ctx)
	go c.community.RunReconciler(ctx, 10*time.Second)
	return stop
}

// newGateway is the public edge in front of the services.
func newGateway(ctx context.Context, cfg Config, log *slog.Logger, metrics *prometheus.Registry, signer *connectauthz.Signer, id *identity, services ...gateway.Service) (*gateway.Gateway, error) {
	var tokens gateway.TokenVerifier
	if cfg.OIDCIssuer != "" {
		v, err := accesstoken.New(ctx, accesstoken.Config{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCAudience,
			SubjectPrefix: cfg.OIDCSubjectPrefix, ClockSkew: cfg.OIDCClockSkew})
		if err != nil {
			return nil, err
		}
		tokens = v
		log.Info("accepting access tokens", "issuer", cfg.OIDCIssuer, "audience", cfg.OIDCAudience)
	}
	gw := gateway.New(gateway.Config{
		AccessTokens:   tokens,
		Sessions:       id.sessions(cfg.SessionCacheTTL),
		DevTokenKey:    []byte(cfg.DevTokenKey),
		AllowedOrigins: cfg.CORSOrigins,
		Log:            log.With("component", "gateway"),
		Metrics:        metrics,
		RatePerSecond:  cfg.RateLimit,
		Burst:          cfg.RateBurst,
		Signer:         signer,
	}, services...)
	gw.Handle("GET /healthz", http.HandlerFunc(healthz))
	gw.Handle("GET /metrics", metricsHandler(metrics))
	return gw, id.forward(gw)
}

// hosted is a service with a Connect handler.
type hosted interface {
	Handler(opts ...connect.HandlerOption) (string, http.Handler)
}

// serviceHost serves one service: its RPCs (the principal verified from the
// gateway's signature, each RPC's permission checked), health, reflection,
// readiness and metrics.
func serviceHost(name string, svc hosted, checks *connectauthz.Interceptor, readyz http.Handler, metrics *prometheus.Registry, tracing connect.HandlerOption) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(svc.Handler(tracing, connect.WithInterceptors(checks), connect.WithReadMaxBytes(4<<20)))
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(name)))
	reflector := grpcreflect.NewStaticReflector(name)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mux.Handle("GET /healthz", http.HandlerFunc(healthz))
	mux.Handle("GET /readyz", readyz)
	mux.Handle("GET /metrics", metricsHandler(metrics))
	return mux
}

// communityClient is the community service's generated client, as other
// services use it: the caller's principal forwarded (signed), the trace
// passed on.
func communityClient(baseURL string, client *http.Client, signer *connectauthz.Signer) (communityv1connect.CommunityServiceClient, error) {
	tracing, err := otelconnect.NewInterceptor(otelconnect.WithoutMetrics())
	if err != nil {
		return nil, err
	}
	return communityv1connect.NewCommunityServiceClient(client, baseURL, connect.WithInterceptors(tracing, connectauthz.Forward(signer))), nil
}

// serveInMemory serves a service host on an in-memory listener and returns
// the HTTP client that reaches it.
func serveInMemory(name string, host http.Handler) (*http.Client, func()) {
	lis := memnet.Listen(name)
	srv := &http.Server{Handler: host, Protocols: h2c(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	return lis.Client(), func() { _ = srv.Close() }
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

// upstreamReadiness answers /readyz for a gateway alone: ready when its
// services are.
func upstreamReadiness(client *http.Client, base *url.URL) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base.JoinPath("readyz").String(), nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("the community service answers %s", resp.Status)
			}
		}
		if err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
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

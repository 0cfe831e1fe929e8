package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/gen/beep/admin/v1/adminv1connect"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/gen/beep/notification/v1/notificationv1connect"
	"github.com/beepchat/beep/gen/beep/user/v1/userv1connect"
	"github.com/beepchat/beep/internal/accesstoken"
	"github.com/beepchat/beep/services/admin"
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

// The roles `beep serve` runs: every component in one process (the
// default), or one of them (the distributed mode).
const (
	roleAll       = "all"
	roleCommunity = "community"
	roleUser      = "user"
	roleChat      = "chat"
	// roleNotification runs the notification service, which follows the
	// chat service's feed (-chat-url).
	roleNotification = "notification"
	roleGateway      = "gateway"
)

// Where the services' RPCs live.
const (
	communityPath = "/" + communityv1connect.CommunityServiceName + "/"
	userPath      = "/" + userv1connect.UserServiceName + "/"
	chatPath      = "/" + chatv1connect.ChatServiceName + "/"
	streamPath    = "/" + chatv1connect.StreamServiceName + "/"
	// The chat service's internal feed (beside it) is never routed.
	notificationPath = "/" + notificationv1connect.NotificationServiceName + "/"
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
	if err := servePprof(ctx, cfg.PprofAddr, log); err != nil {
		return err
	}
	if cfg.Auditor == nil {
		auditor, closeAudit, err := openAuditLog(cfg.AuditLog, log)
		if err != nil {
			return err
		}
		defer closeAudit()
		cfg.Auditor = auditor
	}
	p := process{cfg: cfg, log: log, metrics: prometheus.NewRegistry(), signer: signer, rpcTracing: rpcTracing, ready: ready}
	switch cfg.Role {
	case roleGateway:
		return p.serveGateway(ctx)
	case roleCommunity:
		return p.serveCommunity(ctx)
	case roleUser:
		return p.serveUser(ctx)
	case roleChat:
		return p.serveChat(ctx)
	case roleNotification:
		return p.serveNotification(ctx)
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

// checks is the interceptor every service of the process is served with:
// each RPC's declared permission checked, the gateway's principal verified,
// refusals counted and audited.
func (p process) checks(c *authz.Client) *connectauthz.Interceptor {
	registerDecisionCache(p.metrics, c)
	return connectauthz.New(c, p.log, connectauthz.WithMetrics(p.metrics), connectauthz.WithSigner(p.signer), connectauthz.WithAudit(p.cfg.Auditor))
}

// registerDecisionCache exports the counts of c's decision cache
// (authz.Client.CacheDecisions); once per registry.
func registerDecisionCache(reg *prometheus.Registry, c *authz.Client) {
	for _, m := range []struct {
		name, help string
		count      func(authz.DecisionCacheStats) uint64
	}{
		{"beep_authz_decision_cache_hits_total", "Checks without a ZedToken answered from the decision cache.", func(s authz.DecisionCacheStats) uint64 { return s.Hits }},
		{"beep_authz_decision_cache_misses_total", "Checks without a ZedToken the decision cache asked SpiceDB.", func(s authz.DecisionCacheStats) uint64 { return s.Misses }},
		{"beep_authz_decision_cache_changes_total", "Changes reported by SpiceDB's Watch, each emptying the decision cache.", func(s authz.DecisionCacheStats) uint64 { return s.Changes }},
	} {
		_ = reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help},
			func() float64 { return float64(m.count(c.DecisionCacheStats())) }))
	}
}

// optionalService is where another service alone listens, from its -*-url
// flag (nil when the flag is empty).
func optionalService(flag, raw string) (*serviceAt, error) {
	if raw == "" {
		return nil, nil
	}
	if _, err := parseServiceURL(flag, raw); err != nil {
		return nil, err
	}
	return &serviceAt{raw, tcpClient()}, nil
}

// serveGateway runs the gateway alone, forwarding over TCP.
func (p process) serveGateway(ctx context.Context) error {
	cfg, log, metrics, signer, ready := p.cfg, p.log, p.metrics, p.signer, p.ready
	communityBase, err := parseServiceURL("community-url", cfg.CommunityURL)
	if err != nil {
		return err
	}
	upstreams := []upstream{{communityv1connect.CommunityServiceName, communityPath, communityBase, tcpClient(), nil},
		// The admin service lives beside the community service (admin.go).
		{adminv1connect.AuthzAdminServiceName, adminPath, communityBase, tcpClient(), nil}}
	if cfg.UserURL != "" {
		userBase, err := parseServiceURL("user-url", cfg.UserURL)
		if err != nil {
			return err
		}
		upstreams = append(upstreams, upstream{userv1connect.UserServiceName, userPath, userBase, tcpClient(), nil})
	}
	if cfg.ChatURL != "" {
		chatBase, err := parseServiceURL("chat-url", cfg.ChatURL)
		if err != nil {
			return err
		}
		upstreams = append(upstreams, upstream{chatv1connect.ChatServiceName, chatPath, chatBase, tcpClient(), nil},
			// The stream lives beside the chat service.
			upstream{chatv1connect.StreamServiceName, streamPath, chatBase, tcpClient(), nil})
	}
	if cfg.NotificationURL != "" {
		notificationBase, err := parseServiceURL("notification-url", cfg.NotificationURL)
		if err != nil {
			return err
		}
		upstreams = append(upstreams, upstream{notificationv1connect.NotificationServiceName, notificationPath, notificationBase, tcpClient(), nil})
	}
	gw, err := newGateway(ctx, cfg, log, metrics, signer, &identity{publicURL: cfg.KratosURL}, upstreams...)
	if err != nil {
		return err
	}
	mountPlayground(gw, cfg.Playground)
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	return serveOn(ctx, lis, cfg, log, traceEdge(gw), &Instance{}, ready)
}

// serveCommunity runs the community service alone, on its own port.
func (p process) serveCommunity(ctx context.Context) error {
	cfg, log, metrics, rpcTracing, ready := p.cfg, p.log, p.metrics, p.rpcTracing, p.ready
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
	if err := bootstrapAdmins(ctx, c.inst.Authz, cfg.PlatformAdmins, log); err != nil {
		lis.Close()
		return err
	}
	// The admin service, beside the community service on its port: it
	// reports what this process reaches.
	probes := []statusProbe{selfProbe(roleCommunity, "this process, with the admin service"), spicedbProbe(c.inst.Authz, cfg)}
	for _, other := range []struct{ name, flag, url string }{{roleUser, "user-url", cfg.UserURL}, {roleChat, "chat-url", cfg.ChatURL}, {roleNotification, "notification-url", cfg.NotificationURL}} {
		if base, err := parseServiceURL(other.flag, other.url); other.url != "" && err == nil {
			probes = append(probes, upstreamProbe(other.name, upstream{other.name, "", base, tcpClient(), nil}))
		}
	}
	adm := admin.New(admin.Config{Authz: c.inst.Authz, Log: log.With("service", "admin"), Reconciler: c.community,
		Status: deploymentStatus(func() []statusProbe { return probes })})
	checks := p.checks(c.inst.Authz)
	host := serviceHost(communityv1connect.CommunityServiceName, c.community, checks, readiness(c.inst.Authz, c.pool), metrics, rpcTracing,
		namedService{adminv1connect.AuthzAdminServiceName, adm})
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
	chatAt, err := optionalService("chat-url", cfg.ChatURL)
	if err != nil {
		return err
	}
	notificationAt, err := optionalService("notification-url", cfg.NotificationURL)
	if err != nil {
		return err
	}
	svc, pool, err := openUser(ctx, cfg, inst.Authz, log, cfg.CommunityURL, tcpClient(), signer, identities(cfg.KratosAdminURL), chatAt, notificationAt)
	if err != nil {
		return err
	}
	defer pool.Close()
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	checks := p.checks(inst.Authz)
	return serveOn(ctx, lis, cfg, log, serviceHost(userv1connect.UserServiceName, svc, checks, readiness(inst.Authz, pool), metrics, rpcTracing), inst, ready)
}

// serveChat runs the chat service alone, on its own port; it asks the
// community service at -community-url.
func (p process) serveChat(ctx context.Context) error {
	cfg, log, metrics, signer, rpcTracing, ready := p.cfg, p.log, p.metrics, p.signer, p.rpcTracing, p.ready
	inst := &Instance{}
	closeAuthz, err := openAuthz(ctx, cfg, log, inst)
	if closeAuthz != nil {
		defer closeAuthz()
	}
	if err != nil {
		return err
	}
	svc, pool, err := openChat(ctx, cfg, inst.Authz, log, cfg.CommunityURL, tcpClient(), signer, metrics)
	if err != nil {
		return err
	}
	defer pool.Close()
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	checks := p.checks(inst.Authz)
	return serveOn(ctx, lis, cfg, log, serviceHost(chatv1connect.ChatServiceName, svc, checks, readiness(inst.Authz, pool), metrics, rpcTracing,
		namedService{chatv1connect.StreamServiceName, svc.Stream()}, namedService{chatv1connect.ChatErasureServiceName, svc.Erasure()},
		// Internal: for the notification service, never routed by the gateway.
		namedService{chatv1connect.EventFeedServiceName, svc.Feed()}), inst, ready)
}

// serveNotification runs the notification service alone, on its own port;
// it follows the chat service's feed at -chat-url.
func (p process) serveNotification(ctx context.Context) error {
	cfg, log, metrics, signer, rpcTracing, ready := p.cfg, p.log, p.metrics, p.signer, p.rpcTracing, p.ready
	inst := &Instance{}
	closeAuthz, err := openAuthz(ctx, cfg, log, inst)
	if closeAuthz != nil {
		defer closeAuthz()
	}
	if err != nil {
		return err
	}
	svc, pool, err := openNotification(ctx, cfg, inst.Authz, log, cfg.ChatURL, tcpClient(), signer)
	if err != nil {
		return err
	}
	defer pool.Close()
	lis, err := listen(cfg)
	if err != nil {
		return err
	}
	checks := p.checks(inst.Authz)
	return serveOn(ctx, lis, cfg, log, serviceHost(notificationv1connect.NotificationServiceName, svc, checks, readiness(inst.Authz, pool), metrics, rpcTracing), inst, ready)
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
	// Each service on its own host handler, reached in memory: services
	// call each other through their Connect clients (memnet.HandlerClient),
	// exactly as over TCP when split, and the gateway hands requests to
	// the host directly (gateway.Local).
	if err := bootstrapAdmins(ctx, c.inst.Authz, cfg.PlatformAdmins, log); err != nil {
		return err
	}
	var local *localAccess
	if cfg.Playground == playgroundLocal {
		local = newLocalAccess()
	}
	if err := local.grant(ctx, c.inst.Authz, log); err != nil {
		return err
	}
	checks := p.checks(c.inst.Authz)
	communityHost := serviceHost(communityv1connect.CommunityServiceName, c.community, checks, readiness(c.inst.Authz, c.pool), metrics, rpcTracing)
	communityHTTP := serveInMemory(communityHost)
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
	id.local = local
	chat, chatPool, err := openChat(ctx, cfg, c.inst.Authz, log, "http://"+roleCommunity, communityHTTP, signer, metrics)
	if err != nil {
		public.Close()
		return err
	}
	defer chatPool.Close()
	chatHost := serviceHost(chatv1connect.ChatServiceName, chat, checks, readiness(c.inst.Authz, chatPool), metrics, rpcTracing,
		namedService{chatv1connect.StreamServiceName, chat.Stream()}, namedService{chatv1connect.ChatErasureServiceName, chat.Erasure()},
		namedService{chatv1connect.EventFeedServiceName, chat.Feed()})
	chatHTTP := serveInMemory(chatHost)
	notifications, notificationPool, err := openNotification(ctx, cfg, c.inst.Authz, log, "http://"+roleChat, chatHTTP, signer)
	if err != nil {
		public.Close()
		return err
	}
	defer notificationPool.Close()
	notificationHost := serviceHost(notificationv1connect.NotificationServiceName, notifications, checks, readiness(c.inst.Authz, notificationPool), metrics, rpcTracing)
	notificationHTTP := serveInMemory(notificationHost)
	users, userPool, err := openUser(ctx, cfg, c.inst.Authz, log, "http://"+roleCommunity, communityHTTP, signer, identities(id.adminURL),
		&serviceAt{"http://" + roleChat, chatHTTP}, &serviceAt{"http://" + roleNotification, notificationHTTP})
	if err != nil {
		public.Close()
		return err
	}
	defer userPool.Close()
	userHost := serviceHost(userv1connect.UserServiceName, users, checks, readiness(c.inst.Authz, userPool), metrics, rpcTracing)
	userHTTP := serveInMemory(userHost)
	// The admin service reports every service the gateway forwards to.
	var upstreams []upstream
	adm := admin.New(admin.Config{Authz: c.inst.Authz, Log: log.With("service", "admin"), Reconciler: c.community,
		Status: deploymentStatus(func() []statusProbe {
			probes := []statusProbe{selfProbe(roleGateway, "this process"), spicedbProbe(c.inst.Authz, cfg), kratosProbe(id)}
			for _, u := range upstreams {
				probes = append(probes, upstreamProbe(u.base.Host, u))
			}
			return probes
		})})
	adminHost := serviceHost(adminv1connect.AuthzAdminServiceName, adm, checks, readiness(c.inst.Authz, c.pool), metrics, rpcTracing)
	adminHTTP := serveInMemory(adminHost)
	upstreams = []upstream{
		{communityv1connect.CommunityServiceName, communityPath, &url.URL{Scheme: "http", Host: roleCommunity}, communityHTTP, communityHost},
		{userv1connect.UserServiceName, userPath, &url.URL{Scheme: "http", Host: roleUser}, userHTTP, userHost},
		{chatv1connect.ChatServiceName, chatPath, &url.URL{Scheme: "http", Host: roleChat}, chatHTTP, chatHost},
		{chatv1connect.StreamServiceName, streamPath, &url.URL{Scheme: "http", Host: roleChat}, chatHTTP, chatHost},
		{notificationv1connect.NotificationServiceName, notificationPath, &url.URL{Scheme: "http", Host: roleNotification}, notificationHTTP, notificationHost},
		{adminv1connect.AuthzAdminServiceName, adminPath, &url.URL{Scheme: "http", Host: roleAdmin}, adminHTTP, adminHost},
	}
	gw, err := newGateway(ctx, cfg, log, metrics, signer, id, upstreams...)
	if err != nil {
		public.Close()
		return err
	}
	if bridge != nil {
		gw.Handle(polytechPath+"/", bridge)
	}
	mountPlayground(gw, cfg.Playground)
	var edge http.Handler = gw
	if local != nil {
		edge = local.wrap(gw)
	}
	return serveOn(ctx, public, cfg, log, traceEdge(edge), c.inst, ready)
}

// runReconciler converges dirty servers in the background until stopped.
func (c *components) runReconciler(ctx context.Context) (stop func()) {
	ctx, stop = context.WithCancel(ctx)
	go c.community.RunReconciler(ctx, 10*time.Second)
	return stop
}

// upstream is a service as the gateway reaches it: over TCP when split,
// in memory in one process.
type upstream struct {
	name   string   // the service's full name
	path   string   // the path prefix of its RPCs
	base   *url.URL // where it listens
	client *http.Client
	// local, when the service runs in this process, is its host: the
	// gateway hands the client's requests to it directly (the same
	// handler, interceptors and permission checks as over the network,
	// without a proxy's copy of every streamed event). client still
	// reaches it for the readiness and status probes.
	local http.Handler
}

// newGateway is the public edge in front of the services: it forwards
// their RPCs to them, and is ready when they are.
func newGateway(ctx context.Context, cfg Config, log *slog.Logger, metrics *prometheus.Registry, signer *connectauthz.Signer, id *identity, upstreams ...upstream) (*gateway.Gateway, error) {
	services := make([]gateway.Service, 0, len(upstreams))
	for _, u := range upstreams {
		if u.local != nil {
			services = append(services, gateway.Local(u.name, u.path, u.local))
			continue
		}
		services = append(services, gateway.Upstream(u.name, u.path, u.base, traceUpstream(u.client)))
	}
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
	gw.Handle("GET /readyz", upstreamReadiness(upstreams))
	gw.Handle("GET /metrics", metricsHandler(metrics))
	return gw, id.forward(gw)
}

// openAuditLog opens the audit sink: JSON lines appended to path, or the
// process's log (records marked audit=true) when path is empty.
func openAuditLog(path string, log *slog.Logger) (connectauthz.Auditor, func(), error) {
	if path == "" {
		return connectauthz.NewSlogAuditor(log), func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("-audit-log: %w", err)
	}
	return connectauthz.NewJSONAuditor(f), func() { _ = f.Close() }, nil
}

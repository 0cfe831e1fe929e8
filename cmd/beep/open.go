package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/gen/beep/notification/v1/notificationv1connect"
	"github.com/beepchat/beep/internal/database"
	"github.com/beepchat/beep/internal/telemetry"
	"github.com/beepchat/beep/services/chat"
	"github.com/beepchat/beep/services/community"
	"github.com/beepchat/beep/services/notification"
	"github.com/beepchat/beep/services/user"
)

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
		cacheDecisions(ctx, c, cfg)
		return c.Close, ensureSchema(ctx, c, log)
	}
	spice := inprocess.Config{
		Engine:             cfg.SpiceDBEngine,
		GCWindow:           cfg.SpiceDBGCWindow,
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
	cacheDecisions(ctx, srv.Client(), cfg)
	return srv.Close, ensureSchema(ctx, srv.Client(), log)
}

// cacheDecisions caches c's answers asked without a ZedToken, following
// SpiceDB's Watch, until ctx ends (unless -decision-cache-ttl is 0).
func cacheDecisions(ctx context.Context, c *authz.Client, cfg Config) {
	if cfg.DecisionCacheTTL > 0 {
		go c.CacheDecisions(ctx, cfg.DecisionCacheTTL)
	}
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
// traced, with at most -postgres-max-conns connections, or else
// defaultConns (0: pgx's default).
func openPool(ctx context.Context, cfg Config, name string, defaultConns int) (*pgxpool.Pool, error) {
	uri, err := database.Ensure(ctx, cfg.PostgresURL, name)
	if err != nil {
		return nil, err
	}
	poolCfg, err := pgxpool.ParseConfig(uri)
	if err != nil {
		return nil, err
	}
	poolCfg.ConnConfig.Tracer = telemetry.PostgresTracer{Database: name}
	poolCfg.AfterConnect = database.EncodeUUIDs
	switch {
	case cfg.PostgresMaxConns > 0:
		poolCfg.MaxConns = int32(cfg.PostgresMaxConns)
	case defaultConns > 0:
		poolCfg.MaxConns = int32(defaultConns)
	}
	return pgxpool.NewWithConfig(ctx, poolCfg)
}

// chatConns is the chat service's pool by default: every message sent is a
// transaction whose commit waits for the WAL's flush, so throughput grows
// with the commits in flight (PostgreSQL flushes them together): 4
// connections held the chat load to 720 messages/s, 16 to 1,100
// (docs/benchmarks.md).
const chatConns = 16

// openCommunity opens the community service's database and the service.
func openCommunity(ctx context.Context, cfg Config, c *authz.Client, log *slog.Logger) (*community.Service, *pgxpool.Pool, error) {
	pool, err := openPool(ctx, cfg, cfg.CommunityDatabase, 0)
	if err != nil {
		return nil, nil, err
	}
	var opts []community.Option
	if cfg.Auditor != nil {
		opts = append(opts, community.WithAuditor(cfg.Auditor))
	}
	svc, err := community.New(ctx, pool, c, log.With("service", "community"), opts...)
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return svc, pool, nil
}

// openUser opens the user service's database and the service, which calls
// the community service at communityURL over client through its generated
// clients, and Kratos' admin API through ids (nil without Kratos). It
// resumes pending account deletions in the background until ctx ends.
func openUser(ctx context.Context, cfg Config, c *authz.Client, log *slog.Logger, communityURL string, client *http.Client, signer *connectauthz.Signer, ids user.Identities, chatAt, notificationAt *serviceAt) (*user.Service, *pgxpool.Pool, error) {
	community, err := newServiceClient(communityv1connect.NewCommunityServiceClient, communityURL, client, signer)
	if err != nil {
		return nil, nil, err
	}
	erasure, err := newServiceClient(communityv1connect.NewErasureServiceClient, communityURL, client, signer)
	if err != nil {
		return nil, nil, err
	}
	var chatErasure chatv1connect.ChatErasureServiceClient
	if chatAt != nil {
		if chatErasure, err = newServiceClient(chatv1connect.NewChatErasureServiceClient, chatAt.url, chatAt.client, signer); err != nil {
			return nil, nil, err
		}
	} else {
		log.Warn("no chat service (-chat-url): deleted accounts' messages stay in it")
	}
	var notificationErasure notificationv1connect.ErasureServiceClient
	if notificationAt != nil {
		if notificationErasure, err = newServiceClient(notificationv1connect.NewErasureServiceClient, notificationAt.url, notificationAt.client, signer); err != nil {
			return nil, nil, err
		}
	} else {
		log.Warn("no notification service (-notification-url): deleted accounts' notifications stay in it")
	}
	pool, err := openPool(ctx, cfg, cfg.UserDatabase, 0)
	if err != nil {
		return nil, nil, err
	}
	svc, err := user.New(ctx, user.Config{DB: pool, Authz: c, Log: log.With("service", "user"), Community: community, Erasure: erasure,
		ChatErasure: chatErasure, NotificationErasure: notificationErasure, Identities: ids, DeletionGrace: cfg.SessionCacheTTL + deletionMargin})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	go svc.RunDeletions(ctx, 10*time.Second)
	return svc, pool, nil
}

// serviceAt is where another service is reached: its base URL and the
// HTTP client to it (TCP, or memnet in one process).
type serviceAt struct {
	url    string
	client *http.Client
}

// openChat opens the chat service's database and the service, which asks
// the community service at communityURL over client (through its
// generated client, as the caller). It converges DMs whose authorization
// write was interrupted, erases the messages of the channels and threads
// the community service deleted, and runs the real-time stream, in the
// background until ctx ends.
func openChat(ctx context.Context, cfg Config, c *authz.Client, log *slog.Logger, communityURL string, client *http.Client, signer *connectauthz.Signer, metrics prometheus.Registerer) (*chat.Service, *pgxpool.Pool, error) {
	community, err := newServiceClient(communityv1connect.NewCommunityServiceClient, communityURL, client, signer)
	if err != nil {
		return nil, nil, err
	}
	deletions, err := newServiceClient(communityv1connect.NewErasureServiceClient, communityURL, client, signer)
	if err != nil {
		return nil, nil, err
	}
	pool, err := openPool(ctx, cfg, cfg.ChatDatabase, chatConns)
	if err != nil {
		return nil, nil, err
	}
	svc, err := chat.New(ctx, chat.Config{DB: pool, Authz: c, Log: log.With("service", "chat"), Community: community, Deletions: deletions,
		Stream: chat.StreamConfig{Metrics: metrics}})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	go svc.RunReconciler(ctx, 10*time.Second)
	go svc.RunDeletions(ctx, time.Minute)
	go func() {
		if err := svc.Stream().Run(ctx); err != nil {
			log.Error("chat stream stopped", "err", err)
		}
	}()
	return svc, pool, nil
}

// openNotification opens the notification service's database and the
// service, which follows the chat service's internal feed at chatURL over
// client (through its generated client, as the notification service). It
// consumes the feed in the background until ctx ends (one instance of a
// deployment at a time).
func openNotification(ctx context.Context, cfg Config, c *authz.Client, log *slog.Logger, chatURL string, client *http.Client, signer *connectauthz.Signer) (*notification.Service, *pgxpool.Pool, error) {
	feed, err := newServiceClient(chatv1connect.NewEventFeedServiceClient, chatURL, client, signer)
	if err != nil {
		return nil, nil, err
	}
	pool, err := openPool(ctx, cfg, cfg.NotificationDatabase, 0)
	if err != nil {
		return nil, nil, err
	}
	svc, err := notification.New(ctx, notification.Config{DB: pool, Authz: c, Log: log.With("service", "notification"), Feed: feed})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	go func() {
		if err := svc.Run(ctx); err != nil {
			log.Error("notification feed stopped", "err", err)
		}
	}()
	return svc, pool, nil
}

// deletionMargin is added to the gateway's session cache for the last pass
// of an account's erasure: a request authenticated just before the
// identity was deleted has finished by then.
const deletionMargin = 5 * time.Second

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

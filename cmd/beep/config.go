package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
)

// Config is how one Beep process runs. Every field has a flag and a BEEP_*
// environment variable; a flag given on the command line wins.
type Config struct {
	// Role is what this process runs: "all" (every component, the
	// default), or one component: "community", "user", "chat",
	// "notification" or "gateway".
	Role string
	// HTTPAddr is the process's port: the public API for all and gateway,
	// the service's own API for a service; /healthz, /readyz, /metrics.
	HTTPAddr string
	// PostgresURL is the PostgreSQL server Beep keeps its databases on.
	PostgresURL string
	// PostgresMaxConns bounds each service's connection pool (0: 16 for
	// chat; for the others pgx's default, the larger of 4 and the number
	// of CPUs).
	PostgresMaxConns int
	// SpiceDBEngine is "postgres" (default) or "memory" (lost at exit).
	SpiceDBEngine string
	// SpiceDBGCWindow is how long the postgres engine keeps deleted
	// relationships before purging them.
	SpiceDBGCWindow time.Duration
	// SpiceDBDatabase is the database of the postgres engine on PostgresURL's server.
	SpiceDBDatabase string
	// SpiceDBGRPCAddr serves the in-process SpiceDB's gRPC API ("" = not served).
	SpiceDBGRPCAddr string
	// SpiceDBPresharedKey protects it (random when empty).
	SpiceDBPresharedKey string
	// SpiceDBEndpoint, when set, uses a remote SpiceDB instead of the
	// in-process one (the distributed mode).
	SpiceDBEndpoint string
	// SpiceDBInsecure talks to the remote SpiceDB without TLS.
	SpiceDBInsecure bool
	// SpiceDBCACert is the CA bundle of the remote SpiceDB's certificate.
	SpiceDBCACert string
	// CommunityDatabase is the community service's database on PostgresURL's server.
	CommunityDatabase string
	// CommunityURL is where a gateway, the user service or the chat
	// service alone reaches the community service (http://host:port,
	// spoken in h2c).
	CommunityURL string
	// UserDatabase is the user service's database on PostgresURL's server.
	UserDatabase string
	// UserURL is where a gateway alone reaches the user service.
	UserURL string
	// ChatDatabase is the chat service's database on PostgresURL's server.
	ChatDatabase string
	// ChatURL is where a gateway alone, or the notification service
	// alone, reaches the chat service.
	ChatURL string
	// NotificationDatabase is the notification service's database on
	// PostgresURL's server.
	NotificationDatabase string
	// NotificationURL is where a gateway alone reaches the notification
	// service.
	NotificationURL string
	// InternalKey signs the principal the gateway passes to the services;
	// every process of a deployment shares it. Random for "all".
	InternalKey []byte
	// PlatformAdmins are user ids written as platform:beep#admin at start
	// (the first administrators: nobody is one unless named).
	PlatformAdmins []string
	// DevTokenKey, when set, makes the gateway accept development tokens
	// signed with it (`beep devtoken`). Never set by default.
	DevTokenKey string
	// Playground says who uses the schema playground at /playground/:
	// "local", "staff" or "off" (resolved from "auto"; see playground.go).
	Playground string
	// CORSOrigins are the browser origins allowed to call the API.
	CORSOrigins []string
	// RateLimit and RateBurst bound each principal (or client IP), per second.
	RateLimit float64
	RateBurst int
	// KratosBin, when set, is the Ory Kratos binary `beep serve` runs as a
	// supervised child (scripts/build-kratos builds it).
	KratosBin string
	// KratosDSN is its database ("" = KratosDatabase on PostgresURL's
	// server; "memory" for a throwaway one).
	KratosDSN      string
	KratosDatabase string
	// KratosPublicAddr and KratosAdminAddr are where the child listens.
	KratosPublicAddr, KratosAdminAddr string
	// KratosURL is an external Kratos' public API (instead of a child).
	KratosURL string
	// KratosAdminURL is an external Kratos' admin API, which the user
	// service uses to export and delete accounts.
	KratosAdminURL string
	// SMTPURL is where the Kratos child sends emails; empty: the
	// development courier logs them.
	SMTPURL string
	// SessionCacheTTL is how long the gateway reuses a session's whoami.
	SessionCacheTTL time.Duration
	// DecisionCacheTTL is how long an authorization answer asked without a
	// ZedToken is reused, SpiceDB's Watch emptying the cache at every
	// change (authz.Client.CacheDecisions); 0: not cached.
	DecisionCacheTTL time.Duration
	// GoogleClientID and GoogleClientSecret, when set, offer "Sign in with
	// Google" (Kratos' OIDC) with the issuer GoogleIssuer.
	GoogleClientID, GoogleClientSecret, GoogleIssuer string
	// LDAPURL, when set, offers "Sign in with Polytech" through the LDAP
	// bridge; the rest say how to find and check people there.
	LDAPURL, LDAPBindDN, LDAPBindPassword, LDAPBaseDN, LDAPUserFilter string
	LDAPStartTLS                                                      bool
	// OIDCIssuer and OIDCAudience, when set, make the gateway accept access
	// tokens of that issuer (Keycloak) for that audience.
	OIDCIssuer, OIDCAudience string
	// OIDCSubjectPrefix goes before a token's subject to make the user id.
	OIDCSubjectPrefix string
	// OIDCClockSkew is the tolerance on token times.
	OIDCClockSkew time.Duration
	// PublicURL is where clients reach Beep (the links Kratos makes).
	PublicURL string
	// LogLevel is debug, info, warn or error.
	LogLevel slog.Level
	// AuditLog is where audit records go as JSON lines: a file (appended
	// to), or empty for the process's log (marked audit=true).
	AuditLog string
	// Auditor receives the audit records; serve makes it from AuditLog
	// (nil: none are kept).
	Auditor connectauthz.Auditor
	// OTLPEndpoint receives traces (empty: none are exported).
	OTLPEndpoint string
	// OTLPProtocol is grpc or http.
	OTLPProtocol string
	// OTLPInsecure sends traces without TLS.
	OTLPInsecure bool
	// PprofAddr, when set, serves net/http/pprof there (a loopback address
	// only; off by default): for profiling, never in production.
	PprofAddr string
	// TraceSampleRatio is the share of new traces kept.
	TraceSampleRatio float64
	// spanExporter, set by tests, receives the spans instead.
	spanExporter sdktrace.SpanExporter
	// noMetrics is set by short-lived commands (reconcile).
	noMetrics bool
}

// parseConfig parses `beep serve [role] [flags]`.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	role := roleAll
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		role, args = args[0], args[1:]
	}
	cfg, err := parseConfigAs("beep serve", args, stderr, nil)
	if err != nil {
		return cfg, err
	}
	cfg.Role = role
	if cfg.Playground, err = playgroundMode(cfg.Playground, role, cfg.HTTPAddr, cfg.PublicURL); err != nil {
		return cfg, err
	}
	switch role {
	case roleAll:
		if len(cfg.InternalKey) == 0 {
			cfg.InternalKey = make([]byte, 32)
			_, _ = rand.Read(cfg.InternalKey)
		}
	case roleCommunity, roleUser, roleChat, roleNotification, roleGateway:
		if len(cfg.InternalKey) < connectauthz.MinKeyBytes {
			return cfg, fmt.Errorf("beep serve %s needs -internal-key (at least %d bytes), the same in every process", role, connectauthz.MinKeyBytes)
		}
		if (role == roleGateway || role == roleUser || role == roleChat) && cfg.CommunityURL == "" {
			return cfg, fmt.Errorf("beep serve %s needs -community-url", role)
		}
		if role == roleNotification && cfg.ChatURL == "" {
			return cfg, fmt.Errorf("beep serve %s needs -chat-url", role)
		}
		for _, u := range []struct{ flag, value string }{{"community-url", cfg.CommunityURL}, {"user-url", cfg.UserURL}, {"chat-url", cfg.ChatURL}, {"notification-url", cfg.NotificationURL}} {
			if u.value == "" {
				continue
			}
			if _, err := parseServiceURL(u.flag, u.value); err != nil {
				return cfg, err
			}
		}
	default:
		return cfg, fmt.Errorf("unknown role %q: want all, community, user, chat, notification or gateway", role)
	}
	return cfg, nil
}

// parseConfigAs parses the common flags; extra registers a command's own.
func parseConfigAs(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if extra != nil {
		extra(fs)
	}
	fs.SetOutput(stderr)
	str := func(p *string, name, env, def, usage string) {
		if v, ok := os.LookupEnv(env); ok {
			def = v
		}
		fs.StringVar(p, name, def, usage+" ($"+env+")")
	}
	str(&cfg.HTTPAddr, "http-addr", "BEEP_HTTP_ADDR", "127.0.0.1:8080", "the process's port: the public API (all, gateway) or the service's own API; /healthz, /readyz, /metrics")
	str(&cfg.PostgresURL, "postgres-url", "BEEP_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (any database on it); Beep creates its own databases")
	str(&cfg.SpiceDBEngine, "spicedb-engine", "BEEP_SPICEDB_ENGINE", "postgres", "in-process SpiceDB datastore: postgres or memory")
	gcWindow := "1h"
	str(&gcWindow, "spicedb-gc-window", "BEEP_SPICEDB_GC_WINDOW", gcWindow, "how long the in-process postgres engine keeps deleted relationships (ZedTokens older than it fail) before purging them")
	str(&cfg.SpiceDBDatabase, "spicedb-database", "BEEP_SPICEDB_DATABASE", "beep_spicedb", "PostgreSQL database of the in-process SpiceDB (created if absent)")
	str(&cfg.SpiceDBGRPCAddr, "spicedb-grpc-addr", "BEEP_SPICEDB_GRPC_ADDR", "127.0.0.1:50051", "serve the in-process SpiceDB gRPC API here (empty: do not)")
	str(&cfg.SpiceDBPresharedKey, "spicedb-preshared-key", "BEEP_SPICEDB_PRESHARED_KEY", "", "SpiceDB preshared key (random for the in-process SpiceDB when empty)")
	str(&cfg.SpiceDBEndpoint, "spicedb-endpoint", "BEEP_SPICEDB_ENDPOINT", "", "remote SpiceDB host:port; empty runs SpiceDB in-process")
	str(&cfg.SpiceDBCACert, "spicedb-ca-cert", "BEEP_SPICEDB_CA_CERT", "", "PEM CA bundle for the remote SpiceDB (default: system roots)")
	str(&cfg.CommunityDatabase, "community-database", "BEEP_COMMUNITY_DATABASE", "beep_community", "PostgreSQL database of the community service (created if absent)")
	str(&cfg.UserDatabase, "user-database", "BEEP_USER_DATABASE", "beep_user", "PostgreSQL database of the user service (created if absent)")
	str(&cfg.UserURL, "user-url", "BEEP_USER_URL", "", "the user service, for a gateway alone (e.g. http://user:8080)")
	str(&cfg.CommunityURL, "community-url", "BEEP_COMMUNITY_URL", "", "the community service, for a gateway, the user service or the chat service alone (e.g. http://community:8080)")
	str(&cfg.ChatDatabase, "chat-database", "BEEP_CHAT_DATABASE", "beep_chat", "PostgreSQL database of the chat service (created if absent)")
	str(&cfg.ChatURL, "chat-url", "BEEP_CHAT_URL", "", "the chat service, for a gateway or the notification service alone (e.g. http://chat:8080)")
	str(&cfg.NotificationDatabase, "notification-database", "BEEP_NOTIFICATION_DATABASE", "beep_notification", "PostgreSQL database of the notification service (created if absent)")
	str(&cfg.NotificationURL, "notification-url", "BEEP_NOTIFICATION_URL", "", "the notification service, for a gateway alone (e.g. http://notification:8080)")
	internalKey := ""
	str(&internalKey, "internal-key", "BEEP_INTERNAL_KEY", "", "key signing the principal between gateway and services (32+ bytes, shared; random when all run in one process)")
	admins := ""
	str(&admins, "platform-admins", "BEEP_PLATFORM_ADMINS", "", "comma-separated user ids made platform admins (platform:beep#admin) at start; nobody is one unless named")
	str(&cfg.AuditLog, "audit-log", "BEEP_AUDIT_LOG", "", "file receiving audit records (refused checks, moderation and server changes) as JSON lines; empty: the log, marked audit=true")
	str(&cfg.DevTokenKey, "dev-token-key", "BEEP_DEV_TOKEN_KEY", "", "accept development tokens signed with this key (16+ bytes; development only)")
	origins := ""
	str(&origins, "cors-origins", "BEEP_CORS_ORIGINS", "", "comma-separated browser origins allowed to call the API (* for any)")
	maxConns := "0"
	str(&maxConns, "postgres-max-conns", "BEEP_POSTGRES_MAX_CONNS", maxConns, "connections each service's pool opens at most (0: 16 for chat, the larger of 4 and the number of CPUs for the others)")
	rate, burst := "50", "100"
	str(&rate, "rate-limit", "BEEP_RATE_LIMIT", rate, "requests per second allowed to each principal (or client IP)")
	str(&burst, "rate-burst", "BEEP_RATE_BURST", burst, "requests allowed at once above the rate")
	insecure := os.Getenv("BEEP_SPICEDB_INSECURE") == "true"
	fs.BoolVar(&cfg.SpiceDBInsecure, "spicedb-insecure", insecure, "talk to the remote SpiceDB without TLS ($BEEP_SPICEDB_INSECURE)")
	str(&cfg.KratosBin, "kratos-bin", "BEEP_KRATOS_BIN", "", "run this Ory Kratos binary as the identity server (`make run` builds and passes it)")
	str(&cfg.KratosDSN, "kratos-dsn", "BEEP_KRATOS_DSN", "", "Kratos' database (empty: -kratos-database on the PostgreSQL server; memory: throwaway)")
	str(&cfg.KratosDatabase, "kratos-database", "BEEP_KRATOS_DATABASE", "beep_kratos", "PostgreSQL database of the Kratos child (created if absent)")
	str(&cfg.KratosPublicAddr, "kratos-public-addr", "BEEP_KRATOS_PUBLIC_ADDR", "127.0.0.1:4433", "where the Kratos child serves its public API")
	str(&cfg.KratosAdminAddr, "kratos-admin-addr", "BEEP_KRATOS_ADMIN_ADDR", "127.0.0.1:4434", "where the Kratos child serves its admin API")
	str(&cfg.KratosURL, "kratos-url", "BEEP_KRATOS_URL", "", "an external Kratos' public API, instead of a child")
	str(&cfg.SMTPURL, "smtp-url", "BEEP_SMTP_URL", "", "SMTP server the Kratos child sends emails through (smtps://user:pass@host:465/); empty: they are written to the log (development)")
	str(&cfg.KratosAdminURL, "kratos-admin-url", "BEEP_KRATOS_ADMIN_URL", "", "an external Kratos' admin API, for the user service (account export and deletion)")
	str(&cfg.PublicURL, "public-url", "BEEP_PUBLIC_URL", "", "where clients reach Beep, for the links Kratos makes (default: http://<http-addr>/)")
	str(&cfg.GoogleClientID, "google-client-id", "BEEP_GOOGLE_CLIENT_ID", "", "offer sign-in with Google (an OAuth client of Google's console)")
	str(&cfg.GoogleClientSecret, "google-client-secret", "BEEP_GOOGLE_CLIENT_SECRET", "", "its secret")
	str(&cfg.GoogleIssuer, "google-issuer", "BEEP_GOOGLE_ISSUER", "https://accounts.google.com", "Google's OIDC issuer (tests put a stand-in here)")
	str(&cfg.LDAPURL, "ldap-url", "BEEP_LDAP_URL", "", "offer sign-in with Polytech's directory: ldap:// or ldaps:// URL")
	str(&cfg.LDAPBindDN, "ldap-bind-dn", "BEEP_LDAP_BIND_DN", "", "the account that searches the directory (empty: anonymous)")
	str(&cfg.LDAPBindPassword, "ldap-bind-password", "BEEP_LDAP_BIND_PASSWORD", "", "its password")
	str(&cfg.LDAPBaseDN, "ldap-base-dn", "BEEP_LDAP_BASE_DN", "", "where people are searched")
	str(&cfg.LDAPUserFilter, "ldap-user-filter", "BEEP_LDAP_USER_FILTER", "(uid={username})", "finds one person; {username} is the escaped username")
	fs.BoolVar(&cfg.LDAPStartTLS, "ldap-starttls", os.Getenv("BEEP_LDAP_STARTTLS") == "true", "StartTLS on an ldap:// URL ($BEEP_LDAP_STARTTLS)")
	str(&cfg.OIDCIssuer, "oidc-issuer", "BEEP_OIDC_ISSUER", "", "accept access tokens from this OIDC issuer (e.g. a Keycloak realm URL)")
	str(&cfg.OIDCAudience, "oidc-audience", "BEEP_OIDC_AUDIENCE", "", "the audience those tokens must carry (Beep's client id there)")
	str(&cfg.OIDCSubjectPrefix, "oidc-subject-prefix", "BEEP_OIDC_SUBJECT_PREFIX", "oidc-", "put before a token's subject to make the Beep user id")
	skew := "30s"
	str(&skew, "oidc-clock-skew", "BEEP_OIDC_CLOCK_SKEW", skew, "tolerance on access tokens' expiry and issue times")
	sessionTTL := "10s"
	decisionTTL := "10m"
	str(&decisionTTL, "decision-cache-ttl", "BEEP_DECISION_CACHE_TTL", decisionTTL, "how long at most an authorization answer asked without a ZedToken is reused; SpiceDB's Watch empties the cache at every change to the graph, and so does every relationship's expiry (0: no cache)")
	str(&sessionTTL, "session-cache-ttl", "BEEP_SESSION_CACHE_TTL", sessionTTL, "how long the gateway trusts a verified session before asking Kratos again (a revoked session works at most this long)")
	str(&cfg.OTLPEndpoint, "otlp-endpoint", "BEEP_OTLP_ENDPOINT", "", "OTLP collector host:port receiving traces (empty: traces are not exported)")
	str(&cfg.OTLPProtocol, "otlp-protocol", "BEEP_OTLP_PROTOCOL", "grpc", "OTLP protocol: grpc or http")
	fs.BoolVar(&cfg.OTLPInsecure, "otlp-insecure", os.Getenv("BEEP_OTLP_INSECURE") == "true", "send traces without TLS ($BEEP_OTLP_INSECURE)")
	ratio := "1"
	str(&ratio, "trace-sample-ratio", "BEEP_TRACE_SAMPLE_RATIO", ratio, "share of new traces kept, 0 to 1 (a sampled incoming trace is always kept)")
	str(&cfg.PprofAddr, "pprof-addr", "BEEP_PPROF_ADDR", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060 (empty: off)")
	level := "info"
	str(&level, "log-level", "BEEP_LOG_LEVEL", level, "debug, info, warn or error")
	str(&cfg.Playground, "playground", "BEEP_PLAYGROUND", playgroundAuto,
		"the schema playground at /playground/: local (anyone on this machine, as platform staff), staff (signed-in platform staff), off, or auto (local for `serve` on a loopback address, staff otherwise)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg.InternalKey = []byte(internalKey)
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			cfg.CORSOrigins = append(cfg.CORSOrigins, o)
		}
	}
	for _, id := range strings.Split(admins, ",") {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		if _, err := authz.ParseSubject("user:" + id); err != nil || id == "*" {
			return Config{}, fmt.Errorf("-platform-admins: %q is not a user id", id)
		}
		cfg.PlatformAdmins = append(cfg.PlatformAdmins, id)
	}
	var err error
	if cfg.RateLimit, err = strconv.ParseFloat(rate, 64); err != nil || cfg.RateLimit <= 0 {
		return Config{}, fmt.Errorf("-rate-limit %q: want a positive number", rate)
	}
	if cfg.OIDCClockSkew, err = time.ParseDuration(skew); err != nil || cfg.OIDCClockSkew < 0 {
		return Config{}, fmt.Errorf("-oidc-clock-skew %q: want a duration such as 30s", skew)
	}
	if (cfg.OIDCIssuer == "") != (cfg.OIDCAudience == "") {
		return Config{}, errors.New("-oidc-issuer and -oidc-audience go together")
	}
	if cfg.SpiceDBGCWindow, err = time.ParseDuration(gcWindow); err != nil || cfg.SpiceDBGCWindow <= 0 {
		return Config{}, fmt.Errorf("-spicedb-gc-window %q: want a positive duration such as 1h", gcWindow)
	}
	if cfg.SessionCacheTTL, err = time.ParseDuration(sessionTTL); err != nil || cfg.SessionCacheTTL < 0 {
		return Config{}, fmt.Errorf("-session-cache-ttl %q: want a duration such as 10s", sessionTTL)
	}
	if cfg.DecisionCacheTTL, err = time.ParseDuration(decisionTTL); err != nil || cfg.DecisionCacheTTL < 0 {
		return Config{}, fmt.Errorf("-decision-cache-ttl %q: want a duration such as 1m (0: no cache)", decisionTTL)
	}
	if cfg.TraceSampleRatio, err = strconv.ParseFloat(ratio, 64); err != nil || cfg.TraceSampleRatio < 0 || cfg.TraceSampleRatio > 1 {
		return Config{}, fmt.Errorf("-trace-sample-ratio %q: want a number from 0 to 1", ratio)
	}
	if cfg.OTLPProtocol != "grpc" && cfg.OTLPProtocol != "http" {
		return Config{}, fmt.Errorf("-otlp-protocol %q: want grpc or http", cfg.OTLPProtocol)
	}
	if cfg.PostgresMaxConns, err = strconv.Atoi(maxConns); err != nil || cfg.PostgresMaxConns < 0 {
		return Config{}, fmt.Errorf("-postgres-max-conns %q: want 0 or a positive whole number", maxConns)
	}
	if cfg.RateBurst, err = strconv.Atoi(burst); err != nil || cfg.RateBurst <= 0 {
		return Config{}, fmt.Errorf("-rate-burst %q: want a positive whole number", burst)
	}
	if cfg.DevTokenKey != "" && len(cfg.DevTokenKey) < 16 {
		return Config{}, errors.New("-dev-token-key must be at least 16 bytes")
	}
	if err := checkPprofAddr(cfg.PprofAddr); err != nil {
		return Config{}, err
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return Config{}, fmt.Errorf("-log-level: %w", err)
	}
	switch {
	case cfg.SpiceDBEndpoint != "" && cfg.SpiceDBPresharedKey == "":
		return Config{}, errors.New("a remote SpiceDB (-spicedb-endpoint) needs -spicedb-preshared-key")
	case cfg.SpiceDBEndpoint == "" && cfg.SpiceDBEngine != "postgres" && cfg.SpiceDBEngine != "memory":
		return Config{}, fmt.Errorf("-spicedb-engine %q: want postgres or memory", cfg.SpiceDBEngine)
	}
	return cfg, nil
}

// Package inprocess runs SpiceDB inside the Beep process: the embedded
// default of the all-in-one binary, and the SpiceDB of every test.
//
// Start takes one call. The server speaks the standard SpiceDB v1 gRPC API,
// either over an in-memory connection only, or also on a TCP address so that
// zed, beepctl and other processes can reach it; Client always goes through
// gRPC, so the embedded mode runs the same code path as a remote SpiceDB.
package inprocess

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/cmd/server"
	"github.com/authzed/spicedb/pkg/cmd/util"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/beepchat/beep/authz"
)

// Datastore engines.
const (
	// Memory keeps the graph in memory: fast, and gone at exit.
	Memory = "memory"
	// Postgres keeps the graph in PostgreSQL (migrated to head by Start).
	Postgres = "postgres"
)

// Config configures the in-process SpiceDB.
type Config struct {
	// Engine is Memory (the default) or Postgres.
	Engine string
	// DatastoreURI is the PostgreSQL URI for the Postgres engine. The
	// database must exist; Start migrates it.
	DatastoreURI string
	// GRPCAddr, when set (such as "127.0.0.1:50051", or "127.0.0.1:0" for
	// any free port), also serves the SpiceDB gRPC API on that address.
	GRPCAddr string
	// TLSCertFile and TLSKeyFile, when set, serve the gRPC API on GRPCAddr
	// over TLS (for clients beyond loopback).
	TLSCertFile, TLSKeyFile string
	// PresharedKey protects the gRPC API; a random one is made when empty.
	PresharedKey string
	// NoDatastoreMetrics leaves the datastore's Prometheus metrics
	// unregistered: for short-lived commands, and for a second SpiceDB on a
	// PostgreSQL datastore in one process (the registry is global).
	NoDatastoreMetrics bool
	// GCWindow is how long deleted relationships are kept, for reads at
	// older revisions (ZedTokens older than it fail), before they are
	// purged for good: 24 hours when zero. It bounds how long the rows of
	// an erased account stay in the datastore.
	GCWindow time.Duration
	// Schema, when set, is written at start with Client.EnsureSchema.
	Schema string
	// ClientOptions configure the returned Client.
	ClientOptions []authz.Option
}

// Server is a running in-process SpiceDB.
type Server struct {
	client *authz.Client
	conn   *grpc.ClientConn
	addr   string
	key    string
	cancel context.CancelFunc
	done   chan error

	closeOnce sync.Once
	closeErr  error
}

// Start starts SpiceDB in-process and returns once it answers.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Engine == "" {
		cfg.Engine = Memory
	}
	key := cfg.PresharedKey
	if key == "" {
		key = randomKey()
	}

	dsOpts := []datastore.ConfigOption{datastore.WithEngine(cfg.Engine)}
	switch cfg.Engine {
	case Memory:
		// Expired relationships and old revisions are collected on this window.
		dsOpts = append(dsOpts, datastore.WithGCWindow(time.Hour))
	case Postgres:
		if cfg.DatastoreURI == "" {
			return nil, errors.New("inprocess: the postgres engine needs DatastoreURI")
		}
		if err := migrate(ctx, cfg.DatastoreURI); err != nil {
			return nil, err
		}
		dsOpts = append(dsOpts, datastore.WithURI(cfg.DatastoreURI), datastore.WithEnableDatastoreMetrics(!cfg.NoDatastoreMetrics))
		if cfg.GCWindow > 0 {
			// Collected at least every tenth of the window (at most every
			// three minutes, SpiceDB's default).
			dsOpts = append(dsOpts, datastore.WithGCWindow(cfg.GCWindow), datastore.WithGCInterval(min(3*time.Minute, max(cfg.GCWindow/10, time.Second))))
		}
	default:
		return nil, fmt.Errorf("inprocess: unknown datastore engine %q (want %q or %q)", cfg.Engine, Memory, Postgres)
	}

	grpcCfg := util.GRPCServerConfig{Network: util.BufferedNetwork, Enabled: true}
	if cfg.GRPCAddr != "" {
		addr, err := freeAddr(cfg.GRPCAddr)
		if err != nil {
			return nil, err
		}
		grpcCfg = util.GRPCServerConfig{Network: "tcp", Address: addr, Enabled: true, TLSCertPath: cfg.TLSCertFile, TLSKeyPath: cfg.TLSKeyFile}
	} else if cfg.TLSCertFile != "" {
		return nil, errors.New("inprocess: TLS needs GRPCAddr")
	}
	dialCreds := insecure.NewCredentials()
	if cfg.TLSCertFile != "" {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(cfg.TLSCertFile)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("inprocess: reading TLS certificate %s: %v", cfg.TLSCertFile, err)
		}
		dialCreds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}

	serverOpts := []server.ConfigOption{
		server.WithDatastoreConfig(*datastore.NewConfigWithOptionsAndDefaults(dsOpts...)),
		server.WithPresharedSecureKey(key),
		server.WithGRPCServer(grpcCfg),
		server.WithHTTPGateway(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithMetricsAPI(util.HTTPServerConfig{HTTPEnabled: false}),
		server.WithDispatchServer(util.GRPCServerConfig{Enabled: false}),
		server.WithTelemetryEndpoint(""),
		server.WithSilentlyDisableTelemetry(true),
		server.WithEnableMemoryProtectionMiddleware(false),
		server.WithMaximumUpdatesPerWrite(10_000),
		server.WithMaximumPreconditionCount(10_000),
		// The Watch on PostgreSQL looks for new revisions at this pace
		// (100 ms is its floor): the chat stream invalidates what it
		// caches within it.
		server.WithWatchHeartbeat(100 * time.Millisecond),
	}
	if cfg.Engine == Memory {
		serverOpts = append(serverOpts, (&writeTurns{}).options()...)
	}
	serverCfg := server.NewConfigWithOptionsAndDefaults(serverOpts...)
	runCtx, cancel := context.WithCancel(context.Background())
	runnable, err := serverCfg.Complete(runCtx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("inprocess: configuring SpiceDB: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- runnable.Run(runCtx) }()

	conn, err := runnable.NewClient(
		grpc.WithTransportCredentials(dialCreds),
		grpc.WithPerRPCCredentials(authz.PresharedKey(key, cfg.TLSCertFile != "")),
		// Each call a child span of the request's trace (the global
		// OpenTelemetry provider; a no-op until one is installed).
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("inprocess: connecting to SpiceDB: %w", err)
	}
	s := &Server{
		client: authz.NewClient(conn, cfg.ClientOptions...),
		conn:   conn,
		addr:   grpcCfg.Address,
		key:    key,
		cancel: cancel,
		done:   done,
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if cfg.Schema != "" {
		if _, err := s.client.EnsureSchema(ctx, cfg.Schema); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// waitReady waits until SpiceDB answers a request or the server stops.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		_, err := s.client.ReadSchema(ctx)
		if err == nil {
			return nil
		}
		select {
		case runErr := <-s.done:
			return fmt.Errorf("inprocess: SpiceDB stopped while starting: %w", runErr)
		case <-ctx.Done():
			return fmt.Errorf("inprocess: SpiceDB did not become ready: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Client is the client of this server. Its calls are traced like [authz.Dial]'s.
func (s *Server) Client() *authz.Client { return s.client }

// Addr is the TCP address the gRPC API listens on ("" when in-memory only).
func (s *Server) Addr() string { return s.addr }

// PresharedKey is the key the gRPC API expects.
func (s *Server) PresharedKey() string { return s.key }

// Close stops SpiceDB and waits for it. Later calls return the first's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		_ = s.conn.Close()
		s.cancel()
		select {
		case err := <-s.done:
			if !errors.Is(err, context.Canceled) {
				s.closeErr = err
			}
		case <-time.After(15 * time.Second):
			s.closeErr = errors.New("inprocess: SpiceDB did not stop within 15s")
		}
	})
	return s.closeErr
}

// freeAddr resolves a ":0" port to a free one, so that Addr is dialable.
func freeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("inprocess: bad gRPC address %q: %w", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("inprocess: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomKey() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultTimeout bounds every unary call to SpiceDB unless the caller's
// context is shorter. Past it, the call fails closed with ErrUnavailable.
const DefaultTimeout = 2 * time.Second

// Client is the typed Beep client of SpiceDB's v1 API. It is safe for
// concurrent use.
type Client struct {
	permissions v1.PermissionsServiceClient
	schema      v1.SchemaServiceClient
	watch       v1.WatchServiceClient
	timeout     time.Duration
	conn        *grpc.ClientConn // owned when created by Dial
	// cache, while CacheDecisions runs.
	cache atomic.Pointer[decisions]
}

// Option configures a Client.
type Option func(*Client)

// WithTimeout sets the per-call timeout (default [DefaultTimeout]).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// NewClient wraps a gRPC connection to SpiceDB (in-process or remote). The
// connection must already carry the preshared key, see [Dial], and, for its
// calls to be traced, otelgrpc's client stats handler.
func NewClient(conn grpc.ClientConnInterface, opts ...Option) *Client {
	c := &Client{
		permissions: v1.NewPermissionsServiceClient(conn),
		schema:      v1.NewSchemaServiceClient(conn),
		watch:       v1.NewWatchServiceClient(conn),
		timeout:     DefaultTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// RemoteConfig locates a SpiceDB reached over the network.
type RemoteConfig struct {
	// Endpoint is host:port of SpiceDB's gRPC API.
	Endpoint string
	// PresharedKey is SpiceDB's --grpc-preshared-key.
	PresharedKey string
	// Insecure sends the key without TLS (loopback and tests only).
	Insecure bool
	// CACertFile, when set, is the PEM bundle that signs SpiceDB's certificate;
	// otherwise the system roots are used.
	CACertFile string
}

// Dial connects to a remote SpiceDB. Every call is traced: a client span
// (authzed.api.v1.PermissionsService/CheckPermission, ...) of the trace in
// the call's context, made by the global OpenTelemetry tracer provider (no
// spans until one is installed), the trace passed on to SpiceDB.
func Dial(cfg RemoteConfig, opts ...Option) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("authz: remote SpiceDB endpoint is required")
	}
	if cfg.PresharedKey == "" {
		return nil, errors.New("authz: remote SpiceDB preshared key is required")
	}
	var transport credentials.TransportCredentials
	if cfg.Insecure {
		transport = insecure.NewCredentials()
	} else {
		tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.CACertFile != "" {
			pem, err := os.ReadFile(cfg.CACertFile)
			if err != nil {
				return nil, fmt.Errorf("authz: reading CA bundle: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("authz: no certificate in %s", cfg.CACertFile)
			}
			tlsConfig.RootCAs = pool
		}
		transport = credentials.NewTLS(tlsConfig)
	}
	conn, err := grpc.NewClient(cfg.Endpoint,
		grpc.WithTransportCredentials(transport),
		grpc.WithPerRPCCredentials(PresharedKey(cfg.PresharedKey, !cfg.Insecure)),
		// Each call a child span of the request's trace (the global
		// OpenTelemetry provider; a no-op until one is installed).
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
	)
	if err != nil {
		return nil, fmt.Errorf("authz: dialing %s: %w", cfg.Endpoint, err)
	}
	c := NewClient(conn, opts...)
	c.conn = conn
	return c, nil
}

// Close closes the connection if the client opened it.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// PresharedKey is the per-call credential SpiceDB expects ("Bearer <key>").
// requireTLS refuses to send it over a plaintext connection.
func PresharedKey(key string, requireTLS bool) credentials.PerRPCCredentials {
	return bearer{key: key, requireTLS: requireTLS}
}

type bearer struct {
	key        string
	requireTLS bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.requireTLS }

// callContext bounds a unary call by the client's timeout.
func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// requestMetadata is the SpiceDB request metadata Beep never wants: none today.

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
	"github.com/beepchat/beep/internal/database"
)

// Instance is a running Beep process.
type Instance struct {
	// HTTPAddr is the address the HTTP port listens on.
	HTTPAddr string
	// SpiceDBAddr is where the in-process SpiceDB serves gRPC ("" if not served).
	SpiceDBAddr string
	// SpiceDBKey is its preshared key.
	SpiceDBKey string
	// Authz is the process's client of the authorization graph.
	Authz *authz.Client
}

// serve runs Beep until ctx ends.
func serve(ctx context.Context, cfg Config, log *slog.Logger, ready chan<- *Instance) error {
	inst := &Instance{}
	var closeAuthz func() error
	if cfg.SpiceDBEndpoint != "" {
		c, err := authz.Dial(authz.RemoteConfig{
			Endpoint:     cfg.SpiceDBEndpoint,
			PresharedKey: cfg.SpiceDBPresharedKey,
			Insecure:     cfg.SpiceDBInsecure,
			CACertFile:   cfg.SpiceDBCACert,
		})
		if err != nil {
			return err
		}
		inst.Authz, closeAuthz = c, c.Close
		log.Info("using remote SpiceDB", "endpoint", cfg.SpiceDBEndpoint)
	} else {
		spice := inprocess.Config{
			Engine:       cfg.SpiceDBEngine,
			GRPCAddr:     cfg.SpiceDBGRPCAddr,
			PresharedKey: cfg.SpiceDBPresharedKey,
		}
		if cfg.SpiceDBEngine == inprocess.Postgres {
			uri, err := database.Ensure(ctx, cfg.PostgresURL, cfg.SpiceDBDatabase)
			if err != nil {
				return err
			}
			spice.DatastoreURI = uri
		}
		started := time.Now()
		srv, err := inprocess.Start(ctx, spice)
		if err != nil {
			return err
		}
		inst.Authz, closeAuthz = srv.Client(), srv.Close
		inst.SpiceDBAddr, inst.SpiceDBKey = srv.Addr(), srv.PresharedKey()
		attrs := []any{"engine", cfg.SpiceDBEngine, "took", time.Since(started).Round(time.Millisecond)}
		if srv.Addr() != "" {
			attrs = append(attrs, "grpc", srv.Addr())
			if cfg.SpiceDBPresharedKey == "" {
				attrs = append(attrs, "preshared_key", srv.PresharedKey())
			}
		}
		log.Info("SpiceDB started in-process", attrs...)
	}
	defer func() {
		if err := closeAuthz(); err != nil {
			log.Error("stopping SpiceDB", "err", err)
		}
	}()

	res, err := inst.Authz.EnsureSchema(ctx, authz.SchemaText)
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

	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.HTTPAddr, err)
	}
	inst.HTTPAddr = lis.Addr().String()
	httpServer := &http.Server{Handler: healthMux(inst.Authz), ReadHeaderTimeout: 10 * time.Second}
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

// healthMux serves /healthz (the process is up) and /readyz (SpiceDB
// answers and holds Beep's schema).
func healthMux(c *authz.Client) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		schema, err := c.ReadSchema(ctx)
		if err == nil && schema == "" {
			err = errors.New("SpiceDB holds no schema")
		}
		if err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

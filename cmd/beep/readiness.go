package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/authz"
)

// upstreamReadiness answers the gateway's /readyz: ready when every
// service it forwards to answers its own /readyz (SpiceDB and its database),
// asked as the gateway forwards, in memory or over TCP.
func upstreamReadiness(upstreams []upstream) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for _, u := range upstreams {
			if err := askReady(ctx, u); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
}

// askReady asks a service's /readyz.
func askReady(ctx context.Context, u upstream) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base.JoinPath("readyz").String(), nil)
	if err != nil {
		return err
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", u.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s answers %s: %s", u.name, resp.Status, bytes.TrimSpace(body))
	}
	return nil
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

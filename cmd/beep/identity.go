package main

import (
	"context"
	"log/slog"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/beepchat/beep/internal/database"
	"github.com/beepchat/beep/internal/kratos"
	"github.com/beepchat/beep/services/gateway"
)

// identity is Kratos as this process reaches it.
type identity struct {
	// publicURL is Kratos' public API ("" when no Kratos: sessions are
	// then not accepted, only development tokens if enabled).
	publicURL string
	stop      func()
}

// startIdentity starts Kratos as a supervised child when -kratos-bin is set
// (its public links pointing at publicBase, the gateway), or uses the one at
// -kratos-url.
func startIdentity(ctx context.Context, cfg Config, log *slog.Logger, publicBase string) (*identity, error) {
	switch {
	case cfg.KratosURL != "":
		return &identity{publicURL: cfg.KratosURL, stop: func() {}}, nil
	case cfg.KratosBin == "":
		log.Warn("no identity server (-kratos-bin or -kratos-url): sign-in is off")
		return &identity{stop: func() {}}, nil
	}
	dsn := cfg.KratosDSN
	if dsn == "" {
		uri, err := database.Ensure(ctx, cfg.PostgresURL, cfg.KratosDatabase)
		if err != nil {
			return nil, err
		}
		dsn = uri
	}
	ctx, cancel := context.WithCancel(ctx)
	p, err := kratos.Start(ctx, kratos.Config{Binary: cfg.KratosBin, DSN: dsn, PublicAddr: cfg.KratosPublicAddr, AdminAddr: cfg.KratosAdminAddr,
		PublicBaseURL: publicBase, Log: log.With("component", "kratos")})
	if err != nil {
		cancel()
		return nil, err
	}
	return &identity{publicURL: p.PublicURL, stop: func() { cancel(); p.Wait() }}, nil
}

// sessions verifies Kratos sessions for the gateway (nil without Kratos).
func (id *identity) sessions(cacheFor time.Duration) gateway.SessionVerifier {
	if id.publicURL == "" {
		return nil
	}
	return &kratos.Sessions{PublicURL: id.publicURL, CacheFor: cacheFor}
}

// forward mounts Kratos' public API (the self-service flows and whoami) on
// the gateway, so that apps and browsers reach it on Beep's one port.
func (id *identity) forward(gw *gateway.Gateway) error {
	if id.publicURL == "" {
		return nil
	}
	target, err := url.Parse(id.publicURL)
	if err != nil {
		return err
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	for _, prefix := range []string{"/self-service/", "/sessions/"} {
		gw.Handle(prefix, proxy)
	}
	return nil
}

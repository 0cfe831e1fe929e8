package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/beepchat/beep/internal/database"
	"github.com/beepchat/beep/internal/kratos"
	"github.com/beepchat/beep/internal/oidcprovider"
	"github.com/beepchat/beep/services/gateway"
	"github.com/beepchat/beep/services/ldapbridge"
	"github.com/beepchat/beep/services/user"
)

// identity is Kratos as this process reaches it.
type identity struct {
	// publicURL is Kratos' public API ("" when no Kratos: sessions are
	// then not accepted, only development tokens if enabled).
	publicURL string
	// local, when set, lets anonymous local requests use the playground
	// (-playground local, playground.go).
	local *localAccess
	// adminURL is Kratos' admin API ("" when unknown: accounts are then
	// deleted from Beep without their Kratos identity).
	adminURL string
	stop     func()
}

// startIdentity starts Kratos as a supervised child when -kratos-bin is set
// (its public links pointing at publicBase, the gateway), or uses the one at
// -kratos-url.
func startIdentity(ctx context.Context, cfg Config, log *slog.Logger, publicBase string, providers []kratos.Provider) (*identity, error) {
	switch {
	case cfg.KratosURL != "":
		return &identity{publicURL: cfg.KratosURL, adminURL: cfg.KratosAdminURL, stop: func() {}}, nil
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
	stopCourier := func() {}
	courierURL := ""
	if cfg.SMTPURL == "" {
		// Development: Kratos posts its emails to a courier on loopback,
		// which logs them.
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			return nil, err
		}
		srv := &http.Server{Handler: &kratos.Courier{Log: log.With("component", "courier")}, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(lis) }()
		stopCourier = func() { _ = srv.Close() }
		courierURL = "http://" + lis.Addr().String() + "/"
		log.Info("no -smtp-url: Kratos' emails (codes included) go to the log")
	}
	p, err := kratos.Start(ctx, kratos.Config{Binary: cfg.KratosBin, DSN: dsn, PublicAddr: cfg.KratosPublicAddr, AdminAddr: cfg.KratosAdminAddr,
		PublicBaseURL: publicBase, Providers: providers, CourierURL: courierURL, SMTPURL: cfg.SMTPURL, Log: log.With("component", "kratos")})
	if err != nil {
		cancel()
		stopCourier()
		return nil, err
	}
	return &identity{publicURL: p.PublicURL, adminURL: p.AdminURL, stop: func() { cancel(); p.Wait(); stopCourier() }}, nil
}

// identities is Kratos' admin API for the user service (nil without it).
func identities(adminURL string) user.Identities {
	if adminURL == "" {
		return nil
	}
	return kratos.NewIdentities(adminURL, nil)
}

// sessions verifies Kratos sessions for the gateway (nil without Kratos).
func (id *identity) sessions(cacheFor time.Duration) gateway.SessionVerifier {
	var v gateway.SessionVerifier
	if id.publicURL != "" {
		v = &kratos.Sessions{PublicURL: id.publicURL, CacheFor: cacheFor}
	}
	if id.local != nil {
		v = id.local.verifier(v)
	}
	return v
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
	// The pages of the browser flows.
	gw.Handle(kratos.UIPath, &kratos.UIPages{PublicURL: id.publicURL})
	return nil
}

// polytechPath is where the LDAP bridge's OIDC provider is served.
const polytechPath = "/polytech"

// signInProviders are the OIDC providers Kratos offers: Google when
// configured, and Polytech's directory through the LDAP bridge, whose
// handler (to mount at polytechPath) is returned too.
func signInProviders(cfg Config, publicBase string) ([]kratos.Provider, http.Handler, error) {
	var providers []kratos.Provider
	if cfg.GoogleClientID != "" {
		providers = append(providers, kratos.Provider{ID: "google", IssuerURL: cfg.GoogleIssuer, ClientID: cfg.GoogleClientID, ClientSecret: cfg.GoogleClientSecret})
	}
	if cfg.LDAPURL == "" {
		return providers, nil, nil
	}
	dir, err := ldapbridge.New(ldapbridge.Config{URL: cfg.LDAPURL, StartTLS: cfg.LDAPStartTLS, BindDN: cfg.LDAPBindDN, BindPassword: cfg.LDAPBindPassword,
		BaseDN: cfg.LDAPBaseDN, UserFilter: cfg.LDAPUserFilter})
	if err != nil {
		return nil, nil, err
	}
	issuer := strings.TrimRight(publicBase, "/") + polytechPath
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	client := oidcprovider.Client{ID: "kratos", Secret: hex.EncodeToString(secret),
		RedirectURIs: []string{strings.TrimRight(publicBase, "/") + "/self-service/methods/oidc/callback/polytech"}}
	provider, err := oidcprovider.New(oidcprovider.Config{Issuer: issuer, Title: "Polytech", Clients: []oidcprovider.Client{client}, Authenticator: dir})
	if err != nil {
		return nil, nil, err
	}
	providers = append(providers, kratos.Provider{ID: "polytech", IssuerURL: issuer, ClientID: client.ID, ClientSecret: client.Secret})
	return providers, http.StripPrefix(polytechPath, provider.Handler()), nil
}

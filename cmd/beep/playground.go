package main

// The schema playground (web/playground), served at /playground/ by the
// gateway: in one process and by a gateway alone. Its page calls the admin
// API (beep.admin.v1.AuthzAdminService) on the same port with the user's
// credentials, checked in the graph like every call: platform#moderate to
// use it, platform#manage_schema to apply a schema.
//
// -playground says who may use it:
//   - staff: signed-in platform staff and admins (a Kratos session cookie
//     or a bearer token), as for beepctl;
//   - local: anyone on this machine too. Beep then writes
//     platform:beep#staff@user:playground-local at start, and anonymous
//     requests to the admin API from this machine (localRequest) act as
//     that user: every read of the playground, no schema written (apply
//     still needs a platform admin). Only for `serve` (role all) listening
//     on loopback, without a -public-url elsewhere;
//   - off: the page is not served (the API is unchanged);
//   - auto (the default): local for role all on a loopback address (and no
//     -public-url elsewhere), staff otherwise.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/services/gateway"
	"github.com/beepchat/beep/web/playground"
)

// The values of -playground.
const (
	playgroundAuto  = "auto"
	playgroundLocal = "local"
	playgroundStaff = "staff"
	playgroundOff   = "off"
)

// playgroundPath is where the page is served.
const playgroundPath = "/playground/"

// playgroundUser is who anonymous local requests act as in local mode.
const playgroundUser = "playground-local"

// playgroundMode resolves -playground for a role and an -http-addr.
func playgroundMode(mode, role, httpAddr, publicURL string) (string, error) {
	local := role == roleAll && isLoopback(httpAddr)
	if u, err := url.Parse(publicURL); publicURL != "" && (err != nil || !loopbackHost(u.Hostname())) {
		local = false // served to others through a proxy
	}
	switch mode {
	case playgroundAuto:
		if local {
			return playgroundLocal, nil
		}
		return playgroundStaff, nil
	case playgroundLocal:
		if !local {
			return "", fmt.Errorf("-playground local is only for `beep serve` (role all) on a loopback -http-addr, without a -public-url elsewhere; not role %s on %s (public URL %q)", role, httpAddr, publicURL)
		}
		return mode, nil
	case playgroundStaff, playgroundOff:
		return mode, nil
	}
	return "", fmt.Errorf("-playground %q: want auto, local, staff or off", mode)
}

// isLoopback says whether a listen address (host:port) is on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && loopbackHost(host)
}

// mountPlayground serves the page and its settings on the gateway.
func mountPlayground(gw *gateway.Gateway, mode string) {
	if mode == playgroundOff {
		return
	}
	files := http.StripPrefix(playgroundPath, http.FileServerFS(playground.Files()))
	gw.Handle("GET "+playgroundPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Built without content hashes in names (reproducible): revalidate.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
	gw.Handle("GET /playground", http.RedirectHandler(playgroundPath, http.StatusMovedPermanently))
	gw.Handle("GET "+playgroundPath+"settings.json", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]string{"access": mode, "adminService": strings.Trim(adminPath, "/")})
	}))
}

// localAccess lets anonymous requests from this machine to the admin API
// act as playgroundUser: it marks them with a secret session token of this
// process, which its session verifier recognises.
type localAccess struct {
	token string
	// zed is the revision of the grant: the local requests are checked at
	// least as fresh (unless they say otherwise), so that the playground
	// works from the first second.
	zed authz.ZedToken
}

func newLocalAccess() *localAccess {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return &localAccess{token: "beep-playground-local-" + hex.EncodeToString(b)}
}

// grant writes playgroundUser as platform staff (local mode), or removes it
// (l nil: any other mode of `beep serve`), so that switching modes revokes.
func (l *localAccess) grant(ctx context.Context, c *authz.Client, log *slog.Logger) error {
	rel := authz.Relationship{Relation: authz.Platform.Staff, ResourceID: authz.PlatformID, Subject: authz.UserSubject(playgroundUser)}
	update := authz.Delete(rel)
	if l != nil {
		update = authz.Touch(rel)
	}
	at, err := c.Write(ctx, []authz.Update{update})
	if err != nil {
		return fmt.Errorf("the playground's local user (-playground): %w", err)
	}
	if l != nil {
		l.zed = at
		log.Info("playground open to anyone on this machine, as platform staff (-playground local)", "path", playgroundPath, "user", playgroundUser)
	}
	return nil
}

// wrap marks anonymous loopback requests to the admin API.
func (l *localAccess) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, adminPath) && anonymous(r) && localRequest(r) {
			r.Header.Set("X-Session-Token", l.token)
			if r.Header.Get(connectauthz.TokenHeader) == "" {
				r.Header.Set(connectauthz.TokenHeader, string(l.zed))
			}
		} else if r.Header.Get("X-Session-Token") == l.token {
			r.Header.Del("X-Session-Token") // never from outside (it cannot be guessed, but still)
		}
		next.ServeHTTP(w, r)
	})
}

func anonymous(r *http.Request) bool {
	if r.Header.Get("Authorization") != "" || r.Header.Get("X-Session-Token") != "" {
		return false
	}
	_, err := r.Cookie("ory_kratos_session")
	return err != nil
}

// localRequest says whether r comes from this machine, for this machine:
// from a loopback address, not forwarded by a proxy (which would make the
// whole world loopback), addressed to a loopback host and, from a browser,
// from a page of one (no DNS rebinding, no other site's page).
func localRequest(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || !loopbackHost(host) {
		return false
	}
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip", "Forwarded"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	if !loopbackHost(hostOnly(r.Host)) {
		return false
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || !loopbackHost(u.Hostname()) {
			return false
		}
	}
	return true
}

// hostOnly is the host of a Host header, without its port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// verifier recognises the local token, and asks next (Kratos, or nobody)
// about any other session.
func (l *localAccess) verifier(next gateway.SessionVerifier) gateway.SessionVerifier {
	return localVerifier{l, next}
}

type localVerifier struct {
	l    *localAccess
	next gateway.SessionVerifier
}

func (v localVerifier) Verify(ctx context.Context, token, cookie string) (string, error) {
	if token == v.l.token {
		return playgroundUser, nil
	}
	if v.next == nil {
		return "", fmt.Errorf("%w: sessions are not accepted here (no Kratos)", authz.ErrUnauthenticated)
	}
	return v.next.Verify(ctx, token, cookie)
}

// Package gateway is Beep's public edge: one port serving Connect, gRPC,
// gRPC-Web and JSON over HTTP/1.1 and h2c. It gives every request an id,
// authenticates it, limits its size and rate, answers CORS and health
// checks, and lists its methods by reflection; the services' handlers then
// enforce each RPC's declared permission (authz/connectauthz).
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
)

// Config configures the gateway.
type Config struct {
	// DevTokenKey, when set, accepts development tokens signed with it.
	// Leave empty in production: nothing else authenticates yet.
	DevTokenKey []byte
	// AllowedOrigins are the browser origins allowed by CORS ("*" for any).
	AllowedOrigins []string
	// MaxRequestBytes bounds a request body (default 4 MiB).
	MaxRequestBytes int64
	// RatePerSecond and Burst bound each principal (or, unauthenticated,
	// each client IP); 0 uses 50/s with a burst of 100.
	RatePerSecond float64
	Burst         int
	// Log receives one line per request.
	Log *slog.Logger
	// Metrics, when set, receives the request metrics.
	Metrics prometheus.Registerer
	// AccessTokens, when set, verifies bearer JWTs from an external OIDC
	// issuer (Keycloak-compatible).
	AccessTokens TokenVerifier
	// Sessions, when set, verifies Kratos sessions: a session token (the
	// X-Session-Token header, or a bearer token that is not a development
	// token) or the browser's session cookie.
	Sessions SessionVerifier
	// Signer signs the authenticated principal into the request
	// (connectauthz.PrincipalHeader) for the services, which verify it with
	// the same internal key. Without it requests reach them anonymous.
	Signer *connectauthz.Signer
}

// SessionVerifier says whose a session is (internal/kratos.Sessions).
type SessionVerifier interface {
	// Verify returns the user id of a session token or of a Cookie header;
	// its error wraps authz.ErrUnauthenticated when they are no session.
	Verify(ctx context.Context, token, cookie string) (string, error)
}

// TokenVerifier says whose an access token is (internal/accesstoken).
type TokenVerifier interface {
	// Verify returns the user id of a valid token; its error wraps
	// authz.ErrUnauthenticated when the token is not valid.
	Verify(ctx context.Context, token string) (string, error)
}

// sessionCookie is the name of Kratos' browser session cookie.
const sessionCookie = "ory_kratos_session"

// Service is one mounted Connect service.
type Service struct {
	// Name is the fully qualified service name, such as
	// "beep.community.v1.CommunityService".
	Name    string
	Path    string
	Handler http.Handler
}

// Gateway is the edge handler.
type Gateway struct {
	cfg      Config
	mux      *http.ServeMux
	limiters sync.Map // key -> *rate.Limiter
	services []string // mounted path prefixes, the metrics' route label
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// New mounts the services, health (grpc.health.v1) and reflection.
func New(cfg Config, services ...Service) *Gateway {
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 4 << 20
	}
	if cfg.RatePerSecond == 0 {
		cfg.RatePerSecond, cfg.Burst = 50, 100
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	g := &Gateway{cfg: cfg, mux: http.NewServeMux()}
	g.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "beep_gateway_requests_total", Help: "Requests through the gateway, by route and HTTP status.",
	}, []string{"route", "status"})
	g.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "beep_gateway_request_duration_seconds", Help: "Request latency at the gateway, by route.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route"})
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(g.requests, g.latency)
	}
	names := make([]string, 0, len(services))
	for _, s := range services {
		g.mux.Handle(s.Path, s.Handler)
		names = append(names, s.Name)
		g.services = append(g.services, s.Path)
	}
	g.mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(names...)))
	reflector := grpcreflect.NewStaticReflector(names...)
	g.mux.Handle(grpcreflect.NewHandlerV1(reflector))
	g.mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	return g
}

// Handle mounts an extra plain HTTP handler (health pages, metrics).
func (g *Gateway) Handle(pattern string, h http.Handler) { g.mux.Handle(pattern, h) }

// RequestIDHeader carries the request id, given by the client or made here.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID is the id of the request of ctx.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	began := time.Now()
	id := r.Header.Get(RequestIDHeader)
	if id == "" || len(id) > 128 {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	w.Header().Set(RequestIDHeader, id)
	r.Header.Set(RequestIDHeader, id)
	// Only the gateway says who the caller is.
	r.Header.Del(connectauthz.PrincipalHeader)
	ctx := context.WithValue(r.Context(), requestIDKey{}, id)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}

	if g.cors(rec, r) {
		return
	}
	if !g.socketOriginAllowed(r) {
		writeError(rec, r, connect.NewError(connect.CodePermissionDenied, errors.New("a WebSocket may not be opened here from this origin")))
		g.logRequest(ctx, r, rec.status, "", began)
		return
	}
	principal, err := g.authenticate(r)
	if err != nil {
		cerr := new(connect.Error)
		if !errors.As(err, &cerr) {
			cerr = connect.NewError(connect.CodeUnauthenticated, err)
		}
		writeError(rec, r, cerr)
		g.logRequest(ctx, r, rec.status, "", began)
		return
	}
	key := "ip:" + clientIP(r)
	if principal.UserID != "" {
		ctx = authz.WithPrincipal(ctx, principal)
		key = "user:" + principal.UserID
		// Signed for the services only: routes to anything else (Kratos,
		// the LDAP bridge) need not see it.
		if g.cfg.Signer != nil && g.isService(r.URL.Path) {
			r.Header.Set(connectauthz.PrincipalHeader, g.cfg.Signer.Sign(principal))
		}
	}
	if wait, ok := g.allow(key); !ok {
		rec.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeError(rec, r, connect.NewError(connect.CodeResourceExhausted, errors.New("too many requests; retry later")))
		g.logRequest(ctx, r, rec.status, principal.UserID, began)
		return
	}
	r.Body = http.MaxBytesReader(rec, r.Body, g.cfg.MaxRequestBytes)
	g.mux.ServeHTTP(rec, r.WithContext(ctx))
	g.logRequest(ctx, r, rec.status, principal.UserID, began)
}

func (g *Gateway) logRequest(ctx context.Context, r *http.Request, status int, user string, began time.Time) {
	route := g.route(r.URL.Path)
	g.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	g.latency.WithLabelValues(route).Observe(time.Since(began).Seconds())
	g.cfg.Log.InfoContext(ctx, "request", "id", RequestID(ctx), "method", r.Method, "path", r.URL.Path,
		"status", status, "principal", user, "took", time.Since(began).Round(time.Microsecond))
}

// route is the metrics label of a path: the procedure of a mounted service,
// or "other" (so that unknown paths cannot grow the label set).
func (g *Gateway) route(path string) string {
	for _, prefix := range g.services {
		if strings.HasPrefix(path, prefix) && len(path) < len(prefix)+64 {
			return path
		}
	}
	return "other"
}

// isService says whether path is routed to a mounted service.
func (g *Gateway) isService(path string) bool {
	for _, prefix := range g.services {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// authenticate finds the request's principal: none without credentials;
// an error for credentials that do not verify.
func (g *Gateway) authenticate(r *http.Request) (authz.Principal, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return g.session(r, r.Header.Get("X-Session-Token"))
	}
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		return authz.Principal{}, errors.New("the Authorization header must be a Bearer token")
	}
	if strings.HasPrefix(token, devTokenPrefix) {
		if len(g.cfg.DevTokenKey) == 0 {
			return authz.Principal{}, errors.New("development tokens are not accepted here")
		}
		user, err := verifyDevToken(g.cfg.DevTokenKey, token, time.Now())
		if err != nil {
			return authz.Principal{}, errors.New("invalid development token: " + err.Error())
		}
		return authz.Principal{UserID: user}, nil
	}
	if g.cfg.AccessTokens != nil && strings.Count(token, ".") == 2 {
		user, err := g.cfg.AccessTokens.Verify(r.Context(), token)
		if err != nil {
			return authz.Principal{}, g.credentialError(r.Context(), "the access token is not valid", err)
		}
		return authz.Principal{UserID: user}, nil
	}
	if g.cfg.Sessions != nil {
		return g.session(r, token)
	}
	return authz.Principal{}, errors.New("unrecognised token")
}

// session authenticates a Kratos session token, or the session cookie; no
// credentials at all is anonymous.
func (g *Gateway) session(r *http.Request, token string) (authz.Principal, error) {
	var cookie string
	if c, err := r.Cookie(sessionCookie); err == nil {
		cookie = c.String()
	}
	if token == "" && cookie == "" {
		return authz.Principal{}, nil
	}
	if g.cfg.Sessions == nil {
		return authz.Principal{}, errors.New("sessions are not accepted here")
	}
	user, err := g.cfg.Sessions.Verify(r.Context(), token, cookie)
	if err != nil {
		return authz.Principal{}, g.credentialError(r.Context(), "not signed in: the session is not valid or has ended", err)
	}
	return authz.Principal{UserID: user}, nil
}

// credentialError is Unauthenticated for credentials that establish no
// principal (authz.ErrUnauthenticated), and Unavailable when they could not
// be checked: an outage of the identity server is not a wrong password.
func (g *Gateway) credentialError(ctx context.Context, refusal string, err error) error {
	if errors.Is(err, authz.ErrUnauthenticated) {
		return connect.NewError(connect.CodeUnauthenticated, errors.New(refusal))
	}
	g.cfg.Log.ErrorContext(ctx, "checking credentials", "err", err)
	return connect.NewError(connect.CodeUnavailable, errors.New("sign-in cannot be checked right now; try again"))
}

func (g *Gateway) allow(key string) (time.Duration, bool) {
	l, _ := g.limiters.LoadOrStore(key, rate.NewLimiter(rate.Limit(g.cfg.RatePerSecond), g.cfg.Burst))
	res := l.(*rate.Limiter).Reserve()
	if d := res.Delay(); d > 0 {
		res.Cancel()
		return d, false
	}
	return 0, true
}

// cors answers preflights and sets CORS headers; true when it answered.
func (g *Gateway) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !g.originAllowed(origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, X-Request-Id, Retry-After")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST")
		h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Session-Token, Connect-Protocol-Version, Connect-Timeout-Ms, X-Grpc-Web, X-User-Agent, X-Request-Id, Beep-Zed-Token")
		h.Set("Access-Control-Max-Age", "7200")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// socketOriginAllowed says whether r, if it opens a WebSocket, comes from
// a page that may open it: a browser sends its session cookie with a
// WebSocket opened from any site, and CORS does not apply to them, so the
// gateway checks the Origin itself. Allowed: no Origin (not a browser),
// the gateway's own host, or an allowed origin.
func (g *Gateway) socketOriginAllowed(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" || g.originAllowed(origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func (g *Gateway) originAllowed(origin string) bool {
	for _, o := range g.cfg.AllowedOrigins {
		if o == "*" || o == origin {
			return true
		}
	}
	return false
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeError answers with a Connect error in the request's protocol.
func writeError(w http.ResponseWriter, r *http.Request, err *connect.Error) {
	_ = connect.NewErrorWriter().Write(w, r, err)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
)

var key = []byte("gateway-test-key-0123456789")

// echo answers with the principal the gateway established.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	p, _ := authz.PrincipalFrom(r.Context())
	io.WriteString(w, "user="+p.UserID)
})

func newGateway(cfg Config) *Gateway {
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return New(cfg, Service{Name: "beep.test.v1.Echo", Path: "/beep.test.v1.Echo/", Handler: echo})
}

func do(g http.Handler, method, auth, body string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/beep.test.v1.Echo/Say", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	return rec
}

func TestAuthentication(t *testing.T) {
	g := newGateway(Config{DevTokenKey: key})
	valid, err := IssueDevToken(key, "ann", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := IssueDevToken(key, "ann", -time.Second)
	otherKey, _ := IssueDevToken([]byte("some-other-key-0123456789"), "ann", time.Hour)
	tests := []struct {
		name, auth string
		status     int
		body       string
	}{
		{"valid token", "Bearer " + valid, 200, "user=ann"},
		{"no credentials: anonymous", "", 200, "user="},
		{"expired", "Bearer " + expired, 401, "expired"},
		{"signed with another key", "Bearer " + otherKey, 401, "bad signature"},
		{"tampered claims", "Bearer " + strings.Replace(valid, valid[8:12], "AAAA", 1), 401, ""},
		{"not bearer", "Basic YW5uOnB3", 401, "Bearer"},
		{"unknown token kind", "Bearer eyJhbGciOiJub25lIn0.e30.", 401, "unrecognised"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(g, http.MethodPost, tt.auth, "{}")
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body.String(), tt.status, tt.body)
			}
		})
	}
	// Without a key, development tokens are refused outright.
	off := newGateway(Config{})
	if rec := do(off, http.MethodPost, "Bearer "+valid, "{}"); rec.Code != 401 {
		t.Errorf("a gateway without a key accepted a development token: %d", rec.Code)
	}
	if _, err := IssueDevToken([]byte("short"), "ann", time.Hour); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestRateLimit(t *testing.T) {
	g := newGateway(Config{DevTokenKey: key, RatePerSecond: 1, Burst: 3})
	ann, _ := IssueDevToken(key, "ann", time.Hour)
	bob, _ := IssueDevToken(key, "bob", time.Hour)
	for i := range 3 {
		if rec := do(g, http.MethodPost, "Bearer "+ann, "{}"); rec.Code != 200 {
			t.Fatalf("request %d refused: %d", i, rec.Code)
		}
	}
	rec := do(g, http.MethodPost, "Bearer "+ann, "{}")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "resource_exhausted") {
		t.Fatalf("over the limit: %d %q retry-after %q", rec.Code, rec.Body.String(), rec.Header().Get("Retry-After"))
	}
	// Limits are per principal: bob is unaffected.
	if rec := do(g, http.MethodPost, "Bearer "+bob, "{}"); rec.Code != 200 {
		t.Errorf("bob limited by ann's requests: %d", rec.Code)
	}
}

func TestRequestLimitsAndIDs(t *testing.T) {
	g := newGateway(Config{MaxRequestBytes: 16})
	if rec := do(g, http.MethodPost, "", strings.Repeat("x", 17)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", rec.Code)
	}
	rec := do(g, http.MethodPost, "", "{}")
	if len(rec.Header().Get(RequestIDHeader)) < 16 {
		t.Errorf("no request id: %q", rec.Header().Get(RequestIDHeader))
	}
	rec = do(g, http.MethodPost, "", "{}", RequestIDHeader, "client-chosen-id")
	if rec.Header().Get(RequestIDHeader) != "client-chosen-id" {
		t.Errorf("client request id not kept: %q", rec.Header().Get(RequestIDHeader))
	}
}

func TestCORS(t *testing.T) {
	g := newGateway(Config{AllowedOrigins: []string{"https://app.beep.example"}})
	pre := do(g, http.MethodOptions, "", "", "Origin", "https://app.beep.example", "Access-Control-Request-Method", "POST")
	if pre.Code != http.StatusNoContent || pre.Header().Get("Access-Control-Allow-Origin") != "https://app.beep.example" ||
		!strings.Contains(pre.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", pre.Code, pre.Header())
	}
	other := do(g, http.MethodOptions, "", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST")
	if other.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("an unlisted origin was allowed: %v", other.Header())
	}
}

// TestWebSocketOrigins: an upgrade to WebSocket from a browser page (an
// Origin) is let through only from the gateway's own host or an allowed
// origin; without an Origin (not a browser) it is; requests that upgrade
// nothing are not concerned.
func TestWebSocketOrigins(t *testing.T) {
	g := newGateway(Config{AllowedOrigins: []string{"https://app.beep.example"}})
	upgrade := func(origin string, headers ...string) int {
		h := append([]string{"Upgrade", "websocket", "Connection", "Upgrade"}, headers...)
		if origin != "" {
			h = append(h, "Origin", origin)
		}
		return do(g, http.MethodGet, "", "", h...).Code
	}
	for _, c := range []struct {
		name, origin string
		want         int
	}{
		{"no origin", "", http.StatusOK},
		{"the gateway's own host", "http://example.com", http.StatusOK}, // httptest's Host
		{"an allowed origin", "https://app.beep.example", http.StatusOK},
		{"another site", "https://evil.example", http.StatusForbidden},
		{"a look-alike of the host", "http://example.com.evil.example", http.StatusForbidden},
		{"not a URL", "::", http.StatusForbidden},
	} {
		if got := upgrade(c.origin); got != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, got, c.want)
		}
	}
	if got := do(g, http.MethodGet, "", "", "Origin", "https://evil.example").Code; got != http.StatusOK {
		t.Errorf("a request that upgrades nothing, from another site: HTTP %d (CORS decides what its page may read)", got)
	}
}

// sessionsStub answers Verify like an identity server: "good" is ann's,
// anything else is no session, and everything fails while it is down.
type sessionsStub struct{ down bool }

func (s sessionsStub) Verify(_ context.Context, token, cookie string) (string, error) {
	switch {
	case s.down:
		return "", errors.New("connection refused")
	case token == "good" || cookie == sessionCookie+"=good":
		return "ann", nil
	}
	return "", fmt.Errorf("no session: %w", authz.ErrUnauthenticated)
}

// TestSessions: session tokens and cookies authenticate; a bad one is
// Unauthenticated, but an identity server that is down is Unavailable (not
// a wrong credential).
func TestSessions(t *testing.T) {
	up := newGateway(Config{Sessions: sessionsStub{}})
	down := newGateway(Config{Sessions: sessionsStub{down: true}})
	tests := []struct {
		name    string
		g       *Gateway
		auth    string
		headers []string
		status  int
		body    string
	}{
		{"bearer session token", up, "Bearer good", nil, 200, "user=ann"},
		{"X-Session-Token", up, "", []string{"X-Session-Token", "good"}, 200, "user=ann"},
		{"session cookie", up, "", []string{"Cookie", sessionCookie + "=good"}, 200, "user=ann"},
		{"unknown session", up, "Bearer ory_st_nope", nil, 401, "not signed in"},
		{"identity server down", down, "Bearer good", nil, 503, "cannot be checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(tt.g, http.MethodPost, tt.auth, "{}", tt.headers...)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("%d %q, want %d containing %q", rec.Code, rec.Body.String(), tt.status, tt.body)
			}
		})
	}
}

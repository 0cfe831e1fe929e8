package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
)

// TestPrincipalHeader: the gateway alone says who calls a service. It signs
// the principal it authenticated into connectauthz.PrincipalHeader for the
// routes to services, removes any copy a client sends, and sends none to
// routes that are not services.
func TestPrincipalHeader(t *testing.T) {
	signer, err := connectauthz.NewSigner([]byte(strings.Repeat("s", connectauthz.MinKeyBytes)))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get(connectauthz.PrincipalHeader)
	})
	g := New(Config{DevTokenKey: key, Signer: signer, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Service{Name: "beep.test.v1.Echo", Path: "/beep.test.v1.Echo/", Handler: record})
	g.Handle("/self-service/", record)
	ann, err := IssueDevToken(key, "ann", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	smuggled := signer.Sign(authz.Principal{UserID: "eve"})

	tests := []struct {
		name, path, auth string
		want             string // the user the service learns; "" for no header
	}{
		{"authenticated, to a service", "/beep.test.v1.Echo/Say", "Bearer " + ann, "ann"},
		{"authenticated, a client's header replaced", "/beep.test.v1.Echo/Say", "Bearer " + ann, "ann"},
		{"anonymous, a client's header removed", "/beep.test.v1.Echo/Say", "", ""},
		{"authenticated, to a route that is no service", "/self-service/login/api", "Bearer " + ann, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader("{}"))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if strings.Contains(tt.name, "client's header") {
				req.Header.Set(connectauthz.PrincipalHeader, smuggled)
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			header := <-seen
			if tt.want == "" {
				if header != "" {
					t.Fatalf("the handler got a principal header: %q", header)
				}
				return
			}
			p, err := signer.Verify(header)
			if err != nil || p.UserID != tt.want {
				t.Fatalf("the service learns %q (%v), want %q", p.UserID, err, tt.want)
			}
		})
	}
}

// TestLocalServiceSeesOnlyTheWire: a service in the gateway's process gets
// the signed header, as over the network, and not the gateway's own idea
// of the caller in its context.
func TestLocalServiceSeesOnlyTheWire(t *testing.T) {
	signer, err := connectauthz.NewSigner([]byte(strings.Repeat("s", connectauthz.MinKeyBytes)))
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		header  string
		context authz.Principal
		inCtx   bool
	}
	got := make(chan seen, 1)
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := authz.CallerFrom(r.Context())
		got <- seen{r.Header.Get(connectauthz.PrincipalHeader), p, ok}
	})
	g := New(Config{DevTokenKey: key, Signer: signer, Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Local("beep.test.v1.Echo", "/beep.test.v1.Echo/", record))
	ann, err := IssueDevToken(key, "ann", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/beep.test.v1.Echo/Say", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+ann)
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	s := <-got
	if s.inCtx {
		t.Errorf("the service's context carries the gateway's principal %+v", s.context)
	}
	if p, err := signer.Verify(s.header); err != nil || p.UserID != "ann" {
		t.Errorf("the signed header says %q (%v), want ann", p.UserID, err)
	}
}

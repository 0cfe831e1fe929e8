package kratos_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beepchat/beep/internal/kratos"
)

// whoami stands in for Kratos' /sessions/whoami: token "good" is identity
// "id-1" until revoked; "inactive" is a session Kratos no longer honours.
func whoami(t *testing.T, revoked *atomic.Bool, calls *atomic.Int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		token := r.Header.Get("X-Session-Token")
		if c, err := r.Cookie("ory_kratos_session"); err == nil {
			token = c.Value
		}
		switch {
		case token == "good" && !revoked.Load():
			fmt.Fprintf(w, `{"active":true,"expires_at":%q,"identity":{"id":"id-1"}}`, time.Now().Add(time.Hour).Format(time.RFC3339))
		case token == "inactive":
			fmt.Fprint(w, `{"active":false,"identity":{"id":"id-2"}}`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSessions(t *testing.T) {
	var revoked atomic.Bool
	var calls atomic.Int32
	srv := whoami(t, &revoked, &calls)
	ctx := context.Background()
	s := &kratos.Sessions{PublicURL: srv.URL, CacheFor: 50 * time.Millisecond}

	if id, err := s.Verify(ctx, "good", ""); err != nil || id != "id-1" {
		t.Fatalf("token: %q %v", id, err)
	}
	if id, err := s.Verify(ctx, "", "ory_kratos_session=good"); err != nil || id != "id-1" {
		t.Fatalf("cookie: %q %v", id, err)
	}
	for _, bad := range []string{"made-up", "inactive"} {
		if _, err := s.Verify(ctx, bad, ""); !errors.Is(err, kratos.ErrNoSession) {
			t.Errorf("%s: %v, want ErrNoSession", bad, err)
		}
	}
	// Cached for CacheFor, then asked again: a revocation shows by then.
	before := calls.Load()
	revoked.Store(true)
	if _, err := s.Verify(ctx, "good", ""); err != nil || calls.Load() != before {
		t.Fatalf("within the cache time: %v, %d calls (want none)", err, calls.Load()-before)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := s.Verify(ctx, "good", ""); !errors.Is(err, kratos.ErrNoSession) {
		t.Fatalf("after the cache time, a revoked session: %v", err)
	}
	// Kratos down: an error, not a session.
	srv.Close()
	if _, err := (&kratos.Sessions{PublicURL: srv.URL}).Verify(ctx, "good", ""); err == nil || errors.Is(err, kratos.ErrNoSession) {
		t.Fatalf("Kratos unreachable: %v", err)
	}
}

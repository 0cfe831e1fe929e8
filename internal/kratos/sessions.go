package kratos

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/beepchat/beep/authz"
)

// ErrNoSession means the token or cookie is not a live Kratos session.
var ErrNoSession = fmt.Errorf("kratos: no active session: %w", authz.ErrUnauthenticated)

// maxCached bounds the session cache.
const maxCached = 10_000

// Sessions asks Kratos' public API who a session belongs to (whoami), and
// remembers the answer for a short while.
type Sessions struct {
	// PublicURL is Kratos' public API.
	PublicURL string
	// CacheFor is how long an answer is reused: a revoked session is
	// refused at the latest this long after (0: never cached).
	CacheFor time.Duration
	// Client makes the calls (http.DefaultClient when nil).
	Client *http.Client

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	identity string
	until    time.Time
}

// Verify returns the identity id of a session token (X-Session-Token, or a
// bearer token that is not Beep's) or of the Cookie header holding the
// browser's session cookie; ErrNoSession when it is none.
func (s *Sessions) Verify(ctx context.Context, token, cookie string) (string, error) {
	key := sha256.Sum256([]byte(token + "\x00" + cookie))
	now := time.Now()
	s.mu.Lock()
	if c, ok := s.cache[key]; ok && now.Before(c.until) {
		s.mu.Unlock()
		return c.identity, nil
	}
	s.mu.Unlock()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.PublicURL, "/")+"/sessions/whoami", nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("X-Session-Token", token)
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("kratos: whoami: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", ErrNoSession
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("kratos: whoami answered %s", resp.Status)
	}
	var session struct {
		Active    bool      `json:"active"`
		ExpiresAt time.Time `json:"expires_at"`
		Identity  struct {
			ID string `json:"id"`
		} `json:"identity"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&session); err != nil {
		return "", fmt.Errorf("kratos: whoami: %w", err)
	}
	if !session.Active || session.Identity.ID == "" || (!session.ExpiresAt.IsZero() && !now.Before(session.ExpiresAt)) {
		return "", ErrNoSession
	}
	if s.CacheFor > 0 {
		until := now.Add(s.CacheFor)
		if !session.ExpiresAt.IsZero() && session.ExpiresAt.Before(until) {
			until = session.ExpiresAt
		}
		s.mu.Lock()
		if s.cache == nil || len(s.cache) >= maxCached {
			s.cache = map[[32]byte]cached{} // full: start again rather than grow
		}
		s.cache[key] = cached{identity: session.Identity.ID, until: until}
		s.mu.Unlock()
	}
	return session.Identity.ID, nil
}

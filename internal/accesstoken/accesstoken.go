// Package accesstoken verifies OIDC access tokens (JWTs) from an external
// issuer such as Keycloak, so that people signed in there can call Beep
// with them: the signature against the issuer's published keys (JWKS), the
// issuer, the audience, the expiry. Unsigned ("alg": "none") tokens never
// pass.
package accesstoken

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/beepchat/beep/authz"
)

// Config names the trusted issuer.
type Config struct {
	// Issuer is the issuer URL, as in the tokens' "iss" (its
	// /.well-known/openid-configuration is read at start).
	Issuer string
	// Audience is what the tokens' "aud" must contain (the client id
	// Keycloak puts there for Beep).
	Audience string
	// SubjectPrefix is put before the token's "sub" to make the Beep user
	// id, so that ids of different origins cannot meet.
	SubjectPrefix string
	// ClockSkew is the tolerance on expiry and issue times.
	ClockSkew time.Duration
}

// Verifier checks access tokens of one issuer.
type Verifier struct {
	cfg      Config
	verifier *oidc.IDTokenVerifier
}

// New reads the issuer's discovery document and returns a verifier.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("accesstoken: an issuer and an audience are required")
	}
	if cfg.SubjectPrefix != "" && !authz.ValidUserID(cfg.SubjectPrefix) {
		return nil, fmt.Errorf("accesstoken: the subject prefix %q may hold only letters, digits and /_|-=+", cfg.SubjectPrefix)
	}
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("accesstoken: discovering %s: %w", cfg.Issuer, err)
	}
	v := provider.Verifier(&oidc.Config{
		ClientID: cfg.Audience,
		// The library's own expiry check has no tolerance: check here.
		SkipExpiryCheck: true,
	})
	return &Verifier{cfg: cfg, verifier: v}, nil
}

// LooksLikeJWT tells a JWT (three dot-separated parts) from opaque tokens.
func LooksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }

// Verify returns the Beep user id of a valid token.
func (v *Verifier) Verify(ctx context.Context, token string) (string, error) {
	t, err := v.verifier.Verify(ctx, token)
	if err != nil {
		return "", fmt.Errorf("accesstoken: %w: %w", authz.ErrUnauthenticated, err)
	}
	now := time.Now()
	if !t.Expiry.IsZero() && now.After(t.Expiry.Add(v.cfg.ClockSkew)) {
		return "", fmt.Errorf("accesstoken: the token has expired: %w", authz.ErrUnauthenticated)
	}
	if t.Expiry.IsZero() {
		return "", fmt.Errorf("accesstoken: the token has no expiry: %w", authz.ErrUnauthenticated)
	}
	if !t.IssuedAt.IsZero() && t.IssuedAt.After(now.Add(v.cfg.ClockSkew)) {
		return "", fmt.Errorf("accesstoken: the token is issued in the future: %w", authz.ErrUnauthenticated)
	}
	if !authz.ValidUserID(t.Subject) {
		return "", fmt.Errorf("accesstoken: the token's subject is empty or not usable as a user id: %w", authz.ErrUnauthenticated)
	}
	return v.cfg.SubjectPrefix + t.Subject, nil
}

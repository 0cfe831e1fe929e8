package authz

import (
	"context"
	"errors"
)

// Principal is who a request acts for, as established by authentication
// (the gateway): services receive a verified principal, never raw tokens.
type Principal struct {
	// UserID is the Beep user id.
	UserID string
}

// Subject is the principal as a graph subject.
func (p Principal) Subject() Subject { return UserSubject(p.UserID) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal of ctx; ok is false when the request
// is not authenticated.
func PrincipalFrom(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok && p.UserID != ""
}

// ErrUnauthenticated is what a credential check returns (wrapped) for
// credentials that establish no principal: unknown, expired, revoked or
// forged. Any other error is a failure of the check itself (its server is
// down), which callers must not report as a wrong credential.
var ErrUnauthenticated = errors.New("authz: not authenticated")

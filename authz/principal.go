package authz

import (
	"context"
	"errors"
)

// Principal is who a request acts for, as established by authentication
// (the gateway): services receive a verified principal, never raw tokens.
type Principal struct {
	// UserID is the Beep user id; empty for a service acting on its own.
	UserID string
	// Service is the Beep service acting on its own behalf, such as "user"
	// running an account's erasure: only internal RPCs, which name the
	// service in their requirement, accept it. Empty for people; the
	// gateway never sets it.
	Service string
}

// Subject is the principal as a graph subject.
func (p Principal) Subject() Subject { return UserSubject(p.UserID) }

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// ServicePrincipal is the principal of a Beep service acting on its own behalf.
func ServicePrincipal(service string) Principal { return Principal{Service: service} }

// PrincipalFrom returns the person the request acts for; ok is false when
// the request is not authenticated as a person (anonymous, or a service
// acting on its own: see [CallerFrom]).
func PrincipalFrom(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok && p.UserID != ""
}

// CallerFrom returns the principal of ctx, person or service; ok is false
// when the request carries none.
func CallerFrom(ctx context.Context) (p Principal, ok bool) {
	p, ok = ctx.Value(principalKey{}).(Principal)
	return p, ok && (p.UserID != "" || p.Service != "")
}

// ErrUnauthenticated is what a credential check returns (wrapped) for
// credentials that establish no principal: unknown, expired, revoked or
// forged. Any other error is a failure of the check itself (its server is
// down), which callers must not report as a wrong credential.
var ErrUnauthenticated = errors.New("authz: not authenticated")

package authz

import "context"

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

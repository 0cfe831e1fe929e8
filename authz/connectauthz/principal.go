package connectauthz

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
)

// PrincipalHeader carries, from the gateway (or a calling service) to the
// service handling a request, the principal the gateway authenticated,
// signed with the deployment's internal key. The gateway removes any copy a
// client sends.
const PrincipalHeader = "Beep-Principal"

// principalTTL bounds how long a signed principal is honoured: long enough
// for one request's hops, too short to be worth replaying.
const principalTTL = time.Minute

// MinKeyBytes is the shortest internal key accepted.
const MinKeyBytes = 32

// Signer signs principals for PrincipalHeader and verifies them.
type Signer struct {
	key []byte
	now func() time.Time
}

// NewSigner returns a signer with the deployment's internal key.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("connectauthz: the internal key must be at least %d bytes", MinKeyBytes)
	}
	return &Signer{key: key, now: time.Now}, nil
}

// Sign returns the header value for p: the user id, the service, an
// expiry and their HMAC-SHA256.
func (s *Signer) Sign(p authz.Principal) string {
	payload := base64.RawURLEncoding.EncodeToString([]byte(p.UserID)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(p.Service)) + "." +
		strconv.FormatInt(s.now().Add(principalTTL).Unix(), 10)
	return payload + "." + s.mac(payload)
}

// Verify returns the principal of a header value, or an error if it is
// malformed, not signed with this key, or expired.
func (s *Signer) Verify(v string) (authz.Principal, error) {
	invalid := errors.New("the signed principal is not valid")
	payload, mac, ok := cutLast(v, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(s.mac(payload))) {
		return authz.Principal{}, invalid
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 {
		return authz.Principal{}, invalid
	}
	exp, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return authz.Principal{}, invalid
	}
	if s.now().Unix() > exp {
		return authz.Principal{}, errors.New("the signed principal has expired")
	}
	user, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	service, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || (len(user) == 0) == (len(service) == 0) {
		return authz.Principal{}, invalid // exactly one of a person and a service
	}
	return authz.Principal{UserID: string(user), Service: string(service)}, nil
}

func (s *Signer) mac(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return hex.EncodeToString(m.Sum(nil))
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// WithSigner makes the interceptor take the principal from PrincipalHeader,
// verified with s: how a service learns who calls it. A request whose
// header does not verify (unsigned, signed with another key, altered,
// expired) is refused (Unauthenticated), whatever its RPC; a request
// without the header is anonymous, so only public RPCs serve it.
func WithSigner(s *Signer) Option {
	return func(i *Interceptor) { i.signer = s }
}

// principalContext returns ctx with the principal of the request's
// PrincipalHeader, when the interceptor has a signer and the header is set.
func (i *Interceptor) principalContext(ctx context.Context, header string) (context.Context, error) {
	if i.signer == nil || header == "" {
		return ctx, nil
	}
	p, err := i.signer.Verify(header)
	if err != nil {
		return ctx, connect.NewError(connect.CodeUnauthenticated, err)
	}
	return authz.WithPrincipal(ctx, p), nil
}

// Forward returns a client interceptor that signs the context's principal
// into PrincipalHeader: services calling one another on a user's behalf, or
// on their own (authz.ServicePrincipal), use it with their generated
// Connect clients.
func Forward(s *Signer) connect.Interceptor { return forwarder{s} }

type forwarder struct{ signer *Signer }

func (f forwarder) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if p, ok := authz.CallerFrom(ctx); ok && req.Spec().IsClient {
			req.Header().Set(PrincipalHeader, f.signer.Sign(p))
		}
		return next(ctx, req)
	}
}

func (f forwarder) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		if p, ok := authz.CallerFrom(ctx); ok {
			conn.RequestHeader().Set(PrincipalHeader, f.signer.Sign(p))
		}
		return conn
	}
}

func (f forwarder) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

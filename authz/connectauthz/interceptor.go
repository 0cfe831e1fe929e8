// Package connectauthz enforces, for every Connect RPC, the requirement it
// declares with the beep.authz.v1.requires method option, before the handler
// runs. An RPC that declares nothing is refused: authorization fails closed.
package connectauthz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/beepchat/beep/authz"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
)

// TokenHeader carries the ZedToken of the caller's last write; checks are
// then at least as fresh as that write, so a caller sees its own changes
// and a revocation it made is never ignored.
const TokenHeader = "Beep-Zed-Token"

// Interceptor checks each request's declared requirement.
type Interceptor struct {
	authz  *authz.Client
	log    *slog.Logger
	files  *protoregistry.Files
	checks *prometheus.CounterVec
	signer *Signer // nil: the principal comes in the context
	audit  Auditor // refusals
}

// Option configures the interceptor.
type Option func(*Interceptor)

// WithMetrics registers beep_authz_checks_total (by declared permission and
// result: allowed, denied, unauthenticated, error) on reg.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(i *Interceptor) { reg.MustRegister(i.checks) }
}

// WithAudit sends a structured record of every refused check to a.
func WithAudit(a Auditor) Option {
	return func(i *Interceptor) {
		if a != nil {
			i.audit = a
		}
	}
}

// New returns the interceptor. Method options are read from the global
// protobuf registry, where the generated code registers them.
func New(client *authz.Client, log *slog.Logger, opts ...Option) *Interceptor {
	i := &Interceptor{authz: client, log: log, files: protoregistry.GlobalFiles,
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beep_authz_checks_total", Help: "Authorization decisions on RPCs, by declared permission and result.",
		}, []string{"permission", "result"}), audit: Discard}
	for _, o := range opts {
		o(i)
	}
	return i
}

// WrapUnary checks the requirement, then calls next.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := i.principalContext(ctx, req.Header().Get(PrincipalHeader))
		if err != nil {
			return nil, err
		}
		msg, _ := req.Any().(proto.Message)
		if err := i.authorize(ctx, req.Spec().Procedure, msg, req.Header()); err != nil {
			return nil, err
		}
		resp, err := next(ctx, req)
		if connect.CodeOf(err) == connect.CodePermissionDenied {
			i.handlerRefused(ctx, req.Header(), req.Spec().Procedure, msg, err)
		}
		return resp, err
	}
}

// Authorize checks a request that opens procedure outside Connect, msg
// being its request message (a WebSocket upgrade that opens the stream
// of procedure): the principal from PrincipalHeader, then the requirement
// procedure declares, exactly as for a Connect call of it, with the same
// metrics and audit. It returns ctx with the principal.
func (i *Interceptor) Authorize(ctx context.Context, procedure string, msg proto.Message, header http.Header) (context.Context, error) {
	ctx, err := i.principalContext(ctx, header.Get(PrincipalHeader))
	if err != nil {
		return ctx, err
	}
	return ctx, i.authorize(ctx, procedure, msg, header)
}

// handlerRefused records a refusal a handler decided after the declared
// check passed (the role hierarchy, "grant only what you hold", a
// channel's permission inside a server's RPC): the declared permission and
// resource, and the handler's message as the reason.
func (i *Interceptor) handlerRefused(ctx context.Context, header http.Header, procedure string, msg proto.Message, err error) {
	var principal string
	if p, ok := authz.PrincipalFrom(ctx); ok {
		principal = p.UserID
	}
	var permission, resourceName string
	if msg != nil {
		if perm, id, rerr := Resource(procedure, msg); rerr == nil {
			permission, resourceName = perm.String(), string(perm.ResourceType)+":"+id
		}
	}
	reason := err.Error()
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		reason = cerr.Message()
	}
	i.refused(ctx, header, procedure, principal, permission, resourceName, AuditDenied, header.Get(TokenHeader), reason)
}

// WrapStreamingClient does nothing: requirements are enforced by handlers.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler checks the requirement against the first request
// message, before the handler sees it.
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.principalContext(ctx, conn.RequestHeader().Get(PrincipalHeader))
		if err != nil {
			return err
		}
		checked := &checkedConn{StreamingHandlerConn: conn}
		checked.check = func(msg any) error {
			checked.first, _ = msg.(proto.Message)
			return i.authorize(ctx, conn.Spec().Procedure, checked.first, conn.RequestHeader())
		}
		err = next(ctx, checked)
		if checked.checked && connect.CodeOf(err) == connect.CodePermissionDenied {
			i.handlerRefused(ctx, conn.RequestHeader(), conn.Spec().Procedure, checked.first, err)
		}
		return err
	}
}

type checkedConn struct {
	connect.StreamingHandlerConn
	check   func(any) error
	checked bool
	first   proto.Message // the request checked
}

func (c *checkedConn) Receive(msg any) error {
	if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if !c.checked {
		if err := c.check(msg); err != nil {
			return err
		}
		c.checked = true
	}
	return nil
}

// Requirement returns the requirement a procedure ("/pkg.Service/Method")
// declares, or an error when it declares none.
func Requirement(files *protoregistry.Files, procedure string) (*authzv1.Requirement, protoreflect.MethodDescriptor, error) {
	name := strings.ReplaceAll(strings.TrimPrefix(procedure, "/"), "/", ".")
	desc, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, nil, fmt.Errorf("unknown procedure %s", procedure)
	}
	method, ok := desc.(protoreflect.MethodDescriptor)
	if !ok {
		return nil, nil, fmt.Errorf("%s is not a method", name)
	}
	req, _ := proto.GetExtension(method.Options(), authzv1.E_Requires).(*authzv1.Requirement)
	if req == nil {
		return nil, method, fmt.Errorf("%s declares no beep.authz.v1.requires", name)
	}
	return req, method, nil
}

// ParsePermission reads "definition#permission".
func ParsePermission(s string) (authz.Permission, error) {
	def, name, ok := strings.Cut(s, "#")
	if !ok || def == "" || name == "" {
		return authz.Permission{}, fmt.Errorf("permission %q is not definition#permission", s)
	}
	return authz.Permission{ResourceType: authz.ObjectType(def), Name: name}, nil
}

// refused records a refusal with the audit sink.
func (i *Interceptor) refused(ctx context.Context, header http.Header, procedure, principal, permission, resource, result, zedToken, reason string) {
	r := NewAuditRecord(ctx, header, procedure)
	r.Principal, r.Permission, r.Resource, r.Result, r.ZedToken, r.Reason = principal, permission, resource, result, zedToken, reason
	i.audit.Audit(ctx, r)
}

func (i *Interceptor) authorize(ctx context.Context, procedure string, msg proto.Message, header http.Header) error {
	token := header.Get(TokenHeader)
	req, method, err := Requirement(i.files, procedure)
	if err != nil {
		i.log.ErrorContext(ctx, "refusing an RPC without a declared requirement", "procedure", procedure, "err", err)
		return connect.NewError(connect.CodeInternal, errors.New("this RPC declares no permission; refused"))
	}
	if req.GetPublic() {
		return nil
	}
	if service := req.GetService(); service != "" {
		return i.authorizeService(ctx, header, procedure, service)
	}
	label := req.GetPermission()
	if label == "" {
		label = "authenticated"
	}
	principal, ok := authz.PrincipalFrom(ctx)
	if !ok {
		i.checks.WithLabelValues(label, "unauthenticated").Inc()
		i.refused(ctx, header, procedure, "", req.GetPermission(), "", AuditUnauthenticated, token, "not signed in")
		return connect.NewError(connect.CodeUnauthenticated, errors.New("sign in first"))
	}
	if req.GetAuthenticated() {
		i.checks.WithLabelValues(label, "allowed").Inc()
		return nil
	}
	perm, resourceID, err := resource(req, method, msg) // resource.go
	if err != nil {
		return err
	}
	check := authz.Check{Subject: principal.Subject(), Permission: perm, ResourceID: resourceID}
	decision, err := i.authz.Check(ctx, check, authz.AtLeastAsFresh(authz.ZedToken(token)))
	if err == nil && !decision.Allowed {
		err = &authz.DeniedError{Subject: check.Subject, Permission: perm, ResourceID: resourceID, Conditional: decision.Conditional}
	}
	switch {
	case err == nil:
		i.checks.WithLabelValues(label, "allowed").Inc()
		return nil
	case errors.Is(err, authz.ErrDenied):
		i.checks.WithLabelValues(label, "denied").Inc()
		i.log.InfoContext(ctx, "permission refused", "principal", principal.UserID, "permission", perm.String(), "resource", resourceID, "procedure", procedure)
		i.refused(ctx, header, procedure, principal.UserID, perm.String(), string(perm.ResourceType)+":"+resourceID, AuditDenied, string(decision.CheckedAt), "")
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("you lack %s on this %s", perm.Name, perm.ResourceType))
	case errors.Is(err, authz.ErrInvalid):
		i.checks.WithLabelValues(label, "error").Inc()
		return connect.NewError(connect.CodeInvalidArgument, err)
	default:
		i.checks.WithLabelValues(label, "error").Inc()
		i.log.ErrorContext(ctx, "authorization unavailable; refused", "principal", principal.UserID, "permission", perm.String(), "resource", resourceID, "err", err)
		return connect.NewError(connect.CodeUnavailable, errors.New("authorization is unavailable; try again"))
	}
}

// authorizeService lets through only the named Beep service acting on its
// own behalf.
func (i *Interceptor) authorizeService(ctx context.Context, header http.Header, procedure, service string) error {
	label := "service:" + service
	caller, ok := authz.CallerFrom(ctx)
	switch {
	case !ok:
		i.checks.WithLabelValues(label, "unauthenticated").Inc()
		i.refused(ctx, header, procedure, "", label, "", AuditUnauthenticated, "", "an internal RPC")
		return connect.NewError(connect.CodeUnauthenticated, errors.New("an internal RPC: only Beep's "+service+" service may call it"))
	case caller.Service != service:
		i.checks.WithLabelValues(label, "denied").Inc()
		i.log.InfoContext(ctx, "internal RPC refused", "principal", caller.UserID, "service", caller.Service, "procedure", procedure)
		i.refused(ctx, header, procedure, caller.UserID, label, "", AuditDenied, "", "an internal RPC")
		return connect.NewError(connect.CodePermissionDenied, errors.New("an internal RPC: only Beep's "+service+" service may call it"))
	}
	i.checks.WithLabelValues(label, "allowed").Inc()
	return nil
}

// stringField reads the non-empty string field name of msg.
func stringField(msg proto.Message, method protoreflect.MethodDescriptor, name string) (string, error) {
	if msg == nil {
		return "", errors.New("empty request")
	}
	fd := msg.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return "", fmt.Errorf("%s: resource field %q is not a string field of %s", method.FullName(), name, msg.ProtoReflect().Descriptor().FullName())
	}
	v := msg.ProtoReflect().Get(fd).String()
	if v == "" {
		return "", fmt.Errorf("%s is required", name)
	}
	return v, nil
}

package connectauthz

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// RequestIDHeader carries the request id the gateway gives every request
// (and forwards to the services).
const RequestIDHeader = "X-Request-Id"

// Audit results.
const (
	AuditAllowed         = "allowed"
	AuditDenied          = "denied"
	AuditUnauthenticated = "unauthenticated"
)

// AuditRecord is one structured audit record: a refused check, or an
// allowed moderation action.
type AuditRecord struct {
	Time time.Time
	// Principal is the caller's user id ("" when anonymous).
	Principal string
	// Action is the RPC, "/pkg.Service/Method".
	Action string
	// Resource is the object the permission was checked on, "type:id".
	Resource string
	// Permission is the permission checked, "definition#permission".
	Permission string
	// Result is AuditAllowed, AuditDenied or AuditUnauthenticated.
	Result string
	// ZedToken is the revision the decision was made at, or the write's.
	ZedToken string
	// RequestID is the gateway's X-Request-Id.
	RequestID string
	// TraceID is the OpenTelemetry trace of the request, if any.
	TraceID string
	// Target is whom a moderation action was on (a user id), if anyone.
	Target string
	// Reason is the moderator's reason, or why a request was refused.
	Reason string
}

// Auditor receives audit records. Implementations must be safe for
// concurrent use and must not block for long: they are called on the
// request path.
type Auditor interface {
	Audit(ctx context.Context, r AuditRecord)
}

// NewAuditRecord starts a record of a request: its time, request id (from
// the headers) and trace id (from ctx).
func NewAuditRecord(ctx context.Context, header http.Header, action string) AuditRecord {
	r := AuditRecord{Time: time.Now().UTC(), Action: action}
	if header != nil {
		r.RequestID = header.Get(RequestIDHeader)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		r.TraceID = sc.TraceID().String()
	}
	return r
}

// SlogAuditor writes records through a slog logger, one record a line,
// each marked audit=true.
type SlogAuditor struct{ log *slog.Logger }

// NewSlogAuditor writes records to log, marked audit=true.
func NewSlogAuditor(log *slog.Logger) *SlogAuditor {
	return &SlogAuditor{log: log.With(slog.Bool("audit", true))}
}

// NewJSONAuditor writes records as JSON lines to w.
func NewJSONAuditor(w io.Writer) *SlogAuditor {
	return NewSlogAuditor(slog.New(slog.NewJSONHandler(w, nil)))
}

// Audit writes r, with every field present (empty ones as "").
func (a *SlogAuditor) Audit(ctx context.Context, r AuditRecord) {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "audit",
		slog.Time("at", r.Time),
		slog.String("principal", r.Principal),
		slog.String("action", r.Action),
		slog.String("resource", r.Resource),
		slog.String("permission", r.Permission),
		slog.String("result", r.Result),
		slog.String("zed_token", r.ZedToken),
		slog.String("request_id", r.RequestID),
		slog.String("trace_id", r.TraceID),
		slog.String("target", r.Target),
		slog.String("reason", r.Reason),
	)
}

// Discard drops every record.
var Discard Auditor = discard{}

type discard struct{}

func (discard) Audit(context.Context, AuditRecord) {}

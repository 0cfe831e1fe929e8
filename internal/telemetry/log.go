package telemetry

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// LogHandler wraps h so that every record logged with a context (the
// *Context methods of slog) carries the trace_id and span_id of its span,
// as top-level attributes even under a logger's groups (WithGroup), so that
// a search on trace_id finds every line. A record logged without a span
// (or with the plain methods) is passed on as it is.
func LogHandler(h slog.Handler) slog.Handler { return &logHandler{root: h, current: h} }

// logHandler keeps the handler it wraps as it was before any group was
// opened (root), and how to derive the current one from it (grouped: the
// groups and the attributes inside them), to put the trace ids outside the
// groups.
type logHandler struct {
	root    slog.Handler
	current slog.Handler
	grouped []func(slog.Handler) slog.Handler
}

func (h *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.current.Enabled(ctx, level)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.current.Handle(ctx, r)
	}
	ids := []slog.Attr{slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String())}
	if len(h.grouped) == 0 {
		r.AddAttrs(ids...)
		return h.current.Handle(ctx, r)
	}
	// Attributes added to the record would land in the innermost group:
	// rebuild the handler with the ids before its groups (rare, and only
	// for loggers with groups).
	out := h.root.WithAttrs(ids)
	for _, derive := range h.grouped {
		out = derive(out)
	}
	return out.Handle(ctx, r)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.grouped) == 0 {
		next := h.root.WithAttrs(attrs)
		return &logHandler{root: next, current: next}
	}
	return h.derive(func(inner slog.Handler) slog.Handler { return inner.WithAttrs(attrs) })
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.derive(func(inner slog.Handler) slog.Handler { return inner.WithGroup(name) })
}

func (h *logHandler) derive(step func(slog.Handler) slog.Handler) *logHandler {
	return &logHandler{
		root:    h.root,
		current: step(h.current),
		grouped: append(h.grouped[:len(h.grouped):len(h.grouped)], step),
	}
}

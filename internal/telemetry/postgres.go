package telemetry

import (
	"context"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxStatement bounds the SQL text put on a span, in bytes.
const maxStatement = 500

// PostgresTracer makes a client span of every pgx query, batch and COPY
// made in a sampled trace, child of the request's span: set it as a pool's
// ConnConfig.Tracer. Queries outside any trace (start-up, background
// polling) make no span, rather than a trace of their own each.
//
// The spans are named postgresql.query, postgresql.batch and
// postgresql.copy, with the attributes of OpenTelemetry's database
// conventions: db.system.name ("postgresql"), db.namespace (Database),
// db.query.text (the SQL with its $n placeholders, never its arguments; cut
// at 500 bytes), db.operation.batch.size, db.collection.name (COPY's table).
// A failed query's span has the error status.
type PostgresTracer struct {
	// Database names the database in the spans.
	Database string
}

var (
	_ pgx.QueryTracer    = PostgresTracer{}
	_ pgx.BatchTracer    = PostgresTracer{}
	_ pgx.CopyFromTracer = PostgresTracer{}
)

// postgresSpanKey is where the context pgx hands back to the tracer keeps the
// span the tracer started (none when the query was outside any trace).
type postgresSpanKey struct{}

// TraceQueryStart opens the query's span.
func (t PostgresTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return t.start(ctx, "postgresql.query", attribute.String("db.query.text", truncateStatement(data.SQL)))
}

// TraceQueryEnd closes it, with the error if the query failed.
func (t PostgresTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(ctx, data.Err)
}

// TraceBatchStart opens a batch's span.
func (t PostgresTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	return t.start(ctx, "postgresql.batch", attribute.Int("db.operation.batch.size", data.Batch.Len()))
}

// TraceBatchQuery does nothing: the batch's span covers its queries.
func (t PostgresTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd closes the batch's span.
func (t PostgresTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	end(ctx, data.Err)
}

// TraceCopyFromStart opens a COPY's span.
func (t PostgresTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return t.start(ctx, "postgresql.copy", attribute.String("db.collection.name", data.TableName.Sanitize()))
}

// TraceCopyFromEnd closes it.
func (t PostgresTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	end(ctx, data.Err)
}

func (t PostgresTracer) start(ctx context.Context, name string, attrs ...attribute.KeyValue) context.Context {
	// Outside a sampled trace the span would record nothing (and without
	// an OTLP endpoint nothing is sampled): skip making it, which cost 3%
	// of Beep's CPU under the chat load.
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ctx
	}
	attrs = append(attrs, attribute.String("db.system.name", "postgresql"), attribute.String("db.namespace", t.Database))
	ctx, span := otel.Tracer(instrumentationName).Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return context.WithValue(ctx, postgresSpanKey{}, span)
}

// end closes the span start opened, if it opened one (never the caller's).
func end(ctx context.Context, err error) {
	span, ok := ctx.Value(postgresSpanKey{}).(trace.Span)
	if !ok {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// truncateStatement cuts sql to maxStatement bytes, on a character boundary.
func truncateStatement(sql string) string {
	if len(sql) <= maxStatement {
		return sql
	}
	n := maxStatement
	for n > 0 && !utf8.RuneStart(sql[n]) {
		n--
	}
	return sql[:n]
}

package telemetry

import (
	"context"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxStatement bounds the SQL text put on a span.
const maxStatement = 500

// PostgresTracer makes a client span of every pgx query and batch, child
// of the request's span: set it as a pool's ConnConfig.Tracer.
type PostgresTracer struct {
	// Database names the database in the spans.
	Database string
}

var (
	_ pgx.QueryTracer = PostgresTracer{}
	_ pgx.BatchTracer = PostgresTracer{}
)

func (t PostgresTracer) tracer() trace.Tracer {
	return otel.Tracer("github.com/beepchat/beep/internal/telemetry")
}

// TraceQueryStart opens the query's span.
func (t PostgresTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	sql := data.SQL
	if len(sql) > maxStatement {
		sql = sql[:maxStatement]
	}
	ctx, _ = t.tracer().Start(ctx, "postgresql.query", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system.name", "postgresql"),
		attribute.String("db.namespace", t.Database),
		attribute.String("db.query.text", sql),
	))
	return ctx
}

// TraceQueryEnd closes it, with the error if the query failed.
func (t PostgresTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	end(ctx, data.Err)
}

// TraceBatchStart opens a batch's span.
func (t PostgresTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	ctx, _ = t.tracer().Start(ctx, "postgresql.batch", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system.name", "postgresql"),
		attribute.String("db.namespace", t.Database),
		attribute.Int("db.operation.batch.size", data.Batch.Len()),
	))
	return ctx
}

// TraceBatchQuery does nothing: the batch's span covers its queries.
func (t PostgresTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd closes the batch's span.
func (t PostgresTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	end(ctx, data.Err)
}

func end(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

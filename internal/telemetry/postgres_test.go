package telemetry_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/internal/telemetry"
)

// recordSpans makes the global tracer provider, which the tracer uses, one
// that keeps every span, for the test's duration.
func recordSpans(t *testing.T) (*tracetest.SpanRecorder, trace.Tracer) {
	t.Helper()
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(provider)
	t.Cleanup(func() {
		otel.SetTracerProvider(previous)
		_ = provider.Shutdown(context.Background())
	})
	return recorder, provider.Tracer("test")
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestPostgresTracerSpans runs real queries, a failing one, a batch and a
// COPY through a traced pool, in a request's span and outside any.
func TestPostgresTracerSpans(t *testing.T) {
	ctx := context.Background()
	poolCfg, err := pgxpool.ParseConfig(pgtest.NewDatabase(t, "beep_telemetry"))
	if err != nil {
		t.Fatal(err)
	}
	poolCfg.ConnConfig.Tracer = telemetry.PostgresTracer{Database: "beep_telemetry"}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Set up outside any trace: no spans.
	recorder, tracer := recordSpans(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE notes (id int PRIMARY KEY, body text)"); err != nil {
		t.Fatal(err)
	}
	if n := len(recorder.Ended()); n != 0 {
		t.Fatalf("a query outside any trace made %d spans", n)
	}

	reqCtx, request := tracer.Start(ctx, "request")
	long := "SELECT '" + strings.Repeat("é", 400) + "'" // 800 bytes, two per character
	var s string
	if err := pool.QueryRow(reqCtx, long).Scan(&s); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(reqCtx, "INSERT INTO notes VALUES ($1, $2)", 1, "secret argument"); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(reqCtx, "SELECT * FROM nowhere"); err == nil {
		t.Fatal("a query on a missing table succeeded")
	}
	batch := &pgx.Batch{}
	batch.Queue("INSERT INTO notes VALUES (2, 'b')")
	batch.Queue("INSERT INTO notes VALUES (3, 'c')")
	if err := pool.SendBatch(reqCtx, batch).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.CopyFrom(reqCtx, pgx.Identifier{"notes"}, []string{"id", "body"}, pgx.CopyFromRows([][]any{{4, "d"}})); err != nil {
		t.Fatal(err)
	}
	request.End()

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range recorder.Ended() {
		byName[s.Name()] = append(byName[s.Name()], s)
	}
	if len(byName["request"]) != 1 {
		t.Fatalf("spans: %v", byName)
	}
	queries, batches, copies := byName["postgresql.query"], byName["postgresql.batch"], byName["postgresql.copy"]
	if len(queries) != 3 || len(batches) != 1 || len(copies) != 1 {
		t.Fatalf("want 3 queries, 1 batch, 1 copy; have %v", byName)
	}
	for _, s := range append(append(queries, batches...), copies...) {
		a := attrs(s)
		if s.Parent().SpanID() != request.SpanContext().SpanID() || s.SpanContext().TraceID() != request.SpanContext().TraceID() {
			t.Errorf("%s is not the request's child", s.Name())
		}
		if s.SpanKind() != trace.SpanKindClient || a["db.system.name"].AsString() != "postgresql" || a["db.namespace"].AsString() != "beep_telemetry" {
			t.Errorf("%s: kind %v, attributes %v", s.Name(), s.SpanKind(), a)
		}
	}
	statement := attrs(queries[0])["db.query.text"].AsString()
	if len(statement) > 500 || !strings.HasPrefix(long, statement) || !strings.HasPrefix(statement, "SELECT 'éé") || strings.ContainsRune(statement, '\uFFFD') {
		t.Errorf("long statement on the span: %d bytes, %q", len(statement), statement)
	}
	insert := attrs(queries[1])
	if insert["db.query.text"].AsString() != "INSERT INTO notes VALUES ($1, $2)" || queries[1].Status().Code == codes.Error {
		t.Errorf("insert: %v, status %v", insert, queries[1].Status())
	}
	if failed := queries[2]; failed.Status().Code != codes.Error || !strings.Contains(failed.Status().Description, "nowhere") || len(failed.Events()) == 0 {
		t.Errorf("failed query: status %v, events %v", failed.Status(), failed.Events())
	}
	if got := attrs(batches[0])["db.operation.batch.size"].AsInt64(); got != 2 {
		t.Errorf("batch size %d", got)
	}
	if got := attrs(copies[0])["db.collection.name"].AsString(); got != `"notes"` {
		t.Errorf("copy table %s", got)
	}
	for _, s := range recorder.Ended() {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.Emit(), "secret argument") {
				t.Errorf("%s carries a query argument: %v", s.Name(), kv)
			}
		}
	}
}

// TestPostgresTracerNeverEndsTheCallersSpan: outside a trace the tracer
// hands back the context it got and its end does nothing, so the caller's
// span (none here, a remote one below) is never ended by it.
func TestPostgresTracerNeverEndsTheCallersSpan(t *testing.T) {
	recorder, tracer := recordSpans(t)
	tr := telemetry.PostgresTracer{Database: "d"}
	ctx := context.Background()
	got := tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"})
	tr.TraceQueryEnd(got, nil, pgx.TraceQueryEndData{})
	if got != ctx || len(recorder.Ended()) != 0 {
		t.Errorf("outside a trace: context changed %v, spans %d", got != ctx, len(recorder.Ended()))
	}

	ctx, parent := tracer.Start(ctx, "request")
	got = tr.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"})
	tr.TraceQueryEnd(got, nil, pgx.TraceQueryEndData{})
	tr.TraceQueryEnd(ctx, nil, pgx.TraceQueryEndData{}) // a context the tracer did not make
	if !parent.IsRecording() {
		t.Error("the tracer ended its caller's span")
	}
	parent.End()
	if n := len(recorder.Ended()); n != 2 {
		t.Errorf("%d spans, want the query's and the request's", n)
	}
}

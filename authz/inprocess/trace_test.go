package inprocess_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
)

// TestCallsAreTraced: a check through the in-process client, and through a
// client of authz.Dial, is a client span of the caller's trace.
func TestCallsAreTraced(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(provider)
	defer func() {
		otel.SetTracerProvider(previous)
		_ = provider.Shutdown(context.Background())
	}()

	srv, err := inprocess.Start(t.Context(), inprocess.Config{GRPCAddr: "127.0.0.1:0", Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	remote, err := authz.Dial(authz.RemoteConfig{Endpoint: srv.Addr(), PresharedKey: srv.PresharedKey(), Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	at, err := srv.Client().Write(t.Context(), owner("s1", "ann"))
	if err != nil {
		t.Fatal(err)
	}
	admin := authz.Check{Subject: authz.UserSubject("ann"), Permission: authz.Server.Administrator, ResourceID: "s1"}
	for name, c := range map[string]*authz.Client{"in-process": srv.Client(), "dialed": remote} {
		ctx, request := provider.Tracer("test").Start(t.Context(), "request "+name)
		if d, err := c.Check(ctx, admin, authz.AtLeastAsFresh(at)); err != nil || !d.Allowed {
			t.Fatalf("%s: %+v %v", name, d, err)
		}
		request.End()
		found := false
		for _, s := range recorder.Ended() {
			if s.Name() == "authzed.api.v1.PermissionsService/CheckPermission" && s.SpanKind() == trace.SpanKindClient &&
				s.Parent().SpanID() == request.SpanContext().SpanID() && s.SpanContext().TraceID() == request.SpanContext().TraceID() {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no CheckPermission client span under the request's", name)
		}
	}
}

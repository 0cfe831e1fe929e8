package connectauthz_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
	"github.com/beepchat/beep/gen/beep/authz/v1/authzv1connect"
)

// TestSignedPrincipalBetweenProcesses: a service whose interceptor has the
// deployment's signer learns its caller from PrincipalHeader alone, as a
// calling service's Forward interceptor signs it from its context; a
// principal signed with another key is refused, and none at all is
// anonymous.
func TestSignedPrincipalBetweenProcesses(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	at, err := srv.Client().Write(t.Context(), []authz.Update{
		authz.Touch(authz.Relationship{Relation: authz.Platform.Staff, ResourceID: "beep", Subject: authz.UserSubject("mod")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := connectauthz.NewSigner([]byte(strings.Repeat("d", connectauthz.MinKeyBytes)))
	stranger, _ := connectauthz.NewSigner([]byte(strings.Repeat("x", connectauthz.MinKeyBytes)))

	checks := connectauthz.New(srv.Client(), slog.New(slog.NewTextHandler(io.Discard, nil)), connectauthz.WithSigner(signer))
	service := httptest.NewServer(routed(authzv1connect.NewPolicyServiceHandler(policyHandler{}, connect.WithInterceptors(checks))))
	defer service.Close()

	tests := []struct {
		name   string
		signer *connectauthz.Signer
		user   string // the caller's principal, in its context
		want   connect.Code
	}{
		{"staff, signed with the deployment's key", signer, "mod", 0},
		{"not staff, signed with the deployment's key", signer, "bob", connect.CodePermissionDenied},
		{"staff, signed with another key", stranger, "mod", connect.CodeUnauthenticated},
		{"no principal to forward", signer, "", connect.CodeUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := authzv1connect.NewPolicyServiceClient(service.Client(), service.URL, connect.WithInterceptors(connectauthz.Forward(tt.signer)))
			ctx := t.Context()
			if tt.user != "" {
				ctx = authz.WithPrincipal(ctx, authz.Principal{UserID: tt.user})
			}
			req := connect.NewRequest(&authzv1.GetSchemaRequest{})
			req.Header().Set(connectauthz.TokenHeader, string(at))
			_, err := client.GetSchema(ctx, req)
			switch {
			case tt.want == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != 0 && connect.CodeOf(err) != tt.want:
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// routed serves h at path only.
func routed(path string, h http.Handler) http.Handler {
	m := http.NewServeMux()
	m.Handle(path, h)
	return m
}

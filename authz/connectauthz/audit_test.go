package connectauthz_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
	"github.com/beepchat/beep/gen/beep/authz/v1/authzv1connect"
)

// syncBuffer is a buffer the handlers write and the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestRefusalsAreAudited: a refused RPC makes one JSON record with every
// field (principal, action, resource, permission, result, ZedToken, request
// id, time); an allowed one makes none.
func TestRefusalsAreAudited(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := srv.Client()
	at, err := c.Write(t.Context(), []authz.Update{
		authz.Touch(authz.Relationship{Relation: authz.Platform.Staff, ResourceID: "beep", Subject: authz.UserSubject("mod")}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	interceptor := connectauthz.New(c, slog.New(slog.NewTextHandler(io.Discard, nil)), connectauthz.WithAudit(connectauthz.NewJSONAuditor(&buf)))
	mux := http.NewServeMux()
	mux.Handle(authzv1connect.NewPolicyServiceHandler(policyHandler{}, connect.WithInterceptors(interceptor)))
	httpSrv := httptest.NewServer(testAuthentication(mux))
	defer httpSrv.Close()
	client := authzv1connect.NewPolicyServiceClient(httpSrv.Client(), httpSrv.URL)

	call := func(user, requestID string) error {
		req := connect.NewRequest(&authzv1.ValidatePoliciesRequest{})
		if user != "" {
			req.Header().Set("Test-User", user)
		}
		req.Header().Set(connectauthz.TokenHeader, string(at))
		req.Header().Set(connectauthz.RequestIDHeader, requestID)
		_, err := client.ValidatePolicies(t.Context(), req)
		return err
	}
	if err := call("mod", "req-denied"); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("staff validating: %v, want permission_denied", err)
	}
	if err := call("", "req-anonymous"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("anonymous: %v, want unauthenticated", err)
	}
	records := buf.lines(t)
	if len(records) != 2 {
		t.Fatalf("%d audit records, want 2: %v", len(records), records)
	}
	denied := records[0]
	want := map[string]any{
		"audit":      true,
		"principal":  "mod",
		"action":     "/beep.authz.v1.PolicyService/ValidatePolicies",
		"resource":   "platform:beep",
		"permission": "platform#manage_schema",
		"result":     "denied",
		"request_id": "req-denied",
	}
	for k, v := range want {
		if denied[k] != v {
			t.Errorf("%s = %v, want %v", k, denied[k], v)
		}
	}
	for _, k := range []string{"at", "zed_token", "trace_id", "target", "reason"} {
		if _, ok := denied[k]; !ok {
			t.Errorf("field %s missing: %v", k, denied)
		}
	}
	if denied["zed_token"] == "" || denied["at"] == "" {
		t.Errorf("no ZedToken or time: %v", denied)
	}
	if anon := records[1]; anon["result"] != "unauthenticated" || anon["request_id"] != "req-anonymous" || anon["principal"] != "" {
		t.Errorf("anonymous record: %v", anon)
	}
}

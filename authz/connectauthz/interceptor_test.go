package connectauthz_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
	"github.com/beepchat/beep/gen/beep/authz/v1/authzv1connect"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
)

// Every generated API package must be imported here so its RPCs are checked.
var _ = []string{authzv1connect.PolicyServiceName, communityv1connect.CommunityServiceName, chatv1connect.ChatServiceName}

// TestEveryRPCDeclaresARequirement walks every Beep RPC in the registry.
func TestEveryRPCDeclaresARequirement(t *testing.T) {
	methods := 0
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(f.Package()), "beep.") {
			return true
		}
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				methods++
				procedure := "/" + string(svc.FullName()) + "/" + string(m.Name())
				req, _, err := connectauthz.Requirement(protoregistry.GlobalFiles, procedure)
				if err != nil {
					t.Error(err)
					continue
				}
				kinds := 0
				for _, set := range []bool{req.GetPublic(), req.GetAuthenticated(), req.GetPermission() != "", req.GetService() != ""} {
					if set {
						kinds++
					}
				}
				if kinds != 1 {
					t.Errorf("%s: declare exactly one of public, authenticated, permission or service", procedure)
					continue
				}
				if req.GetPermission() == "" {
					continue
				}
				if types := req.GetResourceTypes(); len(types) > 0 {
					// A bare permission that every listed definition has, on a field naming one of them.
					for _, rt := range types {
						if p := (authz.Permission{ResourceType: authz.ObjectType(rt), Name: req.GetPermission()}); !p.InSchema() {
							t.Errorf("%s: permission %s is not in schema/beep.zed", procedure, p)
						}
					}
					fd := m.Input().Fields().ByName(protoreflect.Name(req.GetResourceField()))
					if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || req.GetResourceId() != "" {
						t.Errorf("%s: resource_types needs resource_field, a string field of %s, and no resource_id", procedure, m.Input().FullName())
					}
					continue
				}
				perm, err := connectauthz.ParsePermission(req.GetPermission())
				if err != nil || !perm.InSchema() {
					t.Errorf("%s: permission %q is not in schema/beep.zed", procedure, req.GetPermission())
				}
				if (req.GetResourceField() == "") == (req.GetResourceId() == "") {
					t.Errorf("%s: declare exactly one of resource_field or resource_id", procedure)
				}
				if f := req.GetResourceField(); f != "" {
					fd := m.Input().Fields().ByName(protoreflect.Name(f))
					if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
						t.Errorf("%s: resource_field %q is not a string field of %s", procedure, f, m.Input().FullName())
					}
				}
			}
		}
		return true
	})
	if methods == 0 {
		t.Fatal("no Beep RPC found in the registry")
	}
}

// policyHandler answers every call: the interceptor alone decides.
type policyHandler struct {
	authzv1connect.UnimplementedPolicyServiceHandler
}

func (policyHandler) GetSchema(context.Context, *connect.Request[authzv1.GetSchemaRequest]) (*connect.Response[authzv1.GetSchemaResponse], error) {
	return connect.NewResponse(&authzv1.GetSchemaResponse{SchemaText: "ok"}), nil
}

func (policyHandler) ValidatePolicies(context.Context, *connect.Request[authzv1.ValidatePoliciesRequest]) (*connect.Response[authzv1.ValidatePoliciesResponse], error) {
	return connect.NewResponse(&authzv1.ValidatePoliciesResponse{}), nil
}

// testAuthentication stands in for the gateway: the user named in a header.
func testAuthentication(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := r.Header.Get("Test-User"); u != "" {
			r = r.WithContext(authz.WithPrincipal(r.Context(), authz.Principal{UserID: u}))
		}
		next.ServeHTTP(w, r)
	})
}

func TestInterceptor(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := srv.Client()
	at, err := c.Write(t.Context(), []authz.Update{
		authz.Touch(authz.Relationship{Relation: authz.Platform.Staff, ResourceID: "beep", Subject: authz.UserSubject("mod")}),
		authz.Touch(authz.Relationship{Relation: authz.Platform.Admin, ResourceID: "beep", Subject: authz.UserSubject("root")}),
	})
	if err != nil {
		t.Fatal(err)
	}

	interceptor := connectauthz.New(c, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	mux.Handle(authzv1connect.NewPolicyServiceHandler(policyHandler{}, connect.WithInterceptors(interceptor)))
	// An RPC the registry does not know (so it declares nothing).
	mux.Handle("/beep.undeclared.v1.Service/Do", connect.NewUnaryHandler("/beep.undeclared.v1.Service/Do",
		func(context.Context, *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
			return connect.NewResponse(&emptypb.Empty{}), nil
		}, connect.WithInterceptors(interceptor)))
	httpSrv := httptest.NewServer(testAuthentication(mux))
	defer httpSrv.Close()
	client := authzv1connect.NewPolicyServiceClient(httpSrv.Client(), httpSrv.URL)

	call := func(user string, validate bool) error {
		if validate {
			req := connect.NewRequest(&authzv1.ValidatePoliciesRequest{})
			req.Header().Set("Test-User", user)
			req.Header().Set(connectauthz.TokenHeader, string(at))
			_, err := client.ValidatePolicies(t.Context(), req)
			return err
		}
		req := connect.NewRequest(&authzv1.GetSchemaRequest{})
		req.Header().Set("Test-User", user)
		req.Header().Set(connectauthz.TokenHeader, string(at))
		_, err := client.GetSchema(t.Context(), req)
		return err
	}
	tests := []struct {
		name     string
		user     string
		validate bool
		want     connect.Code // 0: allowed
	}{
		{"anonymous", "", false, connect.CodeUnauthenticated},
		{"member without the permission", "bob", false, connect.CodePermissionDenied},
		{"staff reads the schema", "mod", false, 0},
		{"staff cannot validate (manage_schema)", "mod", true, connect.CodePermissionDenied},
		{"platform admin validates", "root", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := call(tt.user, tt.validate)
			if tt.want == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if connect.CodeOf(err) != tt.want {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}

	undeclared := connect.NewClient[emptypb.Empty, emptypb.Empty](httpSrv.Client(), httpSrv.URL+"/beep.undeclared.v1.Service/Do")
	req := connect.NewRequest(&emptypb.Empty{})
	req.Header().Set("Test-User", "root")
	if _, err := undeclared.CallUnary(t.Context(), req); connect.CodeOf(err) != connect.CodeInternal {
		t.Errorf("an RPC without a requirement answered %v, want refused", err)
	}

	// SpiceDB gone: refused as unavailable, never allowed.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := call("root", true); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Errorf("with SpiceDB stopped: %v, want Unavailable", err)
	}
	var connectErr *connect.Error
	if !errors.As(call("root", true), &connectErr) {
		t.Error("not a connect error")
	}
}

// TestAuthorizeOutsideConnect: a request that opens a procedure outside
// Connect (a WebSocket upgrade) is checked as a call of it: the signed
// principal is verified and put in the context, then what the procedure
// declares is required of them.
func TestAuthorizeOutsideConnect(t *testing.T) {
	srv, err := inprocess.Start(t.Context(), inprocess.Config{Schema: authz.SchemaText})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	key := []byte(strings.Repeat("k", connectauthz.MinKeyBytes))
	signer, _ := connectauthz.NewSigner(key)
	other, _ := connectauthz.NewSigner([]byte(strings.Repeat("o", connectauthz.MinKeyBytes)))
	interceptor := connectauthz.New(srv.Client(), slog.New(slog.NewTextHandler(io.Discard, nil)), connectauthz.WithSigner(signer))
	header := func(s *connectauthz.Signer, user string) http.Header {
		h := http.Header{}
		if s != nil {
			h.Set(connectauthz.PrincipalHeader, s.Sign(authz.Principal{UserID: user}))
		}
		return h
	}
	for _, c := range []struct {
		name, procedure string
		header          http.Header
		want            connect.Code // 0: allowed
	}{
		{"a signed-in user subscribes", chatv1connect.StreamServiceSubscribeProcedure, header(signer, "bob"), 0},
		{"no one signed in", chatv1connect.StreamServiceSubscribeProcedure, header(nil, ""), connect.CodeUnauthenticated},
		{"signed with another key", chatv1connect.StreamServiceSubscribeProcedure, header(other, "bob"), connect.CodeUnauthenticated},
		{"a procedure that declares nothing", "/beep.undeclared.v1.Service/Do", header(signer, "bob"), connect.CodeInternal},
		{"a permission bob lacks", authzv1connect.PolicyServiceGetSchemaProcedure, header(signer, "bob"), connect.CodePermissionDenied},
	} {
		ctx, err := interceptor.Authorize(t.Context(), c.procedure, &chatv1.SubscribeRequest{}, c.header)
		if connect.CodeOf(err) != c.want && !(c.want == 0 && err == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
			continue
		}
		if p, ok := authz.PrincipalFrom(ctx); c.want == 0 && (!ok || p.UserID != "bob") {
			t.Errorf("%s: the context's principal is %v (%v), want bob", c.name, p, ok)
		}
	}
}

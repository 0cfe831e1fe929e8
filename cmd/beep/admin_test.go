package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	adminv1 "github.com/beepchat/beep/gen/beep/admin/v1"
	"github.com/beepchat/beep/gen/beep/admin/v1/adminv1connect"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
)

// withToken is an HTTP client that sends a bearer token, and a ZedToken
// so that the platform's permissions are checked fresh.
type withToken struct {
	token, zed string
	next       http.RoundTripper
}

func (w withToken) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if w.token != "" {
		r.Header.Set("Authorization", "Bearer "+w.token)
	}
	r.Header.Set(connectauthz.TokenHeader, w.zed)
	return w.next.RoundTrip(r)
}

// adminAs is the admin API's client through the gateway, as user ("" for
// anonymous).
func adminAs(t *testing.T, b *beepForAdmin, user string) adminv1connect.AuthzAdminServiceClient {
	token := ""
	if user != "" {
		token = mustToken(t, user, 3600)
	}
	return adminv1connect.NewAuthzAdminServiceClient(&http.Client{Transport: withToken{token, string(b.zed), http.DefaultTransport}}, "http://"+b.HTTPAddr)
}

// workedExample is the relationships of policies-test's worked example
// (docs/permissions.md), in text form.
func workedExample(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../../policies-test/discord/05-worked-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	s = s[strings.Index(s, "relationships: |-")+len("relationships: |-") : strings.Index(s, "assertions:")]
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// beepForAdmin is a running Beep and the ZedToken of its platform's staff.
type beepForAdmin struct {
	*Instance
	zed authz.ZedToken
}

// adminBeep is a Beep with development tokens, root as platform admin
// (-platform-admins) and sam as platform staff.
func adminBeep(t *testing.T, extra ...string) (*beepForAdmin, func()) {
	t.Helper()
	inst, _, stop := start(t, append(isolated(t, "-dev-token-key", devKey, "-platform-admins", "root", "-playground", "staff",
		"-rate-limit", "1000", "-rate-burst", "1000"), extra...)...)
	zed, err := inst.Authz.Write(t.Context(), []authz.Update{authz.Touch(authz.Relationship{Relation: authz.Platform.Staff,
		ResourceID: authz.PlatformID, Subject: authz.UserSubject("sam")})})
	if err != nil {
		t.Fatal(err)
	}
	return &beepForAdmin{inst, zed}, stop
}

// call invokes an RPC of the admin service by its descriptor, with an
// empty request, and returns its error's code (0 when it succeeded).
func callEmpty(ctx context.Context, client adminv1connect.AuthzAdminServiceClient, method string) connect.Code {
	var err error
	switch method {
	case "ReadSchema":
		_, err = client.ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{}))
	case "ValidateSchema":
		_, err = client.ValidateSchema(ctx, connect.NewRequest(&adminv1.ValidateSchemaRequest{}))
	case "DiffSchema":
		_, err = client.DiffSchema(ctx, connect.NewRequest(&adminv1.DiffSchemaRequest{}))
	case "ApplySchema":
		_, err = client.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{}))
	case "ReadRelationships":
		_, err = client.ReadRelationships(ctx, connect.NewRequest(&adminv1.ReadRelationshipsRequest{}))
	case "WriteRelationships":
		_, err = client.WriteRelationships(ctx, connect.NewRequest(&adminv1.WriteRelationshipsRequest{}))
	case "DeleteRelationships":
		_, err = client.DeleteRelationships(ctx, connect.NewRequest(&adminv1.DeleteRelationshipsRequest{}))
	case "Check":
		_, err = client.Check(ctx, connect.NewRequest(&adminv1.CheckRequest{}))
	case "LookupResources":
		_, err = client.LookupResources(ctx, connect.NewRequest(&adminv1.LookupResourcesRequest{}))
	case "LookupSubjects":
		_, err = client.LookupSubjects(ctx, connect.NewRequest(&adminv1.LookupSubjectsRequest{}))
	case "RunPolicies":
		_, err = client.RunPolicies(ctx, connect.NewRequest(&adminv1.RunPoliciesRequest{}))
	case "ListPolicyFiles":
		_, err = client.ListPolicyFiles(ctx, connect.NewRequest(&adminv1.ListPolicyFilesRequest{}))
	case "ReadPolicyFile":
		_, err = client.ReadPolicyFile(ctx, connect.NewRequest(&adminv1.ReadPolicyFileRequest{}))
	case "WhatIfSchema":
		_, err = client.WhatIfSchema(ctx, connect.NewRequest(&adminv1.WhatIfSchemaRequest{}))
	case "ServicesStatus":
		_, err = client.ServicesStatus(ctx, connect.NewRequest(&adminv1.ServicesStatusRequest{}))
	case "CheckDrift":
		_, err = client.CheckDrift(ctx, connect.NewRequest(&adminv1.CheckDriftRequest{}))
	case "Reconcile":
		_, err = client.Reconcile(ctx, connect.NewRequest(&adminv1.ReconcileRequest{}))
	case "WatchRelationships":
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		stream, serr := client.WatchRelationships(ctx, connect.NewRequest(&adminv1.WatchRelationshipsRequest{}))
		if serr != nil {
			return connect.CodeOf(serr)
		}
		defer stream.Close()
		for stream.Receive() {
		}
		if err = stream.Err(); errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0 // it was watching: nothing happened in two seconds
		}
	default:
		return connect.CodeUnimplemented
	}
	if err == nil {
		return 0
	}
	return connect.CodeOf(err)
}

// TestAdminRefusals walks every RPC of the admin service from its
// descriptor: each declares platform#moderate (reads) or
// platform#manage_schema (writes) on platform:beep; anonymous callers are
// unauthenticated, a user who is neither staff nor admin is refused
// everything, staff pass the reads and are refused the writes, admins pass
// everything. An RPC added later fails this test until callEmpty knows how
// to call it.
func TestAdminRefusals(t *testing.T) {
	inst, stop := adminBeep(t)
	defer stop()
	ctx := t.Context()
	clients := map[string]adminv1connect.AuthzAdminServiceClient{
		"anonymous": adminAs(t, inst, ""), "zoe": adminAs(t, inst, "zoe"), "sam": adminAs(t, inst, "sam"), "root": adminAs(t, inst, "root"),
	}
	methods := adminv1.File_beep_admin_v1_admin_proto.Services().ByName("AuthzAdminService").Methods()
	reads, writes := 0, 0
	for i := range methods.Len() {
		method := methods.Get(i)
		req, _ := proto.GetExtension(method.Options(), authzv1.E_Requires).(*authzv1.Requirement)
		name := string(method.Name())
		t.Run(name, func(t *testing.T) {
			if req == nil || req.GetResourceId() != authz.PlatformID || req.GetResourceField() != "" ||
				(req.GetPermission() != "platform#moderate" && req.GetPermission() != "platform#manage_schema") {
				t.Fatalf("%s declares %v, want platform#moderate or platform#manage_schema on platform:beep", name, req)
			}
			write := req.GetPermission() == "platform#manage_schema"
			if write {
				writes++
			} else {
				reads++
			}
			refused := func(code connect.Code) bool {
				return code == connect.CodePermissionDenied || code == connect.CodeUnauthenticated
			}
			if code := callEmpty(ctx, clients["anonymous"], name); code != connect.CodeUnauthenticated {
				t.Errorf("anonymous: %v, want unauthenticated", code)
			}
			if code := callEmpty(ctx, clients["zoe"], name); code != connect.CodePermissionDenied {
				t.Errorf("zoe, neither staff nor admin: %v, want permission_denied", code)
			}
			code := callEmpty(ctx, clients["sam"], name)
			if write && code != connect.CodePermissionDenied {
				t.Errorf("sam, staff, on a write: %v, want permission_denied", code)
			}
			if !write && refused(code) || code == connect.CodeUnimplemented {
				t.Errorf("sam, staff, on a read: %v", code)
			}
			if code := callEmpty(ctx, clients["root"], name); refused(code) || code == connect.CodeUnimplemented {
				t.Errorf("root, admin: %v", code)
			}
		})
	}
	if reads == 0 || writes == 0 {
		t.Fatalf("%d reads and %d writes", reads, writes)
	}
}

// TestAdminAPI: relationships written by an admin, checks explained (a
// grant through a role, a denial by an overwrite's exclusion), a breaking
// schema change refused and an additive one applied, a validation file run
// with checks, the deployment's status, and drift.
func TestAdminAPI(t *testing.T) {
	inst, stop := adminBeep(t)
	defer stop()
	ctx := t.Context()
	root, sam := adminAs(t, inst, "root"), adminAs(t, inst, "sam")

	// Staff cannot write; the admin can.
	rels := workedExample(t)
	if _, err := sam.WriteRelationships(ctx, connect.NewRequest(&adminv1.WriteRelationshipsRequest{Relationships: rels})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("staff wrote relationships: %v", err)
	}
	written, err := root.WriteRelationships(ctx, connect.NewRequest(&adminv1.WriteRelationshipsRequest{Relationships: rels}))
	if err != nil || written.Msg.ZedToken == "" || int(written.Msg.Written) != len(rels) {
		t.Fatalf("admin writes: %v %v", written, err)
	}
	zed := written.Msg.ZedToken
	if _, err := root.WriteRelationships(ctx, connect.NewRequest(&adminv1.WriteRelationshipsRequest{Relationships: []string{"channel:staff#no_such_relation@user:bob"}})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("a relation the schema lacks: %v", err)
	}
	page, err := sam.ReadRelationships(ctx, connect.NewRequest(&adminv1.ReadRelationshipsRequest{
		Filter: &adminv1.RelationshipFilter{ResourceType: "server", ResourceId: "gophers", Relation: "timed_out"}, AtZedToken: zed}))
	if err != nil || len(page.Msg.Relationships) != 1 || page.Msg.Relationships[0].Text != "server:gophers#timed_out@user:carl[expiration:2099-01-01T00:00:00Z]" {
		t.Fatalf("staff reads the timeout: %v %v", page, err)
	}

	// Explain: Bob sees #staff through his role's allow; Dina does not,
	// @everyone's deny removes it.
	check := func(subject, permission, resource string) *adminv1.CheckResponse {
		t.Helper()
		resp, err := sam.Check(ctx, connect.NewRequest(&adminv1.CheckRequest{Subject: subject, Permission: permission, Resource: resource, AtZedToken: zed, Explain: true}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg
	}
	bob := check("user:bob", "view_channel", "channel:staff")
	if bob.Result != adminv1.CheckResult_CHECK_RESULT_ALLOWED || bob.Explanation.Result != adminv1.ExplainNode_RESULT_HOLDS {
		t.Fatalf("bob views #staff: %v", bob)
	}
	grant := findNode(bob.Explanation, func(n *adminv1.ExplainNode) bool {
		return n.Kind == adminv1.ExplainNode_KIND_CHECK && n.Relation == "role_allow_view_channel" && n.Result == adminv1.ExplainNode_RESULT_HOLDS
	})
	if grant == nil || !strings.Contains(grant.Reason, "role:moderator#member") || findNode(grant, func(n *adminv1.ExplainNode) bool {
		return slices.Contains(n.Relationships, "role:moderator#member@user:bob")
	}) == nil {
		t.Fatalf("the role that grants bob #staff is not explained: %v", grant)
	}
	if findNode(bob.Explanation, func(n *adminv1.ExplainNode) bool {
		return strings.HasPrefix(n.Reason, "granted by role_allow_view_channel")
	}) == nil {
		t.Error("the overwrite chain does not say the role's allow granted it")
	}
	dina := check("user:dina", "view_channel", "channel:staff")
	if dina.Result != adminv1.CheckResult_CHECK_RESULT_DENIED || dina.Explanation.Result != adminv1.ExplainNode_RESULT_DOES_NOT_HOLD {
		t.Fatalf("dina views #staff: %v", dina)
	}
	deny := findNode(dina.Explanation, func(n *adminv1.ExplainNode) bool {
		return n.Kind == adminv1.ExplainNode_KIND_EXCLUSION && n.Reason == "removed by everyone_deny_view_channel" &&
			len(n.Children) == 2 && n.Children[0].Result == adminv1.ExplainNode_RESULT_HOLDS
	})
	if dina.Explanation.Reason != "removed by everyone_deny_view_channel" || deny == nil ||
		findNode(deny, func(n *adminv1.ExplainNode) bool {
			return slices.Contains(n.Relationships, "channel:staff#everyone_deny_view_channel@user:*")
		}) == nil {
		t.Fatalf("dina's denial by the @everyone overwrite is not explained: %v", deny)
	}
	plain, err := sam.Check(ctx, connect.NewRequest(&adminv1.CheckRequest{Subject: "user:bob", Permission: "send_messages", Resource: "channel:staff", AtZedToken: zed}))
	if err != nil || plain.Msg.Result != adminv1.CheckResult_CHECK_RESULT_DENIED || plain.Msg.Explanation != nil || plain.Msg.CheckedAt == "" {
		t.Fatalf("bob sends in #staff: %v %v", plain, err)
	}

	// Lookups.
	found, err := sam.LookupResources(ctx, connect.NewRequest(&adminv1.LookupResourcesRequest{Subject: "user:bob", Permission: "view_channel", ResourceType: "channel", AtZedToken: zed}))
	if err != nil || len(found.Msg.Resources) != 2 {
		t.Fatalf("bob's channels: %v %v", found, err)
	}
	subjects, err := sam.LookupSubjects(ctx, connect.NewRequest(&adminv1.LookupSubjectsRequest{Resource: "channel:staff", Permission: "view_channel", SubjectType: "user", AtZedToken: zed}))
	var ids []string
	for _, s := range subjects.Msg.GetSubjects() {
		ids = append(ids, s.Id)
	}
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"user:ann", "user:bob"}) {
		t.Fatalf("who sees #staff: %v %v", ids, err)
	}

	// Schema: a breaking change is refused, with the reason; an additive
	// one is applied; staff may compare, not apply.
	live, err := sam.ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{}))
	if err != nil || live.Msg.SchemaHash == "" {
		t.Fatal(err)
	}
	breaking := strings.Replace(live.Msg.SchemaText, "relation staff: user\n", "", 1)
	breaking = strings.Replace(breaking, "permission moderate = admin + staff", "permission moderate = admin", 1)
	diff, err := sam.DiffSchema(ctx, connect.NewRequest(&adminv1.DiffSchemaRequest{SchemaText: breaking}))
	if err != nil || !diff.Msg.Breaking {
		t.Fatalf("diff of a breaking change: %v %v", diff, err)
	}
	_, err = root.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: breaking}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "platform#staff") || !strings.Contains(err.Error(), "relationships exist") {
		t.Fatalf("a breaking change applied: %v", err)
	}
	if _, err := sam.ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{})); err != nil {
		t.Fatalf("sam is still staff after the refusal: %v", err)
	}
	added := strings.Replace(live.Msg.SchemaText, "permission moderate = admin + staff", "relation auditor: user\n    permission moderate = admin + staff\n    permission audit = admin + auditor", 1)
	if _, err := sam.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: added})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("staff applied a schema: %v", err)
	}
	if _, err := root.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: added, IfSchemaHash: "stale"})); connect.CodeOf(err) != connect.CodeAborted {
		t.Fatalf("applied over a schema that changed: %v", err)
	}
	applied, err := root.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: added, IfSchemaHash: live.Msg.SchemaHash}))
	if err != nil || !applied.Msg.Written || applied.Msg.ZedToken == "" || len(applied.Msg.Changes) != 2 {
		t.Fatalf("an additive change: %v %v", applied, err)
	}
	back, err := root.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: live.Msg.SchemaText}))
	if err != nil || !back.Msg.Written {
		t.Fatalf("back to the build's schema: %v %v", back, err)
	}
	valid, err := sam.ValidateSchema(ctx, connect.NewRequest(&adminv1.ValidateSchemaRequest{SchemaText: "definition user {}\ndefinition doc {\n  relation viewer: usr\n}\n"}))
	if err != nil || valid.Msg.Valid || len(valid.Msg.Errors) != 1 || valid.Msg.Errors[0].Line != 3 {
		t.Fatalf("an invalid schema: %v %v", valid, err)
	}

	// A validation file without a schema runs against the running one,
	// with checks beside it.
	file := "relationships: |-\n  platform:beep#staff@user:kim\nassertions:\n  assertTrue:\n    - platform:beep#moderate@user:kim\n  assertFalse:\n    - platform:beep#moderate@user:kim\n"
	run, err := sam.RunPolicies(ctx, connect.NewRequest(&adminv1.RunPoliciesRequest{FileName: "kim.yaml", Content: file, Checks: []*adminv1.CheckWatch{
		{Subject: "user:kim", Permission: "manage_schema", Resource: "platform:beep", Explain: true},
		{Subject: "user:kim", Permission: "moderate", Resource: "platform:beep"},
		{Subject: "kim", Permission: "moderate", Resource: "platform:beep"},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if run.Msg.Passed || len(run.Msg.Failures) != 1 || run.Msg.Failures[0].Line != 7 || run.Msg.Assertions != 2 {
		t.Fatalf("the file's failing assertion: %v", run.Msg)
	}
	if c := run.Msg.Checks; len(c) != 3 || c[0].Result != adminv1.CheckResult_CHECK_RESULT_DENIED || c[0].Explanation == nil ||
		c[1].Result != adminv1.CheckResult_CHECK_RESULT_ALLOWED || c[2].Error == "" {
		t.Fatalf("the file's checks: %v", c)
	}

	// The deployment, and drift.
	status, err := sam.ServicesStatus(ctx, connect.NewRequest(&adminv1.ServicesStatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	health := map[string]adminv1.ServiceStatus_Health{}
	for _, s := range status.Msg.Services {
		health[s.Name] = s.Health
		if s.Name != "kratos" && s.Version == "" && s.Name != "spicedb" {
			t.Errorf("%s has no version: %v", s.Name, s)
		}
	}
	for _, name := range []string{"gateway", "spicedb", "community", "user", "chat", "admin"} {
		if health[name] != adminv1.ServiceStatus_HEALTH_SERVING {
			t.Errorf("%s: %v (%v)", name, health[name], status.Msg.Services)
		}
	}
	drift, err := sam.CheckDrift(ctx, connect.NewRequest(&adminv1.CheckDriftRequest{}))
	if err != nil || len(drift.Msg.Drift) != 0 {
		t.Fatalf("drift: %v %v", drift, err)
	}
}

func findNode(n *adminv1.ExplainNode, match func(*adminv1.ExplainNode) bool) *adminv1.ExplainNode {
	if n == nil {
		return nil
	}
	if match(n) {
		return n
	}
	for _, ch := range n.Children {
		if f := findNode(ch, match); f != nil {
			return f
		}
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	adminv1 "github.com/beepchat/beep/gen/beep/admin/v1"
	"github.com/beepchat/beep/gen/beep/admin/v1/adminv1connect"
)

func TestPlaygroundMode(t *testing.T) {
	for _, c := range []struct{ mode, role, addr, want string }{
		{"auto", roleAll, "127.0.0.1:8080 https://beep.example.org/", playgroundStaff},
		{"local", roleAll, "127.0.0.1:8080 https://beep.example.org/", ""},
		{"auto", roleAll, "127.0.0.1:8080 http://localhost:8080/", playgroundLocal},
		{"auto", roleAll, "127.0.0.1:8080", playgroundLocal},
		{"auto", roleAll, "localhost:8080", playgroundLocal},
		{"auto", roleAll, "[::1]:8080", playgroundLocal},
		{"auto", roleAll, "0.0.0.0:8080", playgroundStaff},
		{"auto", roleAll, ":8080", playgroundStaff},
		{"auto", roleGateway, "127.0.0.1:8080", playgroundStaff},
		{"local", roleAll, "127.0.0.1:0", playgroundLocal},
		{"staff", roleAll, "127.0.0.1:8080", playgroundStaff},
		{"off", roleGateway, ":8080", playgroundOff},
		{"local", roleAll, ":8080", ""},
		{"local", roleGateway, "127.0.0.1:8080", ""},
		{"everyone", roleAll, "127.0.0.1:8080", ""},
	} {
		addr, public, _ := strings.Cut(c.addr, " ")
		got, err := playgroundMode(c.mode, c.role, addr, public)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("playgroundMode(%q, %q, %q) = %q, %v; want %q", c.mode, c.role, c.addr, got, err, c.want)
		}
	}
	if _, err := parseConfig([]string{"-playground", "local", "-http-addr", "0.0.0.0:8080"}, io.Discard); err == nil {
		t.Error("-playground local on a public address was accepted")
	}
}

// asClient is the admin API's client through the gateway at addr, with
// headers set on every request.
func asClient(addr string, headers map[string]string) adminv1connect.AuthzAdminServiceClient {
	return adminv1connect.NewAuthzAdminServiceClient(&http.Client{Transport: headerTransport{headers, http.DefaultTransport}}, "http://"+addr)
}

type headerTransport struct {
	headers map[string]string
	next    http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		if k == "Host" {
			r.Host = v // Go sends r.Host, not a Host header
		} else {
			r.Header.Set(k, v)
		}
	}
	return h.next.RoundTrip(r)
}

// TestPlaygroundLocal: `beep serve` on loopback (the embedded default)
// serves the page, and lets anyone on the machine use it as platform staff
// (reads), never apply; credentials that are given are still checked.
func TestPlaygroundLocal(t *testing.T) {
	inst, _, stop := start(t, isolated(t, "-dev-token-key", devKey, "-platform-admins", "root")...)
	defer stop()
	ctx := t.Context()
	base := "http://" + inst.HTTPAddr

	if code, body := get(t, base+"/playground/"); code != 200 || !strings.Contains(body, "Beep schema playground") || !strings.Contains(body, "/playground/assets/index.js") {
		t.Fatalf("/playground/ = %d %.200s", code, body)
	}
	if code, body := get(t, base+"/playground/assets/index.js"); code != 200 || !strings.Contains(body, "RunPolicies") {
		t.Errorf("/playground/assets/index.js = %d (%d bytes)", code, len(body))
	}
	var settings map[string]string
	if code, body := get(t, base+"/playground/settings.json"); code != 200 || json.Unmarshal([]byte(body), &settings) != nil || settings["access"] != "local" {
		t.Errorf("settings.json = %d %s", code, body)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(base + "/playground")
	if err != nil || resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/playground/" {
		t.Errorf("/playground: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	anon := asClient(inst.HTTPAddr, nil)
	if s, err := anon.ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{})); err != nil || !strings.Contains(s.Msg.SchemaText, "definition platform") {
		t.Fatalf("anonymous local ReadSchema: %v", err)
	}
	files, err := anon.ListPolicyFiles(ctx, connect.NewRequest(&adminv1.ListPolicyFilesRequest{}))
	if err != nil || !slices.ContainsFunc(files.Msg.Files, func(f *adminv1.PolicyFileInfo) bool {
		return f.Name == "discord/05-worked-example.yaml" && strings.Contains(f.Title, "worked example")
	}) {
		t.Fatalf("ListPolicyFiles: %v %v", files, err)
	}
	file, err := anon.ReadPolicyFile(ctx, connect.NewRequest(&adminv1.ReadPolicyFileRequest{Name: "discord/05-worked-example.yaml"}))
	if err != nil || strings.Contains(file.Msg.Content, "schemaFile") || !strings.Contains(file.Msg.Content, "schema: |-\n  // Code generated") {
		t.Fatalf("ReadPolicyFile: %v %.300v", err, file)
	}
	// The file stands alone: it passes as it is.
	run, err := anon.RunPolicies(ctx, connect.NewRequest(&adminv1.RunPoliciesRequest{FileName: "worked.yaml", Content: file.Msg.Content}))
	if err != nil || !run.Msg.Passed || run.Msg.Assertions == 0 {
		t.Fatalf("the worked example, schema inline: %v %v", run, err)
	}
	for _, name := range []string{"../go.mod", "discord/none.yaml", ""} {
		if _, err := anon.ReadPolicyFile(ctx, connect.NewRequest(&adminv1.ReadPolicyFileRequest{Name: name})); err == nil {
			t.Errorf("ReadPolicyFile(%q) succeeded", name)
		}
	}
	// Local means staff: no writes.
	if _, err := anon.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: authz.SchemaText})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("anonymous local ApplySchema: %v, want permission_denied", err)
	}
	if _, err := anon.WriteRelationships(ctx, connect.NewRequest(&adminv1.WriteRelationshipsRequest{Relationships: []string{"platform:beep#admin@user:me"}})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("anonymous local WriteRelationships: %v, want permission_denied", err)
	}
	// Whoever gives credentials is themselves, not the local user.
	zoe := asClient(inst.HTTPAddr, map[string]string{"Authorization": "Bearer " + mustToken(t, "zoe", 3600)})
	if _, err := zoe.ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("zoe, signed in, neither staff nor admin: %v, want permission_denied", err)
	}
	// Not local: forwarded by a proxy, addressed to another host (DNS
	// rebinding), from another site's page.
	for _, h := range []map[string]string{{"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"},
		{"Host": "evil.example:8080"}, {"Origin": "https://evil.example"}} {
		if _, err := asClient(inst.HTTPAddr, h).ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("anonymous with %v: %v, want unauthenticated", h, err)
		}
	}
	if _, err := asClient(inst.HTTPAddr, map[string]string{"Origin": "http://localhost:5173"}).ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{})); err != nil {
		t.Errorf("anonymous from a local page: %v", err)
	}
	forged := asClient(inst.HTTPAddr, map[string]string{"X-Session-Token": "beep-playground-local-0000"})
	if _, err := forged.ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("a made-up session token: %v, want unauthenticated", err)
	}
	// Only the admin API: other services see an anonymous caller.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/beep.community.v1.CommunityService/ListMyServers", strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous ListMyServers: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestPlaygroundStaffOnly: a local run makes the local user staff; the
// same database started with -playground staff revokes it, and refuses
// anonymous callers; with off the page is not served.
func TestPlaygroundStaffOnly(t *testing.T) {
	args := isolated(t)
	moderates := func(inst *Instance) bool {
		t.Helper()
		d, err := inst.Authz.Check(t.Context(), authz.Check{Subject: authz.UserSubject(playgroundUser), Permission: authz.Platform.Moderate,
			ResourceID: authz.PlatformID}, authz.FullyConsistent())
		if err != nil {
			t.Fatal(err)
		}
		return d.Allowed
	}
	inst, _, stop := start(t, append(args, "-playground", "local")...)
	if !moderates(inst) {
		t.Errorf("%s is not staff with -playground local", playgroundUser)
	}
	stop()

	inst, _, stop = start(t, append(args, "-playground", "staff")...)
	if moderates(inst) {
		t.Errorf("%s is still staff with -playground staff", playgroundUser)
	}
	var settings map[string]string
	if code, body := get(t, "http://"+inst.HTTPAddr+"/playground/settings.json"); code != 200 || json.Unmarshal([]byte(body), &settings) != nil || settings["access"] != "staff" {
		t.Errorf("settings.json = %d %s", code, body)
	}
	if code, _ := get(t, "http://"+inst.HTTPAddr+"/playground/"); code != 200 {
		t.Errorf("/playground/ with -playground staff = %d", code)
	}
	if _, err := asClient(inst.HTTPAddr, nil).ReadSchema(t.Context(), connect.NewRequest(&adminv1.ReadSchemaRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("anonymous ReadSchema with -playground staff: %v, want unauthenticated", err)
	}
	stop()

	inst, _, stop = start(t, append(args, "-playground", "off")...)
	defer stop()
	if code, _ := get(t, "http://"+inst.HTTPAddr+"/playground/"); code != http.StatusNotFound {
		t.Errorf("/playground/ with -playground off = %d, want 404", code)
	}
}

// TestPlaygroundWhatIf: a proposed schema run against the live
// relationships of the worked example: who would gain a permission, which
// assertions would fail, and a breaking change marked (and refused by
// ApplySchema).
func TestPlaygroundWhatIf(t *testing.T) {
	inst, stop := adminBeep(t)
	defer stop()
	ctx := t.Context()
	root, sam := adminAs(t, inst, "root"), adminAs(t, inst, "sam")
	if _, err := root.WriteRelationships(ctx, connect.NewRequest(&adminv1.WriteRelationshipsRequest{Relationships: workedExample(t)})); err != nil {
		t.Fatal(err)
	}
	proposed := strings.Replace(authz.SchemaText, "permission delete_server = owner\n", "permission delete_server = owner + member\n", 1)
	if proposed == authz.SchemaText {
		t.Fatal("the schema has no delete_server = owner")
	}
	file := "assertions:\n  assertFalse:\n    - server:gophers#delete_server@user:bob\n  assertTrue:\n    - server:gophers#delete_server@user:ann\n"
	resp, err := sam.WhatIfSchema(ctx, connect.NewRequest(&adminv1.WhatIfSchemaRequest{SchemaText: proposed, Content: file}))
	if err != nil {
		t.Fatal(err)
	}
	w := resp.Msg
	if !w.Valid || w.Breaking || w.Truncated || w.Relationships < uint32(len(workedExample(t))) || w.Compared == 0 {
		t.Fatalf("what-if: valid %v, breaking %v, truncated %v, %d relationships, %d compared; %v", w.Valid, w.Breaking, w.Truncated, w.Relationships, w.Compared, w.Errors)
	}
	i := slices.IndexFunc(w.Changes, func(c *adminv1.PermissionChange) bool {
		return c.Resource == "server:gophers" && c.Permission == "delete_server"
	})
	if i < 0 || !slices.Equal(w.Changes[i].Gained, []string{"user:bob", "user:carl", "user:dina"}) || len(w.Changes[i].Lost) != 0 {
		t.Fatalf("server:gophers#delete_server should be gained by bob, carl and dina: %v", w.Changes)
	}
	for _, c := range w.Changes {
		if c.Permission != "delete_server" && c.Permission != "transfer_ownership" {
			t.Errorf("unexpected change %v", c)
		}
	}
	if w.Assertions != 2 || len(w.Failures) != 1 || w.Failures[0].Line != 3 || !strings.Contains(w.Failures[0].Message, "user:bob") {
		t.Errorf("assertions %d, failures %v: want bob's at line 3", w.Assertions, w.Failures)
	}
	if !slices.ContainsFunc(w.SchemaChanges, func(c *adminv1.SchemaChange) bool {
		return c.Kind == adminv1.SchemaChange_KIND_PERMISSION_CHANGED && c.Name == "delete_server" && !c.Breaking
	}) {
		t.Errorf("schema changes: %v", w.SchemaChanges)
	}

	// Removing a permission Beep uses: breaking, and root loses it.
	breaking := strings.Replace(authz.SchemaText, "    permission manage_schema = admin\n", "", 1)
	resp, err = sam.WhatIfSchema(ctx, connect.NewRequest(&adminv1.WhatIfSchemaRequest{SchemaText: breaking}))
	if err != nil || !resp.Msg.Valid || !resp.Msg.Breaking {
		t.Fatalf("breaking what-if: %v %v", resp, err)
	}
	if !slices.ContainsFunc(resp.Msg.Changes, func(c *adminv1.PermissionChange) bool {
		return c.Resource == "platform:beep" && c.Permission == "manage_schema" && slices.Contains(c.Lost, "user:root")
	}) {
		t.Errorf("root should lose platform:beep#manage_schema: %v", resp.Msg.Changes)
	}
	_, err = root.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: breaking}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "manage_schema") {
		t.Errorf("applying the breaking schema: %v", err)
	}

	// A schema that cannot hold the live relationships is said so.
	orphaning := strings.Replace(authz.SchemaText, "    relation timed_out: user with expiration\n", "", 1)
	orphaning = strings.ReplaceAll(orphaning, " - timed_out", "")
	orphaning = strings.ReplaceAll(orphaning, " - server->timed_out", "")
	resp, err = sam.WhatIfSchema(ctx, connect.NewRequest(&adminv1.WhatIfSchemaRequest{SchemaText: orphaning}))
	if err != nil || resp.Msg.Valid || len(resp.Msg.Errors) == 0 || !strings.Contains(resp.Msg.Errors[0].Message, "timed_out") {
		t.Errorf("what-if without server#timed_out: %v %v", resp, err)
	}
	// A schema that does not compile: located errors.
	resp, err = sam.WhatIfSchema(ctx, connect.NewRequest(&adminv1.WhatIfSchemaRequest{SchemaText: "definition user {}\ndefinition x {\n  relation r: nothere\n}"}))
	if err != nil || resp.Msg.Valid || len(resp.Msg.Errors) == 0 || resp.Msg.Errors[0].Line != 3 {
		t.Errorf("what-if of a broken schema: %v %v", resp, err)
	}
}

// TestPlaygroundBrowser runs web/playground/test/browser.mjs in headless
// Chromium against an in-process Beep: the page loads, a schema error is
// shown and fixed, a failing assertion located, a check explained, a
// policies-test/ file opened, and an admin's breaking change refused.
// scripts/ensure-playwright installs Chromium (apt) and the npm packages
// when they are missing; the test fails, never skips, when it cannot.
// Screenshots: artifacts/playground/.
func TestPlaygroundBrowser(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	ensure := exec.CommandContext(t.Context(), filepath.Join(root, "scripts/ensure-playwright"))
	if out, err := ensure.CombinedOutput(); err != nil {
		t.Fatalf("scripts/ensure-playwright: %v\n%s", err, out)
	}
	b, stop := adminBeep(t, "-playground", "local")
	defer stop()
	artifacts := filepath.Join(root, "artifacts", "playground")
	if err := os.RemoveAll(artifacts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "test/browser.mjs")
	cmd.Dir = filepath.Join(root, "web", "playground")
	cmd.Env = append(os.Environ(), "BEEP_URL=http://"+b.HTTPAddr, "ARTIFACTS="+artifacts, "ADMIN_TOKEN="+mustToken(t, "root", 3600))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the browser test failed (%v); screenshots in %s:\n%s", err, artifacts, out.String())
	}
	t.Logf("%s", out.String())
	for _, shot := range []string{"01-loaded", "02-schema-error", "03-assertion-failed", "04-explanation", "05-graph", "06-worked-example", "07-what-if", "08-apply-refused"} {
		if st, err := os.Stat(filepath.Join(artifacts, shot+".png")); err != nil || st.Size() < 10000 {
			t.Errorf("screenshot %s: %v", shot, err)
		}
	}
}

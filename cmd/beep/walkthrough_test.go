package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/net/http2"

	"github.com/beepchat/beep/authz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/services/gateway"
)

const devKey = "walkthrough-development-key"

// api calls a Beep RPC with JSON over HTTP/1.1, as the README's curl does.
type api struct {
	t    *testing.T
	base string
}

func (a api) call(token, zed, method string, body any) (int, map[string]any) {
	a.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, a.base+"/beep.community.v1.CommunityService/"+method, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if zed != "" {
		req.Header.Set("Beep-Zed-Token", zed)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

func (a api) ok(token, zed, method string, body any) map[string]any {
	a.t.Helper()
	status, out := a.call(token, zed, method, body)
	if status != http.StatusOK {
		a.t.Fatalf("%s: %d %v", method, status, out)
	}
	return out
}

func mustToken(t *testing.T, user string, seconds int) string {
	tok, err := gateway.IssueDevToken([]byte(devKey), user, time.Duration(seconds)*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestWalkthrough is the README walkthrough: Ann creates a server, a role,
// a private channel with overwrites; Bob joins and is refused in the private
// channel until Ann gives him the role; the effective permissions show it.
func TestWalkthrough(t *testing.T) {
	inst, _, stop := start(t, isolated(t, "-dev-token-key", devKey)...)
	defer stop()
	a := api{t: t, base: "http://" + inst.HTTPAddr}
	ann := mustToken(t, "ann", 3600)
	bob := mustToken(t, "bob", 3600)

	created := a.ok(ann, "", "CreateServer", map[string]any{"name": "Gophers"})
	server := created["server"].(map[string]any)["id"].(string)
	general := created["generalChannel"].(map[string]any)["id"].(string)
	zed := created["zedToken"].(string)

	role := a.ok(ann, zed, "CreateRole", map[string]any{"serverId": server, "name": "Mods", "permissions": []string{"view_channel", "manage_messages"}})
	roleID := role["role"].(map[string]any)["id"].(string)
	channel := a.ok(ann, role["zedToken"].(string), "CreateChannel", map[string]any{
		"serverId": server, "name": "staff", "kind": "CHANNEL_KIND_TEXT",
		"overwrites": []map[string]any{
			{"targetKind": "TARGET_KIND_EVERYONE", "deny": []string{"view_channel"}},
			{"targetKind": "TARGET_KIND_ROLE", "targetId": roleID, "allow": []string{"view_channel"}},
		},
	})
	staff := channel["channel"].(map[string]any)["id"].(string)

	// The server is private: Bob needs an invite.
	if status, out := a.call(bob, channel["zedToken"].(string), "JoinServer", map[string]any{"serverId": server}); status != http.StatusForbidden {
		t.Fatalf("bob joined a private server without an invite: %d %v", status, out)
	}
	invite := a.ok(ann, channel["zedToken"].(string), "CreateInvite", map[string]any{"channelId": general, "maxUses": 5})
	code := invite["invite"].(map[string]any)["code"].(string)
	joined := a.ok(bob, invite["zedToken"].(string), "JoinByInvite", map[string]any{"code": code})
	status, refused := a.call(bob, joined["zedToken"].(string), "GetEffectivePermissions", map[string]any{"channelId": staff})
	if status != http.StatusForbidden || refused["code"] != "permission_denied" {
		t.Fatalf("bob in #staff before the role: %d %v", status, refused)
	}

	given := a.ok(ann, joined["zedToken"].(string), "AddMemberRole", map[string]any{"roleId": roleID, "userId": "bob"})
	perms := a.ok(bob, given["zedToken"].(string), "GetEffectivePermissions", map[string]any{"channelId": staff})
	var names []string
	for _, p := range perms["permissions"].([]any) {
		names = append(names, p.(string))
	}
	if !slices.Contains(names, "view_channel") || !slices.Contains(names, "manage_messages") || slices.Contains(names, "manage_channels") {
		t.Fatalf("bob's permissions in #staff: %v", names)
	}

	// The same API over gRPC (h2c), as grpcurl or buf curl would use it.
	h2c := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	grpcClient := communityv1connect.NewCommunityServiceClient(h2c, a.base, connect.WithGRPC())
	req := connect.NewRequest(&communityv1.GetServerRequest{ServerId: server})
	req.Header().Set("Authorization", "Bearer "+bob)
	req.Header().Set("Beep-Zed-Token", given["zedToken"].(string))
	got, err := grpcClient.GetServer(t.Context(), req)
	if err != nil || got.Msg.Server.Name != "Gophers" {
		t.Fatalf("gRPC GetServer: %v %v", got, err)
	}

	// Metrics: the refusal above, and the gateway's requests by procedure.
	resp, err := http.Get(a.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`beep_authz_checks_total{permission="channel#view_channel",result="denied"} 1`,
		`beep_authz_checks_total{permission="authenticated",result="allowed"}`,
		`beep_gateway_requests_total{route="/beep.community.v1.CommunityService/CreateServer",status="200"} 1`,
		`beep_gateway_request_duration_seconds_bucket{route="/beep.community.v1.CommunityService/GetEffectivePermissions"`,
		"go_goroutines",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// No credentials, forged ones, and development tokens where none are accepted.
	if status, out := a.call("", "", "ListMyServers", map[string]any{}); status != http.StatusUnauthorized {
		t.Errorf("anonymous: %d %v", status, out)
	}
	if status, out := a.call(strings.TrimSuffix(bob, bob[len(bob)-3:])+"abc", "", "ListMyServers", map[string]any{}); status != http.StatusUnauthorized {
		t.Errorf("forged token: %d %v", status, out)
	}
}

// TestDevTokensOffByDefault: the embedded default accepts no development token.
func TestDevTokensOffByDefault(t *testing.T) {
	inst, _, stop := start(t, isolated(t)...)
	defer stop()
	a := api{t: t, base: "http://" + inst.HTTPAddr}
	status, out := a.call(mustToken(t, "ann", 3600), "", "ListMyServers", map[string]any{})
	if status != http.StatusUnauthorized {
		t.Fatalf("a development token was accepted by default: %d %v", status, out)
	}
}

// TestReconcileCommand: `beep reconcile -check` reports drift (errDrift,
// exit status 3) and `beep reconcile` converges it, next to a running Beep.
func TestReconcileCommand(t *testing.T) {
	args := isolated(t, "-dev-token-key", devKey)
	inst, _, stop := start(t, args...)
	defer stop()
	a := api{t: t, base: "http://" + inst.HTTPAddr}
	created := a.ok(mustToken(t, "ann", 3600), "", "CreateServer", map[string]any{"name": "Drifty"})
	server := created["server"].(map[string]any)["id"].(string)

	var out bytes.Buffer
	if err := run(t.Context(), append([]string{"reconcile", "-check"}, args...), &out, io.Discard, nil); err != nil {
		t.Fatalf("no drift expected: %v\n%s", err, out.String())
	}
	// Lose the owner's relationship behind the service's back.
	if _, err := inst.Authz.DeleteMatching(t.Context(), authz.Filter{ResourceType: authz.TypeServer, ResourceID: server, Relation: authz.Server.Owner.Name}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run(t.Context(), append([]string{"reconcile", "-check"}, args...), &out, io.Discard, nil)
	if !errors.Is(err, errDrift) || !strings.Contains(out.String(), "+ server:"+server+"#owner@user:ann") {
		t.Fatalf("drift not reported: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(t.Context(), append([]string{"reconcile"}, args...), &out, io.Discard, nil); err != nil {
		t.Fatalf("reconcile: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := run(t.Context(), append([]string{"reconcile", "-check"}, args...), &out, io.Discard, nil); err != nil {
		t.Fatalf("drift left after reconcile: %v\n%s", err, out.String())
	}
}

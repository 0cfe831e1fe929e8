package main

import (
	"net/http"
	"testing"
)

// TestProfilesThroughTheGateway: the user service behind the gateway, and
// the graph the community service keeps for it: bob sees ann's profile only
// while they share a server.
func TestProfilesThroughTheGateway(t *testing.T) {
	inst, _, stop := start(t, isolated(t, "-dev-token-key", devKey)...)
	defer stop()
	base := "http://" + inst.HTTPAddr
	ann, bob := mustToken(t, "ann", 600), mustToken(t, "bob", 600)
	users := func(token, zed, method string, body any) (int, map[string]any) {
		header := http.Header{"Authorization": {"Bearer " + token}}
		if zed != "" {
			header.Set("Beep-Zed-Token", zed)
		}
		return jsonCall(t, http.MethodPost, base+"/beep.user.v1.UserService/"+method, header, body)
	}
	community := api{t: t, base: base}

	code, updated := users(ann, "", "UpdateMyProfile", map[string]any{"username": "ann", "displayName": "Ann"})
	if code != http.StatusOK {
		t.Fatalf("UpdateMyProfile: %d %v", code, updated)
	}
	if code, out := users(bob, updated["zedToken"].(string), "GetProfile", map[string]any{"userId": "ann"}); code != http.StatusForbidden {
		t.Fatalf("bob, a stranger, reads ann's profile: %d %v", code, out)
	}
	server := community.ok(ann, "", "CreateServer", map[string]any{"name": "Gophers", "public": true})
	serverID := server["server"].(map[string]any)["id"].(string)
	joined := community.ok(bob, server["zedToken"].(string), "JoinServer", map[string]any{"serverId": serverID})
	code, seen := users(bob, joined["zedToken"].(string), "GetProfile", map[string]any{"userId": "ann"})
	if code != http.StatusOK || seen["profile"].(map[string]any)["displayName"] != "Ann" {
		t.Fatalf("bob, who shares a server with ann: %d %v", code, seen)
	}
	left := community.ok(bob, joined["zedToken"].(string), "LeaveServer", map[string]any{"serverId": serverID})
	if code, out := users(bob, left["zedToken"].(string), "GetProfile", map[string]any{"userId": "ann"}); code != http.StatusForbidden {
		t.Fatalf("bob, after leaving the only shared server: %d %v", code, out)
	}
}

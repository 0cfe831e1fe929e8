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

	// Ann's data: the user service asks the community service, as ann, for
	// her servers (through its generated client, in memory here).
	if code, out := users(ann, "", "BlockUser", map[string]any{"userId": "mallory"}); code != http.StatusOK {
		t.Fatalf("BlockUser: %d %v", code, out)
	}
	code, export := users(ann, "", "ExportMyData", map[string]any{})
	if code != http.StatusOK {
		t.Fatalf("ExportMyData: %d %v", code, export)
	}
	servers, _ := export["servers"].([]any)
	if len(servers) != 1 || servers[0].(map[string]any)["id"] != serverID || export["profile"].(map[string]any)["username"] != "ann" {
		t.Fatalf("ann's export: %v", export)
	}
	if blocked, _ := export["blockedUserIds"].([]any); len(blocked) != 1 || blocked[0] != "mallory" {
		t.Fatalf("ann's export lists blocks %v", export["blockedUserIds"])
	}
	// Bob's export knows nothing of ann's server any more.
	if code, out := users(bob, "", "ExportMyData", map[string]any{}); code != http.StatusOK || out["servers"] != nil {
		t.Fatalf("bob's export: %d %v", code, out)
	}
}

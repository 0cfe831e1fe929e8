package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/ldapbridge/ldaptest"
)

// TestThreeWaysInAndOneOut is identity's "done means", end to end through
// the gateway of one `beep serve`: ann registers with a password, bob signs
// in with Google and links his Polytech account, cat signs in with
// Polytech; all three use the community API; then ann deletes her account,
// and nothing of her remains: not in Kratos, not in any database, not in
// the graph. Her server passes to bob.
func TestThreeWaysInAndOneOut(t *testing.T) {
	bin := kratosBinary(t)
	ldapURL := ldaptest.Start(t,
		ldaptest.Person{UID: "bob", Password: "p0lytech", Mail: "bob@polytech.example", Name: "Bob"},
		ldaptest.Person{UID: "cat", Password: "c4t-polytech", Mail: "cat@polytech.example", Name: "Cat"})
	addr, kratosAdmin := freeAddr(t), freeAddr(t)
	base := "http://" + addr
	google := googleStandIn(t, base, "beep-google")
	databases := map[string]string{
		"community":    pgtest.NewDatabaseName(t, "beep_e2e_community"),
		"user":         pgtest.NewDatabaseName(t, "beep_e2e_user"),
		"chat":         pgtest.NewDatabaseName(t, "beep_e2e_chat"),
		"notification": pgtest.NewDatabaseName(t, "beep_e2e_notification"),
		"spicedb":      pgtest.NewDatabaseName(t, "beep_e2e_spicedb"),
	}
	inst, logs, stop := start(t, "-postgres-url", pgtest.AdminURL(), "-http-addr", addr, "-spicedb-grpc-addr", "127.0.0.1:0",
		"-community-database", databases["community"], "-user-database", databases["user"], "-chat-database", databases["chat"],
		"-notification-database", databases["notification"], "-spicedb-database", databases["spicedb"],
		"-kratos-bin", bin, "-kratos-dsn", "memory", "-kratos-public-addr", freeAddr(t), "-kratos-admin-addr", kratosAdmin,
		"-session-cache-ttl", "0s", "-spicedb-gc-window", "10s",
		"-google-issuer", google.URL, "-google-client-id", "beep-google", "-google-client-secret", "google-secret",
		"-ldap-url", ldapURL, "-ldap-bind-dn", ldaptest.SearchDN, "-ldap-bind-password", ldaptest.SearchPassword, "-ldap-base-dn", ldaptest.BaseDN)
	defer stop()

	// ann: a password, the API flow, a session token.
	code, flow := jsonCall(t, http.MethodGet, base+"/self-service/registration/api", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("registration flow: %d %v\n%s", code, flow, logs)
	}
	code, registered := jsonCall(t, http.MethodPost, flow["ui"].(map[string]any)["action"].(string), nil, map[string]any{
		"method": "password", "password": "correct horse battery staple 42",
		"traits": map[string]any{"email": "ann@example.org", "username": "ann"}})
	if code != http.StatusOK {
		t.Fatalf("registration: %d %v", code, registered)
	}
	annToken := registered["session_token"].(string)
	ann := registered["identity"].(map[string]any)["id"].(string)
	annClient := &http.Client{Transport: bearer{annToken}}

	// bob: Google in a browser, then Polytech linked in his settings.
	bobClient := browser(t)
	finishProviderSignIn(t, bobClient, base, "google", providerLogin(t, bobClient, startProviderSignIn(t, bobClient, base, "google"), "bob@gmail.example", "g00gle", http.StatusFound), logs)
	bob := whoami(t, bobClient, base)
	linkProvider(t, bobClient, base, "polytech", "bob", "p0lytech", logs)
	polytechBob := browser(t)
	finishProviderSignIn(t, polytechBob, base, "polytech", providerLogin(t, polytechBob, startProviderSignIn(t, polytechBob, base, "polytech"), "bob", "p0lytech", http.StatusFound), logs)
	if got := whoami(t, polytechBob, base); got != bob {
		t.Fatalf("bob's Polytech sign-in is identity %s, want his Google one %s", got, bob)
	}

	// cat: Polytech only.
	catClient := browser(t)
	finishProviderSignIn(t, catClient, base, "polytech", providerLogin(t, catClient, startProviderSignIn(t, catClient, base, "polytech"), "cat", "c4t-polytech", http.StatusFound), logs)
	cat := whoami(t, catClient, base)
	if len(map[string]bool{ann: true, bob: true, cat: true}) != 3 {
		t.Fatalf("three people, identities %s %s %s", ann, bob, cat)
	}

	// All three use the community API through the gateway.
	var zed string
	rpc := func(c *http.Client, procedure string, body map[string]any, want int) map[string]any {
		t.Helper()
		code, out := jsonCallWith(t, c, http.MethodPost, base+"/"+procedure, http.Header{"Beep-Zed-Token": {zed}}, body)
		if code != want {
			t.Fatalf("%s: %d %v", procedure, code, out)
		}
		if z, ok := out["zedToken"].(string); ok && z != "" {
			zed = z
		}
		return out
	}
	created := rpc(annClient, "beep.community.v1.CommunityService/CreateServer", map[string]any{"name": "Ann's place", "public": true}, http.StatusOK)
	server := created["server"].(map[string]any)["id"].(string)
	rpc(bobClient, "beep.community.v1.CommunityService/JoinServer", map[string]any{"serverId": server}, http.StatusOK)
	rpc(catClient, "beep.community.v1.CommunityService/JoinServer", map[string]any{"serverId": server}, http.StatusOK)
	rpc(catClient, "beep.user.v1.UserService/UpdateMyProfile", map[string]any{"username": "cat"}, http.StatusOK)
	rpc(annClient, "beep.user.v1.UserService/UpdateMyProfile", map[string]any{"username": "ann", "displayName": "Ann"}, http.StatusOK)
	rpc(annClient, "beep.user.v1.UserService/BlockUser", map[string]any{"userId": cat}, http.StatusOK)
	members := rpc(bobClient, "beep.community.v1.CommunityService/ListMembers", map[string]any{"serverId": server}, http.StatusOK)
	if n := len(members["members"].([]any)); n != 3 {
		t.Fatalf("%d members, want 3", n)
	}
	// ann and bob chat in #general and in a DM.
	general := "channel:" + created["generalChannel"].(map[string]any)["id"].(string)
	said := rpc(annClient, "beep.chat.v1.ChatService/SendMessage", map[string]any{"conversation": general, "content": "hi <@" + bob + ">", "nonce": "a1"}, http.StatusOK)
	rpc(bobClient, "beep.chat.v1.ChatService/SendMessage", map[string]any{"conversation": general, "content": "hello <@" + ann + ">", "replyToId": said["message"].(map[string]any)["id"]}, http.StatusOK)
	rpc(annClient, "beep.chat.v1.ChatService/MarkRead", map[string]any{"conversation": general, "messageId": said["message"].(map[string]any)["id"]}, http.StatusOK)
	dm := rpc(annClient, "beep.chat.v1.ChatService/OpenDM", map[string]any{"userId": bob}, http.StatusOK)
	rpc(annClient, "beep.chat.v1.ChatService/SendMessage", map[string]any{"conversation": dm["dmChannel"].(map[string]any)["conversation"], "content": "psst"}, http.StatusOK)
	// Each was mentioned by the other: a notification apiece.
	for _, c := range []*http.Client{annClient, bobClient} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			listed := rpc(c, "beep.notification.v1.NotificationService/ListNotifications", map[string]any{}, http.StatusOK)
			if n, _ := listed["notifications"].([]any); len(n) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no notification of the mention within 10s: %v", listed)
			}
		}
	}
	// ann's data export includes what Kratos keeps of her.
	export := rpc(annClient, "beep.user.v1.UserService/ExportMyData", map[string]any{}, http.StatusOK)
	if traits, _ := export["identity"].(map[string]any)["traits"].(map[string]any); traits["email"] != "ann@example.org" {
		t.Fatalf("the export's identity: %v", export["identity"])
	}
	if raw, _ := json.Marshal(export); strings.Contains(string(raw), "hashed_password") || strings.Contains(string(raw), "$argon2") || strings.Contains(string(raw), "$2a$") {
		t.Fatalf("the export carries a password hash: %s", raw)
	}

	// ann deletes her account.
	deleted := rpc(annClient, "beep.user.v1.UserService/DeleteMyAccount", map[string]any{"confirmUserId": ann}, http.StatusOK)
	t.Logf("DeleteMyAccount answered %v", deleted["state"])
	// Her session is gone with her identity.
	if code, _ := jsonCallWith(t, annClient, http.MethodPost, base+"/beep.community.v1.CommunityService/ListMyServers", nil, map[string]any{}); code != http.StatusUnauthorized {
		t.Fatalf("ann's session after the deletion: %d", code)
	}
	// The erasure finishes (a last pass after the grace period).
	deadline := time.Now().Add(time.Minute)
	for len(pgtest.Find(t, databases["user"], ann)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the erasure did not finish: %v\n%s", pgtest.Find(t, databases["user"], ann), logs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name, db := range databases {
		if name == "spicedb" {
			continue // below
		}
		if found := pgtest.Find(t, db, ann); len(found) > 0 {
			t.Errorf("ann remains in %v", found)
		}
	}
	// SpiceDB keeps deleted relationships for reads at older revisions,
	// then purges them: after -spicedb-gc-window, nothing of ann is left in
	// its tables either.
	for found := pgtest.Find(t, databases["spicedb"], ann); len(found) > 0; found = pgtest.Find(t, databases["spicedb"], ann) {
		if time.Now().After(deadline) {
			t.Fatalf("ann remains in SpiceDB's datastore after its GC window: %v", found)
		}
		time.Sleep(500 * time.Millisecond)
	}
	code, _ = jsonCall(t, http.MethodGet, "http://"+kratosAdmin+"/admin/identities/"+ann, nil, nil)
	if code != http.StatusNotFound {
		t.Errorf("Kratos still has ann's identity: %d", code)
	}
	// The graph, read through SpiceDB's API too.
	if rels, err := inst.Authz.RelationshipsOfUser(t.Context(), ann, authz.FullyConsistent()); err != nil || len(rels) > 0 {
		t.Errorf("relationships of ann remain: %v %v", rels, err)
	}
	// Her message stays in #general, its author forgotten, for bob to read.
	history := rpc(bobClient, "beep.chat.v1.ChatService/ListMessages", map[string]any{"conversation": general}, http.StatusOK)["messages"].([]any)
	if len(history) != 2 || history[1].(map[string]any)["authorId"] != "~deleted" {
		t.Fatalf("#general after ann's erasure: %v", history)
	}
	// Her server is bob's now (he joined first), and works for him and cat.
	zed = ""
	got := rpc(bobClient, "beep.community.v1.CommunityService/GetServer", map[string]any{"serverId": server}, http.StatusOK)
	if owner := got["server"].(map[string]any)["ownerId"]; owner != bob {
		t.Fatalf("the server's owner is %v, want bob", owner)
	}
	rpc(bobClient, "beep.community.v1.CommunityService/UpdateServer", map[string]any{"serverId": server, "name": "Bob's place"}, http.StatusOK)
	rpc(catClient, "beep.community.v1.CommunityService/ListMembers", map[string]any{"serverId": server}, http.StatusOK)
}

// bearer signs every request with a session token.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// whoami is the identity of a browser's session.
func whoami(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/sessions/whoami", nil)
	_, body := hop(t, c, req, http.StatusOK)
	var s struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
	}
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.Identity.ID == "" {
		t.Fatalf("whoami: %s", body)
	}
	return s.Identity.ID
}

// linkProvider links a provider account to a signed-in browser's identity
// in Kratos' settings flow.
func linkProvider(t *testing.T, c *http.Client, base, provider, username, password string, logs *logBuffer) {
	t.Helper()
	resp := settings(t, c, base, "link", provider)
	authorize := resp.Header.Get("Location")
	if !strings.HasPrefix(authorize, base+"/"+provider+"/authorize?") {
		t.Fatalf("linking sent the browser to %s\n%s", authorize, logs)
	}
	finishProviderSignIn(t, c, base, provider, providerLogin(t, c, authorize, username, password, http.StatusFound), logs)
}

// settings submits Kratos' settings flow in a signed-in browser with one
// field set (link or unlink: a provider).
func settings(t *testing.T, c *http.Client, base, field, value string) *http.Response {
	t.Helper()
	resp, _ := browse(t, c, base+"/self-service/settings/browser", http.StatusSeeOther)
	loc := resp.Header.Get("Location")
	flow := loc[strings.Index(loc, "flow=")+len("flow="):]
	_, body := browse(t, c, base+"/self-service/settings/flows?id="+flow, http.StatusOK)
	action, csrf := flowForm(t, body)
	resp, _ = postForm(t, c, action, map[string][]string{"csrf_token": {csrf}, field: {value}}, http.StatusSeeOther)
	return resp
}

package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	"github.com/beepchat/beep/authz/inprocess"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/internal/memnet"
)

// http2Client speaks HTTP/2 without TLS (h2c) over TCP, as gRPC clients do.
func http2Client() *http.Client { return &http.Client{Transport: memnet.H2CTransport(nil)} }

// TestDistributedMode runs Beep split as on Kubernetes, for real, in this
// process: SpiceDB alone on TCP, `beep serve community` pointed at it, and
// `beep serve gateway` pointed at the community service over TCP. Requests
// through the gateway's public port work as in the all-in-one process, in
// Connect and gRPC; the community port refuses requests that do not carry a
// principal signed with the deployment's internal key.
func TestDistributedMode(t *testing.T) {
	const spiceKey = "a-preshared-key-for-this-test"
	internalKey := strings.Repeat("i", connectauthz.MinKeyBytes)
	spice, err := inprocess.Start(t.Context(), inprocess.Config{GRPCAddr: "127.0.0.1:0", PresharedKey: spiceKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = spice.Close() })

	community, _, stopCommunity := start(t, append([]string{"community"}, isolated(t, "-spicedb-endpoint", spice.Addr(), "-spicedb-insecure",
		"-spicedb-preshared-key", spiceKey, "-internal-key", internalKey, "-platform-admins", "root")...)...)
	defer stopCommunity()
	users, _, stopUsers := start(t, append([]string{"user"}, isolated(t, "-spicedb-endpoint", spice.Addr(), "-spicedb-insecure",
		"-spicedb-preshared-key", spiceKey, "-internal-key", internalKey, "-community-url", "http://"+community.HTTPAddr)...)...)
	defer stopUsers()
	chats, _, stopChats := start(t, append([]string{"chat"}, isolated(t, "-spicedb-endpoint", spice.Addr(), "-spicedb-insecure",
		"-spicedb-preshared-key", spiceKey, "-internal-key", internalKey, "-community-url", "http://"+community.HTTPAddr)...)...)
	defer stopChats()
	notifications, _, stopNotifications := start(t, append([]string{"notification"}, isolated(t, "-spicedb-endpoint", spice.Addr(), "-spicedb-insecure",
		"-spicedb-preshared-key", spiceKey, "-internal-key", internalKey, "-chat-url", "http://"+chats.HTTPAddr)...)...)
	defer stopNotifications()
	gw, _, stopGateway := start(t, "gateway", "-http-addr", "127.0.0.1:0", "-community-url", "http://"+community.HTTPAddr,
		"-user-url", "http://"+users.HTTPAddr, "-chat-url", "http://"+chats.HTTPAddr, "-notification-url", "http://"+notifications.HTTPAddr,
		"-internal-key", internalKey, "-dev-token-key", devKey)
	defer stopGateway()
	if code, body := get(t, "http://"+gw.HTTPAddr+"/readyz"); code != http.StatusOK {
		t.Fatalf("gateway /readyz: %d %s", code, body)
	}
	// Each service alone serves its health, readiness, metrics and
	// grpc.health.v1 on its own port.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := get(t, "http://"+community.HTTPAddr+path); code != http.StatusOK {
			t.Fatalf("community %s: %d %s", path, code, body)
		}
	}
	if code, health := jsonCall(t, http.MethodPost, "http://"+users.HTTPAddr+"/grpc.health.v1.Health/Check", nil,
		map[string]any{"service": "beep.user.v1.UserService"}); code != http.StatusOK || health["status"] != "SERVING_STATUS_SERVING" {
		t.Fatalf("the user service's grpc.health.v1: %d %v", code, health)
	}

	ctx := t.Context()
	ann, bob := mustToken(t, "ann", 600), mustToken(t, "bob", 600)
	for _, protocol := range []struct {
		name string
		opt  connect.ClientOption
	}{{"connect", connect.WithProtoJSON()}, {"grpc", connect.WithGRPC()}} {
		t.Run(protocol.name, func(t *testing.T) {
			client := communityv1connect.NewCommunityServiceClient(http2Client(), "http://"+gw.HTTPAddr, protocol.opt)
			withToken := func(token, zed string, req connect.AnyRequest) {
				req.Header().Set("Authorization", "Bearer "+token)
				req.Header().Set(connectauthz.TokenHeader, zed)
			}
			create := connect.NewRequest(&communityv1.CreateServerRequest{Name: "Split " + protocol.name})
			withToken(ann, "", create)
			created, err := client.CreateServer(ctx, create)
			if err != nil {
				t.Fatal(err)
			}
			perms := connect.NewRequest(&communityv1.GetEffectivePermissionsRequest{ChannelId: created.Msg.GeneralChannel.Id})
			withToken(ann, created.Msg.ZedToken, perms)
			got, err := client.GetEffectivePermissions(ctx, perms)
			if err != nil || len(got.Msg.Permissions) != len(authz.AllFlags().List())-len(authz.AllFlags().NonOverwritable().List()) {
				t.Fatalf("the owner's permissions in #general: %v %v", got, err)
			}
			get := connect.NewRequest(&communityv1.GetServerRequest{ServerId: created.Msg.Server.Id})
			withToken(bob, created.Msg.ZedToken, get)
			if _, err := client.GetServer(ctx, get); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Fatalf("bob, a stranger, gets ann's server: %v", err)
			}
		})
	}

	// The chat service, alone, asks the community service over TCP (is
	// #general a text channel?), as ann.
	if code, health := jsonCall(t, http.MethodPost, "http://"+chats.HTTPAddr+"/grpc.health.v1.Health/Check", nil,
		map[string]any{"service": "beep.chat.v1.ChatService"}); code != http.StatusOK || health["status"] != "SERVING_STATUS_SERVING" {
		t.Fatalf("the chat service's grpc.health.v1: %d %v", code, health)
	}
	code, made := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.community.v1.CommunityService/CreateServer",
		http.Header{"Authorization": {"Bearer " + ann}}, map[string]any{"name": "Chatty"})
	if code != http.StatusOK {
		t.Fatalf("CreateServer: %d %v", code, made)
	}
	general := "channel:" + made["generalChannel"].(map[string]any)["id"].(string)
	// ann's stream over WebSocket, upgraded through the gateway's proxy to
	// the chat service alone; a page of another site may not open it.
	socket := openSocket(t, "http://"+gw.HTTPAddr, ann, "")
	if _, status := dialSocket(t, "http://"+gw.HTTPAddr, ann, "http://elsewhere.example"); status != http.StatusForbidden {
		t.Fatalf("a WebSocket opened from another site: HTTP %d, want 403", status)
	}
	if _, status := dialSocket(t, "http://"+gw.HTTPAddr, "", ""); status != http.StatusUnauthorized {
		t.Fatalf("a WebSocket opened by no one signed in: HTTP %d, want 401", status)
	}
	code, sent := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.chat.v1.ChatService/SendMessage",
		http.Header{"Authorization": {"Bearer " + ann}, "Beep-Zed-Token": {made["zedToken"].(string)}}, map[string]any{"conversation": general, "content": "split"})
	if code != http.StatusOK || sent["message"].(map[string]any)["content"] != "split" {
		t.Fatalf("a message through the split services: %d %v", code, sent)
	}
	if got := socket.nextMessage(t); got != "split" {
		t.Fatalf("ann's WebSocket received %q, want her message", got)
	}
	if code, out := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.chat.v1.ChatService/ListMessages",
		http.Header{"Authorization": {"Bearer " + bob}, "Beep-Zed-Token": {made["zedToken"].(string)}}, map[string]any{"conversation": general}); code != http.StatusForbidden {
		t.Fatalf("bob, a stranger, reads ann's channel: %d %v", code, out)
	}

	// The admin service lives beside the community service; the gateway
	// routes it there. root is a platform admin (-platform-admins); zoe
	// is nobody.
	fresh, err := spice.Client().Write(ctx, []authz.Update{authz.Touch(authz.Relationship{Relation: authz.Platform.Staff,
		ResourceID: authz.PlatformID, Subject: authz.UserSubject("sam")})})
	if err != nil {
		t.Fatal(err)
	}
	adminCall := func(user string) (int, map[string]any) {
		return jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.admin.v1.AuthzAdminService/ServicesStatus",
			http.Header{"Authorization": {"Bearer " + mustToken(t, user, 600)}, "Beep-Zed-Token": {string(fresh)}}, map[string]any{})
	}
	if code, status := adminCall("root"); code != http.StatusOK || !strings.Contains(fmt.Sprint(status), "community") ||
		!strings.Contains(fmt.Sprint(status), "spicedb") {
		t.Fatalf("the admin service through the split gateway: %d %v", code, status)
	}
	if code, status := adminCall("zoe"); code != http.StatusForbidden {
		t.Fatalf("zoe asked the admin service: %d %v", code, status)
	}
	// The gateway alone serves the schema playground, for staff only (its
	// default there), whose calls reach the admin service beside community.
	if code, body := get(t, "http://"+gw.HTTPAddr+"/playground/"); code != http.StatusOK || !strings.Contains(body, "Beep schema playground") {
		t.Errorf("the split gateway's /playground/: %d %.100s", code, body)
	}
	if code, body := get(t, "http://"+gw.HTTPAddr+"/playground/settings.json"); code != http.StatusOK || !strings.Contains(body, `"access":"staff"`) {
		t.Errorf("the split gateway's playground settings: %d %s", code, body)
	}
	if code, files := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.admin.v1.AuthzAdminService/ListPolicyFiles",
		http.Header{"Authorization": {"Bearer " + mustToken(t, "sam", 600)}, "Beep-Zed-Token": {string(fresh)}}, map[string]any{}); code != http.StatusOK ||
		!strings.Contains(fmt.Sprint(files), "discord/05-worked-example.yaml") {
		t.Errorf("sam lists the playground's files through the split gateway: %d %v", code, files)
	}
	if code, out := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.admin.v1.AuthzAdminService/ListPolicyFiles", nil, map[string]any{}); code != http.StatusUnauthorized {
		t.Errorf("anonymous playground call through the split gateway: %d %v", code, out)
	}

	// The user service, alone, asks the community service over TCP, as ann.
	code, export := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.user.v1.UserService/ExportMyData",
		http.Header{"Authorization": {"Bearer " + ann}}, map[string]any{})
	if servers, _ := export["servers"].([]any); code != http.StatusOK || len(servers) != 3 {
		t.Fatalf("ann's export through the split services: %d %v", code, export)
	}

	// The notification service, alone, follows the chat service's feed over
	// TCP: ann mentions bob in a server he joined; his inbox has it.
	code, loud := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.community.v1.CommunityService/CreateServer",
		http.Header{"Authorization": {"Bearer " + ann}}, map[string]any{"name": "Loud", "public": true})
	if code != http.StatusOK {
		t.Fatalf("CreateServer: %d %v", code, loud)
	}
	code, joined := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.community.v1.CommunityService/JoinServer",
		http.Header{"Authorization": {"Bearer " + bob}, "Beep-Zed-Token": {loud["zedToken"].(string)}}, map[string]any{"serverId": loud["server"].(map[string]any)["id"]})
	if code != http.StatusOK {
		t.Fatalf("JoinServer: %d %v", code, joined)
	}
	code, sent = jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.chat.v1.ChatService/SendMessage",
		http.Header{"Authorization": {"Bearer " + ann}, "Beep-Zed-Token": {joined["zedToken"].(string)}},
		map[string]any{"conversation": "channel:" + loud["generalChannel"].(map[string]any)["id"].(string), "content": "<@bob> split too"})
	if code != http.StatusOK {
		t.Fatalf("SendMessage: %d %v", code, sent)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, inbox := jsonCall(t, http.MethodPost, "http://"+gw.HTTPAddr+"/beep.notification.v1.NotificationService/ListNotifications",
			http.Header{"Authorization": {"Bearer " + bob}}, map[string]any{})
		if list, _ := inbox["notifications"].([]any); code == http.StatusOK && len(list) == 1 &&
			list[0].(map[string]any)["messageId"] == sent["message"].(map[string]any)["id"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's inbox through the split services: %d %v", code, inbox)
		}
	}

	// At the community port itself: the principal must be signed with the
	// deployment's key.
	direct := communityv1connect.NewCommunityServiceClient(http2Client(), "http://"+community.HTTPAddr)
	wrongKey, _ := connectauthz.NewSigner([]byte(strings.Repeat("w", connectauthz.MinKeyBytes)))
	rightKey, _ := connectauthz.NewSigner([]byte(internalKey))
	forged := rightKey.Sign(authz.Principal{UserID: "ann"})
	forged = strings.Replace(forged, "YW5u", "Ym9i", 1) // "ann" -> "bob", signature kept
	// signedBy signs as the gateway does, by hand, expiring at expiry.
	signedBy := func(key, user string, expiry time.Time) string {
		// The user, no service, the expiry.
		payload := base64.RawURLEncoding.EncodeToString([]byte(user)) + ".." + strconv.FormatInt(expiry.Unix(), 10)
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(payload))
		return payload + "." + hex.EncodeToString(mac.Sum(nil))
	}
	for name, header := range map[string]string{
		"none":                         "",
		"unsigned":                     "ann",
		"without its signature":        strings.Join(strings.Split(rightKey.Sign(authz.Principal{UserID: "ann"}), ".")[:3], "."),
		"signed with another key":      wrongKey.Sign(authz.Principal{UserID: "ann"}),
		"another user, same signature": forged,
		"expired":                      signedBy(internalKey, "ann", time.Now().Add(-2*time.Second)),
	} {
		req := connect.NewRequest(&communityv1.CreateServerRequest{Name: "Forged"})
		if header != "" {
			req.Header().Set(connectauthz.PrincipalHeader, header)
		}
		if _, err := direct.CreateServer(ctx, req); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("principal header %s: %v, want unauthenticated", name, err)
		}
	}
	// A well-signed header works there (that is what the gateway sends;
	// made by hand too, so that "expired" above is refused for its expiry
	// alone)...
	for _, header := range []string{rightKey.Sign(authz.Principal{UserID: "ann"}), signedBy(internalKey, "ann", time.Now().Add(time.Minute))} {
		signed := connect.NewRequest(&communityv1.CreateServerRequest{Name: "Signed"})
		signed.Header().Set(connectauthz.PrincipalHeader, header)
		if _, err := direct.CreateServer(ctx, signed); err != nil {
			t.Fatalf("a principal signed with the internal key: %v", err)
		}
	}
	// ...but a client cannot send one through the gateway: it is removed.
	through := communityv1connect.NewCommunityServiceClient(http2Client(), "http://"+gw.HTTPAddr)
	smuggled := connect.NewRequest(&communityv1.CreateServerRequest{Name: "Smuggled"})
	smuggled.Header().Set(connectauthz.PrincipalHeader, rightKey.Sign(authz.Principal{UserID: "ann"}))
	if _, err := through.CreateServer(ctx, smuggled); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("a client-supplied principal header passed the gateway: %v", err)
	}

	// The internal API: served by the community service, to the user
	// service alone; the gateway does not route it at all.
	erase := func(base string, p authz.Principal) error {
		req := connect.NewRequest(&communityv1.EraseUserRequest{UserId: "nobody"})
		req.Header().Set(connectauthz.PrincipalHeader, rightKey.Sign(p))
		_, err := communityv1connect.NewErasureServiceClient(http2Client(), base).EraseUser(ctx, req)
		return err
	}
	if err := erase("http://"+gw.HTTPAddr, authz.ServicePrincipal("user")); connect.CodeOf(err) != connect.CodeUnimplemented {
		t.Errorf("the gateway answered an internal RPC: %v", err)
	}
	if err := erase("http://"+community.HTTPAddr, authz.Principal{UserID: "ann"}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("a person called the internal RPC: %v", err)
	}
	if err := erase("http://"+community.HTTPAddr, authz.ServicePrincipal("user")); err != nil {
		t.Errorf("the user service called the internal RPC: %v", err)
	}
}

// TestSplitRolesNeedTheirConfiguration: a service alone needs the shared
// internal key; a gateway alone needs to know where the services are.
func TestSplitRolesNeedTheirConfiguration(t *testing.T) {
	key := strings.Repeat("k", connectauthz.MinKeyBytes)
	for _, args := range [][]string{
		{"community"},
		{"community", "-internal-key", "short"},
		{"gateway", "-internal-key", key},
		{"search", "-internal-key", key},
		{"gateway", "-internal-key", key, "-community-url", "community:8080"},
		{"gateway", "-internal-key", key, "-community-url", "http://community:8080", "-user-url", "https://user:8080"},
		{"user", "-internal-key", key, "-community-url", "http:///no-host"},
		{"chat", "-internal-key", key},
		{"notification", "-internal-key", key},
		{"gateway", "-internal-key", key, "-community-url", "http://community:8080", "-notification-url", "notification:8080"},
		{"gateway", "-internal-key", key, "-community-url", "http://community:8080", "-chat-url", "chat:8080"},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("parseConfig(%v) accepted", args)
		}
	}
	cfg, err := parseConfig([]string{"gateway", "-internal-key", key, "-community-url", "http://community:8080"}, io.Discard)
	if err != nil || cfg.Role != roleGateway {
		t.Fatalf("a complete gateway configuration: %+v %v", cfg, err)
	}
}

// TestGatewayAloneWithoutItsServices: a gateway whose service does not
// answer is not ready, and its RPCs are unavailable, not lost.
func TestGatewayAloneWithoutItsServices(t *testing.T) {
	nobody := freeAddr(t)
	gw, _, stop := start(t, "gateway", "-http-addr", "127.0.0.1:0", "-community-url", "http://"+nobody,
		"-internal-key", strings.Repeat("i", connectauthz.MinKeyBytes), "-dev-token-key", devKey)
	defer stop()
	if code, body := get(t, "http://"+gw.HTTPAddr+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, communityv1connect.CommunityServiceName) {
		t.Fatalf("gateway /readyz without its service: %d %s", code, body)
	}
	client := communityv1connect.NewCommunityServiceClient(http2Client(), "http://"+gw.HTTPAddr, connect.WithGRPC())
	req := connect.NewRequest(&communityv1.ListMyServersRequest{})
	req.Header().Set("Authorization", "Bearer "+mustToken(t, "ann", 600))
	if _, err := client.ListMyServers(t.Context(), req); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("an RPC to a service that does not answer: %v", err)
	}
}

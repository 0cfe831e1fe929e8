package chat_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/beepchat/beep/authz/connectauthz"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// rpc is one unary RPC of ChatService or StreamService and what it
// declares (Subscribe, a server stream, is refused in stream_test.go).
type rpc struct {
	method protoreflect.MethodDescriptor
	req    *authzv1.Requirement
}

func chatRPCs(t *testing.T) []rpc {
	var out []rpc
	for _, service := range []protoreflect.ServiceDescriptor{
		chatv1.File_beep_chat_v1_chat_proto.Services().ByName("ChatService"),
		chatv1.File_beep_chat_v1_stream_proto.Services().ByName("StreamService"),
	} {
		for i := range service.Methods().Len() {
			m := service.Methods().Get(i)
			req, _ := proto.GetExtension(m.Options(), authzv1.E_Requires).(*authzv1.Requirement)
			if req == nil {
				t.Errorf("%s declares no permission", m.Name())
				continue
			}
			if m.IsStreamingServer() || m.IsStreamingClient() {
				continue
			}
			out = append(out, rpc{m, req})
		}
	}
	return out
}

// body is a well-formed request of the method: the resource field set to
// resource, and the other fields it has filled in.
func body(m protoreflect.MethodDescriptor, field, resource, messageID string) map[string]any {
	out := map[string]any{}
	fields := m.Input().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		switch f.Name() {
		case "message_id":
			out[f.JSONName()] = messageID
		case "content":
			out[f.JSONName()] = "hello"
		case "emoji":
			out[f.JSONName()] = map[string]any{"unicode": "👍"}
		case "user_id":
			out[f.JSONName()] = "dana"
		case "user_ids":
			out[f.JSONName()] = []string{"dana"}
		case "conversations":
			out[f.JSONName()] = []string{resource}
		}
	}
	if field != "" {
		out[m.Input().Fields().ByName(protoreflect.Name(field)).JSONName()] = resource
	}
	return out
}

// TestEveryRPCRefuses calls every RPC of ChatService, read from its
// descriptor, as a caller without the permission it declares: a stranger
// to dan's private server and DMs, on a resource of each type the RPC
// accepts; or anonymously, for RPCs that only need a signed-in caller.
// Each must be refused; and a conversation of a type the RPC does not take
// is invalid. An RPC added later is covered without editing this test.
func TestEveryRPCRefuses(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	created := must(h.community.CreateServer(ctx, as("dan", "", &communityv1.CreateServerRequest{Name: "Private"})))
	server, general := created.Msg.Server.Id, created.Msg.GeneralChannel.Id
	thread := must(h.community.CreateThread(ctx, as("dan", created.Msg.ZedToken, &communityv1.CreateThreadRequest{ChannelId: general, Name: "plans"})))
	group := must(h.chat.CreateGroupDM(ctx, as("dan", thread.Msg.ZedToken, &chatv1.CreateGroupDMRequest{UserIds: []string{"dana"}}))).Msg
	direct := must(h.chat.OpenDM(ctx, as("dan", group.ZedToken, &chatv1.OpenDMRequest{UserId: "dana"}))).Msg
	zed := direct.ZedToken
	conversations := map[string]string{
		"channel":    ch(general),
		"thread":     "thread:" + thread.Msg.Thread.Id,
		"dm_channel": direct.DmChannel.Conversation,
	}
	messages := map[string]string{}
	for kind, c := range conversations {
		messages[kind] = h.send(t, "dan", zed, c, "hello").Id
	}
	dms := map[string]string{"dm_channel": group.DmChannel.Id}

	for _, r := range chatRPCs(t) {
		name := string(r.method.Name())
		url := h.url + "/" + string(r.method.Parent().FullName()) + "/" + name
		t.Run(name, func(t *testing.T) {
			switch {
			case r.req.GetPublic():
				t.Skip("public: nothing to refuse")
			case r.req.GetAuthenticated():
				if got := call(t, url, "", zed, body(r.method, "", conversations["channel"], messages["channel"])); got != "unauthenticated" {
					t.Fatalf("anonymous: %s, want unauthenticated", got)
				}
				return
			}
			field := r.req.GetResourceField()
			if types := r.req.GetResourceTypes(); len(types) > 0 {
				for _, kind := range types {
					c, ok := conversations[kind]
					if !ok {
						t.Fatalf("the fixture has no %s to call %s on: add one", kind, name)
					}
					if got := call(t, url, "zoe", zed, body(r.method, field, c, messages[kind])); got != "permission_denied" {
						t.Errorf("zoe, lacking %s on a %s: %s, want permission_denied", r.req.GetPermission(), kind, got)
					}
				}
				if got := call(t, url, "dan", zed, body(r.method, field, "server:"+server, messages["channel"])); got != "invalid_argument" {
					t.Errorf("on a server, which is no conversation: %s, want invalid_argument", got)
				}
				return
			}
			kind, _, _ := strings.Cut(r.req.GetPermission(), "#")
			id, ok := dms[kind]
			if !ok {
				t.Fatalf("the fixture has no %s to call %s on: add one", kind, name)
			}
			if got := call(t, url, "zoe", zed, body(r.method, field, id, "")); got != "permission_denied" {
				t.Errorf("zoe, lacking %s: %s, want permission_denied", r.req.GetPermission(), got)
			}
		})
	}
}

// TestEveryRPCNeedsItsPermission: for every RPC on a conversation, a member
// who holds every permission of the channel but the declared one (denied
// to @everyone there by an overwrite) is refused, and the same request in
// a channel where nothing is denied succeeds.
func TestEveryRPCNeedsItsPermission(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	created := must(h.community.CreateServer(ctx, as("dan", "", &communityv1.CreateServerRequest{Name: "Private"})))
	server, general, zed := created.Msg.Server.Id, created.Msg.GeneralChannel.Id, created.Msg.ZedToken
	// mia is a member with Discord's defaults and a role adding manage_messages.
	role := must(h.community.CreateRole(ctx, as("dan", zed, &communityv1.CreateRoleRequest{ServerId: server, Name: "Pinners", Permissions: []string{"manage_messages"}})))
	invite := must(h.community.CreateInvite(ctx, as("dan", role.Msg.ZedToken, &communityv1.CreateInviteRequest{ChannelId: general})))
	joined := must(h.community.JoinByInvite(ctx, as("mia", invite.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: invite.Msg.Invite.Code})))
	zed = must(h.community.AddMemberRole(ctx, as("dan", joined.Msg.ZedToken, &communityv1.AddMemberRoleRequest{RoleId: role.Msg.Role.Id, UserId: "mia"}))).Msg.ZedToken
	denied := map[string]string{} // permission -> a channel denying it to @everyone
	for _, r := range chatRPCs(t) {
		p := r.req.GetPermission()
		if len(r.req.GetResourceTypes()) == 0 || denied[p] != "" {
			continue
		}
		c := must(h.community.CreateChannel(ctx, as("dan", zed, &communityv1.CreateChannelRequest{ServerId: server, Name: "no-" + p,
			Kind: communityv1.ChannelKind_CHANNEL_KIND_TEXT, Overwrites: []*communityv1.PermissionOverwrite{
				{TargetKind: communityv1.TargetKind_TARGET_KIND_EVERYONE, Deny: []string{p}},
			}})))
		denied[p], zed = ch(c.Msg.Channel.Id), c.Msg.ZedToken
	}
	for _, r := range chatRPCs(t) {
		if len(r.req.GetResourceTypes()) == 0 {
			continue
		}
		name, p := string(r.method.Name()), r.req.GetPermission()
		url := h.url + "/" + string(r.method.Parent().FullName()) + "/" + name
		t.Run(name, func(t *testing.T) {
			there := h.send(t, "dan", zed, denied[p], "the owner posts anywhere").Id
			if got := call(t, url, "mia", zed, body(r.method, r.req.GetResourceField(), denied[p], there)); got != "permission_denied" {
				t.Errorf("mia, lacking only %s: %s, want permission_denied", p, got)
			}
			mine := h.send(t, "mia", zed, ch(general), "mia's").Id
			if got := call(t, url, "mia", zed, body(r.method, r.req.GetResourceField(), ch(general), mine)); got != "" {
				t.Errorf("mia, holding %s: %s, want success", p, got)
			}
		})
	}
}

// call posts a Connect JSON request and returns the error code ("" on success).
func call(t *testing.T, url, user, token string, body map[string]any) string {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(connectauthz.TokenHeader, token)
	if user != "" {
		req.Header.Set("Test-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var answer struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(raw, &answer); err != nil {
			t.Fatalf("status %d without a Connect error: %s", resp.StatusCode, raw)
		}
		t.Logf("%s: %s %s", url[strings.LastIndex(url, "/")+1:], answer.Code, answer.Message)
	}
	return answer.Code
}

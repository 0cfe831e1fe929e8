package community_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/beepchat/beep/authz/connectauthz"
	authzv1 "github.com/beepchat/beep/gen/beep/authz/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// TestEveryRPCRefuses calls every RPC of the service, read from its
// descriptor, as a caller without the permission it declares: a stranger to
// a private server, on a resource of that server of the declared type; or
// anonymously, for RPCs that only need a signed-in caller. Each must be
// refused. An RPC added later is covered without editing this test, unless
// it names a resource type the fixture lacks, which fails here. An RPC on a
// fixed object (the platform's) is called with an empty request: the
// check comes first.
func TestEveryRPCRefuses(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	// dan's private server, with one of everything.
	created := must(h.client.CreateServer(ctx, as("dan", "", &communityv1.CreateServerRequest{Name: "Private"})))
	server, general, zed := created.Msg.Server.Id, created.Msg.GeneralChannel.Id, created.Msg.ZedToken
	role := must(h.client.CreateRole(ctx, as("dan", zed, &communityv1.CreateRoleRequest{ServerId: server, Name: "Crew"})))
	cat := must(h.client.CreateCategory(ctx, as("dan", role.Msg.ZedToken, &communityv1.CreateCategoryRequest{ServerId: server, Name: "Info"})))
	thread := must(h.client.CreateThread(ctx, as("dan", cat.Msg.ZedToken, &communityv1.CreateThreadRequest{ChannelId: general, Name: "plans", Private: true})))
	invite := must(h.client.CreateInvite(ctx, as("dan", thread.Msg.ZedToken, &communityv1.CreateInviteRequest{ChannelId: general, MaxUses: 1})))
	// Used up by zara: zoe cannot join by it (and, a stranger, cannot manage it).
	joined := must(h.client.JoinByInvite(ctx, as("zara", invite.Msg.ZedToken, &communityv1.JoinByInviteRequest{Code: invite.Msg.Invite.Code})))
	zed = joined.Msg.ZedToken
	resources := map[string]string{
		"server":   server,
		"channel":  general,
		"category": cat.Msg.Category.Id,
		"thread":   thread.Msg.Thread.Id,
		"role":     role.Msg.Role.Id,
		"invite":   invite.Msg.Invite.Code,
	}

	service := communityv1.File_beep_community_v1_community_proto.Services().ByName("CommunityService")
	methods := service.Methods()
	for i := range methods.Len() {
		method := methods.Get(i)
		req, ok := proto.GetExtension(method.Options(), authzv1.E_Requires).(*authzv1.Requirement)
		if !ok || req == nil {
			t.Errorf("%s declares no permission", method.Name())
			continue
		}
		t.Run(string(method.Name()), func(t *testing.T) {
			body := map[string]any{}
			user, want := "zoe", "permission_denied"
			switch {
			case req.GetAuthenticated():
				user, want = "", "unauthenticated"
			case req.GetPublic():
				t.Skip("public: nothing to refuse")
			default:
				resourceType, _, _ := strings.Cut(req.GetPermission(), "#")
				if req.GetResourceId() != "" {
					// A fixed object (platform:beep): zoe is no staff.
					break
				}
				id, ok := resources[resourceType]
				if !ok {
					t.Fatalf("the fixture has no %s to call %s on: add one", resourceType, method.Name())
				}
				field := method.Input().Fields().ByName(protoreflect.Name(req.GetResourceField()))
				if field == nil {
					t.Fatalf("%s has no field %q", method.Input().FullName(), req.GetResourceField())
				}
				body[field.JSONName()] = id
			}
			code := call(t, h.url+"/"+string(service.FullName())+"/"+string(method.Name()), user, zed, body)
			if code != want {
				t.Fatalf("%s as %q (lacking %s): %s, want %s", method.Name(), user, req.GetPermission(), code, want)
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
	var answer struct {
		Code string `json:"code"`
	}
	if resp.StatusCode != http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			t.Fatalf("status %d without a Connect error: %v", resp.StatusCode, err)
		}
	}
	return answer.Code
}

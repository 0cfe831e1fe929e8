package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// TestChatThroughTheGateway: the chat service behind the gateway, over real
// HTTP with JSON, as a client would use it. Ann and Bob chat in a server
// channel only Crew sees, and in a DM; Carl, a member without the Crew
// role, is refused in both.
func TestChatThroughTheGateway(t *testing.T) {
	inst, _, stop := start(t, isolated(t, "-dev-token-key", devKey)...)
	defer stop()
	base := "http://" + inst.HTTPAddr
	community := api{t: t, base: base}
	ann, bob, carl := mustToken(t, "ann", 600), mustToken(t, "bob", 600), mustToken(t, "carl", 600)
	chat := func(token, zed, method string, body any) (int, map[string]any) {
		t.Helper()
		header := http.Header{"Authorization": {"Bearer " + token}}
		if zed != "" {
			header.Set("Beep-Zed-Token", zed)
		}
		return jsonCall(t, http.MethodPost, base+"/beep.chat.v1.ChatService/"+method, header, body)
	}
	ok := func(token, zed, method string, body any) map[string]any {
		t.Helper()
		code, out := chat(token, zed, method, body)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", method, code, out)
		}
		return out
	}
	refused := func(token, zed, method string, body any) {
		t.Helper()
		if code, out := chat(token, zed, method, body); code != http.StatusForbidden || out["code"] != "permission_denied" {
			t.Fatalf("%s was not refused: %d %v", method, code, out)
		}
	}
	contents := func(page map[string]any) []string {
		var out []string
		for _, m := range page["messages"].([]any) {
			out = append(out, m.(map[string]any)["content"].(string))
		}
		return out
	}

	// Ann's private server, a Crew role and #crew, which only Crew sees;
	// bob and carl join by invite; bob gets Crew.
	f := crewServer(t, community, ann, bob, carl)
	general, crew, zed := f.general, f.crew, f.zed
	// In #crew: ann and bob talk (a retried send is one message).
	welcome := ok(ann, zed, "SendMessage", map[string]any{"conversation": crew, "content": "welcome <@bob>", "nonce": "w1"})
	if again := ok(ann, zed, "SendMessage", map[string]any{"conversation": crew, "content": "welcome <@bob>", "nonce": "w1"}); again["duplicate"] != true {
		t.Fatalf("a retried send: %v", again)
	}
	welcomeID := welcome["message"].(map[string]any)["id"].(string)
	states := ok(bob, zed, "GetReadStates", map[string]any{"conversations": []string{crew}})["states"].([]any)
	if s := states[0].(map[string]any); s["unreadCount"] != float64(1) || s["mentionCount"] != float64(1) {
		t.Fatalf("bob's read state in #crew: %v", s)
	}
	ok(bob, zed, "SendMessage", map[string]any{"conversation": crew, "content": "thanks!", "replyToId": welcomeID})
	ok(bob, zed, "AddReaction", map[string]any{"conversation": crew, "messageId": welcomeID, "emoji": map[string]any{"unicode": "🎉"}})
	if got := contents(ok(ann, zed, "ListMessages", map[string]any{"conversation": crew})); strings.Join(got, "|") != "thanks!|welcome <@bob>" {
		t.Fatalf("ann reads #crew: %v", got)
	}
	// carl, without Crew, neither reads nor writes there; #general is his.
	refused(carl, zed, "ListMessages", map[string]any{"conversation": crew})
	refused(carl, zed, "SendMessage", map[string]any{"conversation": crew, "content": "let me in"})
	refused(carl, zed, "GetMessage", map[string]any{"conversation": crew, "messageId": welcomeID})
	if states := ok(carl, zed, "GetReadStates", map[string]any{"conversations": []string{crew}}); states["states"] != nil {
		t.Fatalf("carl gets #crew's read state: %v", states)
	}
	ok(carl, zed, "SendMessage", map[string]any{"conversation": "channel:" + general, "content": "hi all"})

	// A DM between ann and bob.
	opened := ok(ann, "", "OpenDM", map[string]any{"userId": "bob"})
	dm := opened["dmChannel"].(map[string]any)["conversation"].(string)
	dmZed := opened["zedToken"].(string)
	ok(ann, dmZed, "SendMessage", map[string]any{"conversation": dm, "content": "psst"})
	ok(bob, dmZed, "SendMessage", map[string]any{"conversation": dm, "content": "yes?"})
	if got := contents(ok(bob, dmZed, "ListMessages", map[string]any{"conversation": dm})); strings.Join(got, "|") != "yes?|psst" {
		t.Fatalf("bob reads the DM: %v", got)
	}
	mine := ok(bob, dmZed, "ListMyDMs", map[string]any{})["dmChannels"].([]any)
	if len(mine) != 1 || mine[0].(map[string]any)["conversation"] != dm {
		t.Fatalf("bob's DMs: %v", mine)
	}
	refused(carl, dmZed, "ListMessages", map[string]any{"conversation": dm})
	refused(carl, dmZed, "SendMessage", map[string]any{"conversation": dm, "content": "me too"})
	refused(carl, dmZed, "GetDM", map[string]any{"dmChannelId": opened["dmChannel"].(map[string]any)["id"]})

	// The gateway counts the chat service's requests; it is ready with it.
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`beep_gateway_requests_total{route="/beep.chat.v1.ChatService/SendMessage",status="200"} 6`,
		`beep_authz_checks_total{permission="read_message_history",result="denied"}`,
		`beep_authz_decision_cache_hits_total`, `beep_authz_decision_cache_misses_total`, `beep_authz_decision_cache_changes_total`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
}

// TestLiveChatThroughTheGateway is issue #5's story, through the gateway
// with real streams: ann and bob chat in #crew and in a DM and see each
// other's messages live; carl, a member without Crew, receives nothing of
// either; the moment ann takes Crew from bob, bob's stream goes quiet for
// #crew while #general still reaches him.
func TestLiveChatThroughTheGateway(t *testing.T) {
	inst, _, stop := start(t, isolated(t, "-dev-token-key", devKey)...)
	defer stop()
	base := "http://" + inst.HTTPAddr
	community := api{t: t, base: base}
	ann, bob, carl := mustToken(t, "ann", 600), mustToken(t, "bob", 600), mustToken(t, "carl", 600)
	f := crewServer(t, community, ann, bob, carl)
	general, crew, zed := "channel:"+f.general, f.crew, f.zed

	annLive, bobLive, carlLive := liveStream(t, base, ann), liveStream(t, base, bob), liveStream(t, base, carl)
	// bob holds a second session over WebSocket, from a page of Beep's own
	// origin: it must carry what his Connect stream carries.
	bobSocket := openSocket(t, base, bob, base)
	chat := chatv1connect.NewChatServiceClient(http.DefaultClient, base)
	send := func(token, zed, conv, content string) {
		t.Helper()
		req := connect.NewRequest(&chatv1.SendMessageRequest{Conversation: conv, Content: content})
		req.Header().Set("Authorization", "Bearer "+token)
		if zed != "" {
			req.Header().Set("Beep-Zed-Token", zed)
		}
		if _, err := chat.SendMessage(t.Context(), req); err != nil {
			t.Fatalf("send %q: %v", content, err)
		}
	}
	// Each sees their own messages too, in the order they were sent.
	send(ann, zed, crew, "crew meeting at 5")
	bobLive.expect(t, "crew meeting at 5")
	send(bob, zed, crew, "on my way")
	annLive.expect(t, "crew meeting at 5", "on my way")

	open := connect.NewRequest(&chatv1.OpenDMRequest{UserId: "bob"})
	open.Header().Set("Authorization", "Bearer "+ann)
	dm, err := chat.OpenDM(t.Context(), open)
	if err != nil {
		t.Fatal(err)
	}
	dmZed := dm.Msg.ZedToken
	send(ann, dmZed, dm.Msg.DmChannel.Conversation, "psst")
	bobLive.expect(t, "on my way", "psst")
	send(bob, dmZed, dm.Msg.DmChannel.Conversation, "yes?")
	annLive.expect(t, "psst", "yes?")

	removed := community.ok(ann, dmZed, "RemoveMemberRole", map[string]any{"roleId": f.role, "userId": "bob"})["zedToken"].(string)
	send(ann, removed, crew, "bob is gone")
	send(ann, removed, general, "hello everyone")
	bobLive.expect(t, "yes?", "hello everyone") // and not "bob is gone"
	annLive.expect(t, "bob is gone", "hello everyone")
	carlLive.expect(t, "hello everyone") // nothing of #crew or the DM, ever
	var overSocket []string
	for range 5 {
		overSocket = append(overSocket, bobSocket.nextMessage(t))
	}
	if want := "crew meeting at 5|on my way|psst|yes?|hello everyone"; strings.Join(overSocket, "|") != want {
		t.Fatalf("bob's WebSocket received %q, want %q", overSocket, want)
	}

	// An operator sees the streams in /metrics.
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{"beep_stream_subscribers 4", "beep_stream_deliveries_total", "beep_stream_dispatch_lag_seconds_bucket"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// crew is ann's private server: a Crew role and #crew, which only Crew
// sees; bob and carl joined by invite, and bob holds Crew.
type crew struct {
	general string // #general's id
	crew    string // "channel:<#crew's id>"
	role    string // Crew's id
	zed     string // the newest ZedToken
}

func crewServer(t *testing.T, community api, ann, bob, carl string) crew {
	t.Helper()
	created := community.ok(ann, "", "CreateServer", map[string]any{"name": "Gophers"})
	server := created["server"].(map[string]any)["id"].(string)
	general := created["generalChannel"].(map[string]any)["id"].(string)
	role := community.ok(ann, created["zedToken"].(string), "CreateRole", map[string]any{"serverId": server, "name": "Crew", "permissions": []string{"view_channel"}})
	roleID := role["role"].(map[string]any)["id"].(string)
	channel := community.ok(ann, role["zedToken"].(string), "CreateChannel", map[string]any{
		"serverId": server, "name": "crew", "kind": "CHANNEL_KIND_TEXT",
		"overwrites": []map[string]any{
			{"targetKind": "TARGET_KIND_EVERYONE", "deny": []string{"view_channel"}},
			{"targetKind": "TARGET_KIND_ROLE", "targetId": roleID, "allow": []string{"view_channel"}},
		},
	})
	invite := community.ok(ann, channel["zedToken"].(string), "CreateInvite", map[string]any{"channelId": general, "maxUses": 5})
	code := invite["invite"].(map[string]any)["code"].(string)
	zed := community.ok(bob, invite["zedToken"].(string), "JoinByInvite", map[string]any{"code": code})["zedToken"].(string)
	zed = community.ok(carl, zed, "JoinByInvite", map[string]any{"code": code})["zedToken"].(string)
	zed = community.ok(ann, zed, "AddMemberRole", map[string]any{"roleId": roleID, "userId": "bob"})["zedToken"].(string)
	return crew{general: general, crew: "channel:" + channel["channel"].(map[string]any)["id"].(string), role: roleID, zed: zed}
}

// streamReader is one person's live stream through the gateway.
type streamReader struct {
	contents chan string
}

// liveStream subscribes with token and collects the messages it receives.
func liveStream(t *testing.T, base, token string) *streamReader {
	t.Helper()
	client := chatv1connect.NewStreamServiceClient(http.DefaultClient, base)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	req := connect.NewRequest(&chatv1.SubscribeRequest{})
	req.Header().Set("Authorization", "Bearer "+token)
	stream, err := client.Subscribe(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !stream.Receive() || stream.Msg().GetReady() == nil {
		t.Fatalf("subscribing: %v %v", stream.Msg(), stream.Err())
	}
	r := &streamReader{contents: make(chan string, 100)}
	go func() {
		defer close(r.contents)
		for stream.Receive() {
			if m := stream.Msg().GetMessageCreated(); m != nil {
				r.contents <- m.GetMessage().GetContent()
			}
		}
	}()
	return r
}

// expect: the messages received next are want, up to its last.
func (r *streamReader) expect(t *testing.T, want ...string) {
	t.Helper()
	if got := r.until(t, want[len(want)-1]); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("received %q, want %q", got, want)
	}
}

// until collects the messages received up to and including last.
func (r *streamReader) until(t *testing.T, last string) []string {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) == 0 || got[len(got)-1] != last {
		select {
		case c, ok := <-r.contents:
			if !ok {
				t.Fatalf("the stream ended after %q", got)
			}
			got = append(got, c)
		case <-timeout:
			t.Fatalf("no %q within 10s; received %q", last, got)
		}
	}
	return got
}

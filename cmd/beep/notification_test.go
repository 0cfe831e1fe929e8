package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// TestNotificationsThroughTheGateway is issue #5's notifications, through
// the gateway of the all-in-one process: ann mentions bob; bob's stream
// carries the NotificationCreated live, his inbox lists it and counts it
// per server and channel, and he marks it read; carl, mentioned in a
// channel he cannot see, gets nothing; the chat service's internal feed
// and the notification service's internal API are not reachable through
// the gateway.
func TestNotificationsThroughTheGateway(t *testing.T) {
	inst, _, stop := start(t, isolated(t, "-dev-token-key", devKey)...)
	defer stop()
	base := "http://" + inst.HTTPAddr
	community := api{t: t, base: base}
	ann, bob, carl := mustToken(t, "ann", 600), mustToken(t, "bob", 600), mustToken(t, "carl", 600)
	notifications := func(token, method string, body any) map[string]any {
		t.Helper()
		code, out := jsonCall(t, http.MethodPost, base+"/beep.notification.v1.NotificationService/"+method, http.Header{"Authorization": {"Bearer " + token}}, body)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", method, code, out)
		}
		return out
	}
	created := community.ok(ann, "", "CreateServer", map[string]any{"name": "Gophers", "public": true})
	server := created["server"].(map[string]any)["id"].(string)
	general := "channel:" + created["generalChannel"].(map[string]any)["id"].(string)
	zed := community.ok(bob, created["zedToken"].(string), "JoinServer", map[string]any{"serverId": server})["zedToken"].(string)
	zed = community.ok(carl, zed, "JoinServer", map[string]any{"serverId": server})["zedToken"].(string)
	hidden := community.ok(ann, zed, "CreateChannel", map[string]any{"serverId": server, "name": "hidden", "kind": "CHANNEL_KIND_TEXT",
		"overwrites": []map[string]any{{"targetKind": "TARGET_KIND_EVERYONE", "deny": []string{"view_channel"}}}})
	secret, zed := "channel:"+hidden["channel"].(map[string]any)["id"].(string), hidden["zedToken"].(string)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req := connect.NewRequest(&chatv1.SubscribeRequest{})
	req.Header().Set("Authorization", "Bearer "+bob)
	stream, err := chatv1connect.NewStreamServiceClient(http.DefaultClient, base).Subscribe(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !stream.Receive() || stream.Msg().GetReady() == nil {
		t.Fatalf("subscribing: %v %v", stream.Msg(), stream.Err())
	}
	chat := chatv1connect.NewChatServiceClient(http.DefaultClient, base)
	send := func(conv, content string) string {
		t.Helper()
		req := connect.NewRequest(&chatv1.SendMessageRequest{Conversation: conv, Content: content})
		req.Header().Set("Authorization", "Bearer "+ann)
		req.Header().Set("Beep-Zed-Token", zed)
		resp, err := chat.SendMessage(t.Context(), req)
		if err != nil {
			t.Fatalf("send %q: %v", content, err)
		}
		return resp.Msg.Message.Id
	}
	send(secret, "<@carl> you cannot see this")
	mention := send(general, "<@bob> look")
	var live *chatv1.NotificationCreated
	for live == nil && stream.Receive() {
		live = stream.Msg().GetNotificationCreated()
	}
	if live == nil || live.Message.GetId() != mention || live.Conversation != general || live.ServerId != server {
		t.Fatalf("bob's stream: %v %v", live, stream.Err())
	}
	list := notifications(bob, "ListNotifications", map[string]any{})["notifications"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != live.NotificationId || list[0].(map[string]any)["kind"] != "NOTIFICATION_KIND_MENTION" {
		t.Fatalf("bob's inbox: %v", list)
	}
	counts := notifications(bob, "GetNotificationCounts", map[string]any{})
	if counts["total"] != float64(1) || counts["servers"].([]any)[0].(map[string]any)["serverId"] != server ||
		counts["conversations"].([]any)[0].(map[string]any)["conversation"] != general {
		t.Fatalf("bob's counts: %v", counts)
	}
	if marked := notifications(bob, "MarkNotificationsRead", map[string]any{"upToId": live.NotificationId}); marked["marked"] != float64(1) {
		t.Fatalf("marking read: %v", marked)
	}
	if counts := notifications(bob, "GetNotificationCounts", map[string]any{}); counts["total"] != nil {
		t.Fatalf("bob's counts after reading: %v", counts)
	}
	// carl's mention in #hidden was handled before bob's: nothing for him.
	if list, _ := notifications(carl, "ListNotifications", map[string]any{})["notifications"].([]any); len(list) != 0 {
		t.Fatalf("carl was notified of a channel he cannot see: %v", list)
	}
	// The feed is internal: the gateway does not route it.
	code, out := jsonCall(t, http.MethodPost, base+"/beep.chat.v1.EventFeedService/Deliver", http.Header{"Authorization": {"Bearer " + ann}},
		map[string]any{"userId": "bob", "conversation": general})
	if code != http.StatusNotFound {
		t.Fatalf("the gateway routed the internal feed: %d %v", code, out)
	}
	if code, out := jsonCall(t, http.MethodPost, base+"/beep.notification.v1.ErasureService/EraseUser", http.Header{"Authorization": {"Bearer " + ann}},
		map[string]any{"userId": "bob"}); code != http.StatusNotFound {
		t.Fatalf("the gateway routed the notification service's internal API: %d %v", code, out)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}
}

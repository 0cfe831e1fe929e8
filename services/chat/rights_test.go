package chat_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// TestMessageRightsMatchTheSchema: the service decides rights on a message
// from its conversation's permissions and its author, without the
// message's relationships. Here those relationships are written for real
// (message#channel, message#author) and SpiceDB's answers for the message
// definition's permissions are compared with the service's, for owner,
// moderator, members (one timed out), platform staff and a stranger, in
// channels with and without view, history and reactions, a thread, a 1:1
// and a group DM, and messages by several authors.
func TestMessageRightsMatchTheSchema(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	must(h.community.JoinServer(ctx, as("tim", w.token, &communityv1.JoinServerRequest{ServerId: w.server})))
	timedOut := must(h.community.TimeoutMember(ctx, as("ann", w.token, &communityv1.TimeoutMemberRequest{ServerId: w.server, UserId: "tim",
		Until: timestamppb.New(time.Now().Add(time.Hour))})))
	group := must(h.chat.CreateGroupDM(ctx, as("ann", timedOut.Msg.ZedToken, &chatv1.CreateGroupDMRequest{UserIds: []string{"carl"}})))
	if _, err := h.authz.Write(ctx, []authz.Update{authz.Touch(authz.Relationship{Relation: authz.Platform.Staff, ResourceID: "beep", Subject: authz.UserSubject("sam")})}); err != nil {
		t.Fatal(err)
	}

	conversations := []string{ch(w.general), ch(w.staff), ch(w.archive), ch(w.quiet), ch(w.news), w.thread, w.dm, group.Msg.DmChannel.Conversation}
	authors := []string{"ann", "bob", "carl", "tim"}
	users := []string{"ann", "mo", "bob", "carl", "tim", "sam", "zoe"}
	permissions := []authz.Permission{authz.Message.View, authz.Message.EditMessage, authz.Message.DeleteMessage, authz.Message.AddReactions, authz.Message.Pin}

	// One message per conversation and author, in the graph as the schema
	// describes it (the service itself never writes these).
	type message struct{ id, conv, author string }
	var messages []message
	var updates []authz.Update
	for _, conv := range conversations {
		obj, err := connectauthz.ParseObjectRef(conv, []string{"channel", "thread", "dm_channel"})
		if err != nil {
			t.Fatal(err)
		}
		for _, author := range authors {
			m := message{id: fmt.Sprintf("m%d", len(messages)), conv: conv, author: author}
			messages = append(messages, m)
			updates = append(updates,
				authz.Touch(authz.Relationship{Relation: authz.Message.Channel, ResourceID: m.id, Subject: obj.Subject()}),
				authz.Touch(authz.Relationship{Relation: authz.Message.Author, ResourceID: m.id, Subject: authz.UserSubject(author)}))
		}
	}
	written, err := h.authz.Write(ctx, updates)
	if err != nil {
		t.Fatal(err)
	}
	at := authz.AtLeastAsFresh(written)
	compared, granted := 0, 0
	for _, user := range users {
		var checks []authz.Check
		for _, m := range messages {
			for _, p := range permissions {
				checks = append(checks, authz.Check{Subject: authz.UserSubject(user), Permission: p, ResourceID: m.id})
			}
		}
		schema, err := h.authz.CheckBulk(ctx, checks, at)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range messages {
			service, err := h.svc.MessageRights(ctx, user, m.conv, m.author, at)
			if err != nil {
				t.Fatal(err)
			}
			for j, p := range permissions {
				want := schema[i*len(permissions)+j].Allowed
				compared++
				if want {
					granted++
				}
				if service[p.Name] != want {
					t.Errorf("%s on a message of %s in %s: %s is %v for the schema, %v for the service", user, m.author, m.conv, p.Name, want, service[p.Name])
				}
			}
		}
	}
	// Both answers are interesting: many grants, many refusals.
	if granted < compared/5 || granted > compared*4/5 {
		t.Errorf("%d of %d granted: the fixture does not tell the rules apart", granted, compared)
	}
	t.Logf("%d decisions compared, %d granted", compared, granted)
}

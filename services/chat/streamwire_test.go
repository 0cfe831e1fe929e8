package chat_test

import (
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// TestStreamIsTheSameInEveryCodec: an event encoded once for every binary
// session reaches each session, binary or JSON, Connect or gRPC-Web, as
// the same message, field for field, the author's nonce to the author
// alone.
func TestStreamIsTheSameInEveryCodec(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	codecs := []struct {
		name string
		opts []connect.ClientOption
	}{
		{"connect+proto", nil},
		{"connect+json", []connect.ClientOption{connect.WithProtoJSON()}},
		{"grpc-web+proto", []connect.ClientOption{connect.WithGRPCWeb()}},
		{"grpc-web+json", []connect.ClientOption{connect.WithGRPCWeb(), connect.WithProtoJSON()}},
	}
	type session struct {
		codec string
		*live
	}
	var carls, bobs []session
	for _, c := range codecs {
		client := chatv1connect.NewStreamServiceClient(http.DefaultClient, h.url, c.opts...)
		carls = append(carls, session{c.name, subscribe(t, client, "carl", "")})
		bobs = append(bobs, session{c.name, subscribe(t, client, "bob", "")})
	}
	sent := must(h.chat.SendMessage(t.Context(), as("bob", w.token, &chatv1.SendMessageRequest{
		Conversation: ch(w.general), Content: "**hello** <@carl>", Nonce: "n-7"}))).Msg.Message

	check := func(sessions []session, wantNonce string) *chatv1.StreamEvent {
		var first *chatv1.StreamEvent
		for _, s := range sessions {
			ev := s.next(t, created(sent.Content))
			mc := ev.GetMessageCreated()
			if mc.Nonce != wantNonce {
				t.Errorf("%s over %s: nonce %q, want %q", s.user, s.codec, mc.Nonce, wantNonce)
			}
			if got := mc.GetMessage(); got.GetId() != sent.Id || got.GetAuthorId() != "bob" || !proto.Equal(got.GetMentions(), sent.GetMentions()) {
				t.Errorf("%s over %s: message %v, want %v", s.user, s.codec, got, sent)
			}
			if len(ev.ProtoReflect().GetUnknown()) != 0 {
				t.Errorf("%s over %s: the event has fields its client does not know", s.user, s.codec)
			}
			if first == nil {
				first = ev
			} else if !proto.Equal(ev, first) {
				t.Errorf("%s over %s received\n%v\nover %s\n%v", s.user, s.codec, ev, sessions[0].codec, first)
			}
		}
		return first
	}
	carl := check(carls, "")
	bob := check(bobs, "n-7")
	bob.GetMessageCreated().Nonce = ""
	if !proto.Equal(carl, bob) {
		t.Errorf("bob's event, nonce aside, is not carl's:\n%v\n%v", bob, carl)
	}
}

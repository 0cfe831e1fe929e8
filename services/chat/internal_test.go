package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

func TestNextID(t *testing.T) {
	// Ahead of this clock (another instance's): right after it.
	ahead := uuid.MustParse("7fffffff-ffff-7000-8000-000000000000")
	if got := nextID(ahead); got != uuid.MustParse("7fffffff-ffff-7000-8000-000000000001") {
		t.Fatalf("after a future id: %s", got)
	}
	// Behind this clock: a fresh UUIDv7.
	for last := uuid.Nil; ; {
		id := nextID(last)
		if id.Version() != 7 || bytes.Compare(id[:], last[:]) <= 0 {
			t.Fatalf("nextID(%s) = %s", last, id)
		}
		if last != uuid.Nil {
			break
		}
		last = id
	}
	for _, tt := range []struct{ in, want string }{
		{"01900000-0000-7000-8000-000000000000", "01900000-0000-7000-8000-000000000001"},
		{"01900000-0000-7000-bfff-ffffffffffff", "01900000-0000-7001-8000-000000000000"},
		{"01900000-0000-7fff-bfff-ffffffffffff", "01900000-0001-7000-8000-000000000000"},
	} {
		got := successor(uuid.MustParse(tt.in))
		if got.String() != tt.want || got.Version() != 7 || got.Variant() != uuid.RFC4122 {
			t.Errorf("successor(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseMentions(t *testing.T) {
	role := "0190a3c4-7b1e-7c00-8000-000000000001"
	for _, tt := range []struct{ text, want string }{
		{"hi <@bob> and <@!carl> and <@bob>", "users[bob carl] roles[] everyone=false here=false"},
		{"<@&" + role + "> <@&" + role + "> <@&nope>", "users[] roles[" + role + "] everyone=false here=false"},
		{"@everyone @here", "users[] roles[] everyone=true here=true"},
		{"(@everyone)", "users[] roles[] everyone=true here=false"},
		{"mail ann@everyone.org or x@here", "users[] roles[] everyone=false here=false"},
		{"@everyones and @hereafter", "users[] roles[] everyone=false here=false"},
		{"`@everyone <@bob>` and ```go\n@here <@carl>\n```", "users[] roles[] everyone=false here=false"},
		{"< @bob> <@> <@a b>", "users[] roles[] everyone=false here=false"},
		{"plain words, `code`, no at sign", "users[] roles[] everyone=false here=false"},
		{"`x` <@bob> `@here` @everyone", "users[bob] roles[] everyone=true here=false"},
	} {
		m := parseMentions(tt.text)
		if got := fmt.Sprintf("users%v roles%v everyone=%v here=%v", m.users, m.roles, m.everyone, m.here); got != tt.want {
			t.Errorf("%q: %s, want %s", tt.text, got, tt.want)
		}
	}
	many := ""
	for i := range 150 {
		many += fmt.Sprintf("<@u%d> ", i)
	}
	if m := parseMentions(many); len(m.users) != maxMentions {
		t.Errorf("%d users pinged, at most %d", len(m.users), maxMentions)
	}
	if got := (mentions{users: []string{"ann", "bob"}}).pinged("ann"); fmt.Sprint(got) != "[bob]" {
		t.Errorf("an author pings themselves: %v", got)
	}
}

func TestIsEmoji(t *testing.T) {
	for _, e := range []string{"👍", "🇫🇷", "👨‍👩‍👧‍👦", "1️⃣", "#️⃣", "👋🏽", "❤️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "©️", "‼️"} {
		if !isEmoji(e) {
			t.Errorf("%q is an emoji", e)
		}
	}
	for _, s := range []string{"", "a", "lol", "1", "👍 ", " 👍", "👍a", "é", "\u200d", "👍\x00"} {
		if isEmoji(s) {
			t.Errorf("%q is not an emoji", s)
		}
	}
}

func TestConversationPermissionsAreInTheSchema(t *testing.T) {
	for _, typ := range conversationTypes {
		for _, name := range conversationPermissions {
			if p := (authz.Permission{ResourceType: authz.ObjectType(typ), Name: name}); !p.InSchema() {
				t.Errorf("%s is not in the schema", p)
			}
		}
	}
}

func TestRightsOn(t *testing.T) {
	// A moderator who cannot read history still deletes and pins; an author
	// who no longer sees the conversation neither edits nor deletes.
	if r := rightsOn(conversationRights{view: true, manage: true}, false); !r.delete || !r.pin || r.view || r.edit {
		t.Errorf("moderator without history: %+v", r)
	}
	if r := rightsOn(conversationRights{history: true}, true); r.edit || r.delete {
		t.Errorf("author without view: %+v", r)
	}
	if r := rightsOn(conversationRights{view: true, history: true, react: true}, true); !r.edit || !r.delete || !r.react || r.pin {
		t.Errorf("author: %+v", r)
	}
	if r := rightsOn(conversationRights{staff: true}, false); !r.delete || r.pin {
		t.Errorf("staff: %+v", r)
	}
}

// TestStreamHandsEachLoggedEventOutOnce: an event of the log handed out a
// second time (it must never be; this guards the promise of exactly once)
// reaches nobody again, and is counted.
func TestStreamHandsEachLoggedEventOutOnce(t *testing.T) {
	s := newStream(nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), StreamConfig{Buffer: 8})
	sub := &subscription{user: "ann", queue: newEventQueue(8), ended: make(chan struct{})}
	s.subs["ann"] = map[*subscription]struct{}{sub: {}}
	first := logged{pos: position{xid: 100000, id: 8872}, conversation: "channel:c", event: &chatv1.StreamEvent{Id: "100000.8872"}}
	later := logged{pos: position{xid: 100001, id: 8873}, conversation: "channel:c", event: &chatv1.StreamEvent{Id: "100001.8873"}}
	for _, e := range []logged{first, first, later, first, later} {
		s.deliver(e, []string{"ann"})
	}
	var got []string
	for _, ev := range sub.queue.take(nil) {
		got = append(got, ev.event.Id)
	}
	if fmt.Sprint(got) != "[100000.8872 100001.8873]" {
		t.Fatalf("delivered %v, want each event once, in order", got)
	}
	if n := testutil.ToFloat64(s.metrics.repeated); n != 3 {
		t.Fatalf("counted %v repeats, want 3", n)
	}
}

// TestEventQueue: events come out in order, at most limit wait (those
// taken count until sent), and the queue signals when there are some.
func TestEventQueue(t *testing.T) {
	q := newEventQueue(3)
	ev := func(id string) *outgoing { return newOutgoing(&chatv1.StreamEvent{Id: id}) }
	ids := func(evs []*outgoing) string {
		var out []string
		for _, e := range evs {
			out = append(out, e.event.Id)
		}
		return fmt.Sprint(out)
	}
	for _, id := range []string{"1", "2", "3"} {
		if !q.push(ev(id)) {
			t.Fatalf("push %s refused below the limit", id)
		}
	}
	if q.push(ev("4")) {
		t.Fatal("a fourth event was queued past the limit of 3")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no signal with events waiting")
	}
	batch := q.take(nil)
	if got := ids(batch); got != "[1 2 3]" {
		t.Fatalf("took %s", got)
	}
	if q.push(ev("5")) {
		t.Fatal("queued while the 3 taken are not sent yet")
	}
	q.sent()
	if !q.push(ev("6")) {
		t.Fatal("refused once one taken was sent")
	}
	q.sent()
	q.sent()
	if got := ids(q.take(batch)); got != "[6]" {
		t.Fatalf("took %s, want [6]", got)
	}
}

// TestBinaryCodec: which requests' codec is protobuf's binary encoding.
func TestBinaryCodec(t *testing.T) {
	for _, c := range []struct {
		contentType string
		binary      bool
	}{
		{"application/connect+proto", true},
		{"application/connect+json", false},
		{"application/connect+json; charset=utf-8", false},
		{"Application/Connect+Proto", true},
		{"application/grpc", true},
		{"application/grpc+proto", true},
		{"application/grpc+json", false},
		{"application/grpc-web", true},
		{"application/grpc-web+proto", true},
		{"application/grpc-web+json", false},
		{"application/grpc-web-text", false},
		{"application/proto", false},
		{"application/json", false},
		{"", false},
	} {
		h := http.Header{}
		h.Set("Content-Type", c.contentType)
		if got := binaryCodec(h); got != c.binary {
			t.Errorf("binaryCodec(%q) = %v, want %v", c.contentType, got, c.binary)
		}
	}
}

// TestOutgoingEncodedOnce: every binary session of an event sends the
// same encoding, made once, and it decodes to the event.
func TestOutgoingEncodedOnce(t *testing.T) {
	ev := &chatv1.StreamEvent{Id: "7.1", Event: &chatv1.StreamEvent_MessageCreated{MessageCreated: &chatv1.MessageCreated{
		Message: &chatv1.Message{Id: "m", Content: "hi", AuthorId: "bob"}, Nonce: "n"}}}
	o := newOutgoing(ev)
	var wires [8]*chatv1.StreamEvent
	var wg sync.WaitGroup
	for i := range wires {
		wg.Go(func() { wires[i] = o.forSession(true) })
	}
	wg.Wait()
	want, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wires {
		if w != wires[0] {
			t.Fatal("the event was encoded more than once")
		}
		got, err := proto.Marshal(w)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("sent %x (%v), want %x", got, err, want)
		}
	}
	back := &chatv1.StreamEvent{}
	if err := proto.Unmarshal(want, back); err != nil || !proto.Equal(back, ev) {
		t.Fatalf("decoded %v (%v), want %v", back, err, ev)
	}
	if o.forSession(false) != ev {
		t.Fatal("a JSON session does not get the event itself")
	}
}

// TestSocketCloseStatus: a WebSocket session closes with 4000 plus the
// Connect code of what ended it, its message cut to a close frame's 123
// bytes on a rune boundary; normally when the client went or all is well.
func TestSocketCloseStatus(t *testing.T) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	long := strings.Repeat("é", 100) // 200 bytes
	for _, c := range []struct {
		name   string
		ctx    context.Context
		err    error
		status websocket.StatusCode
		reason string
	}{
		{"no error", context.Background(), nil, websocket.StatusNormalClosure, ""},
		{"the client went", gone, errBehind, websocket.StatusNormalClosure, ""},
		{"fell behind", context.Background(), errBehind, 4008, "the stream fell behind: reconnect with resume_after"},
		{"stopping", context.Background(), connect.NewError(connect.CodeUnavailable, errors.New("bye")), 4014, "bye"},
		{"a plain error", context.Background(), errors.New("boom"), 4002, "boom"},
		{"a long message", context.Background(), connect.NewError(connect.CodeInternal, errors.New(long)), 4013, strings.Repeat("é", 61)},
	} {
		status, reason := closeStatus(c.ctx, c.err)
		if status != c.status || reason != c.reason {
			t.Errorf("%s: closed %d %q, want %d %q", c.name, status, reason, c.status, c.reason)
		}
	}
}

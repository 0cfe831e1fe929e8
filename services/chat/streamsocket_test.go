package chat_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/beepchat/beep/services/chat"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// socket is one session of the stream over WebSocket, read in the
// background.
type socket struct {
	events chan *chatv1.StreamEvent
	ended  chan error
}

// dialSocket opens user's stream over WebSocket with the query given and
// waits for its Ready; or returns the refusal's HTTP status.
func dialSocket(t *testing.T, h *harness, user, query string) (*socket, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	header := http.Header{}
	if user != "" {
		header.Set("Test-User", user)
	}
	url := "ws" + strings.TrimPrefix(h.url, "http") + chat.WebSocketPath + query
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		if resp == nil {
			t.Fatalf("%s dials the stream: %v", user, err)
		}
		return nil, resp.StatusCode
	}
	conn.SetReadLimit(1 << 20)
	s := &socket{events: make(chan *chatv1.StreamEvent, 1000), ended: make(chan error, 1)}
	go func() {
		for {
			typ, b, err := conn.Read(ctx)
			if err != nil {
				s.ended <- err
				return
			}
			ev := &chatv1.StreamEvent{}
			switch typ {
			case websocket.MessageBinary:
				err = proto.Unmarshal(b, ev)
			default:
				err = protojson.Unmarshal(b, ev)
			}
			if err != nil {
				s.ended <- err
				return
			}
			s.events <- ev
		}
	}()
	if ev := s.next(t); ev.GetReady() == nil {
		t.Fatalf("%s's first event is %v, not Ready", user, ev)
	}
	return s, http.StatusSwitchingProtocols
}

func (s *socket) next(t *testing.T) *chatv1.StreamEvent {
	t.Helper()
	select {
	case ev := <-s.events:
		return ev
	case err := <-s.ended:
		t.Fatalf("the socket ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no event in 5s")
	}
	return nil
}

// nextMessage skips to the next MessageCreated.
func (s *socket) nextMessage(t *testing.T) *chatv1.StreamEvent {
	t.Helper()
	for {
		if ev := s.next(t); ev.GetMessageCreated() != nil {
			return ev
		}
	}
}

// TestStreamOverWebSocket: the stream over WebSocket, in JSON and in
// binary, carries what the Connect stream carries to the same user, and
// nothing the user may not see; it is refused, before any upgrade, to
// who may not subscribe and for a request that makes no sense.
func TestStreamOverWebSocket(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	viaConnect := subscribe(t, h.stream, "carl", "")
	asJSON, _ := dialSocket(t, h, "carl", "")
	asProto, _ := dialSocket(t, h, "carl", "?encoding=proto")

	// #staff is Crew's: bob's message there reaches none of carl's
	// sessions; the next one in #general reaches them all, the same.
	h.send(t, "bob", w.token, ch(w.staff), "crew only")
	h.send(t, "bob", w.token, ch(w.general), "for all")
	want := viaConnect.next(t, func(ev *chatv1.StreamEvent) bool { return ev.GetMessageCreated() != nil })
	if got := want.GetMessageCreated().GetMessage().GetContent(); got != "for all" {
		t.Fatalf("carl's Connect stream received %q", got)
	}
	for name, s := range map[string]*socket{"json": asJSON, "proto": asProto} {
		if got := s.nextMessage(t); !proto.Equal(got, want) {
			t.Errorf("over WebSocket (%s) carl received\n%v\nwant\n%v", name, got, want)
		}
	}

	for _, c := range []struct {
		name, user, query string
		status            int
	}{
		{"no one signed in", "", "", http.StatusUnauthorized},
		{"an unknown encoding", "carl", "?encoding=xml", http.StatusBadRequest},
		{"a resume point that is no event id", "carl", "?resume_after=yesterday", http.StatusBadRequest},
	} {
		if _, status := dialSocket(t, h, c.user, c.query); status != c.status {
			t.Errorf("%s: HTTP %d, want %d", c.name, status, c.status)
		}
	}
}

// TestIdleSocketsArePinged: a WebSocket session sent nothing for the ping
// interval is pinged; one whose client answers stays, one whose client
// does not (it reads nothing, so answers no ping) is dropped.
func TestIdleSocketsArePinged(t *testing.T) {
	h := start(t, func(c *chat.Config) { c.Stream.SocketPing = 200 * time.Millisecond })
	url := "ws" + strings.TrimPrefix(h.url, "http") + chat.WebSocketPath
	dial := func(user string) *websocket.Conn {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			conn, _, err := websocket.Dial(t.Context(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Test-User": {user}}})
			if err != nil {
				t.Fatalf("%s dials: %v", user, err)
			}
			t.Cleanup(func() { _ = conn.CloseNow() })
			_, b, err := conn.Read(t.Context())
			if err == nil && strings.Contains(string(b), "ready") {
				return conn
			}
			// The stream answers 4014 (unavailable) until it runs.
			if websocket.CloseStatus(err) != 4014 || time.Now().After(deadline) {
				t.Fatalf("%s's first message: %s (%v)", user, b, err)
			}
		}
	}
	answering, silent := dial("ann"), dial("bob")
	ended := make(chan error, 1)
	go func() {
		_, _, err := answering.Read(t.Context()) // answers pings while it waits
		ended <- err
	}()
	time.Sleep(time.Second) // pings at 200 ms; unanswered ones drop the session by 400 ms
	select {
	case err := <-ended:
		t.Fatalf("the session that answers pings ended: %v", err)
	default:
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	for {
		_, _, err := silent.Read(ctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			t.Fatal("the session that answered no ping is still open")
		}
		break
	}
}

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/beepchat/beep/services/chat"
)

// socket is a stream over WebSocket (JSON), as a browser or a bot holds it.
type socket struct {
	messages chan string // the contents of the messages created, in order
	ended    chan error
}

// dialSocket opens token's stream over WebSocket at the gateway base
// (anonymously without a token), from the page origin if set; the HTTP
// status of a refusal, or 101.
func dialSocket(t *testing.T, base, token, origin string) (*socket, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	if origin != "" {
		header.Set("Origin", origin)
	}
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+chat.WebSocketPath, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		if resp == nil {
			t.Fatalf("dialing the stream: %v", err)
		}
		return nil, resp.StatusCode
	}
	s := &socket{messages: make(chan string, 100), ended: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		for {
			_, b, err := conn.Read(ctx)
			if err != nil {
				s.ended <- err
				return
			}
			var ev struct {
				Ready          map[string]any `json:"ready"`
				MessageCreated struct {
					Message struct {
						Content string `json:"content"`
					} `json:"message"`
				} `json:"messageCreated"`
			}
			if err := json.Unmarshal(b, &ev); err != nil {
				s.ended <- err
				return
			}
			switch {
			case ev.Ready != nil:
				close(ready)
			case ev.MessageCreated.Message.Content != "":
				s.messages <- ev.MessageCreated.Message.Content
			}
		}
	}()
	select {
	case <-ready:
	case err := <-s.ended:
		t.Fatalf("the stream ended before Ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no Ready in 10s")
	}
	return s, http.StatusSwitchingProtocols
}

// openSocket is dialSocket that must succeed.
func openSocket(t *testing.T, base, token, origin string) *socket {
	t.Helper()
	s, status := dialSocket(t, base, token, origin)
	if s == nil {
		t.Fatalf("the stream over WebSocket: HTTP %d", status)
	}
	return s
}

// nextMessage is the content of the next message created.
func (s *socket) nextMessage(t *testing.T) string {
	t.Helper()
	select {
	case m := <-s.messages:
		return m
	case err := <-s.ended:
		t.Fatalf("the stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no message in 10s")
	}
	return ""
}

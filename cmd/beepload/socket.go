package main

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/services/chat"
)

// socketOpener subscribes over WebSocket, in the binary encoding, each
// stream on its own connection.
func socketOpener(base string) opener {
	url := "ws" + strings.TrimPrefix(base, "http") + chat.WebSocketPath + "?encoding=proto"
	return func(ctx context.Context, token string) (eventStream, error) {
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
		if err != nil {
			return nil, err
		}
		// Reads take no context of their own (as a client would hold
		// its stream): the connection is closed when ctx ends.
		stop := context.AfterFunc(ctx, func() { _ = conn.CloseNow() })
		return &socketStream{ctx: ctx, conn: conn, stop: stop}, nil
	}
}

// socketStream reads a stream's events off its WebSocket.
type socketStream struct {
	ctx  context.Context
	conn *websocket.Conn
	stop func() bool
	msg  *chatv1.StreamEvent
	err  error
}

func (s *socketStream) Receive() bool {
	typ, b, err := s.conn.Read(context.Background())
	if err != nil {
		s.err = err
		if s.ctx.Err() != nil || websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			s.err = nil
		}
		return false
	}
	if typ != websocket.MessageBinary {
		s.err = errors.New("a text message on a binary stream")
		return false
	}
	s.msg = &chatv1.StreamEvent{}
	if err := proto.Unmarshal(b, s.msg); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *socketStream) Msg() *chatv1.StreamEvent { return s.msg }
func (s *socketStream) Err() error               { return s.err }
func (s *socketStream) Close() error             { s.stop(); return s.conn.CloseNow() }

package chat

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/beepchat/beep/authz/connectauthz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// WebSocketPath is where the stream is also served over WebSocket
// (RFC 6455), under the stream service's path so that the gateway routes
// it as the service's: GET WebSocketPath?encoding=json|proto&resume_after=ID,
// upgraded. It is Subscribe over another transport, authorized as
// Subscribe, and carries the same events: one StreamEvent a message, in
// protobuf's JSON form as a text message (encoding=json, the default) or
// in its binary form as a binary message (encoding=proto). The client
// sends nothing but control frames (pings are answered); a data message
// from it ends the session. The session ends with a close status of 4000
// plus the Connect code of what ended it (4008 resource_exhausted: fell
// behind, reconnect with resume_after; 4014 unavailable: the instance
// is stopping, reconnect), its message as the reason.
const WebSocketPath = "/" + chatv1connect.StreamServiceName + "/SubscribeWebSocket"

// WebSocketHandler returns the route and the handler of the stream over
// WebSocket; checks authorizes each session as it does Subscribe. The
// gateway has checked the request's Origin (a browser sends its session
// cookie with a WebSocket from any page), so it is not checked again here,
// where the Host is the gateway's upstream name.
func (s *Stream) WebSocketHandler(checks *connectauthz.Interceptor) (string, http.Handler) {
	return "GET " + WebSocketPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveWebSocket(w, r, checks)
	})
}

func (s *Stream) serveWebSocket(w http.ResponseWriter, r *http.Request, checks *connectauthz.Interceptor) {
	q := r.URL.Query()
	req := &chatv1.SubscribeRequest{ResumeAfter: q.Get("resume_after")}
	var binary bool
	switch q.Get("encoding") {
	case "", "json":
	case "proto":
		binary = true
	default:
		refuse(w, r, invalid("encoding: json or proto"))
		return
	}
	if req.ResumeAfter != "" {
		if _, err := parsePosition(req.ResumeAfter); err != nil {
			refuse(w, r, invalid("resume_after: %v", err))
			return
		}
	}
	ctx, err := checks.Authorize(r.Context(), chatv1connect.StreamServiceSubscribeProcedure, req, r.Header)
	if err != nil {
		refuse(w, r, err)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept answered the client
	}
	// Reads (and answers pings) until the client goes: ctx ends then.
	ctx = conn.CloseRead(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sink := &socketSink{conn: conn, binary: binary}
	sink.lastWrite.Store(time.Now().UnixNano())
	pingWhileOpen(ctx, cancel, sink, s.socketPing, s.socketPing)
	// Writes take no context of their own (setting one up for each cost
	// a tenth of a delivery): the connection is closed when ctx ends,
	// which ends a write that hangs.
	stop := context.AfterFunc(ctx, func() { _ = conn.CloseNow() })
	defer stop()
	err = s.session(ctx, req, sink, binary)
	status, reason := closeStatus(ctx, err)
	_ = conn.Close(status, reason)
}

// refuse answers a request that is not upgraded with a Connect error, as
// JSON, its HTTP status derived from the code.
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	cerr := new(connect.Error)
	if !errors.As(err, &cerr) {
		cerr = connect.NewError(connect.CodeInternal, errors.New("the stream failed"))
	}
	_ = connect.NewErrorWriter().Write(w, r, cerr)
}

// pingWhileOpen pings an idle session: once nothing has been sent to it
// for every (StreamConfig.SocketPing), checked after `after`, and again
// every after each pong or write, until ctx ends; it ends the session
// (cancel) when a pong does not come back within every. A peer gone
// without closing is noticed, and proxies see traffic. A session that
// receives events is not pinged: its traffic keeps proxies from closing
// it, and a peer gone fills its queue (the session then ends as fallen
// behind) or fails its writes. Timers rather than a goroutine: an idle
// session holds no stack for it.
func pingWhileOpen(ctx context.Context, cancel context.CancelFunc, sink *socketSink, every, after time.Duration) {
	time.AfterFunc(after, func() {
		if ctx.Err() != nil {
			return
		}
		if quiet := time.Since(time.Unix(0, sink.lastWrite.Load())); quiet < every {
			pingWhileOpen(ctx, cancel, sink, every, every-quiet)
			return
		}
		pingCtx, stop := context.WithTimeout(ctx, every)
		err := sink.conn.Ping(pingCtx)
		stop()
		if err != nil {
			cancel()
			return
		}
		sink.lastWrite.Store(time.Now().UnixNano())
		pingWhileOpen(ctx, cancel, sink, every, every)
	})
}

// closeStatus is how a session that ended with err is closed.
func closeStatus(ctx context.Context, err error) (websocket.StatusCode, string) {
	if err == nil || ctx.Err() != nil {
		return websocket.StatusNormalClosure, ""
	}
	code := connect.CodeOf(err)
	msg := err.Error()
	var cerr *connect.Error
	if errors.As(err, &cerr) {
		msg = cerr.Message()
	}
	return websocket.StatusCode(4000 + int(code)), truncateUTF8(msg, 123)
}

// truncateUTF8 shortens s to at most n bytes without splitting a rune (a
// close frame's reason is at most 123 bytes).
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// socketSink sends a session's events as WebSocket messages.
type socketSink struct {
	conn   *websocket.Conn
	binary bool
	buf    []byte
	// lastWrite is when an event (or a ping) was last sent, in Unix
	// nanoseconds.
	lastWrite atomic.Int64
}

func (k *socketSink) Send(ev *chatv1.StreamEvent) error {
	var (
		err error
		typ = websocket.MessageText
	)
	if k.binary {
		typ = websocket.MessageBinary
		k.buf, err = proto.MarshalOptions{}.MarshalAppend(k.buf[:0], ev)
	} else {
		k.buf, err = protojson.MarshalOptions{}.MarshalAppend(k.buf[:0], ev)
	}
	if err != nil {
		return connect.NewError(connect.CodeInternal, err)
	}
	err = k.conn.Write(context.Background(), typ, k.buf)
	k.lastWrite.Store(time.Now().UnixNano())
	if cap(k.buf) > maxKeptBuffer {
		k.buf = nil // an idle session keeps no large event's buffer
	}
	return err
}

// maxKeptBuffer is the largest encoding buffer a session keeps between
// events; most events are a few hundred bytes.
const maxKeptBuffer = 4 << 10

package chat

import (
	"net/http"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// outgoing is one event on its way to the sessions that receive it, the
// same for all of them. Its binary encoding is made once, by the first
// session that sends it, and reused by the others: an event of a channel
// goes to every member connected, and encoding it again for each was
// about a tenth of the instance's CPU under load.
type outgoing struct {
	event *chatv1.StreamEvent
	once  sync.Once
	wire  *chatv1.StreamEvent
}

func newOutgoing(ev *chatv1.StreamEvent) *outgoing { return &outgoing{event: ev} }

// encoded is the event as a message that holds only its own encoding, as
// unknown fields: the protobuf codec writes those out as they are, so it
// costs a copy, and the session receives exactly the bytes of the event.
// Only for the binary codec: JSON has no place for unknown fields.
func (o *outgoing) encoded() *chatv1.StreamEvent {
	o.once.Do(func() {
		b, err := proto.Marshal(o.event)
		if err != nil {
			// The codec will fail the same way, and say so to the session.
			o.wire = o.event
			return
		}
		w := &chatv1.StreamEvent{}
		w.ProtoReflect().SetUnknown(protoreflect.RawFields(b))
		o.wire = w
	})
	return o.wire
}

// forSession is the message to send a session whose codec is binary or not.
func (o *outgoing) forSession(binary bool) *chatv1.StreamEvent {
	if binary {
		return o.encoded()
	}
	return o.event
}

// binaryCodec reports whether a request's messages are in protobuf's
// binary encoding: Connect says application/connect+proto, gRPC and
// gRPC-Web application/grpc[-web] with +proto or nothing after it; every
// other codec (JSON) is not.
func binaryCodec(h http.Header) bool {
	ct, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	base, codec, named := strings.Cut(ct, "+")
	switch base {
	case "application/connect":
		return codec == "proto"
	case "application/grpc", "application/grpc-web":
		return !named || codec == "proto"
	}
	return false
}

package notification

import (
	"context"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
)

// Pusher is the port for mobile push: it is told of every notification
// once it is committed, with the message it is about, on the consumer's
// goroutine (an implementation must return quickly: hand it over, do not
// send inline). Pushing through third parties (APNs, FCM) is out of scope
// for now; the default tells nobody. A process that dies between the
// commit and the call loses the push, not the notification.
type Pusher interface {
	Push(ctx context.Context, userID string, n *notificationv1.Notification, m *chatv1.Message)
}

// NopPusher pushes nothing: the default.
type NopPusher struct{}

// Push does nothing.
func (NopPusher) Push(context.Context, string, *notificationv1.Notification, *chatv1.Message) {}

package chat

import (
	"context"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// Publisher is told of every change the service commits: the seam where the
// real-time stream (issue #5) plugs in. It is called on the request's
// goroutine once the change is committed (for a DM membership change, once
// SpiceDB holds it too), never for a change that did not commit, so an
// implementation must return quickly (hand the event over, do not deliver
// it inline) and must itself filter who receives it: view_channel and
// read_message_history on Event.Conversation as of the write, or DM
// membership as of Event.ZedToken. A process that dies between the commit
// and the call loses the event, not the change: PostgreSQL stays the
// record a stream resumes from.
type Publisher interface {
	Published(ctx context.Context, e Event)
}

// EventKind is what changed.
type EventKind int

// The kinds of events.
const (
	MessageCreated EventKind = iota + 1
	MessageUpdated
	MessageDeleted
	ReactionAdded
	ReactionRemoved
	MessagePinned
	MessageUnpinned
	// ReadStateUpdated concerns its actor alone.
	ReadStateUpdated
	// DMUpdated: a DM was made, or its members or owner changed.
	DMUpdated
	// DMDeleted: the last member left a group DM.
	DMDeleted
)

// Event is one committed change.
type Event struct {
	Kind EventKind
	// Conversation is where it happened: "channel:<id>", "thread:<id>" or
	// "dm_channel:<id>".
	Conversation string
	// ActorID is who made the change.
	ActorID string
	// MessageID is the message concerned, if any.
	MessageID string
	// Message is the message as it now is (created, updated), without its
	// nonce and with no caller-relative reaction flags.
	Message *chatv1.Message
	// Nonce is the nonce the message was sent with (its author's client
	// matches it with its pending send).
	Nonce string
	// Emoji is the reaction added or removed.
	Emoji *chatv1.Emoji
	// ReadState is the actor's new read state.
	ReadState *chatv1.ReadState
	// DM is the DM as it now is (DMUpdated).
	DM *chatv1.DMChannel
	// Removed are the people who lost access to the DM with this change.
	Removed []string
	// ZedToken is the revision of a DM membership change in the graph.
	ZedToken authz.ZedToken
}

// NopPublisher tells nobody: the default until the stream lands.
type NopPublisher struct{}

// Published does nothing.
func (NopPublisher) Published(context.Context, Event) {}

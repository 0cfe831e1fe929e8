package chat

import (
	"context"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// Publisher is told of every change the service commits, for observers
// other than the stream (whose record, stream_events, is written in the
// change's own transaction, so it exists exactly when the change does). It
// is called on the request's goroutine once the change is committed (for a
// DM membership change, once SpiceDB holds it too), never for a change that
// did not commit, so an implementation must return quickly (hand the event
// over, do not deliver it inline) and must itself filter who receives it:
// view_channel and read_message_history on Event.Conversation as of the
// write, or DM membership as of Event.ZedToken. A process that dies between
// the commit and the call loses the call, not the change nor its stream
// event: PostgreSQL stays the record a stream resumes from.
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
	// ZedToken is the revision the event must be filtered at least as
	// fresh as: a DM membership change's write, or the token the request
	// carried (Beep-Zed-Token).
	ZedToken authz.ZedToken
}

// NopPublisher tells nobody: the default until the stream lands.
type NopPublisher struct{}

// Published does nothing.
func (NopPublisher) Published(context.Context, Event) {}

// tokenOf is the ZedToken a request carries: its events are filtered at
// least as fresh as it.
func tokenOf(h http.Header) authz.ZedToken {
	return authz.ZedToken(h.Get(connectauthz.TokenHeader))
}

// logRow is one row of the stream's log, as a change records it.
type logRow struct {
	conversation string
	audience     []string
	event        *chatv1.StreamEvent
}

// logRows are the rows of the stream's log a change records: its event,
// and for a DM change that removes people, a DMRemoved for them alone.
func logRows(e Event) []logRow {
	var out []logRow
	if conv, audience, ev := streamEvent(e); ev != nil {
		out = append(out, logRow{conv, audience, ev})
	}
	if e.Kind == DMUpdated && len(e.Removed) > 0 {
		out = append(out, logRow{e.Conversation, e.Removed,
			&chatv1.StreamEvent{Event: &chatv1.StreamEvent_DmRemoved{DmRemoved: &chatv1.DMRemoved{Conversation: e.Conversation}}}})
	}
	return out
}

// record queues e's rows of the stream's log in the transaction of batch
// b, to be filtered at least as fresh as e.ZedToken: they exist exactly
// when the change does. Once it committed, call committed.
func record(b *pgx.Batch, e Event) error {
	for _, r := range logRows(e) {
		if err := queueEvent(b, r.conversation, r.audience, e.ZedToken, r.event); err != nil {
			return err
		}
	}
	return nil
}

// recordIn records e in the stream's log within tx (see record).
func recordIn(ctx context.Context, tx pgx.Tx, e Event) error {
	b := &pgx.Batch{}
	if err := record(b, e); err != nil {
		return err
	}
	return tx.SendBatch(ctx, b).Close()
}

// committed follows the commit of a change recorded with record: it wakes
// the stream's readers and tells the Publisher.
func (s *Service) committed(ctx context.Context, e Event) {
	s.stream.waker.wake()
	s.publisher.Published(ctx, e)
}

// streamEvent is what the stream delivers of e: its conversation, its
// audience (nil: whoever sees the conversation) and the event.
func streamEvent(e Event) (string, []string, *chatv1.StreamEvent) {
	ev := &chatv1.StreamEvent{}
	switch e.Kind {
	case MessageCreated:
		ev.Event = &chatv1.StreamEvent_MessageCreated{MessageCreated: &chatv1.MessageCreated{Message: e.Message, Nonce: e.Nonce}}
	case MessageUpdated:
		ev.Event = &chatv1.StreamEvent_MessageUpdated{MessageUpdated: &chatv1.MessageUpdated{Message: e.Message}}
	case MessageDeleted:
		ev.Event = &chatv1.StreamEvent_MessageDeleted{MessageDeleted: &chatv1.MessageDeleted{Conversation: e.Conversation, MessageId: e.MessageID}}
	case ReactionAdded:
		ev.Event = &chatv1.StreamEvent_ReactionAdded{ReactionAdded: &chatv1.ReactionEvent{Conversation: e.Conversation, MessageId: e.MessageID, UserId: e.ActorID, Emoji: e.Emoji}}
	case ReactionRemoved:
		ev.Event = &chatv1.StreamEvent_ReactionRemoved{ReactionRemoved: &chatv1.ReactionEvent{Conversation: e.Conversation, MessageId: e.MessageID, UserId: e.ActorID, Emoji: e.Emoji}}
	case MessagePinned:
		ev.Event = &chatv1.StreamEvent_MessagePinned{MessagePinned: &chatv1.PinEvent{Conversation: e.Conversation, MessageId: e.MessageID, UserId: e.ActorID}}
	case MessageUnpinned:
		ev.Event = &chatv1.StreamEvent_MessageUnpinned{MessageUnpinned: &chatv1.PinEvent{Conversation: e.Conversation, MessageId: e.MessageID, UserId: e.ActorID}}
	case ReadStateUpdated:
		ev.Event = &chatv1.StreamEvent_ReadStateUpdated{ReadStateUpdated: &chatv1.ReadStateUpdated{ReadState: e.ReadState}}
		return e.Conversation, []string{e.ActorID}, ev
	case DMUpdated:
		ev.Event = &chatv1.StreamEvent_DmUpdated{DmUpdated: &chatv1.DMUpdated{DmChannel: e.DM}}
		return e.Conversation, append([]string{}, e.DM.GetMemberIds()...), ev
	case DMDeleted:
		ev.Event = &chatv1.StreamEvent_DmRemoved{DmRemoved: &chatv1.DMRemoved{Conversation: e.Conversation}}
		return e.Conversation, e.Removed, ev
	default:
		return "", nil, nil
	}
	return e.Conversation, nil, ev
}

package chat

import (
	"context"

	"github.com/beepchat/beep/authz"
)

// Rights on a message, without a relationship per message.
//
// The schema's message definition says who may do what with a message:
//
//	definition message {
//	    relation channel: channel | thread | dm_channel
//	    relation author: user
//	    permission view = channel->read_message_history
//	    permission edit_message = author & channel->view_channel
//	    permission delete_message = (author & channel->view_channel) + channel->manage_messages + channel->moderate_as_staff
//	    permission add_reactions = view & channel->add_reactions
//	    permission pin = channel->manage_messages
//	}
//
// Writing message:<id>#channel and #author for every message would cost a
// SpiceDB write (milliseconds, and revisions) per send. Every arrow above
// ends on the conversation, and the only other input is the author, which
// the messages table holds. So the service asks the graph for the
// conversation's permissions (one check, or one CheckBulk) and applies the
// same formulas with the author column: messageRights below. A test
// (TestMessageRightsMatchTheSchema) writes the message relationships for
// real and compares SpiceDB's answers with these.

// conversationRights are a person's permissions on a conversation.
type conversationRights struct {
	view, history, react, manage, staff bool
}

// messageRights are the message definition's permissions.
type messageRights struct {
	view, edit, delete, react, pin bool
}

// rightsOn applies the message definition to a conversation's permissions
// and authorship.
func rightsOn(c conversationRights, author bool) messageRights {
	return messageRights{
		view:   c.history,                                 // channel->read_message_history
		edit:   author && c.view,                          // author & channel->view_channel
		delete: (author && c.view) || c.manage || c.staff, // + channel->manage_messages + channel->moderate_as_staff
		react:  c.history && c.react,                      // view & channel->add_reactions
		pin:    c.manage,                                  // channel->manage_messages
	}
}

// conversationRightsOf asks the graph, in one round trip, for the
// permissions named (the others stay false).
func (s *Service) conversationRightsOf(ctx context.Context, subject authz.Subject, c conversation, consistency authz.Consistency, names ...string) (conversationRights, error) {
	checks := make([]authz.Check, len(names))
	for i, n := range names {
		checks[i] = c.check(subject, n)
	}
	decisions, err := s.authz.CheckBulk(ctx, checks, consistency)
	if err != nil {
		return conversationRights{}, err
	}
	var r conversationRights
	for i, n := range names {
		held := decisions[i].Allowed
		switch n {
		case permView:
			r.view = held
		case permHistory:
			r.history = held
		case permReact:
			r.react = held
		case permManageMessages:
			r.manage = held
		case permStaff:
			r.staff = held
		}
	}
	return r, nil
}

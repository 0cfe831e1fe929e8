package chat

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// conversationTypes are the definitions of the graph a conversation is.
var conversationTypes = []string{string(authz.TypeChannel), string(authz.TypeThread), string(authz.TypeDmChannel)}

// conversation is where messages live: a channel, a thread or a DM, by its
// object in the graph. Its ids are UUIDs (the community service's and ours).
type conversation struct {
	typ authz.ObjectType
	id  uuid.UUID
}

// parseConversation reads "type:id" as the interceptor did.
func parseConversation(ref string) (conversation, error) {
	obj, err := connectauthz.ParseObjectRef(ref, conversationTypes)
	if err != nil {
		return conversation{}, invalid("conversation: %v", err)
	}
	id, err := parseID("conversation", obj.ID)
	if err != nil {
		return conversation{}, err
	}
	return conversation{typ: obj.Type, id: id}, nil
}

func dmConversation(id uuid.UUID) conversation {
	return conversation{typ: authz.TypeDmChannel, id: id}
}

func (c conversation) String() string { return string(c.typ) + ":" + c.id.String() }

// permission is the conversation's permission of that name.
func (c conversation) permission(name string) authz.Permission {
	return authz.Permission{ResourceType: c.typ, Name: name}
}

// check is whether subject holds the named permission here.
func (c conversation) check(subject authz.Subject, name string) authz.Check {
	return authz.Check{Subject: subject, Permission: c.permission(name), ResourceID: c.id.String()}
}

// kindCache remembers channels' kinds, which never change.
type kindCache struct {
	mu    sync.Mutex
	kinds map[uuid.UUID]communityv1.ChannelKind
}

// kindCacheSize bounds the cache; past it, it starts again empty.
const kindCacheSize = 100_000

func newKindCache() *kindCache { return &kindCache{kinds: map[uuid.UUID]communityv1.ChannelKind{}} }

func (k *kindCache) get(id uuid.UUID) (communityv1.ChannelKind, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kind, ok := k.kinds[id]
	return kind, ok
}

func (k *kindCache) put(id uuid.UUID, kind communityv1.ChannelKind) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.kinds) >= kindCacheSize {
		clear(k.kinds)
	}
	k.kinds[id] = kind
}

// requireTextChannel refuses a voice channel: text and announcement
// channels, threads and DMs have messages. A channel's kind comes from the
// community service, asked once as the caller (who sees the channel: the
// interceptor checked a permission that implies view_channel).
func (s *Service) requireTextChannel(ctx context.Context, c conversation, h http.Header) error {
	if c.typ != authz.TypeChannel {
		return nil
	}
	kind, ok := s.kinds.get(c.id)
	if !ok {
		req := connect.NewRequest(&communityv1.GetChannelRequest{ChannelId: c.id.String()})
		req.Header().Set(connectauthz.TokenHeader, h.Get(connectauthz.TokenHeader))
		resp, err := s.community.GetChannel(ctx, req)
		switch connect.CodeOf(err) {
		case connect.CodePermissionDenied, connect.CodeNotFound:
			return connect.NewError(connect.CodeOf(err), errors.New("no such channel"))
		}
		if err != nil {
			s.log.ErrorContext(ctx, "asking the community service for a channel", "channel", c.id, "err", err)
			return connect.NewError(connect.CodeUnavailable, errors.New("the community service did not answer; try again"))
		}
		kind = resp.Msg.Channel.GetKind()
		s.kinds.put(c.id, kind)
	}
	if kind == communityv1.ChannelKind_CHANNEL_KIND_VOICE {
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("a voice channel has no messages"))
	}
	return nil
}

package chat

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// Feed is the chat service's internal event feed
// (beep.chat.v1.EventFeedService), for the notification service alone: it
// follows the whole event log, unfiltered, replayed from the table then
// live from the stream's reader (a "firehose" subscription, which joins
// between two dispatched events like a session, so there is no gap), and
// appends the events the notification service makes. It is served beside
// the service on its port and never routed by the gateway.
type Feed struct {
	svc *Service
}

var _ chatv1connect.EventFeedServiceHandler = (*Feed)(nil)

// Feed is the service's internal event feed; it runs with the Stream.
func (s *Service) Feed() *Feed { return &Feed{svc: s} }

// Handler returns the path and the Connect handler of the feed.
func (f *Feed) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return chatv1connect.NewEventFeedServiceHandler(f, opts...)
}

// firehoseBuffer is how many events a follower may fall behind by before
// its Follow is ended (it resumes after the last event it handled).
const firehoseBuffer = 4096

// firehose receives every event the stream dispatches.
type firehose struct {
	ch chan logged
	// skipThrough: events at or before it were replayed from the table.
	skipThrough position
	ended       chan struct{}
	once        sync.Once
	err         error
}

func (f *firehose) end(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.ended)
	})
}

// registerFirehose adds f between two dispatched events; the events after
// the returned position reach it live (those after `after` only).
func (s *Stream) registerFirehose(f *firehose, after position) (position, error) {
	s.dispatching.Lock()
	defer s.dispatching.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	through, skip, err := s.joinPointLocked(after)
	if err != nil {
		return position{}, err
	}
	f.skipThrough = skip
	if s.firehoses == nil {
		s.firehoses = map[*firehose]struct{}{}
	}
	s.firehoses[f] = struct{}{}
	return through, nil
}

func (s *Stream) unregisterFirehose(f *firehose) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.firehoses, f)
}

// toFirehoses hands a dispatched event to every firehose (dispatching is
// held).
func (s *Stream) toFirehoses(e logged) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f := range s.firehoses {
		if !e.pos.after(f.skipThrough) {
			continue
		}
		select {
		case f.ch <- e:
		default:
			f.end(errBehind)
		}
	}
}

// endFirehoses ends every Follow (the stream stops).
func (s *Stream) endFirehosesLocked(err error) {
	for f := range s.firehoses {
		f.end(err)
	}
}

// Follow streams the log after req.After: a FeedStart, the events kept
// in the table, then the live ones.
func (f *Feed) Follow(ctx context.Context, req *connect.Request[chatv1.FollowRequest], out *connect.ServerStream[chatv1.FollowResponse]) error {
	s := f.svc.stream
	var after position
	if req.Msg.After != "" {
		var err error
		if after, err = parsePosition(req.Msg.After); err != nil {
			return invalid("after: %v", err)
		}
	}
	fh := &firehose{ch: make(chan logged, firehoseBuffer), ended: make(chan struct{})}
	through, err := s.registerFirehose(fh, after)
	if err != nil {
		return err
	}
	defer s.unregisterFirehose(fh)
	pruned, err := prunedThrough(ctx, s.db)
	if err != nil {
		return s.streamError(ctx, err)
	}
	start := &chatv1.FeedStart{Missed: req.Msg.After != "" && pruned.after(after)}
	if err := out.Send(&chatv1.FollowResponse{Kind: &chatv1.FollowResponse_Start{Start: start}}); err != nil {
		return err
	}
	from := after
	for through.after(from) {
		batch, err := readBetween(ctx, s.db, from, through, 500)
		if err != nil {
			return s.streamError(ctx, err)
		}
		for _, e := range batch {
			if err := f.send(ctx, out, e); err != nil {
				return err
			}
		}
		if len(batch) < 500 {
			break
		}
		from = batch[len(batch)-1].pos
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-fh.ended:
			return fh.err
		case e := <-fh.ch:
			if err := f.send(ctx, out, e); err != nil {
				return err
			}
		}
	}
}

// send sends one event, with the author of the message a new message
// replies to.
func (f *Feed) send(ctx context.Context, out *connect.ServerStream[chatv1.FollowResponse], e logged) error {
	fe := &chatv1.FeedEvent{Event: e.event, Conversation: e.conversation, Audience: e.audience, ZedToken: string(e.token)}
	if m := e.event.GetMessageCreated().GetMessage(); m.GetReplyToId() != "" {
		err := f.svc.db.QueryRow(ctx, `SELECT author_id FROM messages WHERE id = $1`, m.ReplyToId).Scan(&fe.ReplyToAuthorId)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return f.svc.stream.streamError(ctx, err)
		}
	}
	return out.Send(&chatv1.FollowResponse{Kind: &chatv1.FollowResponse_Event{Event: fe}})
}

// Deliver appends a NotificationCreated for one person to the log.
func (f *Feed) Deliver(ctx context.Context, req *connect.Request[chatv1.DeliverRequest]) (*connect.Response[chatv1.DeliverResponse], error) {
	if err := validUser("user_id", req.Msg.UserId); err != nil {
		return nil, err
	}
	c, err := parseConversation(req.Msg.Conversation)
	if err != nil {
		return nil, err
	}
	if req.Msg.Event.GetNotificationCreated() == nil {
		return nil, invalid("event: only a notification_created may be delivered")
	}
	ev := proto.CloneOf(req.Msg.Event)
	ev.Id, ev.At = "", nil
	if err := appendEvent(ctx, f.svc.db, f.svc.stream.waker, c.String(), []string{req.Msg.UserId}, "", ev); err != nil {
		return nil, f.svc.internal(ctx, "deliver", err)
	}
	return connect.NewResponse(&chatv1.DeliverResponse{}), nil
}

// Online keeps those of the people asked about who were online at the time
// asked about (presence.go).
func (f *Feed) Online(ctx context.Context, req *connect.Request[chatv1.OnlineRequest]) (*connect.Response[chatv1.OnlineResponse], error) {
	ids := req.Msg.UserIds
	if len(ids) == 0 || len(ids) > maxOnlineAsked {
		return nil, invalid("user_ids: 1 to %d people, not %d", maxOnlineAsked, len(ids))
	}
	seen := make(map[string]bool, len(ids))
	users := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := validUser("user_ids", id); err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			users = append(users, id)
		}
	}
	if req.Msg.At == nil {
		return nil, invalid("at: required")
	}
	if err := req.Msg.At.CheckValid(); err != nil {
		return nil, invalid("at: %v", err)
	}
	online, err := onlineAt(ctx, f.svc.db, users, req.Msg.At.AsTime())
	if err != nil {
		return nil, f.svc.internal(ctx, "online", err)
	}
	return connect.NewResponse(&chatv1.OnlineResponse{UserIds: online}), nil
}

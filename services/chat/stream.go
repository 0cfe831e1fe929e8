package chat

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// Stream is the real-time stream (beep.chat.v1.StreamService): it follows
// the service's event log in PostgreSQL (eventlog.go), which every instance
// of the service writes and reads in the same order, and SpiceDB's Watch,
// and delivers to this instance's subscribers what each may see. There is
// no broker: PostgreSQL is the record and its NOTIFY the wake-up call, so a
// message sent through one instance reaches the subscribers of all.
type Stream struct {
	db    *pgxpool.Pool
	authz *authz.Client
	log   *slog.Logger
	vis   *visibility
	// presence records who holds a stream here, for @here.
	presence *presence
	// waker wakes the log's readers after an append.
	waker *waker
	// window is how long events are kept for resuming.
	window time.Duration
	// buffer is how many events a subscriber may fall behind by.
	buffer int
	// socketPing is StreamConfig.SocketPing.
	socketPing time.Duration
	metrics    *streamMetrics

	// dispatching is held while one event is handed out, and by a
	// subscription joining: it joins between two events, never during one.
	dispatching sync.Mutex

	mu sync.Mutex
	// dispatched is the position of the last event handed to subscribers.
	dispatched position
	running    bool
	subs       map[string]map[*subscription]struct{} // user -> their sessions here
	// serversOf and members are which servers the users connected here see,
	// both ways: who may receive a channel's events is asked of the graph
	// among the connected members of its server.
	serversOf map[string]map[string]struct{} // user -> server ids
	members   map[string]map[string]struct{} // server id -> users
	// firehoses receive every event dispatched, unfiltered (feed.go).
	firehoses map[*firehose]struct{}
	// history is the ServerChanged told here, for resumes (streamhistory.go).
	history structuralHistory
}

var _ chatv1connect.StreamServiceHandler = (*Stream)(nil)

// StreamConfig tunes the stream; zero values take the defaults.
type StreamConfig struct {
	// Window is how long events are kept for a reconnecting client to
	// resume from (default 15 minutes).
	Window time.Duration
	// Buffer is how many events a subscriber may fall behind by before its
	// stream is ended (it resumes by reconnecting); default 1024.
	Buffer int
	// Metrics registers the stream's metrics (beep_stream_*); nil: none.
	Metrics prometheus.Registerer
	// History is how many structural changes (ServerChanged) each instance
	// keeps, within the window, to tell a resumed stream of those it
	// missed (default 10,000); a resume from before them gets a Resync.
	History int
	// SocketPing is how long a WebSocket session may be sent nothing
	// before it is pinged, and how long it then has to answer before it is
	// dropped (default 30 s).
	SocketPing time.Duration
}

func newStream(db *pgxpool.Pool, c *authz.Client, log *slog.Logger, cfg StreamConfig) *Stream {
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if cfg.History <= 0 {
		cfg.History = defaultHistory
	}
	if cfg.SocketPing <= 0 {
		cfg.SocketPing = 30 * time.Second
	}
	return &Stream{db: db, authz: c, log: log, vis: newVisibility(c, log), presence: newPresence(db, log), waker: &waker{db: db, log: log}, window: cfg.Window, buffer: cfg.Buffer, socketPing: cfg.SocketPing,
		metrics: newStreamMetrics(cfg.Metrics),
		subs:    map[string]map[*subscription]struct{}{}, serversOf: map[string]map[string]struct{}{}, members: map[string]map[string]struct{}{},
		// Kept as long as the events a resume may start from (pruning
		// runs every minute).
		history: structuralHistory{limit: cfg.History, keep: cfg.Window + time.Minute, slack: structuralSlack}}
}

// Handler returns the path and the Connect handler of the stream. Events
// under 1 KiB are sent uncompressed even to a client that accepts gzip:
// most are a few hundred bytes, and gzip's per-message set-up cost more
// CPU than their delivery.
func (s *Stream) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	return chatv1connect.NewStreamServiceHandler(s, append(opts, connect.WithCompressMinBytes(compressMinBytes))...)
}

// compressMinBytes is the smallest event the stream compresses.
const compressMinBytes = 1024

// subscription is one session's stream on this instance.
type subscription struct {
	user  string
	queue *eventQueue
	// skipThrough: events at or before it were replayed, or seen elsewhere.
	skipThrough position
	ended       chan struct{}
	once        sync.Once
	err         error
}

// end ends the subscription with err; false if it had ended already.
func (sub *subscription) end(err error) bool {
	ended := false
	sub.once.Do(func() {
		sub.err = err
		close(sub.ended)
		ended = true
	})
	return ended
}

// errBehind ends a subscription that could not keep up.
var errBehind = connect.NewError(connect.CodeResourceExhausted, errors.New("the stream fell behind: reconnect with resume_after"))

// Run follows the event log and the graph until ctx ends. Every instance
// of the service runs it; Subscribe answers Unavailable until it does.
func (s *Stream) Run(ctx context.Context) error {
	start, err := logHead(ctx, s.db)
	if err != nil {
		return fmt.Errorf("chat stream: %w", err)
	}
	if err := s.presence.start(ctx); err != nil {
		return fmt.Errorf("chat stream: registering the instance's presence: %w", err)
	}
	s.mu.Lock()
	s.dispatched, s.running = start, true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		for _, subs := range s.subs {
			for sub := range subs {
				sub.end(connect.NewError(connect.CodeUnavailable, errors.New("the stream is shutting down: reconnect")))
			}
		}
		s.endFirehosesLocked(connect.NewError(connect.CodeUnavailable, errors.New("the stream is shutting down: follow again")))
		s.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); s.watch(ctx) }()
	go func() { defer wg.Done(); s.presence.run(ctx) }()
	go func() { defer wg.Done(); s.prune(ctx) }()
	err = s.follow(ctx, start)
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// follow reads the log from start, woken by NOTIFY, until ctx ends.
func (s *Stream) follow(ctx context.Context, start position) error {
	for ctx.Err() == nil {
		err := s.followOnce(ctx, start)
		if ctx.Err() != nil {
			return nil
		}
		s.log.WarnContext(ctx, "chat stream: following the event log", "err", err)
		s.mu.Lock()
		start = s.dispatched
		s.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (s *Stream) followOnce(ctx context.Context, from position) error {
	conn, err := pgx.ConnectConfig(ctx, s.db.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, ch := range []string{eventsChannel, typingChannel} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	pos := from
	idle := 0
	for {
		// On the listening connection: notifications that arrive meanwhile
		// wait in it for WaitForNotification.
		batch, held, err := readCommitted(ctx, conn, pos, 500)
		if err != nil {
			return err
		}
		if len(batch) > 0 {
			s.dispatch(ctx, batch)
			pos = batch[len(batch)-1].pos
			idle = 0
			if len(batch) == 500 {
				continue
			}
		}
		// Events committed but not readable yet (a transaction older than
		// them, any of the cluster's, still runs): look again shortly
		// rather than at the next wake-up.
		wait := time.Second
		if held {
			wait = 5 * time.Millisecond
			if idle++; idle > 40 {
				wait = 20 * time.Millisecond
			}
		}
		waitCtx, cancel := context.WithTimeout(ctx, wait)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && !errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			continue
		case err != nil && conn.IsClosed():
			return err
		case n == nil:
		case n.Channel == typingChannel:
			s.typed(ctx, n.Payload)
		default:
			idle = 0
		}
	}
}

// prune removes events past the window, every minute.
func (s *Stream) prune(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if err := pruneEvents(ctx, s.db, s.window); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "chat stream: pruning events", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// retries are the waits before asking again who may receive an event,
// when the graph could not say (an error, a deadline).
var retries = []time.Duration{200 * time.Millisecond, time.Second}

// dispatch hands a batch of events, in log order, to the subscribers here.
// When the graph cannot say who may receive an event, even after retries,
// the event reaches nobody (the fan-out fails closed), and those who might
// have received it get a Resync instead, which carries nothing: they fetch
// the conversation again, under their own permissions.
func (s *Stream) dispatch(ctx context.Context, batch []logged) {
	for _, e := range batch {
		s.dispatching.Lock()
		users, candidates, err := s.recipients(ctx, e)
		for _, wait := range retries {
			if err == nil || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			users, candidates, err = s.recipients(ctx, e)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.metrics.undecided.Inc()
				s.log.WarnContext(ctx, "chat stream: who may receive an event could not be decided; its possible recipients are told to resync",
					"event", e.pos.String(), "conversation", e.conversation, "told", len(candidates), "err", err)
			}
			s.deliver(logged{pos: e.pos, event: &chatv1.StreamEvent{At: timestamppb.Now(), Event: &chatv1.StreamEvent_Resync{Resync: &chatv1.Resync{}}}}, candidates)
		} else {
			s.deliver(e, users)
		}
		s.toFirehoses(e)
		s.dispatching.Unlock()
		s.metrics.dispatched(e.event.At.AsTime())
	}
}

// recipients are the users connected here who may receive e; when that
// cannot be decided, an error, and who might have received it (if known).
func (s *Stream) recipients(ctx context.Context, e logged) (users, candidates []string, err error) {
	if e.audience != nil {
		return s.connected(e.audience), nil, nil
	}
	if candidates, err = s.candidates(ctx, e.conversation, e.token); err != nil {
		return nil, nil, err
	}
	users, err = s.vis.allowed(ctx, e.conversation, permView, candidates, e.token)
	return users, candidates, err
}

// candidates are the users connected here who might see conv: the people
// of a DM, the members of a channel's or thread's server (as the stream
// was last told: someone who just joined receives the server's events
// from their SERVER_CHANGE_JOINED on).
func (s *Stream) candidates(ctx context.Context, conv string, token authz.ZedToken) ([]string, error) {
	if strings.HasPrefix(conv, string(authz.TypeDmChannel)+":") {
		members, err := s.vis.members(ctx, conv, token)
		return s.connected(members), err
	}
	server, err := s.vis.server(ctx, conv)
	if server == "" || err != nil {
		return nil, err
	}
	return s.membersOf(server), nil
}

// connected keeps the users who have a session here.
func (s *Stream) connected(users []string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, u := range users {
		if len(s.subs[u]) > 0 {
			out = append(out, u)
		}
	}
	return out
}

// deliver queues e for the sessions of users and records it dispatched.
func (s *Stream) deliver(e logged, users []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliverLocked(e, users)
}

func (s *Stream) deliverLocked(e logged, users []string) {
	full := newOutgoing(e.event)
	var stripped *outgoing
	if e.pos != (position{}) {
		// The log is handed out in order, each event once: one that is
		// not past the last cannot be new to anyone here. Never expected;
		// dropped rather than delivered twice, and counted.
		if !e.pos.after(s.dispatched) {
			s.metrics.repeated.Inc()
			s.log.Error("chat stream: an event of the log was handed out again; not delivered twice", "event", e.pos.String(), "dispatched", s.dispatched.String())
			return
		}
		s.dispatched = e.pos
	}
	for _, u := range users {
		ev := full
		if mc := e.event.GetMessageCreated(); mc != nil && mc.Nonce != "" && mc.GetMessage().GetAuthorId() != u {
			if stripped == nil {
				clone := proto.CloneOf(e.event)
				clone.GetMessageCreated().Nonce = ""
				stripped = newOutgoing(clone)
			}
			ev = stripped
		}
		for sub := range s.subs[u] {
			if e.pos != (position{}) && !e.pos.after(sub.skipThrough) {
				continue
			}
			if sub.queue.push(ev) {
				s.metrics.deliveries.Inc()
			} else if sub.end(errBehind) {
				s.metrics.behind.Inc()
			}
		}
	}
}

// Subscribe streams the caller's events until they go away.
func (s *Stream) Subscribe(ctx context.Context, req *connect.Request[chatv1.SubscribeRequest], out *connect.ServerStream[chatv1.StreamEvent]) error {
	return s.session(ctx, req.Msg, out, binaryCodec(req.Header()))
}

// eventSink is where a session's events go: a Connect stream, or a
// WebSocket (streamsocket.go).
type eventSink interface {
	Send(*chatv1.StreamEvent) error
}

// session streams the caller's events to out until they go away, or the
// session ends (an error then says why); binary says whether out encodes
// in protobuf's binary format, which takes the events' encoding made once
// for every such session.
func (s *Stream) session(ctx context.Context, req *chatv1.SubscribeRequest, out eventSink, binary bool) error {
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	if p.UserID == "" {
		return connect.NewError(connect.CodePermissionDenied, errors.New("only people have a stream"))
	}
	var resumeAfter position
	resuming := req.ResumeAfter != ""
	if resuming {
		if resumeAfter, err = parsePosition(req.ResumeAfter); err != nil {
			return invalid("resume_after: %v", err)
		}
	}
	// The servers the caller sees, asked before joining (so that no event
	// after the join lacks them) and again after (a server joined meanwhile).
	servers, err := s.lookupServers(ctx, p.UserID)
	if err != nil {
		return s.streamError(ctx, err)
	}
	sub := &subscription{user: p.UserID, queue: newEventQueue(s.buffer), ended: make(chan struct{})}
	through, err := s.register(sub, resumeAfter, servers)
	if err != nil {
		return err
	}
	defer s.unregister(sub)
	// The caller is online while the stream lasts; Ready waits for it to
	// be recorded, so that an @here sent after Ready pings them.
	recorded := s.presence.join(p.UserID)
	defer s.presence.leave(p.UserID)
	if servers, err = s.lookupServers(ctx, p.UserID); err != nil {
		return s.streamError(ctx, err)
	}
	// From here on, the ServerChanged of these servers reach sub live;
	// those told before are in the snapshot of the history.
	history := s.joinAll(p.UserID, servers)

	resumed := false
	if resuming {
		pruned, err := prunedThrough(ctx, s.db)
		if err != nil {
			return s.streamError(ctx, err)
		}
		if pruned.after(resumeAfter) {
			if err := out.Send(&chatv1.StreamEvent{At: timestamppb.Now(), Event: &chatv1.StreamEvent_Resync{Resync: &chatv1.Resync{}}}); err != nil {
				return err
			}
		} else {
			if err := s.replay(ctx, p.UserID, resumeAfter, through, out); err != nil {
				return s.streamError(ctx, err)
			}
			if err := s.replayStructure(ctx, p.UserID, resumeAfter, servers, history, out); err != nil {
				return s.streamError(ctx, err)
			}
			resumed = true
		}
	}
	select {
	case <-recorded:
	case <-ctx.Done():
		return nil
	case <-time.After(presenceWait):
		s.log.WarnContext(ctx, "chat stream: the session's presence is not recorded yet; ready anyway", "user", p.UserID)
	}
	ready := &chatv1.StreamEvent{At: timestamppb.Now(), Event: &chatv1.StreamEvent_Ready{Ready: &chatv1.Ready{UserId: p.UserID, Resumed: resumed}}}
	if err := out.Send(ready); err != nil {
		return err
	}
	var batch []*outgoing
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.ended:
			return sub.err
		case <-sub.queue.ready:
			// Everything waiting, in order; more arriving meanwhile waits
			// for the next round.
			batch = sub.queue.take(batch)
			for _, ev := range batch {
				if err := out.Send(ev.forSession(binary)); err != nil {
					return err
				}
				sub.queue.sent()
			}
		}
	}
}

// joinPointLocked is where a reader joining now (between two dispatched
// events, both locks held) starts: the events after through reach it
// live, and it skips those up to skip (through, or resumeAfter when that
// was seen through another instance, further ahead than this one).
func (s *Stream) joinPointLocked(resumeAfter position) (through, skip position, err error) {
	if !s.running {
		return position{}, position{}, connect.NewError(connect.CodeUnavailable, errors.New("the stream is not running yet; try again"))
	}
	through, skip = s.dispatched, s.dispatched
	if resumeAfter.after(through) {
		skip = resumeAfter
	}
	return through, skip, nil
}

// register adds sub, its user seeing servers; events after the returned
// position reach it live.
func (s *Stream) register(sub *subscription, resumeAfter position, servers []string) (position, error) {
	s.dispatching.Lock()
	defer s.dispatching.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	through, skip, err := s.joinPointLocked(resumeAfter)
	if err != nil {
		return position{}, err
	}
	sub.skipThrough = skip
	if s.subs[sub.user] == nil {
		s.subs[sub.user] = map[*subscription]struct{}{}
	}
	s.subs[sub.user][sub] = struct{}{}
	s.metrics.subscribers.Inc()
	for _, server := range servers {
		s.joinLocked(sub.user, server)
	}
	return through, nil
}

func (s *Stream) unregister(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics.subscribers.Dec()
	delete(s.subs[sub.user], sub)
	if len(s.subs[sub.user]) > 0 {
		return
	}
	delete(s.subs, sub.user)
	for server := range s.serversOf[sub.user] {
		delete(s.members[server], sub.user)
		if len(s.members[server]) == 0 {
			delete(s.members, server)
		}
	}
	delete(s.serversOf, sub.user)
}

// lookupServers asks the graph which servers user sees.
func (s *Stream) lookupServers(ctx context.Context, user string) ([]string, error) {
	var out []string
	for f, err := range s.authz.LookupResources(ctx, authz.Server.View, authz.UserSubject(user), authz.Page{Consistency: authz.FullyConsistent()}) {
		if err != nil {
			return nil, err
		}
		if !f.Conditional {
			out = append(out, f.ID)
		}
	}
	return out, nil
}

// joinAll records that user sees servers (if they are still connected),
// and returns the history of ServerChanged as it is then: the changes told
// later reach user's sessions of those servers live.
func (s *Stream) joinAll(user string, servers []string) historySnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.history.snapshot()
	if len(s.subs[user]) == 0 {
		return snap
	}
	for _, server := range servers {
		s.joinLocked(user, server)
	}
	return snap
}

func (s *Stream) joinLocked(user, server string) {
	if s.serversOf[user] == nil {
		s.serversOf[user] = map[string]struct{}{}
	}
	s.serversOf[user][server] = struct{}{}
	if s.members[server] == nil {
		s.members[server] = map[string]struct{}{}
	}
	s.members[server][user] = struct{}{}
}

func (s *Stream) leaveLocked(user, server string) {
	delete(s.serversOf[user], server)
	delete(s.members[server], user)
	if len(s.members[server]) == 0 {
		delete(s.members, server)
	}
}

// replay sends user the events after from, through through, that they may
// read as history.
func (s *Stream) replay(ctx context.Context, user string, from, through position, out eventSink) error {
	for {
		batch, err := readBetween(ctx, s.db, from, through, 500)
		if err != nil {
			return err
		}
		for _, e := range batch {
			var ok bool
			if e.audience != nil {
				ok = contains(e.audience, user)
			} else {
				allowed, err := s.vis.allowed(ctx, e.conversation, permHistory, []string{user}, e.token)
				if err != nil {
					return err
				}
				ok = len(allowed) == 1
			}
			if !ok {
				continue
			}
			ev := e.event
			if mc := ev.GetMessageCreated(); mc != nil && mc.GetMessage().GetAuthorId() != user {
				mc.Nonce = ""
			}
			if err := out.Send(ev); err != nil {
				return err
			}
		}
		if len(batch) < 500 {
			return nil
		}
		from = batch[len(batch)-1].pos
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Stream) streamError(ctx context.Context, err error) error {
	if errors.Is(err, authz.ErrUnavailable) {
		return connect.NewError(connect.CodeUnavailable, errors.New("authorization is unavailable; try again"))
	}
	if ctx.Err() != nil {
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	s.log.ErrorContext(ctx, "chat stream", "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("the stream failed; reconnect"))
}

// SendTyping tells who sees the conversation that the caller types there
// (the interceptor checked send_messages). Nothing is stored: a NOTIFY
// carries it to every instance.
func (s *Stream) SendTyping(ctx context.Context, req *connect.Request[chatv1.SendTypingRequest]) (*connect.Response[chatv1.SendTypingResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := parseConversation(req.Msg.Conversation)
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(&chatv1.Typing{Conversation: c.String(), UserId: p.UserID})
	if err != nil {
		return nil, err
	}
	if _, err := s.db.Exec(ctx, `SELECT pg_notify('`+typingChannel+`', $1)`, base64.StdEncoding.EncodeToString(payload)); err != nil {
		s.log.ErrorContext(ctx, "typing", "err", err)
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("typing could not be sent; try again"))
	}
	return connect.NewResponse(&chatv1.SendTypingResponse{}), nil
}

// typed delivers a typing indicator to who sees its conversation here,
// the typist's own sessions excepted.
func (s *Stream) typed(ctx context.Context, payload string) {
	raw, err := base64.StdEncoding.DecodeString(payload)
	t := &chatv1.Typing{}
	if err != nil || proto.Unmarshal(raw, t) != nil {
		return
	}
	var users []string
	recipients, _, err := s.recipients(ctx, logged{conversation: t.Conversation})
	if err != nil {
		return // ephemeral: not worth a retry
	}
	for _, u := range recipients {
		if u != t.UserId {
			users = append(users, u)
		}
	}
	s.deliver(logged{event: &chatv1.StreamEvent{At: timestamppb.Now(), Event: &chatv1.StreamEvent_Typing{Typing: t}}}, users)
}

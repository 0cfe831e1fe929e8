package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// subscriber is one live stream and what it received.
type subscriber struct {
	user   int
	server int // -1: an outsider
	// own are the load's messages of its server's channel; foreign, those of
	// any other server (which it must never receive).
	own, foreign atomic.Int64
	// duplicates are the load's messages it received more than once.
	duplicates atomic.Int64
	// firstDuplicate says which, for the report.
	firstDuplicate atomic.Pointer[string]
	ready          atomic.Bool
	// seen are the ids of the messages of seenPhase received, for
	// duplicates; only its stream's goroutine uses them.
	seen      map[string]string // message id -> event id
	seenPhase int64
	// err is why the stream ended before the run stopped it.
	err error
}

// subscribers are the live streams of a run.
type subscribers struct {
	all []*subscriber
	// phase is the send phase counted; messages of an earlier one are late.
	phase atomic.Int64
	lag   atomic.Pointer[histogram]
	// received counts the phase's messages delivered, all subscribers.
	received, late atomic.Int64
	wg             sync.WaitGroup
	cancel         context.CancelFunc
}

// subscribe opens a stream for each of users, width at a time, and
// returns once all are ready (or failed). Over transport "h2", each
// HTTP/2 connection carries perConn of them; over "http1", each has its
// own HTTP/1.1 connection; over "ws", each is a WebSocket (binary
// events), also on its own connection.
func subscribe(ctx context.Context, base string, p *population, users []int, transport string, perConn, width int) *subscribers {
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ss := &subscribers{cancel: cancel}
	ss.lag.Store(&histogram{})
	var openers []opener
	switch transport {
	case "ws":
		openers = []opener{socketOpener(base)}
		perConn = len(users) + 1
	case "http1":
		// A response streaming holds its connection: every stream dials
		// its own.
		h := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{}).DialContext}}
		openers = []opener{connectOpener(chatv1connect.NewStreamServiceClient(h, base))}
		perConn = len(users) + 1
	default:
		conns := newBeepClient(base, "", (len(users)+perConn-1)/perConn)
		for _, h := range conns.pool {
			openers = append(openers, connectOpener(chatv1connect.NewStreamServiceClient(h, base)))
		}
	}
	sem := make(chan struct{}, width)
	var readyWG sync.WaitGroup
	for k, u := range users {
		sub := &subscriber{user: u, server: p.serverOf[u]}
		ss.all = append(ss.all, sub)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			sub.err = ctx.Err()
			continue
		}
		readyWG.Add(1)
		ss.wg.Go(func() {
			ss.follow(streamCtx, openers[k/perConn], p, sub, func() { <-sem; readyWG.Done() })
		})
	}
	readyWG.Wait()
	return ss
}

// eventStream is one subscription being read, whatever its transport.
type eventStream interface {
	// Receive reads the next event (Msg); false at the end (Err says why).
	Receive() bool
	Msg() *chatv1.StreamEvent
	Err() error
	Close() error
}

// opener opens token's subscription.
type opener func(ctx context.Context, token string) (eventStream, error)

// connectOpener subscribes with Connect (StreamService.Subscribe).
func connectOpener(client chatv1connect.StreamServiceClient) opener {
	return func(ctx context.Context, token string) (eventStream, error) {
		return client.Subscribe(ctx, request(token, "", &chatv1.SubscribeRequest{}))
	}
}

// follow reads sub's stream until the run stops it; ready is called once,
// when it is live or has failed.
func (ss *subscribers) follow(ctx context.Context, open opener, p *population, sub *subscriber, ready func()) {
	once := sync.OnceFunc(ready)
	defer once()
	stream, err := open(ctx, p.tokens[sub.user])
	if err != nil {
		sub.err = err
		return
	}
	defer stream.Close()
	for stream.Receive() {
		ev := stream.Msg()
		if ev.GetReady() != nil {
			sub.ready.Store(true)
			once()
			continue
		}
		ss.count(p, sub, ev)
	}
	if err := stream.Err(); err != nil && ctx.Err() == nil {
		sub.err = err
	} else if err == nil && ctx.Err() == nil {
		sub.err = errors.New("the stream ended")
	}
	if connect.CodeOf(sub.err) == connect.CodeCanceled && ctx.Err() != nil {
		sub.err = nil
	}
}

// count counts one event sub received.
func (ss *subscribers) count(p *population, sub *subscriber, ev *chatv1.StreamEvent) {
	m := ev.GetMessageCreated().GetMessage()
	if m == nil {
		return
	}
	sent, phase, ok := parseContent(m.GetContent())
	if !ok {
		return
	}
	if phase != ss.phase.Load() {
		ss.late.Add(1)
		return
	}
	if sub.seenPhase != phase || sub.seen == nil {
		sub.seen, sub.seenPhase = map[string]string{}, phase
	}
	if first, again := sub.seen[m.GetId()]; again {
		if sub.duplicates.Add(1) == 1 {
			which := fmt.Sprintf("message %s as events %s and %s", m.GetId(), first, ev.GetId())
			sub.firstDuplicate.Store(&which)
		}
		return
	}
	sub.seen[m.GetId()] = ev.GetId()
	ss.lag.Load().record(time.Since(sent))
	// Counted as its subscriber's before the total, which the warm-up
	// waits on: next must not reset own before this one is in it.
	if j, known := p.channelServer[m.GetConversation()]; known && j == sub.server {
		sub.own.Add(1)
	} else {
		sub.foreign.Add(1)
	}
	ss.received.Add(1)
}

// next begins counting phase afresh.
func (ss *subscribers) next(phase int64) {
	ss.phase.Store(phase)
	for _, s := range ss.all {
		s.own.Store(0)
		s.foreign.Store(0)
		s.duplicates.Store(0)
	}
	ss.lag.Store(&histogram{})
	ss.received.Store(0)
	ss.late.Store(0)
}

// stop ends every stream and waits for them.
func (ss *subscribers) stop() {
	ss.cancel()
	ss.wg.Wait()
}

// The load's messages say when they were sent, and in which phase:
// "beepload <unix ns> <phase> <seq>".
const contentPrefix = "beepload "

func content(sent time.Time, seq, phase int64) string {
	return contentPrefix + strconv.FormatInt(sent.UnixNano(), 10) + " " + strconv.FormatInt(phase, 10) + " " + strconv.FormatInt(seq, 10)
}

func parseContent(content string) (time.Time, int64, bool) {
	rest, ok := strings.CutPrefix(content, contentPrefix)
	if !ok {
		return time.Time{}, 0, false
	}
	fields := strings.Fields(rest)
	if len(fields) != 3 {
		return time.Time{}, 0, false
	}
	ns, err1 := strconv.ParseInt(fields[0], 10, 64)
	phase, err2 := strconv.ParseInt(fields[1], 10, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, 0, false
	}
	return time.Unix(0, ns), phase, true
}

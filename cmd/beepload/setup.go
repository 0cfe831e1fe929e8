package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
	"github.com/beepchat/beep/internal/memnet"
	"github.com/beepchat/beep/services/gateway"
)

// beepClient reaches Beep's gateway over loopback, HTTP/2 without TLS,
// speaking Connect with binary protobuf.
type beepClient struct {
	base string
	key  []byte
	// pool are HTTP/2 connections' transports, used in turn.
	pool []*http.Client
	next atomic.Uint64
	// senders are the senders' own connections (withSenders).
	senders []chatv1connect.ChatServiceClient
}

// sendersPerConn is how many senders share a connection.
const sendersPerConn = 10

// withSenders gives the n senders connections of their own, each sender
// always on the same one, sendersPerConn to a connection, as clients each
// hold theirs: a connection's header table (HPACK) then keeps its
// senders' tokens, instead of every connection carrying every sender's
// token in full with each request, as when any send took any connection.
func (c *beepClient) withSenders(n int) {
	conns := newBeepClient(c.base, "", (n+sendersPerConn-1)/sendersPerConn)
	for _, h := range conns.pool {
		c.senders = append(c.senders, chatv1connect.NewChatServiceClient(h, c.base))
	}
}

// senderChat is the chat service as user, a sender, reaches it.
func (c *beepClient) senderChat(user int) chatv1connect.ChatServiceClient {
	return c.senders[user%len(c.senders)]
}

func newBeepClient(base, key string, conns int) *beepClient {
	c := &beepClient{base: base, key: []byte(key)}
	for range max(conns, 1) {
		c.pool = append(c.pool, &http.Client{Transport: memnet.H2CTransport(nil)})
	}
	return c
}

// nextHTTP is the next connection's client, in turn.
func (c *beepClient) nextHTTP() *http.Client {
	return c.pool[c.next.Add(1)%uint64(len(c.pool))]
}

func (c *beepClient) community() communityv1connect.CommunityServiceClient {
	return communityv1connect.NewCommunityServiceClient(c.nextHTTP(), c.base)
}

func (c *beepClient) chat() chatv1connect.ChatServiceClient {
	return chatv1connect.NewChatServiceClient(c.nextHTTP(), c.base)
}

// request is msg with user's credentials and, if set, a ZedToken.
func request[T any](token, zed string, msg *T) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Authorization", "Bearer "+token)
	if zed != "" {
		req.Header().Set("Beep-Zed-Token", zed)
	}
	return req
}

// population is who is where: users 0..M-1 own servers 0..M-1, user i is
// a member of server i mod M; outsiders come after the users, in no server.
type population struct {
	users   []string
	tokens  []string
	servers []server
	// serverOf is each user's server (-1: an outsider).
	serverOf []int
	// channelServer finds a server by its channel's conversation.
	channelServer map[string]int
	// settled is when the last setup write was made.
	settled time.Time
}

// server is one server and its channel.
type server struct {
	id, conversation, zed string
}

// setup makes the users' tokens, the servers and the memberships, with a
// few requests in flight.
func setup(ctx context.Context, c *beepClient, cfg Config) (*population, error) {
	run := randomHex(3)
	total := cfg.Users + cfg.Outsiders
	p := &population{users: make([]string, total), tokens: make([]string, total), serverOf: make([]int, total),
		servers: make([]server, cfg.Servers), channelServer: map[string]int{}}
	for i := range total {
		p.users[i] = "load-" + run + "-" + strconv.Itoa(i)
		tok, err := gateway.IssueDevToken(c.key, p.users[i], 2*time.Hour)
		if err != nil {
			return nil, err
		}
		p.tokens[i] = tok
		p.serverOf[i] = -1
		if i < cfg.Users {
			p.serverOf[i] = i % cfg.Servers
		}
	}
	// The servers (public, for members to join) and their channels.
	err := parallel(ctx, cfg.Servers, 16, func(ctx context.Context, j int) error {
		created, err := c.community().CreateServer(ctx, request(p.tokens[j], "", &communityv1.CreateServerRequest{Name: "load " + strconv.Itoa(j), Public: true}))
		if err != nil {
			return fmt.Errorf("CreateServer: %w", err)
		}
		p.servers[j] = server{id: created.Msg.GetServer().GetId(), conversation: "channel:" + created.Msg.GetGeneralChannel().GetId(), zed: created.Msg.GetZedToken()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for j, s := range p.servers {
		p.channelServer[s.conversation] = j
	}
	// The members.
	err = parallel(ctx, cfg.Users-cfg.Servers, 16, func(ctx context.Context, k int) error {
		i := cfg.Servers + k
		s := p.servers[p.serverOf[i]]
		_, err := c.community().JoinServer(ctx, request(p.tokens[i], s.zed, &communityv1.JoinServerRequest{ServerId: s.id}))
		if err != nil {
			return fmt.Errorf("JoinServer: %w", err)
		}
		return nil
	})
	p.settled = time.Now()
	return p, err
}

// senders are the users who send in server j.
func (p *population) senders(cfg Config, j int) []int {
	out := make([]int, cfg.SendersPerServer)
	for k := range out {
		out[k] = j + k*cfg.Servers
	}
	return out
}

// parallel runs f(0..n-1) with at most width at once; the first error
// stops it.
func parallel(ctx context.Context, n, width int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(width, max(n, 1)) {
		wg.Go(func() {
			for i := range work {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		select {
		case work <- i:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

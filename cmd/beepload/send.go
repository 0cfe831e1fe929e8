package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/gen/beep/chat/v1/chatv1connect"
)

// sends is what the senders did.
type sends struct {
	latency histogram
	// ok and failed count the sends by server.
	ok, failed []atomic.Int64
	// missed are the slots the rate called for while every sender was busy.
	missed  atomic.Int64
	errMu   sync.Mutex
	errs    map[connect.Code]int64
	elapsed time.Duration
}

// slot is one message to send.
type slot struct {
	server, sender int
	seq, phase     int64
}

// send posts messages at rate for cfg.Duration, spread over the servers in
// turn, each by one of its senders in turn, with at most cfg.Concurrency
// in flight; their content names the phase.
func send(ctx context.Context, c *beepClient, p *population, cfg Config, rate float64, phase int64) *sends {
	s := &sends{ok: make([]atomic.Int64, cfg.Servers), failed: make([]atomic.Int64, cfg.Servers), errs: map[connect.Code]int64{}}
	slots := make(chan slot, cfg.Concurrency)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for sl := range slots {
				s.one(ctx, c.senderChat(sl.sender), p, sl)
			}
		})
	}
	senders := make([][]int, cfg.Servers)
	for j := range senders {
		senders[j] = p.senders(cfg, j)
	}
	start := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	var issued int64
	total := int64(rate * cfg.Duration.Seconds())
loop:
	for issued < total {
		select {
		case <-ctx.Done():
			break loop
		case now := <-tick.C:
			due := min(int64(rate*now.Sub(start).Seconds()), total)
			for ; issued < due; issued++ {
				j := int(issued % int64(cfg.Servers))
				round := issued / int64(cfg.Servers)
				sl := slot{server: j, sender: senders[j][round%int64(len(senders[j]))], seq: issued, phase: phase}
				select {
				case slots <- sl:
				default:
					s.missed.Add(1)
				}
			}
		}
	}
	tick.Stop()
	close(slots)
	wg.Wait()
	s.elapsed = time.Since(start)
	return s
}

func (s *sends) one(ctx context.Context, chat chatv1connect.ChatServiceClient, p *population, sl slot) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	began := time.Now()
	_, err := chat.SendMessage(ctx, request(p.tokens[sl.sender], "", &chatv1.SendMessageRequest{
		Conversation: p.servers[sl.server].conversation, Content: content(began, sl.seq, sl.phase)}))
	if err != nil {
		s.failed[sl.server].Add(1)
		s.errMu.Lock()
		s.errs[connect.CodeOf(err)]++
		s.errMu.Unlock()
		return
	}
	s.latency.record(time.Since(began))
	s.ok[sl.server].Add(1)
}

// warm sends one message in each server's channel (phase 0) and waits
// until every subscriber has it, or timeout: the stream's first message in
// a channel fills its visibility cache (a CheckBulk of the channel's
// view_channel for every connected member), which later ones reuse. It
// returns how long that took and how many of the deliveries arrived.
func warm(ctx context.Context, c *beepClient, p *population, subs *subscribers, cfg Config, timeout time.Duration) (time.Duration, int64, int64) {
	subs.next(0)
	began := time.Now()
	s := &sends{ok: make([]atomic.Int64, cfg.Servers), failed: make([]atomic.Int64, cfg.Servers), errs: map[connect.Code]int64{}}
	_ = parallel(ctx, cfg.Servers, min(cfg.Concurrency, 16), func(ctx context.Context, j int) error {
		s.one(ctx, c.senderChat(j), p, slot{server: j, sender: j, seq: int64(j)})
		return nil
	})
	expected := expectedDeliveries(subs, s)
	for subs.received.Load() < expected && time.Since(began) < timeout && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(began), subs.received.Load(), expected
}

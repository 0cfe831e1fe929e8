package chat

import "sync"

// eventQueue is a subscription's events waiting to be sent: at most limit
// of them. It holds only what is waiting, unlike a channel of that
// capacity, which would keep limit slots (8 KiB at the default 1,024) for
// every stream, most of them idle, and have the collector scan them all.
type eventQueue struct {
	mu     sync.Mutex
	events []*outgoing
	limit  int
	// sending are the events of the last take not yet sent: they count
	// against limit until sent.
	sending int
	// ready has a token while events wait.
	ready chan struct{}
}

func newEventQueue(limit int) *eventQueue {
	return &eventQueue{limit: limit, ready: make(chan struct{}, 1)}
}

// push queues ev; false when limit events already wait.
func (q *eventQueue) push(ev *outgoing) bool {
	q.mu.Lock()
	if len(q.events)+q.sending >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.events = append(q.events, ev)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// take returns the waiting events, in order, and empties the queue; into
// is reused for the next take (pass back what take returned). They still
// count against the limit until sent says so.
func (q *eventQueue) take(into []*outgoing) []*outgoing {
	clear(into)
	q.mu.Lock()
	out := q.events
	q.events = into[:0]
	q.sending = len(out)
	q.mu.Unlock()
	return out
}

// sent: one more event of the last take is sent.
func (q *eventQueue) sent() {
	q.mu.Lock()
	q.sending--
	q.mu.Unlock()
}

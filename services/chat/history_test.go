package chat_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// reversed is ids newest first.
func reversed(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

func TestPagination(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	c := ch(w.general)
	var ids []string // oldest first
	for i := range 120 {
		ids = append(ids, h.send(t, []string{"bob", "carl"}[i%2], w.token, c, fmt.Sprint("message ", i)).Id)
	}
	newest := reversed(ids)
	page := func(req *chatv1.ListMessagesRequest) []string {
		req.Conversation = c
		return h.list(t, "carl", w.token, req)
	}
	tests := []struct {
		name string
		req  *chatv1.ListMessagesRequest
		want []string
	}{
		{"the latest, default 50", &chatv1.ListMessagesRequest{}, newest[:50]},
		{"the latest 10", &chatv1.ListMessagesRequest{Limit: 10}, newest[:10]},
		{"a limit above 100 is 100", &chatv1.ListMessagesRequest{Limit: 500}, newest[:100]},
		{"before the 30th", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_Before{Before: ids[30]}, Limit: 10}, reversed(ids[20:30])},
		{"before the 3rd: the first two", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_Before{Before: ids[2]}, Limit: 10}, reversed(ids[:2])},
		{"after the 30th: the next 10, newest first", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_After{After: ids[30]}, Limit: 10}, reversed(ids[31:41])},
		{"after the last: nothing", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_After{After: ids[119]}}, []string{}},
		{"around the 60th: 5 newer, it and 4 older", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_Around{Around: ids[60]}, Limit: 10}, reversed(ids[56:66])},
		{"around the 60th, 7", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_Around{Around: ids[60]}, Limit: 7}, reversed(ids[57:64])},
		{"around the newest", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_Around{Around: ids[119]}, Limit: 10}, reversed(ids[110:120])},
		{"around the first", &chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_Around{Around: ids[0]}, Limit: 10}, reversed(ids[:6])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := page(tt.req); !slices.Equal(got, tt.want) {
				t.Fatalf("got %d messages %v\nwant %d %v", len(got), got, len(tt.want), tt.want)
			}
		})
	}
	// Around a deleted message: its neighbours.
	must(h.chat.DeleteMessage(t.Context(), as("bob", w.token, &chatv1.DeleteMessageRequest{Conversation: c, MessageId: ids[60]})))
	if got, want := page(&chatv1.ListMessagesRequest{Cursor: &chatv1.ListMessagesRequest_Around{Around: ids[60]}, Limit: 4}), reversed([]string{ids[58], ids[59], ids[61], ids[62]}); !slices.Equal(got, want) {
		t.Fatalf("around a deleted message: %v, want %v", got, want)
	}
	// Walking back from the newest, page by page, gives every message once.
	var walked []string
	req := &chatv1.ListMessagesRequest{Limit: 25}
	for {
		got := page(req)
		if len(got) == 0 {
			break
		}
		walked = append(walked, got...)
		req = &chatv1.ListMessagesRequest{Limit: 25, Cursor: &chatv1.ListMessagesRequest_Before{Before: got[len(got)-1]}}
	}
	if want := slices.DeleteFunc(slices.Clone(newest), func(id string) bool { return id == ids[60] }); !slices.Equal(walked, want) {
		t.Fatalf("walked %d messages, want %d", len(walked), len(want))
	}
	for _, bad := range []*chatv1.ListMessagesRequest{
		{Cursor: &chatv1.ListMessagesRequest_Before{Before: "nope"}},
		{Cursor: &chatv1.ListMessagesRequest_After{After: ""}},
	} {
		bad.Conversation = c
		_, err := h.chat.ListMessages(t.Context(), as("carl", w.token, bad))
		code(t, err, connect.CodeInvalidArgument)
	}
}

// TestPaginationUnderConcurrentInserts: while four people send, a reader
// paging back from a fixed message sees exactly the messages before it,
// and a reader following the conversation with "after" sees every message
// exactly once, in order: ids are given in commit order, so none commits
// behind a reader's cursor.
func TestPaginationUnderConcurrentInserts(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	c := ch(w.general)
	var before []string
	for i := range 40 {
		before = append(before, h.send(t, "ann", w.token, c, fmt.Sprint("before ", i)).Id)
	}
	anchor := h.send(t, "ann", w.token, c, "anchor").Id

	var done atomic.Bool
	var writers sync.WaitGroup
	for _, u := range []string{"ann", "bob", "carl", "mo"} {
		writers.Go(func() {
			for i := range 40 {
				if _, err := h.chat.SendMessage(t.Context(), as(u, w.token, &chatv1.SendMessageRequest{Conversation: c, Content: fmt.Sprint(u, i)})); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { writers.Wait(); done.Store(true) }()

	// Backwards from the anchor: always the same 40, however many are sent.
	back := func() []string {
		var got []string
		req := &chatv1.ListMessagesRequest{Conversation: c, Limit: 7, Cursor: &chatv1.ListMessagesRequest_Before{Before: anchor}}
		for {
			page := h.list(t, "carl", w.token, req)
			if len(page) == 0 {
				return got
			}
			got = append(got, page...)
			req.Cursor = &chatv1.ListMessagesRequest_Before{Before: page[len(page)-1]}
		}
	}
	// Forwards from the first message, following the writers.
	var followed []string
	cursor := before[0]
	for rounds := 0; ; rounds++ {
		if got := back(); !slices.Equal(got, reversed(before)) {
			t.Fatalf("paging back while others send: %d messages, want %d", len(got), len(before))
		}
		finished := done.Load()
		page := h.list(t, "bob", w.token, &chatv1.ListMessagesRequest{Conversation: c, Limit: 9, Cursor: &chatv1.ListMessagesRequest_After{After: cursor}})
		if len(page) > 0 {
			oldestFirst := reversed(page)
			followed = append(followed, oldestFirst...)
			cursor = oldestFirst[len(oldestFirst)-1]
		} else if finished {
			break
		}
		if rounds > 10_000 {
			t.Fatal("the follower never caught up")
		}
	}
	writers.Wait()
	all := reversed(h.listAll(t, c))
	if len(all) != 40+1+160 {
		t.Fatalf("%d messages stored, want 201", len(all))
	}
	if !slices.Equal(followed, all[1:]) {
		t.Fatalf("the follower saw %d messages, want %d in order (a message committed behind its cursor?)", len(followed), len(all)-1)
	}
}

// listAll is a conversation's whole history, newest first.
func (h *harness) listAll(t *testing.T, c string) []string {
	var all []string
	req := &chatv1.ListMessagesRequest{Conversation: c, Limit: 100}
	for {
		page := h.list(t, "ann", "", req)
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
		req.Cursor = &chatv1.ListMessagesRequest_Before{Before: page[len(page)-1]}
	}
}

package chat_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// online asks the feed, as the notification service, whether user was
// online at at.
func (h *harness) online(t *testing.T, user string, at time.Time) bool {
	t.Helper()
	ctx := authz.WithPrincipal(t.Context(), authz.ServicePrincipal("notification"))
	resp, err := h.feed.Online(ctx, connect.NewRequest(&chatv1.OnlineRequest{UserIds: []string{user, user}, At: timestamppb.New(at)}))
	if err != nil {
		t.Fatal(err)
	}
	switch got := resp.Msg.UserIds; {
	case len(got) == 0:
		return false
	case slices.Equal(got, []string{user}):
		return true
	default:
		t.Fatalf("Online(%s, %s) = %v", user, user, got)
		return false
	}
}

// eventually waits up to 5 seconds for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHereIsForThoseOnline: someone is online while they hold a stream on
// any instance, and @here pings those online as it is sent (Discord's
// rule): it counts in their read state, not in the others'; @everyone
// pings all. Spans answer for the past; an instance that stops beating
// takes its people offline, and they are back at its next beat.
func TestHereIsForThoseOnline(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	c := ch(w.general)
	other := h.instance()
	bobOnB := subscribe(t, other, "bob", "")
	if !h.online(t, "bob", time.Now()) || h.online(t, "carl", time.Now()) {
		t.Fatal("bob (on instance B) should be online, carl (no stream) not")
	}
	here := h.send(t, "ann", w.token, c, "@here standup")
	for user, want := range map[string]string{"bob": "1/1", "carl": "1/0"} {
		if got := h.states(t, user, w.token, c)[c]; got != want {
			t.Errorf("%s after @here: %s, want %s", user, got, want)
		}
	}
	h.send(t, "ann", w.token, c, "@everyone all hands")
	if got := h.states(t, "carl", w.token, c)[c]; got != "2/1" {
		t.Errorf("carl after @everyone: %s, want 2/1", got)
	}

	// Two streams: bob is online until the last one ends.
	bobOnA := subscribe(t, h.stream, "bob", "")
	bobOnB.cancel()
	eventually(t, "bob's span on B ends", func() bool {
		var ended int
		if err := h.db.QueryRow(ctx, `SELECT count(*) FROM presence_spans WHERE user_id = 'bob' AND instance_id = $1 AND online_until IS NOT NULL`,
			h.others[0].Stream().PresenceInstance()).Scan(&ended); err != nil {
			t.Fatal(err)
		}
		return ended == 1
	})
	if !h.online(t, "bob", time.Now()) {
		t.Fatal("bob, still streaming on A, is offline")
	}
	bobOnA.cancel()
	eventually(t, "bob is offline", func() bool { return !h.online(t, "bob", time.Now()) })
	h.send(t, "ann", w.token, c, "@here anyone?")
	if got := h.states(t, "bob", w.token, c)[c]; got != "3/2" {
		t.Errorf("bob after an @here sent while he was offline: %s, want 3/2", got)
	}
	if !h.online(t, "bob", here.CreatedAt.AsTime()) {
		t.Error("bob's past span no longer answers for the first @here")
	}

	// Instance B stops beating: past the grace its people are offline.
	carlOnB := subscribe(t, other, "carl", "")
	b := h.others[0].Stream()
	if _, err := h.db.Exec(ctx, `UPDATE presence_instances SET heartbeat_at = now() - interval '1 minute' WHERE id = $1`, b.PresenceInstance()); err != nil {
		t.Fatal(err)
	}
	if h.online(t, "carl", time.Now()) {
		t.Fatal("carl, on an instance silent for a minute, is online")
	}
	if err := h.svc.Stream().PrunePresence(ctx); err != nil {
		t.Fatal(err)
	}
	var instances, open int
	if err := h.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM presence_instances WHERE id = $1),
		(SELECT count(*) FROM presence_spans WHERE instance_id = $1 AND online_until IS NULL)`, b.PresenceInstance()).Scan(&instances, &open); err != nil {
		t.Fatal(err)
	}
	if instances != 0 || open != 0 {
		t.Fatalf("after pruning the silent instance: %d instance rows, %d open spans; want none", instances, open)
	}
	// Its next beat finds it forgotten: it records its people again.
	if err := b.BeatPresence(ctx); err != nil {
		t.Fatal(err)
	}
	if !h.online(t, "carl", time.Now()) {
		t.Fatal("carl is still offline after instance B beat again")
	}
	carlOnB.cancel()
}

// TestOnlineRefusesBadQuestions: Online asks about 1 to 1,000 valid user
// ids at a valid time.
func TestOnlineRefusesBadQuestions(t *testing.T) {
	h := start(t)
	ctx := authz.WithPrincipal(t.Context(), authz.ServicePrincipal("notification"))
	now := timestamppb.Now()
	many := make([]string, 1001)
	for i := range many {
		many[i] = "u" + strings.Repeat("x", i%50)
	}
	for name, req := range map[string]*chatv1.OnlineRequest{
		"nobody":        {At: now},
		"too many":      {UserIds: many, At: now},
		"no time":       {UserIds: []string{"bob"}},
		"a bad time":    {UserIds: []string{"bob"}, At: &timestamppb.Timestamp{Nanos: -1}},
		"a bad user id": {UserIds: []string{"bob", "not a user"}, At: now},
	} {
		_, err := h.feed.Online(ctx, connect.NewRequest(req))
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("%s: %v, want invalid_argument", name, err)
		}
	}
	_, err := h.feed.Online(context.Background(), connect.NewRequest(&chatv1.OnlineRequest{UserIds: []string{"bob"}, At: now}))
	code(t, err, connect.CodeUnauthenticated)
}

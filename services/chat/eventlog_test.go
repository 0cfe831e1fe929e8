package chat_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	"github.com/beepchat/beep/services/chat"
)

// loggedRow is a row of the stream's log, decoded.
type loggedRow struct {
	kind     string // the StreamEvent's oneof field name
	audience []string
	token    string
	event    *chatv1.StreamEvent
}

// logged are the rows of the stream's log, in log order, that keep.
func logged(t *testing.T, h *harness, keep func(*chatv1.StreamEvent) bool) []loggedRow {
	t.Helper()
	rows, err := h.db.Query(t.Context(), `SELECT audience, zed_token, payload FROM stream_events ORDER BY xid, id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []loggedRow
	for rows.Next() {
		var (
			r       loggedRow
			payload []byte
		)
		if err := rows.Scan(&r.audience, &r.token, &payload); err != nil {
			t.Fatal(err)
		}
		r.event = &chatv1.StreamEvent{}
		if err := proto.Unmarshal(payload, r.event); err != nil {
			t.Fatal(err)
		}
		if keep(r.event) {
			r.kind = string(r.event.ProtoReflect().WhichOneof(r.event.ProtoReflect().Descriptor().Oneofs().ByName("event")).Name())
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// about keeps the events of one message (a read state: read up to it).
func about(id string) func(*chatv1.StreamEvent) bool {
	return func(ev *chatv1.StreamEvent) bool {
		for _, got := range []string{ev.GetMessageCreated().GetMessage().GetId(), ev.GetMessageUpdated().GetMessage().GetId(),
			ev.GetMessageDeleted().GetMessageId(), ev.GetReactionAdded().GetMessageId(), ev.GetReactionRemoved().GetMessageId(),
			ev.GetMessagePinned().GetMessageId(), ev.GetMessageUnpinned().GetMessageId(), ev.GetReadStateUpdated().GetReadState().GetLastReadMessageId()} {
			if got == id {
				return true
			}
		}
		return false
	}
}

func kinds(rows []loggedRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.kind
	}
	return out
}

func (h *harness) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := h.db.Exec(t.Context(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

// TestMessageChangesAreLoggedWithThem: an edit, a deletion, a reaction
// added or removed, a pin, an unpin and a read state write their stream
// event in their own transaction. When the event cannot be written, the
// change fails and is not made; when the change fails at its commit (after
// the event was written), no event remains; when it commits, there is
// exactly one, which reaches the stream live; a change that changes nothing
// logs nothing.
func TestMessageChangesAreLoggedWithThem(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	conv := ch(w.general)
	good := h.send(t, "ann", w.token, conv, "good")
	doomed := h.send(t, "ann", w.token, conv, "doomed")
	unpinned := h.send(t, "ann", w.token, conv, "doomed too")
	must(h.chat.AddReaction(ctx, as("bob", w.token, &chatv1.AddReactionRequest{Conversation: conv, MessageId: doomed.Id, Emoji: unicode("👍")})))
	must(h.chat.PinMessage(ctx, as("ann", w.token, &chatv1.PinMessageRequest{Conversation: conv, MessageId: doomed.Id})))
	h.events.take()

	type op struct {
		name string
		do   func(id string) error
	}
	ops := map[string]op{}
	for _, o := range []op{
		{"edit", func(id string) error {
			_, err := h.chat.EditMessage(ctx, as("ann", w.token, &chatv1.EditMessageRequest{Conversation: conv, MessageId: id, Content: "edited"}))
			return err
		}},
		{"react", func(id string) error {
			_, err := h.chat.AddReaction(ctx, as("bob", w.token, &chatv1.AddReactionRequest{Conversation: conv, MessageId: id, Emoji: unicode("👍")}))
			return err
		}},
		{"unreact", func(id string) error {
			_, err := h.chat.RemoveReaction(ctx, as("bob", w.token, &chatv1.RemoveReactionRequest{Conversation: conv, MessageId: id, Emoji: unicode("👍")}))
			return err
		}},
		{"pin", func(id string) error {
			_, err := h.chat.PinMessage(ctx, as("ann", w.token, &chatv1.PinMessageRequest{Conversation: conv, MessageId: id}))
			return err
		}},
		{"unpin", func(id string) error {
			_, err := h.chat.UnpinMessage(ctx, as("ann", w.token, &chatv1.UnpinMessageRequest{Conversation: conv, MessageId: id}))
			return err
		}},
		{"read", func(id string) error {
			_, err := h.chat.MarkRead(ctx, as("carl", w.token, &chatv1.MarkReadRequest{Conversation: conv, MessageId: id}))
			return err
		}},
		{"delete", func(id string) error {
			_, err := h.chat.DeleteMessage(ctx, as("ann", w.token, &chatv1.DeleteMessageRequest{Conversation: conv, MessageId: id}))
			return err
		}},
	} {
		ops[o.name] = o
	}
	// Each failing change on the message it can change: the doomed one is
	// reacted to with 👍 and pinned, the other neither.
	failing := []struct{ op, id string }{
		{"edit", doomed.Id}, {"react", unpinned.Id}, {"unreact", doomed.Id}, {"pin", unpinned.Id},
		{"unpin", doomed.Id}, {"read", doomed.Id}, {"delete", doomed.Id},
	}
	before := map[string][]string{
		doomed.Id:   {"message_created", "reaction_added", "message_pinned"},
		unpinned.Id: {"message_created"},
	}
	unchanged := func(phase string) {
		t.Helper()
		for _, m := range []struct {
			id, content string
			pinned      bool
			reactions   string
		}{{doomed.Id, "doomed", true, "[👍:1]"}, {unpinned.Id, "doomed too", false, "[]"}} {
			got, err := h.chat.GetMessage(ctx, as("ann", w.token, &chatv1.GetMessageRequest{Conversation: conv, MessageId: m.id}))
			if err != nil {
				t.Fatalf("%s: %s is gone: %v", phase, m.content, err)
			}
			if g := got.Msg.Message; g.Content != m.content || g.Pinned != m.pinned || g.EditedAt != nil || fmt.Sprint(summary(g.Reactions)) != m.reactions {
				t.Fatalf("%s: %q was changed: %v", phase, m.content, g)
			}
		}
		states := must(h.chat.GetReadStates(ctx, as("carl", w.token, &chatv1.GetReadStatesRequest{Conversations: []string{conv}})))
		if got := states.Msg.States[0].LastReadMessageId; got != "" {
			t.Fatalf("%s: carl's read state moved to %s", phase, got)
		}
		for id, want := range before {
			if got := kinds(logged(t, h, about(id))); !slices.Equal(got, want) {
				t.Fatalf("%s: the log has %v about a message that did not change, want %v", phase, got, want)
			}
		}
		if got := h.events.take(); len(got) != 0 {
			t.Fatalf("%s: the publisher was told of %d changes that failed", phase, len(got))
		}
	}

	// 1. The event cannot be written: the change fails, and is not made.
	h.exec(t, `CREATE TABLE doomed (id text PRIMARY KEY);
		INSERT INTO doomed VALUES ('`+doomed.Id+`'), ('`+unpinned.Id+`');
		CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			IF EXISTS (SELECT 1 FROM doomed d WHERE position(convert_to(d.id, 'UTF8') IN NEW.payload) > 0) THEN
				RAISE EXCEPTION 'this event is refused';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_event BEFORE INSERT ON stream_events FOR EACH ROW EXECUTE FUNCTION refuse_event()`)
	for _, f := range failing {
		if err := ops[f.op].do(f.id); connect.CodeOf(err) != connect.CodeInternal {
			t.Fatalf("%s while its event cannot be logged: %v, want internal", f.op, err)
		}
	}
	unchanged("event refused")

	// 2. The change fails at its commit, once its event was written: no
	// event remains.
	h.exec(t, `DROP TRIGGER refuse_event ON stream_events;
		CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		DECLARE
			r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
		BEGIN
			IF EXISTS (SELECT 1 FROM doomed d WHERE d.id = coalesce(r->>'message_id', r->>'last_read_id', r->>'id')) THEN
				RAISE EXCEPTION 'this commit is refused';
			END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT OR UPDATE OR DELETE ON messages DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();
		CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT OR UPDATE OR DELETE ON reactions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();
		CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT OR UPDATE OR DELETE ON pins DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();
		CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT OR UPDATE OR DELETE ON read_states DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()`)
	for _, f := range failing {
		if err := ops[f.op].do(f.id); connect.CodeOf(err) != connect.CodeInternal {
			t.Fatalf("%s failing at its commit: %v, want internal", f.op, err)
		}
	}
	unchanged("commit refused")

	// 3. Committed: one event each, in order, live too; changes that change
	// nothing log nothing.
	h.exec(t, `DROP FUNCTION refuse_commit() CASCADE; DROP FUNCTION refuse_event(); DROP TABLE doomed`)
	carl := subscribe(t, h.stream, "carl", "")
	for _, name := range []string{"edit", "react", "react", "unreact", "unreact", "pin", "pin", "unpin", "unpin", "read", "delete"} {
		if err := ops[name].do(good.Id); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	want := []string{"message_created", "message_updated", "reaction_added", "reaction_removed", "message_pinned", "message_unpinned", "read_state_updated", "message_deleted"}
	rows := logged(t, h, about(good.Id))
	if got := kinds(rows); !slices.Equal(got, want) {
		t.Fatalf("the log about a message changed: %v, want %v", got, want)
	}
	if rows[6].audience == nil || !slices.Equal(rows[6].audience, []string{"carl"}) || rows[1].audience != nil || rows[1].token != w.token {
		t.Fatalf("the read state's audience %v, the edit's audience %v and token %q", rows[6].audience, rows[1].audience, rows[1].token)
	}
	if e := rows[1].event.GetMessageUpdated().GetMessage(); e.GetContent() != "edited" || e.GetNonce() != "" {
		t.Fatalf("the edit's event: %v", e)
	}
	var published []chat.EventKind
	for _, e := range h.events.take() {
		published = append(published, e.Kind)
	}
	if wantKinds := []chat.EventKind{chat.MessageUpdated, chat.ReactionAdded, chat.ReactionRemoved, chat.MessagePinned, chat.MessageUnpinned,
		chat.ReadStateUpdated, chat.MessageDeleted}; !slices.Equal(published, wantKinds) {
		t.Fatalf("the publisher was told %v, want %v", published, wantKinds)
	}
	// carl receives them live, in order (his own read state included). He
	// joined after the message was sent, but perhaps before the stream
	// handed its creation out (on a busy machine): then that reaches him too.
	var live []string
	for timeout := time.After(10 * time.Second); len(live) == 0 || live[len(live)-1] != "message_deleted"; {
		select {
		case ev := <-carl.events:
			if about(good.Id)(ev) {
				live = append(live, string(ev.ProtoReflect().WhichOneof(ev.ProtoReflect().Descriptor().Oneofs().ByName("event")).Name()))
			}
		case <-timeout:
			t.Fatalf("carl received %v in 10s", live)
		}
	}
	if live[0] == "message_created" {
		live = live[1:]
	}
	if !slices.Equal(live, want[1:]) {
		t.Fatalf("carl received %v, want %v", live, want[1:])
	}
}

// TestDMChangesAreLoggedOnceCommitted: a DM change's events carry the
// ZedToken of the write that brings SpiceDB to it, so they are logged
// when that write is done. A process that dies in between (the simulated
// crash) leaves them pending, not lost: the reconciler logs them, once,
// with its token, and they reach the stream then. A DM change that fails
// at its commit logs nothing.
func TestDMChangesAreLoggedOnceCommitted(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	created := must(h.chat.CreateGroupDM(ctx, as("ann", "", &chatv1.CreateGroupDMRequest{UserIds: []string{"bob", "carl"}}))).Msg
	id, conv := created.DmChannel.Id, created.DmChannel.Conversation
	ofDM := func(ev *chatv1.StreamEvent) bool {
		return ev.GetDmUpdated().GetDmChannel().GetConversation() == conv || ev.GetDmRemoved().GetConversation() == conv
	}
	if rows := logged(t, h, ofDM); len(rows) != 1 || rows[0].kind != "dm_updated" || rows[0].token != created.ZedToken ||
		!slices.Equal(rows[0].audience, []string{"ann", "bob", "carl"}) {
		t.Fatalf("the log after the group was made: %+v", rows)
	}
	dina, carl := subscribe(t, h.stream, "dina", ""), subscribe(t, h.stream, "carl", "")
	h.events.take()

	crash := errors.New("crash")
	h.svc.SetAfterCommit(func() error { return crash })
	if _, err := h.chat.AddGroupDMMember(ctx, as("ann", created.ZedToken, &chatv1.AddGroupDMMemberRequest{DmChannelId: id, UserId: "dina"})); err == nil {
		t.Fatal("the simulated crash did not stop the change")
	}
	if _, err := h.chat.RemoveGroupDMMember(ctx, as("ann", created.ZedToken, &chatv1.RemoveGroupDMMemberRequest{DmChannelId: id, UserId: "carl"})); err == nil {
		t.Fatal("the simulated crash did not stop the change")
	}
	h.svc.SetAfterCommit(nil)
	if rows := logged(t, h, ofDM); len(rows) != 1 {
		t.Fatalf("%d events logged before SpiceDB holds the changes", len(rows))
	}
	if got := h.events.take(); len(got) != 0 {
		t.Fatalf("the publisher was told of %d changes SpiceDB does not hold", len(got))
	}
	select {
	case ev := <-dina.events:
		t.Fatalf("dina received %v before SpiceDB holds the change", ev)
	case <-time.After(300 * time.Millisecond):
	}

	if n, err := h.svc.ReconcileDirty(ctx, 0); err != nil || n != 1 {
		t.Fatalf("reconciled %d DMs: %v", n, err)
	}
	rows := logged(t, h, ofDM)
	if got := kinds(rows); !slices.Equal(got, []string{"dm_updated", "dm_updated", "dm_updated", "dm_removed"}) {
		t.Fatalf("the log after the reconciler: %v", got)
	}
	added, removed, told := rows[1], rows[2], rows[3]
	if !slices.Equal(added.event.GetDmUpdated().GetDmChannel().GetMemberIds(), []string{"ann", "bob", "carl", "dina"}) ||
		!slices.Equal(added.audience, []string{"ann", "bob", "carl", "dina"}) ||
		!slices.Equal(removed.audience, []string{"ann", "bob", "dina"}) || !slices.Equal(told.audience, []string{"carl"}) {
		t.Fatalf("the events released: %+v", rows[1:])
	}
	for _, r := range rows[1:] {
		if r.token == "" || r.token != added.token {
			t.Fatalf("the events released carry the tokens %q and %q, want the reconciler's", r.token, added.token)
		}
	}
	// The token is of the state the reconciler brought SpiceDB to.
	if d, err := h.authz.Check(ctx, authz.Check{Subject: authz.UserSubject("dina"), Permission: authz.DmChannel.ViewChannel, ResourceID: id},
		authz.AtLeastAsFresh(authz.ZedToken(added.token))); err != nil || !d.Allowed {
		t.Fatalf("dina at the event's token: %+v %v", d, err)
	}
	dina.next(t, func(ev *chatv1.StreamEvent) bool { return ev.GetDmUpdated().GetDmChannel().GetConversation() == conv })
	carl.next(t, func(ev *chatv1.StreamEvent) bool { return ev.GetDmRemoved().GetConversation() == conv })
	var pending int
	if err := h.db.QueryRow(ctx, `SELECT count(*) FROM stream_pending`).Scan(&pending); err != nil || pending != 0 {
		t.Fatalf("%d events still pending (%v)", pending, err)
	}
	if n, err := h.svc.ReconcileDirty(ctx, 0); err != nil || n != 0 {
		t.Fatalf("marks left: %d %v", n, err)
	}
	before := len(rows)
	if got := h.events.take(); len(got) != 0 {
		t.Fatalf("the publisher was told of %d changes the crash interrupted", len(got))
	}

	// A change that fails at its commit: nothing pending, nothing logged,
	// no mark left.
	h.exec(t, `CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			IF NEW.user_id = 'erin' THEN RAISE EXCEPTION 'this commit is refused'; END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON dm_members DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit()`)
	if _, err := h.chat.AddGroupDMMember(ctx, as("ann", added.token, &chatv1.AddGroupDMMemberRequest{DmChannelId: id, UserId: "erin"})); connect.CodeOf(err) != connect.CodeInternal {
		t.Fatalf("a DM change failing at its commit: %v", err)
	}
	var marks int
	if err := h.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM stream_pending) + (SELECT count(*) FROM authz_dirty)`).Scan(&marks); err != nil || marks != 0 {
		t.Fatalf("%d pending events and marks after a failed change (%v)", marks, err)
	}
	if got := len(logged(t, h, ofDM)); got != before {
		t.Fatalf("a failed DM change logged %d events", got-before)
	}
	if got := h.events.take(); len(got) != 0 {
		t.Fatalf("the publisher was told of %d failed changes", len(got))
	}

	// A change that succeeds: one event, with the token it answered, and
	// the publisher told of it with that token.
	resp := must(h.chat.AddGroupDMMember(ctx, as("ann", added.token, &chatv1.AddGroupDMMemberRequest{DmChannelId: id, UserId: "fay"}))).Msg
	rows = logged(t, h, ofDM)
	if len(rows) != before+1 || rows[before].kind != "dm_updated" || rows[before].token != resp.ZedToken || !slices.Contains(rows[before].audience, "fay") {
		t.Fatalf("the log after fay was added: %+v", rows[before:])
	}
	if got := h.events.take(); len(got) != 1 || got[0].Kind != chat.DMUpdated || got[0].ZedToken != authz.ZedToken(resp.ZedToken) {
		t.Fatalf("the publisher was told %+v", got)
	}
}

// TestEditEventCarriesNoOnesOwnReactions: the message in an edit's event
// goes to everyone, so it says how many reacted, never that the editor
// did (Reaction.me is the caller's).
func TestEditEventCarriesNoOnesOwnReactions(t *testing.T) {
	h := start(t)
	w := setUp(t, h)
	ctx := t.Context()
	conv := ch(w.general)
	m := h.send(t, "ann", w.token, conv, "hello")
	must(h.chat.AddReaction(ctx, as("ann", w.token, &chatv1.AddReactionRequest{Conversation: conv, MessageId: m.Id, Emoji: unicode("👍")})))
	edited := must(h.chat.EditMessage(ctx, as("ann", w.token, &chatv1.EditMessageRequest{Conversation: conv, MessageId: m.Id, Content: "hello again"})))
	if r := edited.Msg.Message.Reactions; len(r) != 1 || !r[0].Me {
		t.Fatalf("ann's own answer should say she reacted: %v", r)
	}
	var updates []*chatv1.Message
	for _, r := range logged(t, h, about(m.Id)) {
		if u := r.event.GetMessageUpdated(); u != nil {
			updates = append(updates, u.GetMessage())
		}
	}
	if len(updates) != 1 {
		t.Fatalf("%d edit events, want 1", len(updates))
	}
	if r := updates[0].Reactions; len(r) != 1 || r[0].Count != 1 || r[0].Me {
		t.Fatalf("the edit's event tells everyone the editor's reaction: %v", r)
	}
}

// TestFollowerQueriesReadTheIndex: the queries the stream's follower repeats
// many times a second find their rows through the log's primary key, even
// in the generic plan PostgreSQL settles on for a prepared statement, and
// never read the whole log (one that did, asking whether any event was
// left, read every row of it about 20 times a second under load).
func TestFollowerQueriesReadTheIndex(t *testing.T) {
	h := start(t)
	h.exec(t, `INSERT INTO stream_events (conversation, payload) SELECT 'channel:' || (n % 100), '\x0a00'::bytea FROM generate_series(1, 20000) n`)

	conn, err := h.db.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(t.Context(), `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.WithoutCancel(t.Context()), `RESET plan_cache_mode`)
	for name, q := range chat.FollowerQueries {
		t.Run(name, func(t *testing.T) {
			// The prepared statement's generic plan, as a pooled connection
			// that ran it a few times uses.
			stmt := "follower_" + strings.ToLower(name)
			if _, err := conn.Conn().Prepare(t.Context(), stmt, q.SQL); err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(t.Context(), "EXPLAIN EXECUTE "+stmt+literals(q.Args))
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "stream_events_pkey") {
				t.Fatalf("the plan does not go through the primary key:\n%s", text)
			}
		})
	}
}

// literals are args as SQL: "('1', 1)" (strings and numbers only).
func literals(args []any) string {
	out := make([]string, len(args))
	for i, a := range args {
		if s, ok := a.(string); ok {
			out[i] = "'" + strings.ReplaceAll(s, "'", "''") + "'"
		} else {
			out[i] = fmt.Sprint(a)
		}
	}
	return "(" + strings.Join(out, ", ") + ")"
}

// TestLogIsReadInNumericOrder: the log's order is (transaction id, row id)
// as numbers. Sorted by their text, 10 came before 9 (and 100000 before
// 99999): a reader going on from the last event of a batch read events
// again, and subscribers received messages twice when the cluster's
// transaction ids gained a digit.
func TestLogIsReadInNumericOrder(t *testing.T) {
	h := start(t)
	h.exec(t, `DELETE FROM stream_events`)
	// Both sides of each power of ten below the cluster's transaction
	// counter (the follower reads only below the oldest transaction
	// running, so the ids must be past), inserted out of order.
	var current uint64
	if err := h.db.QueryRow(t.Context(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&current); err != nil {
		t.Fatal(err)
	}
	var xids []uint64
	for p := uint64(10); p < current; p *= 10 {
		xids = append(xids, p, p-1)
	}
	if len(xids) < 4 {
		t.Fatalf("the cluster's transaction counter is at %d: too young for this test", current)
	}
	slices.Reverse(xids)
	xids[0], xids[len(xids)-1] = xids[len(xids)-1], xids[0]
	// Row i+1 has xids[i]; the log's order is the xids' numeric order.
	rows := make([]int, len(xids))
	for i := range rows {
		rows[i] = i
	}
	slices.SortFunc(rows, func(a, b int) int { return cmp.Compare(xids[a], xids[b]) })
	var want []string
	for _, i := range rows {
		want = append(want, fmt.Sprintf("%d.%d", xids[i], i+1))
	}
	h.exec(t, `INSERT INTO stream_events (xid, id, conversation, payload)
		SELECT x::text::xid8, n, 'channel:c', '\x0a00'::bytea
		FROM unnest($1::bigint[]) WITH ORDINALITY AS e(x, n)`, xids)
	for _, limit := range []int{1, 3, 500} {
		committed, between, err := chat.ReadLog(t.Context(), h.db, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(committed, want) || !slices.Equal(between, want) {
			t.Fatalf("%d at a time: read %v as the follower and %v as a resume, want %v", limit, committed, between, want)
		}
	}
}

// TestFollowerSeesWhatIsHeldBack: an event committed while an older
// transaction still runs is not read (the older one may yet log an event
// before it), and the read says it is held back, so that the follower
// looks again shortly; once the older transaction ends it is read. A
// read that fills its limit says nothing is held back: it goes on at once.
func TestFollowerSeesWhatIsHeldBack(t *testing.T) {
	h := start(t)
	ctx := t.Context()
	h.exec(t, `DELETE FROM stream_events`)
	older, err := h.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer older.Rollback(context.WithoutCancel(ctx))
	if _, err := older.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	h.exec(t, `INSERT INTO stream_events (conversation, payload) VALUES ('channel:c', '\x0a00'::bytea)`)
	read, held, err := chat.ReadCommitted(ctx, h.db, 500)
	if err != nil || len(read) != 0 || !held {
		t.Fatalf("behind a running transaction: read %v, held %v (%v); want nothing read, held", read, held, err)
	}
	if err := older.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Another transaction of the cluster may hold events back a moment:
	// until reads at limit give want events and nothing held.
	settles := func(when string, limit, want int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			read, held, err := chat.ReadCommitted(ctx, h.db, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(read) == want && !held {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: read %v, held %v; want %d read, nothing held", when, read, held, want)
			}
		}
	}
	settles("after the older transaction", 500, 1)
	h.exec(t, `INSERT INTO stream_events (conversation, payload) SELECT 'channel:c', '\x0a00'::bytea FROM generate_series(1, 3)`)
	settles("a full batch", 2, 2)
}

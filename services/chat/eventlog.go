package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// The PostgreSQL channels that wake the stream's readers: a new event in
// stream_events, and a typing indicator (its payload, never stored).
const (
	eventsChannel = "beep_chat_events"
	typingChannel = "beep_chat_typing"
)

// position is an event's place in the log: (transaction id, row id), the
// order every reader reads it in. Its text form is the event id clients
// resume after.
type position struct {
	xid uint64
	id  int64
}

func (p position) String() string {
	return strconv.FormatUint(p.xid, 10) + "." + strconv.FormatInt(p.id, 10)
}

func (p position) after(o position) bool {
	return p.xid > o.xid || (p.xid == o.xid && p.id > o.id)
}

func (p position) xidText() string { return strconv.FormatUint(p.xid, 10) }

// parsePosition reads an event id.
func parsePosition(s string) (position, error) {
	x, i, ok := strings.Cut(s, ".")
	xid, err1 := strconv.ParseUint(x, 10, 64)
	id, err2 := strconv.ParseInt(i, 10, 64)
	if !ok || err1 != nil || err2 != nil || id < 0 {
		return position{}, errors.New("not an event id")
	}
	return position{xid: xid, id: id}, nil
}

// logged is one event of the log.
type logged struct {
	pos          position
	conversation string
	// audience, when not nil, receives the event whatever its permissions.
	audience []string
	// token: filter at least as fresh as this ("" for the watched revision).
	token authz.ZedToken
	event *chatv1.StreamEvent
}

// appendEventSQL records an event (its id and time are the log's). It does
// not NOTIFY: see waker.
const appendEventSQL = `INSERT INTO stream_events (conversation, audience, zed_token, payload) VALUES ($1, $2, $3, $4)`

// appendEvent records an event on its own, then has w wake every reader.
func appendEvent(ctx context.Context, db *pgxpool.Pool, w *waker, conversation string, audience []string, token authz.ZedToken, ev *chatv1.StreamEvent) error {
	payload, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = db.Exec(ctx, appendEventSQL, conversation, audience, string(token), payload)
	if err == nil {
		w.wake()
	}
	return err
}

// queueEvent records an event in the transaction of batch b: it exists
// exactly when the change does. Wake the readers once it committed.
func queueEvent(b *pgx.Batch, conversation string, audience []string, token authz.ZedToken, ev *chatv1.StreamEvent) error {
	payload, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	b.Queue(appendEventSQL, conversation, audience, string(token), payload)
	return nil
}

// waker wakes the log's readers (every instance's) after events were
// appended: one NOTIFY at a time, from a goroutine of its own, each
// covering every event committed before it began. A NOTIFY per event, in
// the event's transaction, serialized the appends: PostgreSQL holds a
// cluster-wide lock from a notifying transaction's pre-commit through its
// WAL flush, so such commits go one at a time (on this project's 2-core
// machine, 436 inserts/s with a NOTIFY against 4,910 without, 16 clients;
// see docs/benchmarks.md). A wake-up lost (the process dies between the
// commit and the NOTIFY) delays the event by the readers' one-second poll.
type waker struct {
	db  *pgxpool.Pool
	log *slog.Logger

	mu sync.Mutex
	// running: a goroutine notifies; pending: again once it is done.
	running, pending bool
}

// wake makes sure that a NOTIFY begins after this call.
func (w *waker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		w.pending = true
		return
	}
	w.running = true
	go w.notify()
}

func (w *waker) notify() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := w.db.Exec(ctx, `SELECT pg_notify('`+eventsChannel+`', '')`)
		cancel()
		if err != nil {
			w.log.Warn("chat stream: waking the readers (they poll every second meanwhile)", "err", err)
		}
		w.mu.Lock()
		if !w.pending {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.pending = false
		w.mu.Unlock()
	}
}

// eventColumns are an event's columns as scanEvents reads them. The xid's
// text is named apart: an "ORDER BY xid" would otherwise sort by the text
// (10 before 9), not the log's order (TestLogIsReadInNumericOrder).
const eventColumns = `xid::text AS xid_text, id, conversation, audience, zed_token, payload, created_at`

// readCommitted takes a querier: the stream's follower reads
// on its own connection, the one it listens on, never waiting behind the
// service's requests for a pooled one.
//
// readCommitted reads up to limit events after from, in log order, that no
// running transaction can precede: those below the oldest transaction still
// in progress. A reader that goes on from the last of them never skips an
// event that commits later. held says whether, with fewer than limit read,
// committed events follow that are not readable yet (a transaction older
// than them still runs): the reader should look again shortly rather than
// wait for the next wake-up.
//
// One query, hence one snapshot, tells both; asked apart, after each read,
// "is anything held back" was a second round trip for every batch, and its
// own snapshot could see an event become readable that the read had not
// returned, with no wake-up to come for it. Both parts find their rows
// through the primary key's index (TestFollowerQueriesReadTheIndex).
func readCommitted(ctx context.Context, db querier, from position, limit int) (batch []logged, held bool, err error) {
	rows, err := db.Query(ctx, readCommittedSQL, from.xidText(), from.id, limit)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			l        logged
			readable bool
		)
		if err := scanEvent(rows, &l, &readable); err != nil {
			return nil, false, err
		}
		if !readable {
			held = true
			continue
		}
		batch = append(batch, l)
	}
	return batch, held, rows.Err()
}

// readCommittedSQL: the readable events, then, when they are fewer than
// the limit, one row (readable false, no payload) if the first event after
// from that is not readable exists. Asked as "is there any such row", the
// second part once chose to scan the whole table for one (a sequential
// scan finds a match soonest if matches are spread out; these are all at
// its end): the whole log read about 20 times a second under load. It
// asks for the first of them in the log's order instead.
const readCommittedSQL = `WITH readable AS MATERIALIZED (
	SELECT ` + eventColumns + `, xid AS log_xid FROM stream_events
	WHERE (xid, id) > ($1::text::xid8, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY xid, id LIMIT $3)
SELECT xid_text, id, conversation, audience, zed_token, payload, created_at, readable FROM (
	SELECT *, true AS readable FROM readable
	UNION ALL
	SELECT '0', 0, '', NULL, '', NULL, now(), NULL, false
	WHERE (SELECT count(*) FROM readable) < $3 AND EXISTS (SELECT 1 FROM (SELECT 1 FROM stream_events
		WHERE (xid, id) > ($1::text::xid8, $2) AND xid >= pg_snapshot_xmin(pg_current_snapshot())
		ORDER BY xid, id LIMIT 1) AS next)) AS log
ORDER BY readable DESC, log_xid, id`

// readBetween reads the events after from up to and including through.
func readBetween(ctx context.Context, db *pgxpool.Pool, from, through position, limit int) ([]logged, error) {
	return scanEvents(db.Query(ctx, `SELECT `+eventColumns+` FROM stream_events
		WHERE (xid, id) > ($1::text::xid8, $2) AND (xid, id) <= ($3::text::xid8, $4)
		ORDER BY xid, id LIMIT $5`, from.xidText(), from.id, through.xidText(), through.id, limit))
}

func scanEvents(rows pgx.Rows, err error) ([]logged, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []logged
	for rows.Next() {
		var l logged
		if err := scanEvent(rows, &l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// scanEvent reads one row of eventColumns, and of more columns after
// them into more; an event whose payload is NULL (not read) is left
// without its event.
func scanEvent(rows pgx.Rows, l *logged, more ...any) error {
	var (
		xid     string
		token   string
		payload []byte
		at      time.Time
	)
	if err := rows.Scan(append([]any{&xid, &l.pos.id, &l.conversation, &l.audience, &token, &payload, &at}, more...)...); err != nil {
		return err
	}
	var err error
	if l.pos.xid, err = strconv.ParseUint(xid, 10, 64); err != nil {
		return fmt.Errorf("stream_events: xid %q: %w", xid, err)
	}
	l.token = authz.ZedToken(token)
	if payload == nil {
		return nil
	}
	l.event = &chatv1.StreamEvent{}
	if err := proto.Unmarshal(payload, l.event); err != nil {
		return fmt.Errorf("stream_events %s: %w", l.pos, err)
	}
	l.event.Id = l.pos.String()
	l.event.At = timestamppb.New(at)
	return nil
}

// logHead is where a reader starting now begins: after every event that
// is already beyond any running transaction.
func logHead(ctx context.Context, db *pgxpool.Pool) (position, error) {
	var (
		xid string
		id  int64
	)
	err := db.QueryRow(ctx, `SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text, 9223372036854775807`).Scan(&xid, &id)
	if err != nil {
		return position{}, err
	}
	x, err := strconv.ParseUint(xid, 10, 64)
	return position{xid: x, id: id}, err
}

// prunedThrough is the newest position pruning removed (zero if none).
func prunedThrough(ctx context.Context, db *pgxpool.Pool) (position, error) {
	var (
		xid string
		p   position
	)
	err := db.QueryRow(ctx, `SELECT xid::text, id FROM stream_pruned`).Scan(&xid, &p.id)
	if errors.Is(err, pgx.ErrNoRows) {
		return position{}, nil
	}
	if err != nil {
		return position{}, err
	}
	p.xid, err = strconv.ParseUint(xid, 10, 64)
	return p, err
}

// pruneEvents removes the events older than window and remembers how far
// it went. Instances may prune concurrently: the record only moves forward.
func pruneEvents(ctx context.Context, db *pgxpool.Pool, window time.Duration) error {
	_, err := db.Exec(ctx, `WITH d AS (DELETE FROM stream_events WHERE created_at < now() - make_interval(secs => $1) RETURNING xid, id),
		newest AS (SELECT xid, id FROM d ORDER BY xid DESC, id DESC LIMIT 1)
		INSERT INTO stream_pruned (xid, id) SELECT xid, id FROM newest
		ON CONFLICT (one) DO UPDATE SET xid = excluded.xid, id = excluded.id
		WHERE (excluded.xid, excluded.id) > (stream_pruned.xid, stream_pruned.id)`, window.Seconds())
	return err
}

package chat

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Presence is who is online, for @here (Discord: it pings the members
// online when it is sent). A person is online while they hold at least one
// stream (Subscribe) on an instance of the service; each instance records
// in PostgreSQL the spans of time its people are online there, and beats
// while it runs (migrations/00005_presence.sql). Any instance answers
// whether someone was online at a time, for the spans of every instance.
const (
	// presenceHeartbeat is how often an instance tells it still runs.
	presenceHeartbeat = 10 * time.Second
	// presenceGrace is how long after its last beat an instance's open
	// spans still count: past it, the instance is taken for dead (crashed,
	// or cut from PostgreSQL) and its people for offline.
	presenceGrace = 3 * presenceHeartbeat
	// presenceKept is how long ended spans are kept.
	presenceKept = 30 * 24 * time.Hour
	// presenceWait bounds how long a new stream waits for its person's
	// span to be recorded before it is Ready anyway.
	presenceWait = 5 * time.Second
	// maxOnlineAsked is how many people one Online call asks about.
	maxOnlineAsked = 1000
)

// wasOnlineSQL is the condition that the person userExpr was online at
// atExpr (SQL expressions): a span of theirs covers it, a span still open
// only up to its instance's last beat and the grace (so not at all once the
// instance is gone).
func wasOnlineSQL(userExpr, atExpr string) string {
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM presence_spans p LEFT JOIN presence_instances i ON i.id = p.instance_id
		WHERE p.user_id = %s AND p.online_from <= %s
		AND %s <= coalesce(p.online_until, i.heartbeat_at + %s))`,
		userExpr, atExpr, atExpr, presenceGraceSQL)
}

// presenceGraceSQL is presenceGrace as an SQL interval.
var presenceGraceSQL = fmt.Sprintf("interval '%d seconds'", int(presenceGrace/time.Second))

// presence records the spans of this instance's people, one writer in
// order: a person's first stream here opens their span, their last one
// closes it.
type presence struct {
	db       *pgxpool.Pool
	log      *slog.Logger
	instance uuid.UUID
	wake     chan struct{}

	mu      sync.Mutex
	people  map[string]*present
	pending []presenceChange
}

// present is one person's streams here.
type present struct {
	streams int
	// recorded is closed once their span is.
	recorded chan struct{}
}

// presenceChange opens (online) or closes a person's span here at a time.
type presenceChange struct {
	user   string
	online bool
	at     time.Time
	done   chan struct{}
}

func newPresence(db *pgxpool.Pool, log *slog.Logger) *presence {
	return &presence{db: db, log: log, instance: uuid.Must(uuid.NewV7()), wake: make(chan struct{}, 1), people: map[string]*present{}}
}

// presenceNow is now, to PostgreSQL's microsecond.
func presenceNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// join counts a stream of user's; the channel is closed once their span
// is recorded.
func (p *presence) join(user string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u := p.people[user]; u != nil {
		u.streams++
		return u.recorded
	}
	c := presenceChange{user: user, online: true, at: presenceNow(), done: make(chan struct{})}
	p.people[user] = &present{streams: 1, recorded: c.done}
	p.queueLocked(c)
	return c.done
}

// leave uncounts a stream of user's, closing their span at the last.
func (p *presence) leave(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u := p.people[user]
	if u == nil {
		return
	}
	if u.streams--; u.streams > 0 {
		return
	}
	delete(p.people, user)
	p.queueLocked(presenceChange{user: user, at: presenceNow(), done: make(chan struct{})})
}

func (p *presence) queueLocked(c presenceChange) {
	p.pending = append(p.pending, c)
	p.signal()
}

func (p *presence) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// start registers the instance, before any span of it.
func (p *presence) start(ctx context.Context) error {
	_, err := p.db.Exec(ctx, `INSERT INTO presence_instances (id, started_at, heartbeat_at) VALUES ($1, now(), now())
		ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`, p.instance)
	return err
}

// run writes the changes, beats and prunes until ctx ends, then closes the
// instance's spans.
func (p *presence) run(ctx context.Context) {
	beat := time.NewTicker(presenceHeartbeat)
	defer beat.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			p.stop()
			return
		case <-p.wake:
			p.flush(ctx)
		case <-beat.C:
			if err := p.beat(ctx); err != nil && ctx.Err() == nil {
				p.log.WarnContext(ctx, "chat presence: beating", "err", err)
			}
		case <-prune.C:
			if err := p.prune(ctx); err != nil && ctx.Err() == nil {
				p.log.WarnContext(ctx, "chat presence: pruning", "err", err)
			}
		}
	}
}

// flush writes the changes waiting, in order, in one transaction; if it
// fails they are written again a second later.
func (p *presence) flush(ctx context.Context) {
	p.mu.Lock()
	changes := p.pending
	p.pending = nil
	p.mu.Unlock()
	if len(changes) == 0 {
		return
	}
	err := pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, c := range changes {
			if c.online {
				b.Queue(`INSERT INTO presence_spans (user_id, online_from, instance_id) VALUES ($1, $2, $3)
					ON CONFLICT (user_id, online_from, instance_id) DO UPDATE SET online_until = NULL`, c.user, c.at, p.instance)
			} else {
				b.Queue(`UPDATE presence_spans SET online_until = greatest(online_from, $2)
					WHERE instance_id = $3 AND user_id = $1 AND online_until IS NULL`, c.user, c.at, p.instance)
			}
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		if ctx.Err() == nil {
			p.log.WarnContext(ctx, "chat presence: recording", "changes", len(changes), "err", err)
			time.AfterFunc(time.Second, p.signal)
		}
		p.mu.Lock()
		p.pending = append(changes, p.pending...)
		p.mu.Unlock()
		return
	}
	for _, c := range changes {
		close(c.done)
	}
}

// beat tells the instance still runs. An instance taken for dead (its beat
// late past the grace: its row pruned, its spans closed) registers again
// and opens the spans of its people anew.
func (p *presence) beat(ctx context.Context) error {
	tag, err := p.db.Exec(ctx, `UPDATE presence_instances SET heartbeat_at = now() WHERE id = $1`, p.instance)
	if err != nil || tag.RowsAffected() == 1 {
		return err
	}
	p.log.WarnContext(ctx, "chat presence: this instance was taken for dead; recording its people again")
	if err := p.start(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	at := presenceNow()
	for user := range p.people {
		p.pending = append(p.pending, presenceChange{user: user, online: true, at: at, done: make(chan struct{})})
	}
	p.mu.Unlock()
	p.flush(ctx)
	return nil
}

// prune closes the spans of dead instances (at their last beat and the
// grace, as they were answered until now) and of instances gone, forgets
// dead instances, and the spans ended long ago.
func (p *presence) prune(ctx context.Context) error {
	return pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`UPDATE presence_spans p SET online_until = greatest(p.online_from, i.heartbeat_at + ` + presenceGraceSQL + `)
			FROM presence_instances i WHERE i.id = p.instance_id AND p.online_until IS NULL AND i.heartbeat_at < now() - ` + presenceGraceSQL)
		b.Queue(`UPDATE presence_spans p SET online_until = p.online_from
			WHERE p.online_until IS NULL AND NOT EXISTS (SELECT 1 FROM presence_instances i WHERE i.id = p.instance_id)`)
		b.Queue(`DELETE FROM presence_instances WHERE heartbeat_at < now() - ` + presenceGraceSQL)
		b.Queue(`DELETE FROM presence_spans WHERE online_until < $1`, time.Now().Add(-presenceKept))
		return tx.SendBatch(ctx, b).Close()
	})
}

// stop closes the instance's spans and forgets it, as it ends.
func (p *presence) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`UPDATE presence_spans SET online_until = greatest(online_from, $2) WHERE instance_id = $1 AND online_until IS NULL`, p.instance, presenceNow())
		b.Queue(`DELETE FROM presence_instances WHERE id = $1`, p.instance)
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		p.log.Warn("chat presence: closing this instance's spans", "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.pending {
		close(c.done)
	}
	p.pending = nil
}

// onlineAt keeps those of users who were online at t.
func onlineAt(ctx context.Context, db *pgxpool.Pool, users []string, t time.Time) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT u FROM unnest($1::text[]) u WHERE `+wasOnlineSQL("u", "$2::timestamptz"), users, t)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

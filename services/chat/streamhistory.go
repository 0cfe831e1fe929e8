package chat

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// ServerChanged events are not in the log: each instance derives them from
// SpiceDB's Watch (streamwatch.go). So that a resumed stream is told of
// those it missed, each instance keeps the ones it derived, for everyone,
// connected or not, for as long as events are kept (the window), at most
// StreamConfig.History of them.
//
// On a resume after event P, once the log's events are replayed, the
// instance sends the caller the ServerChanged it told from the moment P
// was written (less structuralSlack) on, filtered as live ones are: a
// JOINED or LEFT only to the person who joined or left; the others only if
// the caller saw the server (server#view) at exactly the change's revision
// (AtExactSnapshot: a member then, not merely now). When it cannot say
// that, it sends a Resync instead, which carries nothing: the history does
// not reach back to P (the instance or its Watch started after it, or
// older changes were dropped), P is not in the log, the graph cannot
// answer at those revisions, or there are too many to ask about. Replayed
// ServerChanged may repeat some the client had received live: each one is
// a "fetch this again", so a repeat costs a fetch, and a miss a stale view.

// structuralSlack is how far before its resume point a stream's
// ServerChanged are replayed from. Instances see SpiceDB's changes through
// their own Watch, each with its own delay, and order them among the log's
// events each in its own way: a change told on the instance a client left
// after the client's last event may have been told here a little before
// that event was even written. The slack covers that difference (the
// resume point's age is measured on the database's clock, so the offset
// between clocks does not count).
const structuralSlack = 5 * time.Second

// maxStructuralRevisions bounds the revisions one resume asks the graph
// about (one CheckBulk each); with more, the stream answers Resync.
const maxStructuralRevisions = 64

// defaultHistory is how many ServerChanged an instance keeps by default.
const defaultHistory = 10000

// structural is one ServerChanged an instance told.
type structural struct {
	// at is when this instance told it (its clock, monotonic).
	at time.Time
	// rev is the revision of the change (the Watch's Change.At).
	rev    authz.ZedToken
	server string
	change chatv1.ServerChange
	object string
	// user is the one person told of a JOINED or LEFT; "" for the others,
	// told to the members of the server.
	user string
}

func (r structural) event() *chatv1.StreamEvent {
	return &chatv1.StreamEvent{At: timestamppb.New(r.at), Event: &chatv1.StreamEvent_ServerChanged{
		ServerChanged: &chatv1.ServerChanged{ServerId: r.server, Change: r.change, Object: r.object}}}
}

// structuralHistory is what an instance told, for resumes (guarded by the
// stream's mu).
type structuralHistory struct {
	limit int
	keep  time.Duration
	// slack is structuralSlack (tests shorten it).
	slack time.Duration
	// watching is whether the Watch runs; records then holds every
	// ServerChanged told from since on.
	watching bool
	since    time.Time
	// records, oldest first, are appended to and dropped from the front,
	// never changed in place: a snapshot shares them.
	records []structural
}

// historySnapshot is the history as it was at one instant.
type historySnapshot struct {
	watching bool
	since    time.Time
	records  []structural
}

// started: the Watch runs from now; what it did not see is not covered.
func (h *structuralHistory) started(at time.Time) {
	h.watching, h.since, h.records = true, at, nil
}

// stopped: the Watch is down; changes meanwhile are never seen.
func (h *structuralHistory) stopped() {
	h.watching, h.records = false, nil
}

// add keeps r, dropping the oldest past the limit or older than keep.
func (h *structuralHistory) add(r structural) {
	h.records = append(h.records, r)
	drop := 0
	for drop < len(h.records) && (len(h.records)-drop > h.limit || r.at.Sub(h.records[drop].at) > h.keep) {
		drop++
	}
	if drop > 0 {
		// Complete only after the newest dropped.
		h.since = h.records[drop-1].at.Add(time.Nanosecond)
		h.records = h.records[drop:]
	}
}

func (h *structuralHistory) snapshot() historySnapshot {
	return historySnapshot{watching: h.watching, since: h.since, records: h.records}
}

// historyStarted and historyStopped follow the Watch.
func (s *Stream) historyStarted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history.started(time.Now())
}

func (s *Stream) historyStopped() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history.stopped()
}

// errUncovered: the history cannot tell what a resumed stream missed.
var errUncovered = errors.New("the structural changes since the resume point are not all known here")

// replayStructure sends user, resuming after `after`, the ServerChanged
// they missed, or a Resync when snap cannot tell (see the top of the
// file). servers are those user sees now.
func (s *Stream) replayStructure(ctx context.Context, user string, after position, servers []string, snap historySnapshot,
	out eventSink) error {
	events, err := s.missedStructure(ctx, user, after, servers, snap)
	if errors.Is(err, errUncovered) {
		return out.Send(&chatv1.StreamEvent{At: timestamppb.Now(), Event: &chatv1.StreamEvent_Resync{Resync: &chatv1.Resync{}}})
	}
	if err != nil {
		return err
	}
	for _, ev := range events {
		if err := out.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

// missedStructure are the ServerChanged of snap that user may have missed
// since the event `after` and may know of; errUncovered when snap cannot
// say.
func (s *Stream) missedStructure(ctx context.Context, user string, after position, servers []string, snap historySnapshot) ([]*chatv1.StreamEvent, error) {
	if !snap.watching {
		return nil, errUncovered
	}
	// How long ago the resume point was written, on the database's clock.
	var age float64
	err := s.db.QueryRow(ctx, `SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM stream_events
		WHERE xid = $1::text::xid8 AND id = $2`, after.xidText(), after.id).Scan(&age)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errUncovered // not in the log (erased, or never was): it cannot be dated
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	slack := s.history.slack
	s.mu.Unlock()
	from := time.Now().Add(-time.Duration(age*float64(time.Second)) - slack)
	if from.Before(snap.since) {
		return nil, errUncovered
	}
	records := snap.records[sort.Search(len(snap.records), func(i int) bool { return !snap.records[i].at.Before(from) }):]
	// The servers user may have seen meanwhile: those they see now, and
	// those they joined or left (every change of their membership is in
	// the history). Leaving the others out tells less, never more: one
	// seen meanwhile only through platform staff powers lost since.
	mine := map[string]bool{}
	for _, id := range servers {
		mine[id] = true
	}
	for _, r := range records {
		if r.user == user {
			mine[r.server] = true
		}
	}
	type seen struct {
		rev    authz.ZedToken
		server string
	}
	ask := map[authz.ZedToken][]string{}
	asked := map[seen]bool{}
	var revs []authz.ZedToken
	for _, r := range records {
		if r.user != "" || !mine[r.server] || asked[seen{r.rev, r.server}] {
			continue
		}
		asked[seen{r.rev, r.server}] = true
		if _, ok := ask[r.rev]; !ok {
			revs = append(revs, r.rev)
		}
		ask[r.rev] = append(ask[r.rev], r.server)
	}
	if len(revs) > maxStructuralRevisions {
		return nil, errUncovered
	}
	// Who was a member when: the graph at exactly each change's revision.
	member := map[seen]bool{}
	for _, rev := range revs {
		checks := make([]authz.Check, len(ask[rev]))
		for i, server := range ask[rev] {
			checks[i] = authz.Check{Subject: authz.UserSubject(user), Permission: authz.Server.View, ResourceID: server}
		}
		decisions, err := s.authz.CheckBulk(ctx, checks, authz.AtExactSnapshot(rev))
		if err != nil {
			// A revision past SpiceDB's GC window, SpiceDB down: unknown.
			s.log.InfoContext(ctx, "chat stream: the structural changes missed cannot be filtered; the resumed stream is told to resync", "err", err)
			return nil, errUncovered
		}
		for i, d := range decisions {
			member[seen{rev, ask[rev][i]}] = d.Allowed
		}
	}
	var out []*chatv1.StreamEvent
	for _, r := range records {
		if r.user == user || (r.user == "" && member[seen{r.rev, r.server}]) {
			out = append(out, r.event())
		}
	}
	return out, nil
}

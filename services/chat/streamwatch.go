package chat

import (
	"context"
	"time"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
)

// watchedTypes are the definitions whose relationships decide who sees a
// conversation (view_channel and read_message_history of channels,
// threads and DMs walk only these).
var watchedTypes = []authz.ObjectType{authz.TypePlatform, authz.TypeRole, authz.TypeServer, authz.TypeCategory,
	authz.TypeChannel, authz.TypeThread, authz.TypeDmChannel}

// watch follows SpiceDB's Watch: each change invalidates the answers it
// could alter and tells the connected members of the servers it touches.
// While the Watch is down (SpiceDB unreachable, or a PostgreSQL datastore
// without track_commit_timestamp), the fan-out asks SpiceDB for every event.
func (s *Stream) watch(ctx context.Context) {
	warned := false
	for ctx.Err() == nil {
		from, err := s.authz.HeadToken(ctx)
		if err == nil {
			s.vis.started(from)
			s.historyStarted()
			for change, werr := range s.authz.Watch(ctx, from, watchedTypes...) {
				if werr != nil {
					err = werr
					break
				}
				s.changed(ctx, change)
			}
			s.vis.stopped()
			s.historyStopped()
		}
		if ctx.Err() != nil {
			return
		}
		if !warned {
			s.log.WarnContext(ctx, "chat stream: SpiceDB's Watch is unavailable; every event is checked fully consistent until it is back (a PostgreSQL datastore needs track_commit_timestamp=on)", "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// changed applies one revision's changes.
func (s *Stream) changed(ctx context.Context, change authz.Change) {
	// The facts the change itself states: what is in which server.
	for _, u := range change.Updates {
		r := u.Relationship
		switch {
		case r.Relation.Name == "server" && r.Subject.Object.Type == authz.TypeServer:
			s.vis.learn(r.Resource().String(), r.Subject.Object.ID)
		case r.Relation.ResourceType == authz.TypeThread && r.Relation.Name == "parent":
			if server, _ := s.vis.server(ctx, string(authz.TypeChannel)+":"+r.Subject.Object.ID); server != "" {
				s.vis.learn(r.Resource().String(), server)
			}
		}
	}
	var (
		servers, dms []string
		everything   bool
		notices      []serverNotice
	)
	for _, u := range change.Updates {
		r := u.Relationship
		obj := r.Resource()
		switch obj.Type {
		case authz.TypePlatform:
			everything = true
		case authz.TypeDmChannel:
			dms = append(dms, obj.String())
		case authz.TypeServer:
			servers = append(servers, obj.ID)
			notices = append(notices, serverNotice{server: obj.ID, update: u})
		default:
			server, err := s.vis.server(ctx, obj.String())
			if server == "" || err != nil {
				everything = true
				continue
			}
			servers = append(servers, server)
			notices = append(notices, serverNotice{server: server, update: u})
		}
	}
	s.vis.invalidate(servers, dms, everything, change.At)
	if everything {
		s.relookAll(ctx)
	}
	s.notify(notices, change.At)
}

// serverNotice is one change of a server, to tell its members.
type serverNotice struct {
	server string
	update authz.Update
}

// notify updates who sees which server and tells the connected members
// (and the history, for those who are not) of the changes of revision rev.
func (s *Stream) notify(notices []serverNotice, rev authz.ZedToken) {
	type key struct {
		server string
		change chatv1.ServerChange
		object string
	}
	seen := map[key]bool{}
	for _, n := range notices {
		r := n.update.Relationship
		change, object := chatv1.ServerChange_SERVER_CHANGE_PERMISSIONS, r.Resource().String()
		switch r.Relation.ResourceType {
		case authz.TypeServer:
			if r.Relation.Name == "member" && r.Subject.Object.Type == authz.TypeUser && r.Subject.Relation == "" {
				user := r.Subject.Object.ID
				joined := n.update.Op != authz.OpDelete
				s.mu.Lock()
				if len(s.subs[user]) > 0 {
					if joined {
						s.joinLocked(user, n.server)
					}
				}
				s.mu.Unlock()
				mine := chatv1.ServerChange_SERVER_CHANGE_JOINED
				if !joined {
					mine = chatv1.ServerChange_SERVER_CHANGE_LEFT
				}
				s.tell(rev, user, n.server, mine, "user:"+user)
				if !joined {
					s.mu.Lock()
					s.leaveLocked(user, n.server)
					s.mu.Unlock()
				}
				change, object = chatv1.ServerChange_SERVER_CHANGE_MEMBERS, "user:"+user
			}
		case authz.TypeChannel, authz.TypeCategory, authz.TypeThread:
			if r.Relation.Name == "server" || r.Relation.Name == "parent" || r.Relation.Name == "overwrites_from" {
				change = chatv1.ServerChange_SERVER_CHANGE_CHANNELS
			}
		}
		k := key{n.server, change, object}
		if seen[k] {
			continue
		}
		seen[k] = true
		s.tell(rev, "", n.server, change, object)
	}
}

// membersOf are the users connected here who see server.
func (s *Stream) membersOf(server string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.members[server]))
	for u := range s.members[server] {
		out = append(out, u)
	}
	return out
}

// tell delivers a ServerChanged of revision rev to the sessions here of
// user (a JOINED or LEFT) or, when user is "", of the server's connected
// members, and keeps it in the history, at once: a stream joining sees it
// either live or in the history's snapshot.
func (s *Stream) tell(rev authz.ZedToken, user, server string, change chatv1.ServerChange, object string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := structural{at: time.Now(), rev: rev, server: server, change: change, object: object, user: user}
	s.history.add(r)
	users := []string{user}
	if user == "" {
		users = make([]string, 0, len(s.members[server]))
		for u := range s.members[server] {
			users = append(users, u)
		}
	}
	s.deliverLocked(logged{event: r.event()}, users)
}

// relookAll asks again which servers every connected user sees (after a
// change the stream cannot scope, such as platform staff).
func (s *Stream) relookAll(ctx context.Context) {
	s.mu.Lock()
	users := make([]string, 0, len(s.subs))
	for u := range s.subs {
		users = append(users, u)
	}
	s.mu.Unlock()
	for _, u := range users {
		servers, err := s.lookupServers(ctx, u)
		if err != nil {
			continue
		}
		s.mu.Lock()
		for old := range s.serversOf[u] {
			s.leaveLocked(u, old)
		}
		s.mu.Unlock()
		s.joinAll(u, servers)
	}
}

package chat

import (
	"context"
	"strings"
	"sync"

	"github.com/beepchat/beep/authz"
)

// visibility answers who, among some people, holds a permission on a
// conversation, for the stream's fan-out. It caches the graph's answers
// and SpiceDB's Watch invalidates them (Stream.watch): an answer is dropped
// as soon as a change the Watch reports could alter it, by the scope of the
// change (a server, a DM, or everything when the scope cannot be told).
//
// Cached answers are as fresh as the newest revision watched. An event
// written with a ZedToken is filtered at least as fresh as that token,
// bypassing the cache; while the Watch is down, every answer is asked of
// SpiceDB fully consistent. It fails closed: an error delivers to nobody.
type visibility struct {
	authz *authz.Client

	mu sync.Mutex
	// watching is true while the Watch runs: only then is the cache used.
	watching bool
	// watched is the newest revision whose changes were applied.
	watched authz.ZedToken
	// gen grows with every invalidation; a fill begun before one is not kept.
	gen       uint64
	decisions map[string]map[string]bool // "conv#perm" -> user -> allowed
	// scopes index the cached answers by what can invalidate them.
	byServer map[string]map[string]struct{} // server id -> "conv#perm" keys
	// serverOf is the server of a channel, thread, category or role
	// ("type:id" -> server id), which never changes.
	serverOf map[string]string
	// dmMembers are the people of a DM (its view_channel), as last asked.
	dmMembers map[string][]string
}

func newVisibility(c *authz.Client) *visibility {
	return &visibility{authz: c, decisions: map[string]map[string]bool{}, byServer: map[string]map[string]struct{}{},
		serverOf: map[string]string{}, dmMembers: map[string][]string{}}
}

// checkChunk is how many checks one CheckBulk carries.
const checkChunk = 100

// allowed returns the users of candidates who hold perm on conv.
func (v *visibility) allowed(ctx context.Context, conv, perm string, candidates []string, token authz.ZedToken) []string {
	if len(candidates) == 0 {
		return nil
	}
	typ, id, _ := strings.Cut(conv, ":")
	if token != "" {
		return v.ask(ctx, typ, id, perm, candidates, authz.AtLeastAsFresh(token))
	}
	key := conv + "#" + perm
	v.mu.Lock()
	if !v.watching {
		v.mu.Unlock()
		return v.ask(ctx, typ, id, perm, candidates, authz.FullyConsistent())
	}
	var out, missing []string
	cached := v.decisions[key]
	for _, u := range candidates {
		if ok, hit := cached[u]; !hit {
			missing = append(missing, u)
		} else if ok {
			out = append(out, u)
		}
	}
	gen, watched := v.gen, v.watched
	v.mu.Unlock()
	if len(missing) == 0 {
		return out
	}
	granted := v.ask(ctx, typ, id, perm, missing, authz.AtLeastAsFresh(watched))
	if granted == nil && ctx.Err() != nil {
		return out
	}
	server := ""
	if typ != string(authz.TypeDmChannel) {
		server = v.server(ctx, conv)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	// Keep the answers only if nothing was invalidated meanwhile, and only
	// where an invalidation can find them (a DM by its key, a channel or
	// thread by its server).
	if v.gen == gen && v.watching && (server != "" || typ == string(authz.TypeDmChannel)) {
		m := v.decisions[key]
		if m == nil {
			m = map[string]bool{}
			v.decisions[key] = m
		}
		for _, u := range missing {
			m[u] = false
		}
		for _, u := range granted {
			m[u] = true
		}
		if server != "" {
			if v.byServer[server] == nil {
				v.byServer[server] = map[string]struct{}{}
			}
			v.byServer[server][key] = struct{}{}
		}
	}
	return append(out, granted...)
}

// ask asks the graph, in chunks; on any error nobody is allowed.
func (v *visibility) ask(ctx context.Context, typ, id, perm string, users []string, consistency authz.Consistency) []string {
	p := authz.Permission{ResourceType: authz.ObjectType(typ), Name: perm}
	var out []string
	for start := 0; start < len(users); start += checkChunk {
		chunk := users[start:min(start+checkChunk, len(users))]
		checks := make([]authz.Check, len(chunk))
		for i, u := range chunk {
			checks[i] = authz.Check{Subject: authz.UserSubject(u), Permission: p, ResourceID: id}
		}
		decisions, err := v.authz.CheckBulk(ctx, checks, consistency)
		if err != nil {
			return nil
		}
		for i, d := range decisions {
			if d.Allowed {
				out = append(out, chunk[i])
			}
		}
	}
	return out
}

// server is the server a channel or thread is in ("" if it cannot be told).
func (v *visibility) server(ctx context.Context, conv string) string {
	v.mu.Lock()
	s, ok := v.serverOf[conv]
	v.mu.Unlock()
	if ok {
		return s
	}
	typ, id, _ := strings.Cut(conv, ":")
	switch authz.ObjectType(typ) {
	case authz.TypeThread:
		parent := v.readSubject(ctx, authz.TypeThread, id, "parent")
		if parent == "" {
			return ""
		}
		s = v.server(ctx, string(authz.TypeChannel)+":"+parent)
	case authz.TypeChannel, authz.TypeCategory, authz.TypeRole:
		s = v.readSubject(ctx, authz.ObjectType(typ), id, "server")
	}
	if s != "" {
		v.learn(conv, s)
	}
	return s
}

// learn remembers that object (an immutable fact) is in server.
func (v *visibility) learn(object, server string) {
	v.mu.Lock()
	v.serverOf[object] = server
	v.mu.Unlock()
}

// readSubject is the id of the subject of object's relation ("" if none),
// read fully consistent: the object may have been made a moment ago, and
// the answer is kept for good.
func (v *visibility) readSubject(ctx context.Context, typ authz.ObjectType, id, relation string) string {
	for r, err := range v.authz.ReadRelationships(ctx, authz.Filter{ResourceType: typ, ResourceID: id, Relation: relation}, authz.FullyConsistent()) {
		if err != nil {
			return ""
		}
		return r.Subject.Object.ID
	}
	return ""
}

// members are the people of a DM, as the graph has them; with a token,
// at least as fresh as it (bypassing the cache, which may predate it).
func (v *visibility) members(ctx context.Context, dm string, token authz.ZedToken) []string {
	v.mu.Lock()
	m, ok := v.dmMembers[dm]
	watching, gen, watched := v.watching, v.gen, v.watched
	v.mu.Unlock()
	if ok && watching && token == "" {
		return m
	}
	_, id, _ := strings.Cut(dm, ":")
	consistency := authz.AtLeastAsFresh(watched)
	switch {
	case token != "":
		consistency = authz.AtLeastAsFresh(token)
	case !watching:
		consistency = authz.FullyConsistent()
	}
	subjects, err := v.authz.LookupSubjects(ctx, authz.DmChannel.ViewChannel, id, authz.TypeUser, consistency)
	if err != nil {
		return nil
	}
	m = make([]string, 0, len(subjects.Found))
	for _, f := range subjects.Found {
		if !f.Conditional {
			m = append(m, f.ID)
		}
	}
	v.mu.Lock()
	if v.gen == gen && v.watching {
		v.dmMembers[dm] = m
	}
	v.mu.Unlock()
	return m
}

// started: the Watch runs from revision at; nothing cached before is kept.
func (v *visibility) started(at authz.ZedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.watching, v.watched = true, at
	v.dropAllLocked()
}

// stopped: the Watch is down; answers are asked of the graph until it runs.
func (v *visibility) stopped() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.watching = false
	v.dropAllLocked()
}

// invalidate drops what the changes of one revision could alter, then
// records the revision as watched.
func (v *visibility) invalidate(servers, dms []string, everything bool, at authz.ZedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gen++
	if everything {
		v.dropAllLocked()
	}
	for _, s := range servers {
		for key := range v.byServer[s] {
			delete(v.decisions, key)
		}
		delete(v.byServer, s)
	}
	for _, dm := range dms {
		delete(v.dmMembers, dm)
		for _, perm := range conversationPermissions {
			delete(v.decisions, dm+"#"+perm)
		}
	}
	if at != "" {
		v.watched = at
	}
}

func (v *visibility) dropAllLocked() {
	v.gen++
	v.decisions = map[string]map[string]bool{}
	v.byServer = map[string]map[string]struct{}{}
	v.dmMembers = map[string][]string{}
}

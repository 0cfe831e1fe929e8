package community

import (
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/beepchat/beep/authz"
)

// platformID is the Beep platform object whose staff moderate public servers.
const platformID = "beep"

// The graph of a server is a pure function of its rows: desired() derives
// every relationship SpiceDB must hold for it. Writes apply the part a
// mutation changes; the reconciler compares the whole with SpiceDB.

// serverState is the rows of one server the graph is derived from.
type serverState struct {
	server       serverRow
	members      []memberRow
	bans         []string
	roles        []roleRow
	memberRoles  []memberRoleRow
	categories   []categoryRow
	channels     []channelRow
	overwrites   []overwriteRow
	invites      []inviteRow
	threads      []threadRow
	participants []participantRow
}

type serverRow struct {
	id, everyoneRoleID uuid.UUID
	name, ownerID      string
	public             bool
	createdAt          time.Time
}

type memberRow struct {
	userID        string
	timedOutUntil *time.Time
}

type roleRow struct {
	id          uuid.UUID
	serverID    uuid.UUID
	name        string
	position    int
	permissions []string
	color       int32
	hoist       bool
	mentionable bool
}

type memberRoleRow struct {
	roleID uuid.UUID
	userID string
}

type channelRow struct {
	id, serverID uuid.UUID
	categoryID   *uuid.UUID
	kind, name   string
	position     int
	synced       bool
}

type categoryRow struct {
	id, serverID uuid.UUID
	name         string
	position     int
}

type threadRow struct {
	id, serverID, channelID   uuid.UUID
	creatorID, name           string
	private, locked, archived bool
	createdAt                 time.Time
}

type participantRow struct {
	threadID uuid.UUID
	userID   string
}

type overwriteRow struct {
	holderID   uuid.UUID
	holderKind string // channel or category
	targetKind string // everyone, role or member
	targetID   string
	allow      []string
	deny       []string
}

func rel(r authz.Relation, id string, s authz.Subject) authz.Relationship {
	return authz.Relationship{Relation: r, ResourceID: id, Subject: s}
}

// serverRelationships are the relationships of the server object itself.
func serverRelationships(s serverRow) []authz.Relationship {
	id := s.id.String()
	out := []authz.Relationship{
		rel(authz.Server.Owner, id, authz.UserSubject(s.ownerID)),
		rel(authz.Server.Platform, id, authz.TypePlatform.Object(platformID).Subject()),
	}
	if s.public {
		out = append(out, rel(authz.Server.Public, id, authz.Wildcard(authz.TypeUser)))
	}
	return out
}

func memberRelationships(serverID uuid.UUID, m memberRow, now time.Time) []authz.Relationship {
	out := []authz.Relationship{
		rel(authz.Server.Member, serverID.String(), authz.UserSubject(m.userID)),
		// The reverse edge: whoever shares a server with a member sees
		// their profile (user#view_profile).
		rel(authz.User.MemberOf, m.userID, authz.TypeServer.Object(serverID.String()).Subject()),
	}
	if m.timedOutUntil != nil && m.timedOutUntil.After(now) {
		out = append(out, authz.Timeout(serverID.String(), m.userID, m.timedOutUntil.UTC().Truncate(time.Second)))
	}
	return out
}

func banRelationship(serverID uuid.UUID, userID string) authz.Relationship {
	return rel(authz.Server.Banned, serverID.String(), authz.UserSubject(userID))
}

func roleRelationships(serverID uuid.UUID, r roleRow, everyone bool) ([]authz.Relationship, error) {
	flags, err := authz.ParseFlags(r.permissions)
	if err != nil {
		return nil, err
	}
	out := authz.RoleGrants(serverID.String(), r.id.String(), flags)
	if everyone {
		return append(out, authz.EveryoneRole(serverID.String(), r.id.String())...), nil
	}
	out = append(out, rel(authz.Role.Server, r.id.String(), authz.TypeServer.Object(serverID.String()).Subject()))
	if r.mentionable {
		// @everyone is never a mentionable role: pinging it is @everyone.
		out = append(out, rel(authz.Role.Mentionable, r.id.String(), authz.Userset(authz.Server.Member, serverID.String())))
	}
	return out, nil
}

func memberRoleRelationship(roleID uuid.UUID, userID string) authz.Relationship {
	return rel(authz.Role.Member, roleID.String(), authz.UserSubject(userID))
}

func channelRelationships(c channelRow) []authz.Relationship {
	id := c.id.String()
	from := authz.TypeChannel.Object(id).Subject()
	if c.synced && c.categoryID != nil {
		from = authz.TypeCategory.Object(c.categoryID.String()).Subject()
	}
	return []authz.Relationship{
		rel(authz.Channel.Server, id, authz.TypeServer.Object(c.serverID.String()).Subject()),
		rel(authz.Channel.OverwritesFrom, id, from),
	}
}

func categoryRelationship(c categoryRow) authz.Relationship {
	return rel(authz.Category.Server, c.id.String(), authz.TypeServer.Object(c.serverID.String()).Subject())
}

// threadRelationships are a thread's own edges; participants have theirs.
func threadRelationships(t threadRow) []authz.Relationship {
	id := t.id.String()
	out := []authz.Relationship{
		rel(authz.Thread.Parent, id, authz.TypeChannel.Object(t.channelID.String()).Subject()),
	}
	if t.creatorID != "" { // empty once the creator's account is erased
		out = append(out, rel(authz.Thread.Creator, id, authz.UserSubject(t.creatorID)))
	}
	if !t.private {
		out = append(out, rel(authz.Thread.Public, id, authz.Wildcard(authz.TypeUser)))
	}
	if t.locked {
		out = append(out, lockedRelationship(t.id))
	}
	return out
}

func lockedRelationship(threadID uuid.UUID) authz.Relationship {
	return rel(authz.Thread.Locked, threadID.String(), authz.Wildcard(authz.TypeUser))
}

func participantRelationship(p participantRow) authz.Relationship {
	return rel(authz.Thread.Participant, p.threadID.String(), authz.UserSubject(p.userID))
}

func overwriteRelationships(o overwriteRow) ([]authz.Relationship, error) {
	allow, err := authz.ParseFlags(o.allow)
	if err != nil {
		return nil, err
	}
	deny, err := authz.ParseFlags(o.deny)
	if err != nil {
		return nil, err
	}
	var target authz.OverwriteTarget
	switch o.targetKind {
	case "everyone":
		target = authz.EveryoneTarget()
	case "role":
		target = authz.RoleTarget(o.targetID)
	default:
		target = authz.MemberTarget(o.targetID)
	}
	return authz.Overwrite(authz.ObjectType(o.holderKind).Object(o.holderID.String()), target, allow, deny)
}

// desired is every relationship the server's rows call for.
func (st *serverState) desired(now time.Time) ([]authz.Relationship, error) {
	out := serverRelationships(st.server)
	for _, m := range st.members {
		out = append(out, memberRelationships(st.server.id, m, now)...)
	}
	for _, b := range st.bans {
		out = append(out, banRelationship(st.server.id, b))
	}
	for _, r := range st.roles {
		rels, err := roleRelationships(st.server.id, r, r.id == st.server.everyoneRoleID)
		if err != nil {
			return nil, err
		}
		out = append(out, rels...)
	}
	for _, mr := range st.memberRoles {
		out = append(out, memberRoleRelationship(mr.roleID, mr.userID))
	}
	for _, c := range st.categories {
		out = append(out, categoryRelationship(c))
	}
	for _, c := range st.channels {
		out = append(out, channelRelationships(c)...)
	}
	for _, t := range st.threads {
		out = append(out, threadRelationships(t)...)
	}
	for _, p := range st.participants {
		out = append(out, participantRelationship(p))
	}
	for _, o := range st.overwrites {
		rels, err := overwriteRelationships(o)
		if err != nil {
			return nil, err
		}
		out = append(out, rels...)
	}
	for _, i := range st.invites {
		out = append(out, inviteRelationships(i, now)...)
	}
	return out, nil
}

// restrictive relationships take permissions away when present (denies,
// bans, timeouts, locks); every other relationship of the model only gives
// them.
func restrictive(r authz.Relationship) bool {
	n := r.Relation.Name
	return strings.Contains(n, "_deny_") || r.Relation == authz.Server.Banned || r.Relation == authz.Server.TimedOut ||
		r.Relation == authz.Thread.Locked
}

// delta is what a mutation changes in the graph.
type delta struct {
	add, remove []authz.Relationship
}

// phases splits a delta so that SpiceDB is never more permissive than the
// database, whatever step a crash interrupts: narrow (add restrictive,
// remove permissive) goes to SpiceDB before the database commits, widen
// (add permissive, remove restrictive) after.
func (d delta) phases() (narrow, widen []authz.Update) {
	for _, r := range d.add {
		if restrictive(r) {
			narrow = append(narrow, authz.Touch(r))
		} else {
			widen = append(widen, authz.Touch(r))
		}
	}
	for _, r := range d.remove {
		if restrictive(r) {
			widen = append(widen, authz.Delete(r))
		} else {
			narrow = append(narrow, authz.Delete(r))
		}
	}
	return narrow, widen
}

// diff compares two sets of relationships by their text form.
func diff(want, have []authz.Relationship) (missing, extra []authz.Relationship) {
	key := func(r authz.Relationship) string { return r.String() }
	haveSet := make(map[string]bool, len(have))
	for _, r := range have {
		haveSet[key(r)] = true
	}
	wantSet := make(map[string]bool, len(want))
	for _, r := range want {
		k := key(r)
		if wantSet[k] {
			continue
		}
		wantSet[k] = true
		if !haveSet[k] {
			missing = append(missing, r)
		}
	}
	for _, r := range have {
		k := key(r)
		if !wantSet[k] {
			wantSet[k] = true // once
			extra = append(extra, r)
		}
	}
	slices.SortFunc(missing, func(a, b authz.Relationship) int { return strings.Compare(key(a), key(b)) })
	slices.SortFunc(extra, func(a, b authz.Relationship) int { return strings.Compare(key(a), key(b)) })
	return missing, extra
}

// Package bench measures Beep's authorization graph on a generated data set
// shaped like a busy Discord-like platform. Run it with `make bench`; the
// results and the machine they came from are in docs/benchmarks.md.
package bench

import (
	"fmt"
	"iter"
	"math/rand/v2"

	"github.com/beepchat/beep/authz"
)

// Shape is the size of the generated data set.
type Shape struct {
	Servers           int
	MembersPerServer  int // memberships = Servers × MembersPerServer
	Users             int // distinct users the members are drawn from
	RolesPerServer    int // including @everyone
	ChannelsPerServer int
}

// DefaultShape is the data set the issue asks for: 10k servers, 1M
// memberships, 50 roles and 20 channels per server.
var DefaultShape = Shape{Servers: 10_000, MembersPerServer: 100, Users: 200_000, RolesPerServer: 50, ChannelsPerServer: 20}

// Names of the generated objects.
func serverID(s int) string             { return fmt.Sprintf("s%d", s) }
func roleID(s, r int) string            { return fmt.Sprintf("s%d_r%d", s, r) }
func channelID(s, c int) string         { return fmt.Sprintf("s%d_c%d", s, c) }
func categoryID(s, k int) string        { return fmt.Sprintf("s%d_k%d", s, k) }
func (sh Shape) member(s, j int) string { return fmt.Sprintf("u%d", (s*37+j*2003)%sh.Users) }

// Relationships generates the data set. Per server:
//   - an owner (member 0) and MembersPerServer members;
//   - @everyone (role 0) granting view, send, history, reactions, connect,
//     speak, invite and nickname; role 1 administrator; every other role two
//     flags; member j > 0 holds role 1 + j % (RolesPerServer-1);
//   - channels 0-2 private (@everyone deny view, one role allowed), 3-5
//     read-only (@everyone deny send, one role allowed), channel 6 with a
//     member deny; channels 10-14 synced with category 0 (@everyone deny
//     embed_links), 15-19 with category 1 (a role allowed manage_messages).
func (sh Shape) Relationships() iter.Seq[authz.Relationship] {
	everyoneFlags := authz.FlagsOf(authz.FlagViewChannel, authz.FlagSendMessages, authz.FlagReadMessageHistory,
		authz.FlagAddReactions, authz.FlagConnect, authz.FlagSpeak, authz.FlagCreateInvite, authz.FlagChangeNickname)
	roleFlags := []authz.Flags{
		authz.FlagsOf(authz.FlagManageMessages, authz.FlagKickMembers),
		authz.FlagsOf(authz.FlagAttachFiles, authz.FlagEmbedLinks),
		authz.FlagsOf(authz.FlagManageThreads, authz.FlagMuteMembers),
		authz.FlagsOf(authz.FlagMentionEveryone, authz.FlagVideo),
	}
	return func(yield func(authz.Relationship) bool) {
		emit := func(rels ...authz.Relationship) bool {
			for _, r := range rels {
				if !yield(r) {
					return false
				}
			}
			return true
		}
		rel := func(r authz.Relation, id string, s authz.Subject) authz.Relationship {
			return authz.Relationship{Relation: r, ResourceID: id, Subject: s}
		}
		for s := range sh.Servers {
			sid := serverID(s)
			server := authz.TypeServer.Object(sid).Subject()
			if !emit(rel(authz.Server.Owner, sid, authz.UserSubject(sh.member(s, 0)))) {
				return
			}
			for j := range sh.MembersPerServer {
				u := sh.member(s, j)
				if !emit(rel(authz.Server.Member, sid, authz.UserSubject(u))) {
					return
				}
				if j > 0 && !emit(rel(authz.Role.Member, roleID(s, 1+j%(sh.RolesPerServer-1)), authz.UserSubject(u))) {
					return
				}
			}
			if !emit(authz.EveryoneRole(sid, roleID(s, 0))...) || !emit(authz.RoleGrants(sid, roleID(s, 0), everyoneFlags)...) {
				return
			}
			for r := 1; r < sh.RolesPerServer; r++ {
				flags := roleFlags[r%len(roleFlags)]
				if r == 1 {
					flags = authz.FlagsOf(authz.FlagAdministrator)
				}
				if !emit(rel(authz.Role.Server, roleID(s, r), server)) || !emit(authz.RoleGrants(sid, roleID(s, r), flags)...) {
					return
				}
			}
			for k := range 2 {
				if !emit(rel(authz.Category.Server, categoryID(s, k), server)) {
					return
				}
			}
			cat0, _ := authz.Overwrite(authz.TypeCategory.Object(categoryID(s, 0)), authz.EveryoneTarget(), 0, authz.FlagsOf(authz.FlagEmbedLinks))
			cat1, _ := authz.Overwrite(authz.TypeCategory.Object(categoryID(s, 1)), authz.RoleTarget(roleID(s, 3)), authz.FlagsOf(authz.FlagManageMessages), 0)
			if !emit(cat0...) || !emit(cat1...) {
				return
			}
			for c := range sh.ChannelsPerServer {
				cid := channelID(s, c)
				ch := authz.TypeChannel.Object(cid)
				from := ch.Subject()
				switch {
				case c >= 10 && c < 15:
					from = authz.TypeCategory.Object(categoryID(s, 0)).Subject()
				case c >= 15:
					from = authz.TypeCategory.Object(categoryID(s, 1)).Subject()
				}
				if !emit(rel(authz.Channel.Server, cid, server), rel(authz.Channel.OverwritesFrom, cid, from)) {
					return
				}
				var ows [][]authz.Relationship
				switch {
				case c < 3:
					deny, _ := authz.Overwrite(ch, authz.EveryoneTarget(), 0, authz.FlagsOf(authz.FlagViewChannel))
					allow, _ := authz.Overwrite(ch, authz.RoleTarget(roleID(s, 2+c)), authz.FlagsOf(authz.FlagViewChannel), 0)
					ows = append(ows, deny, allow)
				case c < 6:
					deny, _ := authz.Overwrite(ch, authz.EveryoneTarget(), 0, authz.FlagsOf(authz.FlagSendMessages))
					allow, _ := authz.Overwrite(ch, authz.RoleTarget(roleID(s, 2+c)), authz.FlagsOf(authz.FlagSendMessages), 0)
					ows = append(ows, deny, allow)
				case c == 6:
					deny, _ := authz.Overwrite(ch, authz.MemberTarget(sh.member(s, 5)), 0, authz.FlagsOf(authz.FlagSendMessages))
					ows = append(ows, deny)
				}
				for _, o := range ows {
					if !emit(o...) {
						return
					}
				}
			}
		}
	}
}

// checkedPermissions are the channel permissions the benchmark asks about,
// weighted toward what clients ask most.
var checkedPermissions = []authz.Permission{
	authz.Channel.ViewChannel, authz.Channel.ViewChannel, authz.Channel.SendMessages, authz.Channel.SendMessages,
	authz.Channel.ReadMessageHistory, authz.Channel.AttachFiles, authz.Channel.ManageMessages, authz.Channel.Connect,
}

// RandomCheck is a channel permission check of a random member (one in
// twenty is a non-member) in a random channel of a random server.
func (sh Shape) RandomCheck(rng *rand.Rand) authz.Check {
	return sh.checkIn(rng, rng.IntN(sh.Servers))
}

// HotCheck is RandomCheck within the first 1% of the servers: traffic
// concentrated on active servers, as on a real platform.
func (sh Shape) HotCheck(rng *rand.Rand) authz.Check {
	return sh.checkIn(rng, rng.IntN(max(sh.Servers/100, 1)))
}

func (sh Shape) checkIn(rng *rand.Rand, s int) authz.Check {
	user := sh.member(s, rng.IntN(sh.MembersPerServer))
	if rng.IntN(20) == 0 {
		user = fmt.Sprintf("stranger%d", rng.IntN(1000))
	}
	return authz.Check{
		Subject:    authz.UserSubject(user),
		Permission: checkedPermissions[rng.IntN(len(checkedPermissions))],
		ResourceID: channelID(s, rng.IntN(sh.ChannelsPerServer)),
	}
}

// RandomBulk is 100 checks a client makes to draw one server's channel
// list: five permissions on each of 20 channels, for one member.
func (sh Shape) RandomBulk(rng *rand.Rand) []authz.Check {
	s := rng.IntN(sh.Servers)
	user := authz.UserSubject(sh.member(s, rng.IntN(sh.MembersPerServer)))
	perms := []authz.Permission{authz.Channel.ViewChannel, authz.Channel.SendMessages, authz.Channel.ReadMessageHistory, authz.Channel.AttachFiles, authz.Channel.ManageMessages}
	checks := make([]authz.Check, 0, sh.ChannelsPerServer*len(perms))
	for c := range sh.ChannelsPerServer {
		for _, p := range perms {
			checks = append(checks, authz.Check{Subject: user, Permission: p, ResourceID: channelID(s, c)})
		}
	}
	return checks
}

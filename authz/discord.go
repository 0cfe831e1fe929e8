package authz

import (
	"context"
	"fmt"
	"time"
)

// This file builds the relationships of Beep's Discord model, so that
// services never spell relation names: role grants, the @everyone role,
// channel overwrites and timeouts.

// RoleGrants are the relationships that give role roleID of server serverID
// the permission flags (server#grant_<flag>@role:<roleID>#member).
func RoleGrants(serverID, roleID string, flags Flags) []Relationship {
	out := make([]Relationship, 0, flags.Len())
	for _, f := range flags.List() {
		out = append(out, Relationship{
			Relation:   Relation{ResourceType: TypeServer, Name: "grant_" + f.Name()},
			ResourceID: serverID,
			Subject:    Userset(Role.Member, roleID),
		})
	}
	return out
}

// EveryoneRole is the implicit @everyone role of a server: every member of
// the server is a member of it.
func EveryoneRole(serverID, roleID string) []Relationship {
	return []Relationship{
		{Relation: Role.Server, ResourceID: roleID, Subject: TypeServer.Object(serverID).Subject()},
		{Relation: Role.Member, ResourceID: roleID, Subject: Userset(Server.Member, serverID)},
	}
}

// TargetKind says whom a permission overwrite applies to.
type TargetKind int

const (
	// TargetEveryone is the @everyone overwrite of a channel.
	TargetEveryone TargetKind = iota + 1
	// TargetRole is a role's overwrite.
	TargetRole
	// TargetMember is one member's overwrite.
	TargetMember
)

// OverwriteTarget is whom an overwrite applies to: @everyone, a role or a member.
type OverwriteTarget struct {
	Kind TargetKind
	// ID is the role or user id (empty for @everyone).
	ID string
}

// EveryoneTarget is the @everyone overwrite.
func EveryoneTarget() OverwriteTarget { return OverwriteTarget{Kind: TargetEveryone} }

// RoleTarget is role roleID's overwrite.
func RoleTarget(roleID string) OverwriteTarget { return OverwriteTarget{Kind: TargetRole, ID: roleID} }

// MemberTarget is user userID's overwrite.
func MemberTarget(userID string) OverwriteTarget {
	return OverwriteTarget{Kind: TargetMember, ID: userID}
}

func (t OverwriteTarget) prefix() string {
	switch t.Kind {
	case TargetEveryone:
		return "everyone"
	case TargetRole:
		return "role"
	case TargetMember:
		return "member"
	}
	return ""
}

func (t OverwriteTarget) subject() Subject {
	switch t.Kind {
	case TargetRole:
		return Userset(Role.Member, t.ID)
	case TargetMember:
		return UserSubject(t.ID)
	default:
		return Wildcard(TypeUser)
	}
}

// Overwrite is the relationships of one permission overwrite on a channel or
// category (holder): allow and deny are the flags it allows and denies.
// Only overwritable flags are accepted, and no flag may be both allowed and denied.
func Overwrite(holder Object, target OverwriteTarget, allow, deny Flags) ([]Relationship, error) {
	if holder.Type != TypeChannel && holder.Type != TypeCategory {
		return nil, fmt.Errorf("%w: overwrites live on channels and categories, not %s", ErrInvalid, holder.Type)
	}
	if target.prefix() == "" || (target.Kind != TargetEveryone && target.ID == "") {
		return nil, fmt.Errorf("%w: overwrite target is incomplete", ErrInvalid)
	}
	if both := allow & deny; both != 0 {
		return nil, fmt.Errorf("%w: %s both allowed and denied", ErrInvalid, both)
	}
	if fixed := (allow | deny).NonOverwritable(); fixed != 0 {
		return nil, fmt.Errorf("%w: %s cannot be overwritten per channel", ErrInvalid, fixed)
	}
	var out []Relationship
	for _, part := range []struct {
		verb  string
		flags Flags
	}{{"allow", allow}, {"deny", deny}} {
		for _, f := range part.flags.List() {
			out = append(out, Relationship{
				Relation:   Relation{ResourceType: holder.Type, Name: target.prefix() + "_" + part.verb + "_" + f.Name()},
				ResourceID: holder.ID,
				Subject:    target.subject(),
			})
		}
	}
	return out, nil
}

// Timeout is the relationship that times user userID out in server serverID
// until the given time; SpiceDB stops honouring it then.
func Timeout(serverID, userID string, until time.Time) Relationship {
	return Relationship{Relation: Server.TimedOut, ResourceID: serverID, Subject: UserSubject(userID), ExpiresAt: until}
}

// ChannelFlags is the set of channel permissions subject holds on channel
// channelID, computed by SpiceDB in one CheckBulk (the "effective
// permissions" clients use to grey out buttons).
func (c *Client) ChannelFlags(ctx context.Context, subject Subject, channelID string, consistency Consistency) (Flags, error) {
	return c.flagsOn(ctx, subject, TypeChannel, channelID, consistency, func(f Flag) bool { return f.Overwritable() })
}

// ServerFlags is the set of server-wide permissions subject holds in server serverID.
func (c *Client) ServerFlags(ctx context.Context, subject Subject, serverID string, consistency Consistency) (Flags, error) {
	return c.flagsOn(ctx, subject, TypeServer, serverID, consistency, func(Flag) bool { return true })
}

func (c *Client) flagsOn(ctx context.Context, subject Subject, t ObjectType, id string, consistency Consistency, include func(Flag) bool) (Flags, error) {
	var (
		flags  []Flag
		checks []Check
	)
	for _, f := range AllFlags().List() {
		if !include(f) {
			continue
		}
		flags = append(flags, f)
		checks = append(checks, Check{Subject: subject, Permission: Permission{ResourceType: t, Name: f.Name()}, ResourceID: id})
	}
	decisions, err := c.CheckBulk(ctx, checks, consistency)
	if err != nil {
		return 0, err
	}
	var out Flags
	for i, d := range decisions {
		if d.Allowed {
			out |= flags[i].bit()
		}
	}
	return out, nil
}

// CategoryFlags is the set of channel permissions subject holds on category
// categoryID: what its synced channels give them, before channel-only rules.
func (c *Client) CategoryFlags(ctx context.Context, subject Subject, categoryID string, consistency Consistency) (Flags, error) {
	return c.flagsOn(ctx, subject, TypeCategory, categoryID, consistency, func(f Flag) bool { return f.Overwritable() })
}

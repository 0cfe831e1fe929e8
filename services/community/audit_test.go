package community_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz/connectauthz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// lockedBuffer collects audit lines written by the handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func auditLog(t *testing.T, h *harness, user, token string, req *communityv1.ListAuditLogRequest) []*communityv1.AuditLogEntry {
	t.Helper()
	var all []*communityv1.AuditLogEntry
	for {
		resp, err := h.client.ListAuditLog(t.Context(), as(user, token, req))
		if err != nil {
			t.Fatalf("ListAuditLog: %v", err)
		}
		all = append(all, resp.Msg.Entries...)
		if resp.Msg.NextPageToken == "" {
			return all
		}
		req.PageToken = resp.Msg.NextPageToken
	}
}

func actions(entries []*communityv1.AuditLogEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimPrefix(e.Action.String(), "AUDIT_ACTION_"))
	}
	return out
}

// TestAuditLog: each change is in the server's log, newest first, with its
// actor, target, reason and changes; filters and pages; view_audit_log is
// required; a change that did not commit left no entry.
func TestAuditLog(t *testing.T) {
	h := start(t)
	f := setUp(t, h) // ann owns; bob holds Mods; carl plain
	ctx := t.Context()

	kicked := must(h.client.KickMember(ctx, as("ann", f.token, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "carl", Reason: "spam"})))
	back := must(h.client.JoinServer(ctx, as("carl", kicked.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: f.server})))
	banned := must(h.client.BanMember(ctx, as("bob", back.Msg.ZedToken, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "carl", Reason: "more spam"})))
	unbanned := must(h.client.UnbanMember(ctx, as("ann", banned.Msg.ZedToken, &communityv1.UnbanMemberRequest{ServerId: f.server, UserId: "carl", Reason: "appeal"})))
	must(h.client.SetMemberNickname(ctx, as("ann", unbanned.Msg.ZedToken, &communityv1.SetMemberNicknameRequest{ServerId: f.server, UserId: "bob", Nickname: "Bobby"})))
	name := "Moderators"
	updated := must(h.client.UpdateRole(ctx, as("ann", unbanned.Msg.ZedToken, &communityv1.UpdateRoleRequest{RoleId: f.mods, Name: &name})))
	must(h.client.UpdateChannel(ctx, as("ann", unbanned.Msg.ZedToken, &communityv1.UpdateChannelRequest{ChannelId: f.staff, Name: "mods"})))
	_ = updated // a rename writes nothing to the graph: no ZedToken
	timed := must(h.client.TimeoutMember(ctx, as("ann", unbanned.Msg.ZedToken, &communityv1.TimeoutMemberRequest{ServerId: f.server, UserId: "bob",
		Until: timestamppb.New(time.Now().Add(time.Hour)), Reason: "cool down"})))
	zed := timed.Msg.ZedToken

	entries := auditLog(t, h, "ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server})
	want := []string{"MEMBER_TIMED_OUT", "CHANNEL_UPDATED", "ROLE_UPDATED", "MEMBER_NICKNAME_CHANGED", "MEMBER_UNBANNED", "MEMBER_BANNED",
		"MEMBER_KICKED", "MEMBER_ROLE_ADDED", "CHANNEL_CREATED", "ROLE_CREATED"}
	if got := actions(entries); !slices.Equal(got, want) {
		t.Fatalf("actions, newest first:\n got %v\nwant %v", got, want)
	}
	byAction := map[string]*communityv1.AuditLogEntry{}
	for _, e := range entries {
		byAction[strings.TrimPrefix(e.Action.String(), "AUDIT_ACTION_")] = e
		if e.ServerId != f.server || e.Id == "" || e.CreatedAt == nil {
			t.Errorf("entry without its server, id or time: %v", e)
		}
	}
	if e := byAction["MEMBER_KICKED"]; e.ActorId != "ann" || e.TargetKind != "user" || e.TargetId != "carl" || e.Reason != "spam" {
		t.Errorf("kick: %v", e)
	}
	if e := byAction["MEMBER_BANNED"]; e.ActorId != "bob" || e.TargetId != "carl" || e.Reason != "more spam" {
		t.Errorf("ban: %v", e)
	}
	if e := byAction["MEMBER_UNBANNED"]; e.Reason != "appeal" {
		t.Errorf("unban: %v", e)
	}
	if e := byAction["ROLE_UPDATED"]; e.TargetKind != "role" || e.TargetId != f.mods || len(e.Changes) != 1 ||
		e.Changes[0].Key != "name" || e.Changes[0].Before != "Mods" || e.Changes[0].After != "Moderators" {
		t.Errorf("role update: %v", e)
	}
	if e := byAction["MEMBER_NICKNAME_CHANGED"]; len(e.Changes) != 1 || e.Changes[0].After != "Bobby" || e.TargetId != "bob" {
		t.Errorf("nickname: %v", e)
	}
	if e := byAction["CHANNEL_UPDATED"]; len(e.Changes) != 1 || e.Changes[0].Before != "staff" || e.Changes[0].After != "mods" {
		t.Errorf("channel rename: %v", e)
	}
	if e := byAction["CHANNEL_CREATED"]; !slices.ContainsFunc(e.Changes, func(c *communityv1.AuditChange) bool {
		return c.Key == "overwrite:role:"+f.mods && c.After == "allow=view_channel deny="
	}) {
		t.Errorf("channel creation without its overwrites: %v", e)
	}

	// Filters, and pages of two walk the same list.
	if got := auditLog(t, h, "ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server, ActorId: "bob"}); !slices.Equal(actions(got), []string{"MEMBER_BANNED"}) {
		t.Errorf("by bob: %v", actions(got))
	}
	if got := auditLog(t, h, "ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server, TargetId: "carl"}); !slices.Equal(actions(got), []string{"MEMBER_UNBANNED", "MEMBER_BANNED", "MEMBER_KICKED"}) {
		t.Errorf("on carl: %v", actions(got))
	}
	if got := auditLog(t, h, "ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server, Action: communityv1.AuditAction_AUDIT_ACTION_MEMBER_KICKED}); len(got) != 1 {
		t.Errorf("kicks: %v", actions(got))
	}
	if got := auditLog(t, h, "ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server, PageSize: 2}); !slices.Equal(actions(got), want) {
		t.Errorf("paged by two: %v", actions(got))
	}
	_, err := h.client.ListAuditLog(ctx, as("ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server, PageToken: "junk"}))
	code(t, err, connect.CodeInvalidArgument)

	// Only view_audit_log: bob's Mods lack it, carl is plain.
	for _, u := range []string{"bob", "carl", "zoe"} {
		_, err := h.client.ListAuditLog(ctx, as(u, zed, &communityv1.ListAuditLogRequest{ServerId: f.server}))
		code(t, err, connect.CodePermissionDenied)
	}
	given := must(h.client.UpdateRole(ctx, as("ann", zed, &communityv1.UpdateRoleRequest{RoleId: f.mods, SetPermissions: true,
		Permissions: []string{"manage_roles", "ban_members", "view_channel", "manage_channels", "view_audit_log"}})))
	for _, u := range []string{"carl", "bob"} { // bob is timed out: not while timed out
		_, err := h.client.ListAuditLog(ctx, as(u, given.Msg.ZedToken, &communityv1.ListAuditLogRequest{ServerId: f.server}))
		code(t, err, connect.CodePermissionDenied)
	}
	ended := must(h.client.TimeoutMember(ctx, as("ann", given.Msg.ZedToken, &communityv1.TimeoutMemberRequest{ServerId: f.server, UserId: "bob"})))
	got := auditLog(t, h, "bob", ended.Msg.ZedToken, &communityv1.ListAuditLogRequest{ServerId: f.server, PageSize: 1})
	if len(got) != len(want)+2 {
		t.Fatalf("bob reads %d entries, want %d", len(got), len(want)+2)
	}

	// A change that fails before its commit writes no entry.
	h.svc.SetBeforeCommit(func() error { return errors.New("simulated failure") })
	_, err = h.client.KickMember(ctx, as("ann", ended.Msg.ZedToken, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "carl", Reason: "never"}))
	if err == nil {
		t.Fatal("the kick committed despite the failure")
	}
	h.svc.SetBeforeCommit(nil)
	if got := auditLog(t, h, "ann", ended.Msg.ZedToken, &communityv1.ListAuditLogRequest{ServerId: f.server, Action: communityv1.AuditAction_AUDIT_ACTION_MEMBER_KICKED}); len(got) != 1 {
		t.Fatalf("kicks after a failed one: %v", got)
	}

	// Erasing carl keeps the actions, not him (nor the nickname ann gave
	// him); deleting the server deletes its log.
	rejoined := must(h.client.JoinServer(ctx, as("carl", ended.Msg.ZedToken, &communityv1.JoinServerRequest{ServerId: f.server})))
	must(h.client.SetMemberNickname(ctx, as("ann", rejoined.Msg.ZedToken, &communityv1.SetMemberNicknameRequest{ServerId: f.server, UserId: "carl", Nickname: "Carlitos"})))
	erased := must(h.erasure.EraseUser(ctx, asService("user", &communityv1.EraseUserRequest{UserId: "carl"})))
	zed = erased.Msg.ZedToken
	if zed == "" {
		zed = rejoined.Msg.ZedToken
	}
	for _, e := range auditLog(t, h, "ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server}) {
		if strings.Contains(strings.ToLower(e.String()), "carl") {
			t.Errorf("carl is still in the log: %v", e)
		}
	}
	if got := auditLog(t, h, "ann", zed, &communityv1.ListAuditLogRequest{ServerId: f.server, Action: communityv1.AuditAction_AUDIT_ACTION_MEMBER_BANNED}); len(got) != 1 || got[0].TargetId != "" {
		t.Errorf("the ban of the erased: %v", got)
	}
	must(h.client.DeleteServer(ctx, as("ann", zed, &communityv1.DeleteServerRequest{ServerId: f.server})))
	var n int
	if err := h.db.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE server_id = $1`, f.server).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d audit entries outlive their server", n)
	}
}

// TestModerationIsAudited: an allowed kick and ban, a kick refused by the
// interceptor and a ban refused by the handler (the hierarchy) each make a
// structured audit record with every field.
func TestModerationIsAudited(t *testing.T) {
	var buf lockedBuffer
	h := startAudited(t, connectauthz.NewJSONAuditor(&buf))
	f := setUp(t, h)
	ctx := t.Context()

	// Refused by the handler after the interceptor let it through: bob
	// holds ban_members, but ann owns the server.
	above := as("bob", f.token, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "ann", Reason: "coup"})
	above.Header().Set(connectauthz.RequestIDHeader, "req-hierarchy")
	_, err := h.client.BanMember(ctx, above)
	code(t, err, connect.CodePermissionDenied)
	refusal := as("carl", f.token, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "bob"})
	refusal.Header().Set(connectauthz.RequestIDHeader, "req-refused")
	_, err = h.client.KickMember(ctx, refusal)
	code(t, err, connect.CodePermissionDenied)
	kick := as("ann", f.token, &communityv1.KickMemberRequest{ServerId: f.server, UserId: "carl", Reason: "spam"})
	kick.Header().Set(connectauthz.RequestIDHeader, "req-kick")
	kicked := must(h.client.KickMember(ctx, kick))
	ban := as("ann", kicked.Msg.ZedToken, &communityv1.BanMemberRequest{ServerId: f.server, UserId: "bob", Reason: "rude"})
	ban.Header().Set(connectauthz.RequestIDHeader, "req-ban")
	banned := must(h.client.BanMember(ctx, ban))
	// A change that only widens: the record has the widening write's token.
	create := as("ann", banned.Msg.ZedToken, &communityv1.CreateRoleRequest{ServerId: f.server, Name: "Helpers"})
	create.Header().Set(connectauthz.RequestIDHeader, "req-role")
	role := must(h.client.CreateRole(ctx, create))

	byRequest := map[string]map[string]any{}
	for _, r := range buf.records(t) {
		if id, _ := r["request_id"].(string); id != "" {
			byRequest[id] = r
		}
	}
	fields := []string{"time", "at", "audit", "principal", "action", "resource", "permission", "result", "zed_token", "request_id", "trace_id", "target", "reason"}
	check := func(id string, want map[string]any) {
		t.Helper()
		r, ok := byRequest[id]
		if !ok {
			t.Fatalf("no audit record of %s in %v", id, buf.records(t))
		}
		for _, k := range fields {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: field %s missing: %v", id, k, r)
			}
		}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("%s: %s = %v, want %v", id, k, r[k], v)
			}
		}
		if r["zed_token"] == "" {
			t.Errorf("%s: no ZedToken", id)
		}
	}
	check("req-refused", map[string]any{"audit": true, "principal": "carl", "action": "/beep.community.v1.CommunityService/KickMember",
		"resource": "server:" + f.server, "permission": "server#kick_members", "result": "denied"})
	check("req-hierarchy", map[string]any{"audit": true, "principal": "bob", "action": "/beep.community.v1.CommunityService/BanMember",
		"resource": "server:" + f.server, "permission": "server#ban_members", "result": "denied", "zed_token": f.token})
	if r := byRequest["req-hierarchy"]; !strings.Contains(fmt.Sprint(r["reason"]), "role hierarchy") {
		t.Errorf("the hierarchy refusal's reason: %v", r["reason"])
	}
	check("req-kick", map[string]any{"audit": true, "principal": "ann", "action": "/beep.community.v1.CommunityService/KickMember",
		"resource": "server:" + f.server, "permission": "server#kick_members", "result": "allowed", "target": "carl", "reason": "spam",
		"zed_token": kicked.Msg.ZedToken})
	check("req-ban", map[string]any{"audit": true, "principal": "ann", "action": "/beep.community.v1.CommunityService/BanMember",
		"resource": "server:" + f.server, "permission": "server#ban_members", "result": "allowed", "target": "bob", "reason": "rude",
		"zed_token": banned.Msg.ZedToken})
	check("req-role", map[string]any{"principal": "ann", "action": "/beep.community.v1.CommunityService/CreateRole", "permission": "server#manage_roles",
		"result": "allowed", "target": "role:" + role.Msg.Role.Id, "zed_token": role.Msg.ZedToken})
}

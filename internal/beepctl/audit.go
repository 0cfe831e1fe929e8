package beepctl

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"

	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// auditActions are the names `audit --action` takes: role_created, ...
func auditActions() []string {
	var names []string
	for v, name := range communityv1.AuditAction_name {
		if v != 0 {
			names = append(names, strings.ToLower(strings.TrimPrefix(name, "AUDIT_ACTION_")))
		}
	}
	sort.Strings(names)
	return names
}

// parseAuditAction reads role_created, ROLE_CREATED or AUDIT_ACTION_ROLE_CREATED.
func parseAuditAction(s string) (communityv1.AuditAction, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "AUDIT_ACTION_") {
		name = "AUDIT_ACTION_" + name
	}
	if v, ok := communityv1.AuditAction_value[name]; ok && v != 0 {
		return communityv1.AuditAction(v), nil
	}
	return 0, usage("--action %q: want one of %s", s, strings.Join(auditActions(), ", "))
}

func auditActionName(a communityv1.AuditAction) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "AUDIT_ACTION_"))
}

// audit prints a server's audit log, newest first.
func (c *cli) audit(ctx context.Context, args []string) error {
	fs := c.flags("audit", "SERVER_ID [--actor USER] [--action ACTION] [--target ID] [--limit N]")
	actor := fs.String("actor", "", "only what this user did")
	action := fs.String("action", "", "only this action ("+strings.Join(auditActions(), ", ")+")")
	target := fs.String("target", "", "only what was done to this user, role, channel, category or invite")
	limit := fs.Int("limit", 100, "stop after this many entries (0: all)")
	args, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if err := want("audit", args, 1); err != nil {
		return err
	}
	req := &communityv1.ListAuditLogRequest{ServerId: args[0], ActorId: *actor, TargetId: *target, PageSize: 100}
	if *action != "" {
		if req.Action, err = parseAuditAction(*action); err != nil {
			return err
		}
	}
	if *limit < 0 {
		return usage("--limit must be 0 or more")
	}
	client, err := c.communityClient()
	if err != nil {
		return err
	}
	out := &communityv1.ListAuditLogResponse{}
	for {
		callCtx, cancel := c.call(ctx)
		resp, err := client.ListAuditLog(callCtx, connect.NewRequest(req))
		cancel()
		if err != nil {
			return err
		}
		out.Entries = append(out.Entries, resp.Msg.Entries...)
		if (*limit > 0 && len(out.Entries) >= *limit) || resp.Msg.NextPageToken == "" {
			out.NextPageToken = resp.Msg.NextPageToken
			break
		}
		req.PageToken = resp.Msg.NextPageToken
	}
	if *limit > 0 && len(out.Entries) > *limit {
		out.Entries = out.Entries[:*limit]
	}
	if c.json() {
		for _, e := range out.Entries {
			c.printJSONLine(e)
		}
		return nil
	}
	t := newTable(c.env.Stdout, "TIME", "ACTOR", "ACTION", "TARGET", "REASON", "CHANGES")
	for _, e := range out.Entries {
		target := e.TargetId
		if e.TargetKind != "" && e.TargetKind != "user" {
			target = e.TargetKind + ":" + e.TargetId
		}
		var changes []string
		for _, ch := range e.Changes {
			changes = append(changes, fmt.Sprintf("%s: %s → %s", ch.Key, quoteEmpty(ch.Before), quoteEmpty(ch.After)))
		}
		t.row(e.CreatedAt.AsTime().UTC().Format(time.RFC3339), dash(e.ActorId), auditActionName(e.Action), dash(target),
			dash(e.Reason), dash(strings.Join(changes, "; ")))
	}
	t.flush()
	return nil
}

func quoteEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

// serverShow prints any server, for platform staff.
func (c *cli) serverShow(ctx context.Context, args []string) error {
	fs := c.flags("server show", "SERVER_ID")
	args, client, err := c.prepareCommunity(fs, "server show", args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.InspectServer(ctx, connect.NewRequest(&communityv1.InspectServerRequest{ServerId: args[0]}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	m, srv := resp.Msg, resp.Msg.Server
	t := newTable(c.env.Stdout, "FIELD", "VALUE")
	for _, kv := range [][2]string{
		{"id", srv.Id}, {"name", srv.Name}, {"owner", srv.OwnerId}, {"public", fmt.Sprint(srv.Public)},
		{"created", srv.CreatedAt.AsTime().UTC().Format(time.RFC3339)},
		{"members", fmt.Sprint(m.Members)}, {"roles", fmt.Sprint(m.Roles)}, {"channels", fmt.Sprint(m.Channels)},
		{"categories", fmt.Sprint(m.Categories)}, {"bans", fmt.Sprint(m.Bans)}, {"invites", fmt.Sprint(m.Invites)},
		{"audit log entries", fmt.Sprint(m.AuditLogEntries)},
	} {
		t.row(kv[0], kv[1])
	}
	t.flush()
	return nil
}

// serverDelete removes any server, for platform admins.
func (c *cli) serverDelete(ctx context.Context, args []string) error {
	fs := c.flags("server delete", "SERVER_ID [--reason TEXT]")
	reason := fs.String("reason", "", "why (kept in the audit records)")
	args, client, err := c.prepareCommunity(fs, "server delete", args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.RemoveServer(ctx, connect.NewRequest(&communityv1.RemoveServerRequest{ServerId: args[0], Reason: *reason}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	fmt.Fprintf(c.env.Stdout, "deleted server %s at %s\n", args[0], resp.Msg.ZedToken)
	return nil
}

// userServers lists a user's servers, for platform staff.
func (c *cli) userServers(ctx context.Context, args []string) error {
	fs := c.flags("user servers", "USER_ID")
	args, client, err := c.prepareCommunity(fs, "user servers", args, 1)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.ListUserServers(ctx, connect.NewRequest(&communityv1.ListUserServersRequest{UserId: args[0]}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	t := newTable(c.env.Stdout, "SERVER", "NAME", "JOINED", "OWNER")
	for _, s := range resp.Msg.Servers {
		owner := ""
		if s.Owner {
			owner = "yes"
		}
		t.row(s.Server.Id, s.Server.Name, s.JoinedAt.AsTime().UTC().Format(time.RFC3339), dash(owner))
	}
	t.flush()
	return nil
}

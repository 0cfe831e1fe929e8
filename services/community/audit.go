package community

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/connectauthz"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
)

// The server audit log.
//
// A handler that changes a server says what it does with auditing(ctx, ...)
// before committing: commit (sync.go) then writes the entry in the same
// PostgreSQL transaction as the change, so an entry exists exactly when the
// change committed, and, once it has, sends a structured record of it to the
// service's Auditor with the write's ZedToken. Changes that do not go
// through commit (nothing in the graph moves) use s.inTx, which does the
// same.

// auditEntry is one entry to write.
type auditEntry struct {
	action     communityv1.AuditAction
	targetKind string
	targetID   string
	reason     string
	changes    []*communityv1.AuditChange
	// req is the request, for the structured record.
	req connect.AnyRequest
	// written is set once the entry is in a committed transaction's
	// statements (it is written once, even if commit is called again).
	written bool
}

type auditKey struct{}

// auditing returns ctx carrying the entry the next commit writes.
func auditing(ctx context.Context, req connect.AnyRequest, action communityv1.AuditAction, targetKind, targetID, reason string, changes ...*communityv1.AuditChange) context.Context {
	return context.WithValue(ctx, auditKey{}, &auditEntry{action: action, targetKind: targetKind, targetID: targetID, reason: reason, changes: changes, req: req})
}

func pendingAudit(ctx context.Context) *auditEntry {
	e, _ := ctx.Value(auditKey{}).(*auditEntry)
	if e == nil || e.written {
		return nil
	}
	return e
}

// field is one changed field, or nil when it did not change.
func field(key, before, after string) *communityv1.AuditChange {
	if before == after {
		return nil
	}
	return &communityv1.AuditChange{Key: key, Before: before, After: after}
}

// changed drops the fields that did not change.
func changed(cs ...*communityv1.AuditChange) []*communityv1.AuditChange {
	return slices.DeleteFunc(cs, func(c *communityv1.AuditChange) bool { return c == nil })
}

// nameList is a set of names as one sorted, comma-separated string.
func nameList(names []string) string {
	s := slices.Clone(names)
	slices.Sort(s)
	return strings.Join(s, ",")
}

// actionName is how an action is stored: "role_created".
func actionName(a communityv1.AuditAction) string {
	return strings.ToLower(strings.TrimPrefix(a.String(), "AUDIT_ACTION_"))
}

// ParseAuditAction reads "role_created", "ROLE_CREATED" or
// "AUDIT_ACTION_ROLE_CREATED".
func ParseAuditAction(s string) (communityv1.AuditAction, bool) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "AUDIT_ACTION_") {
		name = "AUDIT_ACTION_" + name
	}
	v, ok := communityv1.AuditAction_value[name]
	if !ok || v == 0 {
		return 0, false
	}
	return communityv1.AuditAction(v), true
}

type auditChangeJSON struct {
	Key    string `json:"key"`
	Before string `json:"before"`
	After  string `json:"after"`
}

// writeAudit inserts the pending entry of ctx, if any, in tx.
func writeAudit(ctx context.Context, tx pgx.Tx, serverID uuid.UUID) (*auditEntry, error) {
	e := pendingAudit(ctx)
	if e == nil {
		return nil, nil
	}
	p, err := principal(ctx)
	if err != nil {
		return nil, err
	}
	changes := make([]auditChangeJSON, 0, len(e.changes))
	for _, c := range changed(e.changes...) {
		changes = append(changes, auditChangeJSON{Key: c.Key, Before: c.Before, After: c.After})
	}
	data, err := json.Marshal(changes)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (id, server_id, actor_id, action, target_kind, target_id, reason, changes, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		newID(), serverID, p.UserID, actionName(e.action), e.targetKind, e.targetID, e.reason, data, time.Now().UTC()); err != nil {
		return nil, fmt.Errorf("writing the audit log: %w", err)
	}
	return e, nil
}

// commit marks e written: its transaction committed (nil does nothing).
func (e *auditEntry) commit() {
	if e != nil {
		e.written = true
	}
}

// audited sends e's structured record, with the ZedToken of its change.
func (s *Service) audited(ctx context.Context, e *auditEntry, token authz.ZedToken) {
	if e == nil {
		return
	}
	e.commit()
	p, _ := principal(ctx)
	r := connectauthz.NewAuditRecord(ctx, e.req.Header(), e.req.Spec().Procedure)
	r.Principal, r.Result, r.ZedToken, r.Reason = p.UserID, connectauthz.AuditAllowed, string(token), e.reason
	if e.targetKind == "user" {
		r.Target = e.targetID
	} else if e.targetID != "" {
		r.Target = e.targetKind + ":" + e.targetID
	}
	if msg, ok := e.req.Any().(proto.Message); ok {
		if perm, id, err := connectauthz.Resource(e.req.Spec().Procedure, msg); err == nil {
			r.Permission, r.Resource = perm.String(), string(perm.ResourceType)+":"+id
		}
	}
	s.auditor.Audit(ctx, r)
}

// inTx runs a change the graph does not see (names, positions, nicknames)
// in one transaction with its audit entry.
func (s *Service) inTx(ctx context.Context, serverID uuid.UUID, f func(pgx.Tx) error) error {
	var e *auditEntry
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := f(tx); err != nil {
			return err
		}
		var err error
		e, err = writeAudit(ctx, tx, serverID)
		return err
	})
	if err != nil {
		return err
	}
	s.audited(ctx, e, authz.ZedToken(""))
	return nil
}

// ListAuditLog pages through a server's audit log, newest first.
func (s *Service) ListAuditLog(ctx context.Context, req *connect.Request[communityv1.ListAuditLogRequest]) (*connect.Response[communityv1.ListAuditLogResponse], error) {
	id, err := parseID("server_id", req.Msg.ServerId)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.Msg.PageSize, 50, 100)
	if err != nil {
		return nil, err
	}
	if req.Msg.Action != communityv1.AuditAction_AUDIT_ACTION_UNSPECIFIED {
		if _, ok := communityv1.AuditAction_name[int32(req.Msg.Action)]; !ok {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("action: unknown"))
		}
	}
	// Before: older than this position (the far future: from the newest).
	before, beforeID := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), uuid.Max
	if t := req.Msg.PageToken; t != "" {
		var key string
		before, key, err = decodeCursor(t)
		if err == nil {
			beforeID, err = uuid.Parse(key)
		}
		if err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("page_token is not one this service gave"))
		}
	}
	action := ""
	if req.Msg.Action != communityv1.AuditAction_AUDIT_ACTION_UNSPECIFIED {
		action = actionName(req.Msg.Action)
	}
	rows, err := s.db.Query(ctx, `SELECT id, actor_id, action, target_kind, target_id, reason, changes, created_at FROM audit_log
		WHERE server_id = $1 AND (created_at, id) < ($2, $3)
			AND ($4 = '' OR actor_id = $4) AND ($5 = '' OR action = $5) AND ($6 = '' OR target_id = $6)
		ORDER BY created_at DESC, id DESC LIMIT $7`, id, before, beforeID, req.Msg.ActorId, action, req.Msg.TargetId, size+1)
	if err != nil {
		return nil, s.internal(ctx, "list audit log", err)
	}
	type row struct {
		entry *communityv1.AuditLogEntry
		id    uuid.UUID
		at    time.Time
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var (
			x       row
			action  string
			changes []auditChangeJSON
		)
		x.entry = &communityv1.AuditLogEntry{ServerId: id.String()}
		if err := r.Scan(&x.id, &x.entry.ActorId, &action, &x.entry.TargetKind, &x.entry.TargetId, &x.entry.Reason, &changes, &x.at); err != nil {
			return x, err
		}
		x.entry.Id = x.id.String()
		x.entry.Action, _ = ParseAuditAction(action)
		x.entry.CreatedAt = timestamppb.New(x.at)
		for _, c := range changes {
			x.entry.Changes = append(x.entry.Changes, &communityv1.AuditChange{Key: c.Key, Before: c.Before, After: c.After})
		}
		return x, nil
	})
	if err != nil {
		return nil, s.internal(ctx, "list audit log", err)
	}
	resp := &communityv1.ListAuditLogResponse{}
	if len(found) > size {
		last := found[size-1]
		resp.NextPageToken = encodeCursor(last.at, last.id.String())
		found = found[:size]
	}
	for _, x := range found {
		resp.Entries = append(resp.Entries, x.entry)
	}
	return connect.NewResponse(resp), nil
}

// overwriteChanges describes how a holder's overwrites changed, one field
// per target ("overwrite:role:<id>", "overwrite:everyone"), as
// "allow=a,b deny=c".
func overwriteChanges(before, after []overwriteRow) []*communityv1.AuditChange {
	key := func(o overwriteRow) string {
		if o.targetKind == "everyone" || o.targetID == "" {
			return "overwrite:" + o.targetKind
		}
		return "overwrite:" + o.targetKind + ":" + o.targetID
	}
	text := func(o overwriteRow) string {
		return "allow=" + nameList(o.allow) + " deny=" + nameList(o.deny)
	}
	was, is := map[string]string{}, map[string]string{}
	var keys []string
	for _, o := range before {
		was[key(o)] = text(o)
		keys = append(keys, key(o))
	}
	for _, o := range after {
		is[key(o)] = text(o)
		keys = append(keys, key(o))
	}
	slices.Sort(keys)
	var out []*communityv1.AuditChange
	for _, k := range slices.Compact(keys) {
		if c := field(k, was[k], is[k]); c != nil {
			out = append(out, c)
		}
	}
	return out
}

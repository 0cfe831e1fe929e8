package community

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
)

// commit applies one mutation to both stores without a queue:
//
//  1. mark the server dirty (committed), so that a crash anywhere after this
//     leaves a trace the reconciler finds;
//  2. open the database transaction and make its changes (which lock and
//     check what the mutation was computed from: errConflict if it moved);
//  3. write the narrowing half of the delta to SpiceDB;
//  4. commit the transaction (the database is the source of truth);
//  5. write the widening half to SpiceDB;
//  6. clear the mark.
//
// Between any two steps SpiceDB grants no more than the database, before or
// after the change, allows. A conflict at 2 changes nothing anywhere. A
// failure at 3, 4 or 5 converges the server at once (and later, by the
// reconciler, if SpiceDB is down). It returns the ZedToken of the last
// SpiceDB write.
func (s *Service) commit(ctx context.Context, serverID uuid.UUID, d delta, domain func(pgx.Tx) error) (authz.ZedToken, error) {
	mark, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO authz_dirty (id, server_id) VALUES ($1, $2)`, mark, serverID); err != nil {
		return "", fmt.Errorf("marking server %s: %w", serverID, err)
	}
	narrow, widen := d.phases()
	var (
		token   authz.ZedToken
		touched bool        // SpiceDB was written
		entry   *auditEntry // the audit log entry written with the change
	)
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := domain(tx); err != nil {
			return err
		}
		var err error
		if entry, err = writeAudit(ctx, tx, serverID); err != nil {
			return err
		}
		if len(narrow) > 0 {
			touched = true
			if token, err = s.authz.Write(ctx, narrow); err != nil {
				return fmt.Errorf("authorization write: %w", err)
			}
		}
		if s.beforeCommit != nil {
			return s.beforeCommit()
		}
		return nil
	})
	if err != nil && !touched {
		s.unmark(ctx, serverID, mark)
		return "", err
	}
	if err != nil {
		return "", s.converge(ctx, serverID, mark, err)
	}
	// Committed, with its audit entry: its record goes to the sink with the
	// last write's ZedToken, whatever happens to the widening write.
	entry.commit()
	defer func() { s.audited(ctx, entry, token) }()
	if s.afterCommit != nil {
		if err := s.afterCommit(); err != nil {
			return "", err // a simulated crash: the mark stays
		}
	}
	if len(widen) > 0 {
		wrote, err := s.authz.Write(ctx, widen)
		if err != nil {
			return "", s.converge(ctx, serverID, mark, fmt.Errorf("saved, but applying its permissions failed (they will be applied shortly): %w", err))
		}
		token = wrote
	}
	s.unmark(ctx, serverID, mark)
	return token, nil
}

// unmark clears a dirty mark once both stores agree.
func (s *Service) unmark(ctx context.Context, serverID, mark uuid.UUID) {
	if _, err := s.db.Exec(context.WithoutCancel(ctx), `DELETE FROM authz_dirty WHERE id = $1`, mark); err != nil {
		s.log.WarnContext(ctx, "clearing a dirty mark", "server", serverID, "err", err)
	}
}

// commitExec is commit for a mutation whose database half is one statement.
func (s *Service) commitExec(ctx context.Context, serverID uuid.UUID, d delta, sql string, args ...any) (authz.ZedToken, error) {
	return s.commit(ctx, serverID, d, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
}

// converge tries to bring SpiceDB back to the database after a failed
// mutation, keeping cause as the error to report.
func (s *Service) converge(ctx context.Context, serverID, mark uuid.UUID, cause error) error {
	if _, err := s.reconcile(context.WithoutCancel(ctx), serverID, true); err != nil {
		s.log.ErrorContext(ctx, "converging after a failed write; the reconciler will retry", "server", serverID, "err", err)
		return cause
	}
	s.unmark(ctx, serverID, mark)
	return cause
}

// Drift is how SpiceDB differs from what the database calls for.
type Drift struct {
	ServerID string
	// Missing relationships should be in SpiceDB and are not.
	Missing []authz.Relationship
	// Extra relationships are in SpiceDB and should not be.
	Extra []authz.Relationship
	// At is the revision of the reconciling write, when one was made.
	At authz.ZedToken
}

// Empty is true when SpiceDB agrees with the database.
func (d Drift) Empty() bool { return len(d.Missing) == 0 && len(d.Extra) == 0 }

// reconcile compares the server's relationships in SpiceDB with its rows
// and, when apply is set, writes the difference.
func (s *Service) reconcile(ctx context.Context, serverID uuid.UUID, apply bool) (Drift, error) {
	drift := Drift{ServerID: serverID.String()}
	var want []authz.Relationship
	err := pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		st, err := loadServerState(ctx, tx, serverID)
		if errors.Is(err, errNotFound) {
			return nil // a deleted server wants nothing
		}
		if err != nil {
			return err
		}
		want, err = st.desired(time.Now())
		return err
	})
	if err != nil {
		return drift, err
	}
	have, err := s.graphOf(ctx, serverID)
	if err != nil {
		return drift, err
	}
	drift.Missing, drift.Extra = diff(want, have)
	if !apply || drift.Empty() {
		return drift, nil
	}
	updates := make([]authz.Update, 0, len(drift.Missing)+len(drift.Extra))
	for _, r := range drift.Extra {
		updates = append(updates, authz.Delete(r))
	}
	for _, r := range drift.Missing {
		updates = append(updates, authz.Touch(r))
	}
	if drift.At, err = s.authz.Write(ctx, updates); err != nil {
		return drift, err
	}
	s.log.InfoContext(ctx, "reconciled server", "server", serverID, "added", len(drift.Missing), "removed", len(drift.Extra))
	return drift, nil
}

// graphOf reads every relationship SpiceDB holds for a server: the server's
// own, and those of the roles and channels that point at it.
func (s *Service) graphOf(ctx context.Context, serverID uuid.UUID) ([]authz.Relationship, error) {
	sid := serverID.String()
	var out []authz.Relationship
	read := func(f authz.Filter) error {
		for r, err := range s.authz.ReadRelationships(ctx, f, authz.FullyConsistent()) {
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	}
	if err := read(authz.Filter{ResourceType: authz.TypeServer, ResourceID: sid}); err != nil {
		return nil, err
	}
	// pointing lists the ids of the objects of type t whose relation points
	// at the subject.
	pointing := func(t authz.ObjectType, relation string, subject authz.SubjectFilter) ([]string, error) {
		var ids []string
		for r, err := range s.authz.ReadRelationships(ctx, authz.Filter{ResourceType: t, Relation: relation, Subject: &subject}, authz.FullyConsistent()) {
			if err != nil {
				return nil, err
			}
			ids = append(ids, r.ResourceID)
		}
		return ids, nil
	}
	var channels []string
	for _, t := range []authz.ObjectType{authz.TypeRole, authz.TypeChannel, authz.TypeCategory, authz.TypeInvite} {
		ids, err := pointing(t, "server", authz.SubjectFilter{Type: authz.TypeServer, ID: sid})
		if err != nil {
			return nil, err
		}
		if t == authz.TypeChannel {
			channels = ids
		}
		for _, id := range ids {
			if err := read(authz.Filter{ResourceType: t, ResourceID: id}); err != nil {
				return nil, err
			}
		}
	}
	// Members' reverse edges point at the server.
	if err := read(authz.Filter{ResourceType: authz.TypeUser, Relation: authz.User.MemberOf.Name,
		Subject: &authz.SubjectFilter{Type: authz.TypeServer, ID: sid}}); err != nil {
		return nil, err
	}
	// Threads point at their channel.
	for _, channel := range channels {
		ids, err := pointing(authz.TypeThread, authz.Thread.Parent.Name, authz.SubjectFilter{Type: authz.TypeChannel, ID: channel})
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if err := read(authz.Filter{ResourceType: authz.TypeThread, ResourceID: id}); err != nil {
				return nil, err
			}
		}
	}
	// The @everyone role points at the server through its members.
	var everyone []string
	for r, err := range s.authz.ReadRelationships(ctx, authz.Filter{ResourceType: authz.TypeRole, Relation: authz.Role.Member.Name,
		Subject: &authz.SubjectFilter{Type: authz.TypeServer, ID: sid, Relation: authz.Server.Member.Name}}, authz.FullyConsistent()) {
		if err != nil {
			return nil, err
		}
		everyone = append(everyone, r.ResourceID)
	}
	seen := map[string]bool{}
	for _, r := range out {
		seen[r.String()] = true
	}
	for _, id := range everyone {
		for r, err := range s.authz.ReadRelationships(ctx, authz.Filter{ResourceType: authz.TypeRole, ResourceID: id}, authz.FullyConsistent()) {
			if err != nil {
				return nil, err
			}
			if !seen[r.String()] {
				seen[r.String()] = true
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// ReconcileDirty converges every server marked dirty more than olderThan
// ago (a write that crashed, or whose SpiceDB half failed).
func (s *Service) ReconcileDirty(ctx context.Context, olderThan time.Duration) (int, error) {
	rows, err := s.db.Query(ctx, `SELECT server_id, array_agg(id) FROM authz_dirty
		WHERE marked_at < now() - make_interval(secs => $1) GROUP BY server_id`, olderThan.Seconds())
	if err != nil {
		return 0, err
	}
	type dirty struct {
		server uuid.UUID
		marks  []uuid.UUID
	}
	var servers []dirty
	for rows.Next() {
		var d dirty
		if err := rows.Scan(&d.server, &d.marks); err != nil {
			rows.Close()
			return 0, err
		}
		servers = append(servers, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for i, d := range servers {
		if _, err := s.reconcile(ctx, d.server, true); err != nil {
			return i, fmt.Errorf("reconciling server %s: %w", d.server, err)
		}
		if _, err := s.db.Exec(ctx, `DELETE FROM authz_dirty WHERE id = ANY($1)`, d.marks); err != nil {
			return i, err
		}
	}
	return len(servers), nil
}

// RunReconciler converges dirty servers every interval until ctx ends.
func (s *Service) RunReconciler(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.ReconcileDirty(ctx, interval/2); err != nil {
			s.log.ErrorContext(ctx, "reconciler", "err", err)
		} else if n > 0 {
			s.log.InfoContext(ctx, "reconciler converged servers", "servers", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckDrift compares SpiceDB with the database for every server (or the
// given ones) without changing anything: `reconcile --check`.
func (s *Service) CheckDrift(ctx context.Context, serverIDs ...uuid.UUID) ([]Drift, error) {
	if len(serverIDs) == 0 {
		rows, err := s.db.Query(ctx, `SELECT id FROM servers ORDER BY id`)
		if err != nil {
			return nil, err
		}
		serverIDs, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return nil, err
		}
	}
	var out []Drift
	for _, id := range serverIDs {
		d, err := s.reconcile(ctx, id, false)
		if err != nil {
			return out, err
		}
		if !d.Empty() {
			out = append(out, d)
		}
	}
	return out, nil
}

// Reconcile converges one server's relationships to the database now.
func (s *Service) Reconcile(ctx context.Context, serverID uuid.UUID) (Drift, error) {
	return s.reconcile(ctx, serverID, true)
}

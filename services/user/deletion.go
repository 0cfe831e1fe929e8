package user

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5"

	"github.com/beepchat/beep/authz"
	chatv1 "github.com/beepchat/beep/gen/beep/chat/v1"
	communityv1 "github.com/beepchat/beep/gen/beep/community/v1"
	notificationv1 "github.com/beepchat/beep/gen/beep/notification/v1"
	userv1 "github.com/beepchat/beep/gen/beep/user/v1"
)

// The erasure of an account is a saga without a queue: a durable row in
// account_deletions, and passes over idempotent steps, run at once by
// DeleteMyAccount and retried by RunDeletions until one complete pass
// begins after the grace period. Each step can run any number of times, so
// a pass cut short anywhere (a crash, a service down) is simply run again.
const (
	// stepIdentity deletes the Kratos identity, and with it its sessions
	// and credentials: nobody signs in as the account again.
	stepIdentity = "identity"
	// stepCommunity erases the user from the community service (servers
	// passed on or deleted, memberships and the rest), through its
	// internal API.
	stepCommunity = "community"
	// stepChat erases the user from the chat service (messages kept with
	// the author forgotten, reactions, read states, DMs), through its
	// internal API.
	stepChat = "chat"
	// stepNotification erases the user's notifications and mutes, and the
	// notifications of their messages, through the notification service's
	// internal API.
	stepNotification = "notification"
	// stepProfile deletes this service's rows: the profile, the blocks the
	// user made and those made of them.
	stepProfile = "profile"
	// stepGraph deletes every relationship left that names the user.
	stepGraph = "graph"
)

const (
	// deletionLease is how long a runner holds an erasure before another
	// may take it over (a runner that died).
	deletionLease = 2 * time.Minute
	// deletionPassTimeout bounds one pass.
	deletionPassTimeout = time.Minute
	// maxDeletionBackoff bounds the wait between failed passes.
	maxDeletionBackoff = 5 * time.Minute
)

// kratosID is the form of Kratos identity ids (UUIDs); other Beep user ids
// (an external issuer's, prefixed) have no Kratos identity.
var kratosID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// DeleteMyAccount records the erasure of the caller's account and runs it.
func (s *Service) DeleteMyAccount(ctx context.Context, req *connect.Request[userv1.DeleteMyAccountRequest]) (*connect.Response[userv1.DeleteMyAccountResponse], error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.Msg.ConfirmUserId != p.UserID {
		return nil, invalid("confirm_user_id: must be your own user id, to confirm that the deletion is deliberate")
	}
	if _, err := s.db.Exec(ctx, `INSERT INTO account_deletions (user_id) VALUES ($1)
		ON CONFLICT (user_id) DO UPDATE SET next_attempt_at = now()`, p.UserID); err != nil {
		return nil, s.internal(ctx, "delete account", err)
	}
	s.log.InfoContext(ctx, "account deletion requested", "user", p.UserID)
	// Run it now, on its own clock: a client hanging up does not stop it.
	run := context.WithoutCancel(ctx)
	resp := &userv1.DeleteMyAccountResponse{State: userv1.AccountDeletionState_ACCOUNT_DELETION_STATE_PENDING}
	for {
		claimed, err := s.claim(run, p.UserID)
		if err != nil {
			return nil, s.internal(ctx, "delete account", err)
		}
		if !claimed {
			break // another runner has it; it finishes the job
		}
		out, err := s.erase(run, p.UserID)
		if err != nil {
			// Recorded, and retried until done.
			s.log.WarnContext(ctx, "account deletion pass failed; it will be retried", "user", p.UserID, "err", err)
			break
		}
		resp.TransferredServers, resp.DeletedServers = out.Transferred, out.Deleted
		if out.done {
			resp.ZedToken = string(out.token)
			resp.State = userv1.AccountDeletionState_ACCOUNT_DELETION_STATE_DONE
			break
		}
		if out.next.After(time.Now()) {
			break // a last pass after the grace period, by RunDeletions
		}
	}
	return connect.NewResponse(resp), nil
}

// claim takes the lease of a due erasure of userID; false when there is
// none or another runner holds it.
func (s *Service) claim(ctx context.Context, userID string) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE account_deletions SET leased_until = now() + make_interval(secs => $2)
		WHERE user_id = $1 AND next_attempt_at <= now() AND (leased_until IS NULL OR leased_until < now())`,
		userID, deletionLease.Seconds())
	return tag.RowsAffected() == 1, err
}

// outcome is what an erasure did to the user's servers, kept in the row.
type outcome struct {
	Transferred map[string]string `json:"transferred,omitempty"`
	Deleted     []string          `json:"deleted,omitempty"`

	done  bool           // the account is gone; the row too
	next  time.Time      // when not done: when the next pass is due
	token authz.ZedToken // the last write's revision
}

// erase runs one pass over the steps for a claimed erasure and records how
// it went: done, another pass due at the end of the grace period, or the
// error and when to retry.
func (s *Service) erase(ctx context.Context, userID string) (outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, deletionPassTimeout)
	defer cancel()
	out, err := s.pass(ctx, userID)
	if err == nil {
		return out, nil
	}
	record := context.WithoutCancel(ctx)
	if _, dbErr := s.db.Exec(record, `UPDATE account_deletions SET attempts = attempts + 1, leased_until = NULL, last_error = $2,
		next_attempt_at = now() + least(make_interval(secs => 2 ^ least(attempts, 16)), make_interval(secs => $3))
		WHERE user_id = $1`, userID, err.Error(), maxDeletionBackoff.Seconds()); dbErr != nil {
		s.log.ErrorContext(ctx, "recording a failed account deletion pass", "user", userID, "err", dbErr)
	}
	return out, err
}

// pass runs every step once.
func (s *Service) pass(ctx context.Context, userID string) (outcome, error) {
	var (
		out        outcome
		raw        []byte
		identityAt *time.Time
	)
	start := time.Now()
	err := s.db.QueryRow(ctx, `SELECT identity_erased_at, outcome FROM account_deletions WHERE user_id = $1`, userID).Scan(&identityAt, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		out.done = true // finished meanwhile
		return out, nil
	}
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, err
	}
	// Services act on their own behalf here, for an account that no longer
	// signs in.
	ctx = authz.WithPrincipal(ctx, authz.ServicePrincipal("user"))

	if identityAt == nil {
		if s.identities != nil && kratosID.MatchString(userID) {
			if err := s.identities.DeleteIdentity(ctx, userID); err != nil {
				return out, fmt.Errorf("%s: %w", stepIdentity, err)
			}
		}
		var at time.Time
		if err := s.db.QueryRow(ctx, `UPDATE account_deletions SET identity_erased_at = now() WHERE user_id = $1 RETURNING identity_erased_at`, userID).Scan(&at); err != nil {
			return out, fmt.Errorf("%s: %w", stepIdentity, err)
		}
		identityAt = &at
	}
	if err := s.stepDone(stepIdentity); err != nil {
		return out, err
	}

	if s.erasure == nil {
		return out, fmt.Errorf("%s: the community service is not configured here", stepCommunity)
	}
	erased, err := s.erasure.EraseUser(ctx, connect.NewRequest(&communityv1.EraseUserRequest{UserId: userID}))
	if err != nil {
		return out, fmt.Errorf("%s: %w", stepCommunity, err)
	}
	for server, owner := range erased.Msg.Transferred {
		if out.Transferred == nil {
			out.Transferred = map[string]string{}
		}
		out.Transferred[server] = owner
	}
	out.Deleted = append(out.Deleted, erased.Msg.Deleted...)
	if raw, err = json.Marshal(out); err != nil {
		return out, err
	}
	if _, err := s.db.Exec(ctx, `UPDATE account_deletions SET outcome = $2 WHERE user_id = $1`, userID, raw); err != nil {
		return out, fmt.Errorf("%s: %w", stepCommunity, err)
	}
	if err := s.stepDone(stepCommunity); err != nil {
		return out, err
	}

	if s.chatErasure != nil {
		if _, err := s.chatErasure.EraseUser(ctx, connect.NewRequest(&chatv1.EraseUserRequest{UserId: userID})); err != nil {
			return out, fmt.Errorf("%s: %w", stepChat, err)
		}
	}
	if err := s.stepDone(stepChat); err != nil {
		return out, err
	}

	if s.notificationErasure != nil {
		if _, err := s.notificationErasure.EraseUser(ctx, connect.NewRequest(&notificationv1.EraseUserRequest{UserId: userID})); err != nil {
			return out, fmt.Errorf("%s: %w", stepNotification, err)
		}
	}
	if err := s.stepDone(stepNotification); err != nil {
		return out, err
	}

	if err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM profiles WHERE user_id = $1`, userID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM blocks WHERE user_id = $1 OR blocked_id = $1`, userID)
		return err
	}); err != nil {
		return out, fmt.Errorf("%s: %w", stepProfile, err)
	}
	if err := s.stepDone(stepProfile); err != nil {
		return out, err
	}

	if out.token, err = s.authz.EraseUser(ctx, userID); err != nil {
		return out, fmt.Errorf("%s: %w", stepGraph, err)
	}
	if err := s.stepDone(stepGraph); err != nil {
		return out, err
	}

	// Done only if this pass began once no credential of the account could
	// be honoured any more: whatever such a credential wrote before is
	// erased by now.
	if due := identityAt.Add(s.grace); start.Before(due) {
		out.next = due
		_, err := s.db.Exec(ctx, `UPDATE account_deletions SET leased_until = NULL, last_error = '', last_pass_at = $2, next_attempt_at = $3
			WHERE user_id = $1`, userID, start, due)
		return out, err
	}
	if _, err := s.db.Exec(ctx, `DELETE FROM account_deletions WHERE user_id = $1`, userID); err != nil {
		return out, err
	}
	out.done = true
	s.log.InfoContext(ctx, "account erased", "user", userID, "servers_transferred", len(out.Transferred), "servers_deleted", len(out.Deleted))
	return out, nil
}

func (s *Service) stepDone(step string) error {
	if s.afterStep == nil {
		return nil
	}
	if err := s.afterStep(step); err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

// ResumeDeletions runs every erasure that is due (requested, retried after
// a failure, or waiting out the grace period) and not held by another
// runner; it returns how many passes it ran. RunDeletions calls it.
func (s *Service) ResumeDeletions(ctx context.Context) (int, error) {
	n := 0
	for {
		var userID string
		err := s.db.QueryRow(ctx, `UPDATE account_deletions SET leased_until = now() + make_interval(secs => $1)
			WHERE user_id = (SELECT user_id FROM account_deletions
				WHERE next_attempt_at <= now() AND (leased_until IS NULL OR leased_until < now())
				ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING user_id`, deletionLease.Seconds()).Scan(&userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
		if _, err := s.erase(ctx, userID); err != nil {
			s.log.WarnContext(ctx, "account deletion pass failed; it will be retried", "user", userID, "err", err)
		}
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// RunDeletions resumes due account erasures until ctx ends: at the latest
// every interval, and as soon as the next one is due.
func (s *Service) RunDeletions(ctx context.Context, interval time.Duration) {
	for {
		if _, err := s.ResumeDeletions(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "resuming account deletions", "err", err)
		}
		wait := interval
		var next *time.Time
		if err := s.db.QueryRow(ctx, `SELECT min(next_attempt_at) FROM account_deletions`).Scan(&next); err == nil && next != nil {
			wait = min(wait, max(time.Until(*next), 10*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

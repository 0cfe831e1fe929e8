-- The server audit log (Discord's): who changed what, written in the same
-- transaction as the change. Deleting a server deletes its log.

CREATE TABLE audit_log (
    id          uuid PRIMARY KEY,
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    actor_id    text NOT NULL,
    action      text NOT NULL,
    -- user, role, channel, category, invite or server; and its id.
    target_kind text NOT NULL DEFAULT '',
    target_id   text NOT NULL DEFAULT '',
    reason      text NOT NULL DEFAULT '',
    -- [{"key": ..., "before": ..., "after": ...}]
    changes     jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_by_server ON audit_log (server_id, created_at DESC, id DESC);
CREATE INDEX audit_log_by_actor ON audit_log (actor_id);
CREATE INDEX audit_log_by_target ON audit_log (target_id) WHERE target_kind = 'user';

-- Invites. An invite is usable (invite#usable in the graph) while it is not
-- revoked, not used up and not expired.
CREATE TABLE invites (
    code       text PRIMARY KEY,
    server_id  uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    creator_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    max_uses   integer NOT NULL DEFAULT 0 CHECK (max_uses >= 0),
    uses       integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
    revoked    boolean NOT NULL DEFAULT false
);
CREATE INDEX invites_by_server ON invites (server_id, created_at DESC);

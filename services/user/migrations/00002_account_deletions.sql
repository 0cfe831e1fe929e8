-- Account deletions in progress: the durable state of the erasure saga.
-- A row exists from the request until every step is done, then goes too.

CREATE TABLE account_deletions (
    user_id            text PRIMARY KEY CHECK (user_id <> ''),
    requested_at       timestamptz NOT NULL DEFAULT now(),
    -- When the Kratos identity (and so its sessions) was deleted.
    identity_erased_at timestamptz,
    -- When the last complete pass over the data steps began.
    last_pass_at       timestamptz,
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    -- A runner holds the row until then; another may take it after.
    leased_until       timestamptz,
    last_error         text NOT NULL DEFAULT '',
    -- What became of the user's servers: {"transferred": {...}, "deleted": [...]}.
    outcome            jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX account_deletions_due ON account_deletions (next_attempt_at);

-- The real-time stream's record: every committed change a stream delivers,
-- kept for a bounded window so that a client reconnecting resumes without a
-- gap. It is not the state (messages, reactions... are): a delivery log,
-- pruned by age. Rows are read in (xid, id) order, and only below the
-- oldest transaction still running (pg_snapshot_xmin), so a reader never
-- passes a row that commits later: every instance of the service sees the
-- same events in the same order. NOTIFY beep_chat_events wakes the readers.
CREATE TABLE stream_events (
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id           bigserial NOT NULL,
    conversation text NOT NULL,
    -- Who receives it regardless of permissions (a read state: its owner;
    -- a DM removal: who was removed); NULL: whoever sees the conversation.
    audience     text[],
    -- The ZedToken the event must be filtered at least as fresh as ('' for
    -- the newest revision the stream watched).
    zed_token    text NOT NULL DEFAULT '',
    -- The StreamEvent, protobuf-encoded, without its id.
    payload      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (xid, id)
);
CREATE INDEX stream_events_age ON stream_events (created_at);

-- How far pruning went: a resume from before it is answered with a Resync.
CREATE TABLE stream_pruned (
    one     boolean PRIMARY KEY DEFAULT true CHECK (one),
    xid     xid8 NOT NULL,
    id      bigint NOT NULL
);

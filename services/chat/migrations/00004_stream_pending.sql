-- The stream events of DM membership changes, recorded in the change's own
-- transaction but not yet in stream_events: such an event carries the
-- ZedToken of the SpiceDB write that brings the graph to the change, which
-- only happens after the commit (dms.go, commitDM). The write that
-- converges the DM (syncDM: right after the commit, or the reconciler's
-- after a crash) moves them to stream_events with its token, in its own
-- transaction, so each is logged exactly once, and only for a change that
-- committed. A row here implies a dirty mark (authz_dirty) for its DM.
CREATE TABLE stream_pending (
    id           bigserial PRIMARY KEY,
    dm_id        uuid NOT NULL,
    -- As in stream_events.
    conversation text NOT NULL,
    audience     text[],
    payload      bytea NOT NULL
);
CREATE INDEX stream_pending_by_dm ON stream_pending (dm_id, id);

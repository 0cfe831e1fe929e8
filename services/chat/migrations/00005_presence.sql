-- Presence, for @here: a person is online while they hold at least one
-- real-time stream (Subscribe) on an instance of the service. Each instance
-- records the spans of time its people are online there, and beats while
-- it runs; a span still open belongs to a live instance only while its
-- heartbeat is recent (presence.go: presenceGrace), so a crashed instance's
-- people stop being online a little after its last beat, and any instance
-- closes those spans for good. Spans are kept 30 days: long enough to tell,
-- for a read state, whether someone was online when an @here was sent.
CREATE TABLE presence_instances (
    id           uuid PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

CREATE TABLE presence_spans (
    user_id      text NOT NULL,
    online_from  timestamptz NOT NULL,
    instance_id  uuid NOT NULL,
    -- NULL while the span is open.
    online_until timestamptz,
    PRIMARY KEY (user_id, online_from, instance_id)
);
CREATE INDEX presence_spans_open ON presence_spans (instance_id) WHERE online_until IS NULL;
CREATE INDEX presence_spans_by_end ON presence_spans (online_until) WHERE online_until IS NOT NULL;

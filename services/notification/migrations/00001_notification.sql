-- Each person's notifications: a message that mentions them or replies to
-- one of theirs. The message's content stays in the chat service.
CREATE TABLE notifications (
    id           uuid PRIMARY KEY,   -- UUIDv7
    user_id      text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('mention', 'reply')),
    conversation text NOT NULL,      -- channel:<id>, thread:<id>, dm_channel:<id>
    server_id    text NOT NULL DEFAULT '', -- '' for a DM
    message_id   uuid NOT NULL,
    author_id    text NOT NULL,
    created_at   timestamptz NOT NULL,
    read_at      timestamptz
);
-- A replayed event never notifies twice.
CREATE UNIQUE INDEX notifications_once ON notifications (user_id, message_id, kind);
-- The inbox, newest first; the unread ones, counted.
CREATE INDEX notifications_inbox ON notifications (user_id, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, conversation) WHERE read_at IS NULL;
-- A deleted message takes its notifications with it; an erased account,
-- those of its messages.
CREATE INDEX notifications_message ON notifications (message_id);
CREATE INDEX notifications_author ON notifications (author_id);

-- What each person muted: a server or a conversation, until a time or
-- until unmuted.
CREATE TABLE mutes (
    user_id text NOT NULL,
    target  text NOT NULL,           -- server:<id>, channel:<id>, thread:<id>, dm_channel:<id>
    until   timestamptz,
    PRIMARY KEY (user_id, target)
);

-- How far the chat service's event log was handled: written in the same
-- transaction as the notifications an event made.
CREATE TABLE feed_cursor (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    xid numeric(20) NOT NULL,
    id  bigint NOT NULL
);

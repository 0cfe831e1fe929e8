-- The channels and threads deleted (alone, with their channel or with their
-- server), recorded in the deletion's transaction: the chat service pages
-- through them (ErasureService.ListDeletedConversations) and erases their
-- messages. A positive record, never inferred from absence: a chat service
-- pointed at the wrong community database erases nothing. Kept 30 days.
CREATE TABLE deleted_conversations (
    conversation text PRIMARY KEY,  -- 'channel:<id>' or 'thread:<id>'
    deleted_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX deleted_conversations_in_order ON deleted_conversations (deleted_at, conversation);

-- The chat service's data: messages of conversations (server channels,
-- threads and DMs), their mentions, reactions and pins, read states, and the
-- DM conversations themselves. A conversation is (conv_type, conv_id): the
-- definition and id of its object in the authorization graph. Rights on
-- messages come from the graph's permissions on the conversation plus the
-- author column (docs/chat.md); SpiceDB holds no message. It holds DM
-- membership, derived from dm_channels and dm_members.

-- One row per conversation that has had a message: the highest message id
-- ever given there. Sends take the conversation's lock, so ids are given
-- (and committed) in increasing order within a conversation.
CREATE TABLE conversations (
    conv_type text NOT NULL CHECK (conv_type IN ('channel', 'thread', 'dm_channel')),
    conv_id   uuid NOT NULL,
    last_id   uuid NOT NULL,
    PRIMARY KEY (conv_type, conv_id)
);

CREATE TABLE messages (
    id               uuid PRIMARY KEY,   -- UUIDv7
    conv_type        text NOT NULL CHECK (conv_type IN ('channel', 'thread', 'dm_channel')),
    conv_id          uuid NOT NULL,
    author_id        text NOT NULL,
    content          text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 4000),
    reply_to         uuid,
    nonce            text CHECK (char_length(nonce) BETWEEN 1 AND 64),
    -- Mentions, as they ping: everyone, here and roles only when the author
    -- held mention_everyone.
    mention_everyone boolean NOT NULL DEFAULT false,
    mention_here     boolean NOT NULL DEFAULT false,
    mention_users    text[] NOT NULL DEFAULT '{}',
    mention_roles    text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    edited_at        timestamptz
);
-- History: before / after / around an id, newest first.
CREATE INDEX messages_history ON messages (conv_type, conv_id, id);
-- A retried send: one message per (author, conversation, nonce).
CREATE UNIQUE INDEX messages_nonce ON messages (author_id, conv_type, conv_id, nonce) WHERE nonce IS NOT NULL;
-- The few messages that ping many: mention counts.
CREATE INDEX messages_broad_mentions ON messages (conv_type, conv_id, id)
    WHERE mention_everyone OR mention_here OR mention_roles <> '{}';

-- Who a message pings by name (never its author): mention counts per user.
CREATE TABLE message_mentions (
    user_id    text NOT NULL,
    conv_type  text NOT NULL,
    conv_id    uuid NOT NULL,
    message_id uuid NOT NULL REFERENCES messages ON DELETE CASCADE,
    PRIMARY KEY (user_id, conv_type, conv_id, message_id)
);
CREATE INDEX message_mentions_by_message ON message_mentions (message_id);

-- One reaction per person per emoji: "u:<unicode>" or "c:<custom emoji id>".
CREATE TABLE reactions (
    message_id uuid NOT NULL REFERENCES messages ON DELETE CASCADE,
    emoji      text NOT NULL,
    user_id    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (message_id, emoji, user_id)
);

CREATE TABLE pins (
    message_id uuid PRIMARY KEY REFERENCES messages ON DELETE CASCADE,
    conv_type  text NOT NULL,
    conv_id    uuid NOT NULL,
    pinned_by  text NOT NULL,
    pinned_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX pins_by_conversation ON pins (conv_type, conv_id, pinned_at DESC);

-- The last message each person read in each conversation (only moves forward).
CREATE TABLE read_states (
    user_id      text NOT NULL,
    conv_type    text NOT NULL,
    conv_id      uuid NOT NULL,
    last_read_id uuid NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, conv_type, conv_id)
);

-- DM conversations: 1:1 ('direct', one per pair of people, pair_low <
-- pair_high) or groups (an owner, up to 10 members).
CREATE TABLE dm_channels (
    id         uuid PRIMARY KEY,   -- UUIDv7
    kind       text NOT NULL CHECK (kind IN ('direct', 'group')),
    name       text NOT NULL DEFAULT '' CHECK (char_length(name) <= 100),
    owner_id   text,
    pair_low   text,
    pair_high  text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'direct' OR (pair_low < pair_high AND owner_id IS NULL)),
    CHECK (kind <> 'group' OR (pair_low IS NULL AND pair_high IS NULL AND owner_id IS NOT NULL))
);
CREATE UNIQUE INDEX dm_channels_pairs ON dm_channels (pair_low, pair_high) WHERE kind = 'direct';

CREATE TABLE dm_members (
    dm_id    uuid NOT NULL REFERENCES dm_channels ON DELETE CASCADE,
    user_id  text NOT NULL,
    -- Join order: the earliest remaining member inherits a group.
    position bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (dm_id, user_id)
);
CREATE INDEX dm_members_by_user ON dm_members (user_id);

-- DMs whose relationships in SpiceDB may disagree with these rows: marked
-- (committed) before a membership change, cleared once both agree; marks
-- left by a crash are converged by the reconciler.
CREATE TABLE authz_dirty (
    id        uuid PRIMARY KEY,
    dm_id     uuid NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);

-- Categories get the checks channels have; threads live in channels.

ALTER TABLE categories ADD CONSTRAINT categories_name_length CHECK (char_length(name) BETWEEN 1 AND 100);
CREATE INDEX categories_by_server ON categories (server_id, position);
CREATE INDEX channels_by_category ON channels (category_id, position);

CREATE TABLE threads (
    id         uuid PRIMARY KEY,
    server_id  uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    channel_id uuid NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    creator_id text NOT NULL,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Private threads are seen by their participants and manage_threads holders.
    private    boolean NOT NULL DEFAULT false,
    -- Locked threads take messages from manage_threads holders only.
    locked     boolean NOT NULL DEFAULT false,
    archived   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_by_channel ON threads (channel_id, created_at DESC);
CREATE INDEX threads_by_server ON threads (server_id);

CREATE TABLE thread_participants (
    thread_id uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    server_id uuid NOT NULL,
    user_id   text NOT NULL,
    added_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX thread_participants_by_server ON thread_participants (server_id);

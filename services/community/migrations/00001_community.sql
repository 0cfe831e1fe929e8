-- The community service's data: the source of truth for the structure of
-- servers. SpiceDB holds the relationships derived from it (see graph.go).

CREATE TABLE servers (
    id               uuid PRIMARY KEY,
    name             text NOT NULL CHECK (char_length(name) BETWEEN 2 AND 100),
    owner_id         text NOT NULL,
    public           boolean NOT NULL DEFAULT false,
    everyone_role_id uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    server_id       uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    nickname        text,
    timed_out_until timestamptz,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, user_id)
);
-- "My servers": one index range per user.
CREATE INDEX members_by_user ON members (user_id, joined_at, server_id);

CREATE TABLE bans (
    server_id  uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id    text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    banned_by  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (server_id, user_id)
);

CREATE TABLE roles (
    id          uuid PRIMARY KEY,
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    position    integer NOT NULL CHECK (position >= 0),
    -- Permission names, as in schema/beep.zed (never bit positions, which
    -- would change meaning when the schema changes).
    permissions text[] NOT NULL DEFAULT '{}',
    color       integer NOT NULL DEFAULT 0,
    hoist       boolean NOT NULL DEFAULT false,
    mentionable boolean NOT NULL DEFAULT false,
    UNIQUE (server_id, position) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE member_roles (
    server_id uuid NOT NULL,
    user_id   text NOT NULL,
    role_id   uuid NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, user_id),
    FOREIGN KEY (server_id, user_id) REFERENCES members (server_id, user_id) ON DELETE CASCADE
);
CREATE INDEX member_roles_by_member ON member_roles (server_id, user_id);

CREATE TABLE categories (
    id        uuid PRIMARY KEY,
    server_id uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name      text NOT NULL,
    position  integer NOT NULL DEFAULT 0
);

CREATE TABLE channels (
    id          uuid PRIMARY KEY,
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    category_id uuid REFERENCES categories (id) ON DELETE SET NULL,
    kind        text NOT NULL CHECK (kind IN ('text', 'voice', 'announcement')),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    position    integer NOT NULL DEFAULT 0,
    -- Synced channels take their category's overwrites.
    synced      boolean NOT NULL DEFAULT false,
    CHECK (NOT synced OR category_id IS NOT NULL)
);
CREATE INDEX channels_by_server ON channels (server_id, position);

-- Permission overwrites of a channel or a category.
CREATE TABLE overwrites (
    server_id   uuid NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    holder_id   uuid NOT NULL,
    holder_kind text NOT NULL CHECK (holder_kind IN ('channel', 'category')),
    target_kind text NOT NULL CHECK (target_kind IN ('everyone', 'role', 'member')),
    -- The role or user id; '' for @everyone.
    target_id   text NOT NULL DEFAULT '',
    allow       text[] NOT NULL DEFAULT '{}',
    deny        text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (holder_id, target_kind, target_id)
);
CREATE INDEX overwrites_by_server ON overwrites (server_id);

-- Servers whose SpiceDB relationships may differ from this database: a row
-- is written before a change reaches SpiceDB and removed once it has. The
-- reconciler converges the servers of rows left behind by a crash.
CREATE TABLE authz_dirty (
    id        uuid PRIMARY KEY,
    server_id uuid NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX authz_dirty_by_age ON authz_dirty (marked_at);

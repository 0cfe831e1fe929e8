-- The user service's data: Beep profiles (the identity itself is Kratos')
-- and blocks. SpiceDB holds user#self and the block edges derived from them.

CREATE TABLE profiles (
    user_id      text PRIMARY KEY,
    username     text CHECK (username ~ '^[a-z0-9_.]{2,32}$'),
    display_name text NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 32),
    locale       text NOT NULL DEFAULT '' CHECK (char_length(locale) <= 35),
    status       text NOT NULL DEFAULT '' CHECK (char_length(status) <= 128),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- Usernames are unique whatever their case.
CREATE UNIQUE INDEX profiles_by_username ON profiles (lower(username));

CREATE TABLE blocks (
    user_id    text NOT NULL,
    blocked_id text NOT NULL CHECK (blocked_id <> user_id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, blocked_id)
);

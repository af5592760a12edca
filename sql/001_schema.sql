-- Parley's data model (ARCHITECTURE.md "How a message flows").
--
-- Users and their per-user inbox counter, sessions and devices, friendships,
-- conversations and their members, the chat history (messages, stored once per
-- conversation) and the inbox (one row per recipient, ordered by a per-user seq).

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE
                  CHECK (username ~ '^[a-z0-9_.-]{3,32}$'),
    password_hash text NOT NULL,
    display_name  text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
    settings      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The per-user inbox counter. Posting locks these rows in user_id order and
-- holds them until COMMIT, so a user's commits land in seq order.
CREATE TABLE user_heads (
    user_id  bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);

CREATE FUNCTION users_add_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_heads (user_id) VALUES (NEW.id);
    RETURN NEW;
END
$$;

CREATE TRIGGER users_add_head AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION users_add_head();

-- A device is one app installation (or browser) of a user. It owns the stored
-- cursor: the last inbox seq it is known to have.
CREATE TABLE devices (
    id                 bigserial PRIMARY KEY,
    user_id            bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform           text NOT NULL CHECK (platform IN ('apns', 'fcm', 'web')),
    name               text NOT NULL DEFAULT '' CHECK (char_length(name) <= 64),
    push_token         text CHECK (octet_length(push_token) BETWEEN 1 AND 4096),
    push_token_set_at  timestamptz,
    cursor             bigint NOT NULL DEFAULT 0 CHECK (cursor >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_seen          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user ON devices (user_id);
-- A push token belongs to one device at a time; registering it elsewhere moves it.
CREATE UNIQUE INDEX devices_push_token ON devices (platform, push_token)
    WHERE push_token IS NOT NULL;

-- Sessions are the truth for token validity: a token is honoured only while
-- its row is not revoked and not expired.
CREATE TABLE sessions (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   bigint NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_device ON sessions (device_id);

-- Friendship is kept as one row per side: (user, other, state), where state
-- is how it looks from user's side.
CREATE TABLE friendships (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    state      text NOT NULL CHECK (state IN ('accepted', 'incoming', 'outgoing')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
);
CREATE INDEX friendships_friend ON friendships (friend_id);

-- last_message_id is the conversation's message counter: posting takes the
-- next id under this row's lock, so ids are gapless and strictly ordered.
CREATE TABLE conversations (
    id               bigserial PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('direct', 'group')),
    title            text CHECK (char_length(title) <= 128),
    created_by       bigint REFERENCES users (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_message_id  bigint NOT NULL DEFAULT 0 CHECK (last_message_id >= 0),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    -- "lo:hi" user ids of a direct conversation, so there is one per pair.
    direct_key       text UNIQUE,
    CHECK ((kind = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE members (
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    muted           boolean NOT NULL DEFAULT false,
    last_read_message_id bigint NOT NULL DEFAULT 0,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

-- The history, stored once per conversation. The dedupe key starts with the
-- shard key like the primary key does, so both survive hash-partitioning.
CREATE TABLE messages (
    conversation_id bigint NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      bigint NOT NULL CHECK (message_id > 0),
    sender_id       bigint NOT NULL REFERENCES users (id),
    client_msg_id   text NOT NULL CHECK (octet_length(client_msg_id) BETWEEN 1 AND 64),
    body            text NOT NULL CHECK (octet_length(body) BETWEEN 1 AND 4096),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, message_id),
    UNIQUE (conversation_id, sender_id, client_msg_id)
);
-- Full-text search: whole words in any language, and substrings (CJK too).
-- Both indexes are maintained in the posting transaction, so a message is
-- searchable once its send is acknowledged.
CREATE INDEX messages_words ON messages USING gin (to_tsvector('simple', body));
CREATE INDEX messages_trgm ON messages USING gin (body gin_trgm_ops);

-- The per-user delivery log: (user_id, seq) -> (conversation_id, message_id).
CREATE TABLE inbox (
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    seq             bigint NOT NULL CHECK (seq > 0),
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    PRIMARY KEY (user_id, seq)
);

-- Times leave the database as RFC 3339 UTC strings (PROTOCOL.md).
CREATE FUNCTION rfc3339(t timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- 014: messages grow up (doc/protocol.md "Messages: replies, attachments,
-- edits, deletions, reactions; blocking").
--
-- messages gains reply_to, attachments (the list of attachment objects as
-- posted, NULL for none), edited_at, deleted_at and deleted_by. Columns
-- without defaults are added without rewriting the partitions. A body may
-- now be empty (a message that is only attachments, and every deleted
-- message); the API keeps "1..4096 bytes unless there are attachments".
--
-- Edits, deletions and reactions are inbox events with their own seqs:
-- message_events holds each one, and inbox gains event_id (NULL: the row is
-- the message itself). They are stored by post_event(), which takes the
-- posting path's locks in the posting path's order (the conversation, then
-- the members' heads), so every user's seqs stay committed in order.
--
-- reactions: one row per (message, emoji, user). blocks: user_id blocked
-- blocked_id. attachments: uploads, linked to the message that posted them.

ALTER TABLE messages
    ADD COLUMN reply_to bigint,
    ADD COLUMN attachments jsonb,
    ADD COLUMN edited_at timestamptz,
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN deleted_by bigint;
ALTER TABLE messages DROP CONSTRAINT messages_body_check;
ALTER TABLE messages ADD CONSTRAINT messages_body_check
    CHECK (octet_length(body) <= 4096);

ALTER TABLE inbox ADD COLUMN event_id bigint;

CREATE TABLE message_events (
    id              bigserial PRIMARY KEY,
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('edit', 'delete', 'reaction')),
    actor_id        bigint NOT NULL,
    body            text CHECK (octet_length(body) <= 4096),
    emoji           text CHECK (octet_length(emoji) BETWEEN 1 AND 32),
    op              text CHECK (op IN ('add', 'remove')),
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_events_message ON message_events (conversation_id, message_id);

CREATE TABLE reactions (
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    emoji           text NOT NULL CHECK (octet_length(emoji) BETWEEN 1 AND 32),
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, message_id, emoji, user_id)
);

CREATE TABLE blocks (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, blocked_id),
    CHECK (user_id <> blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);

-- storage is the file's name under [attachments] dir, made by parley-api
-- (never from the client). thumb_width/thumb_height: the thumbnail's, when
-- one was made (its file is storage with ".thumb" added).
CREATE TABLE attachments (
    id              bigserial PRIMARY KEY,
    uploader_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_type    text NOT NULL CHECK (octet_length(content_type) BETWEEN 1 AND 128),
    size            bigint NOT NULL CHECK (size >= 0),
    name            text NOT NULL DEFAULT '' CHECK (char_length(name) <= 255),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    width           int CHECK (width > 0),
    height          int CHECK (height > 0),
    thumb_width     int CHECK (thumb_width > 0),
    thumb_height    int CHECK (thumb_height > 0),
    storage         text NOT NULL CHECK (storage ~ '^[0-9a-z/._-]{1,200}$'),
    conversation_id bigint,
    message_id      bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_unposted ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_uploader ON attachments (uploader_id);

-- An attachment as a message lists it.
CREATE FUNCTION attachment_json(a attachments) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'id', a.id, 'content_type', a.content_type, 'size', a.size,
        'name', a.name, 'width', a.width, 'height', a.height,
        'thumbnail', CASE WHEN a.thumb_width IS NOT NULL THEN
            jsonb_build_object('width', a.thumb_width, 'height', a.thumb_height)
        END))
$$;

-- A message's reactions as p_viewer sees them: [{emoji, count, me}], in the
-- order each emoji was first given.
CREATE FUNCTION reactions_json(p_conversation bigint, p_message bigint,
                               p_viewer bigint) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(json_agg(json_build_object('emoji', r.emoji, 'count', r.n,
                                               'me', r.me) ORDER BY r.first, r.emoji),
                    '[]')
      FROM (SELECT emoji, count(*) AS n,
                   coalesce(bool_or(user_id = p_viewer), false) AS me,
                   min(created_at) AS first
              FROM reactions
             WHERE conversation_id = p_conversation AND message_id = p_message
             GROUP BY emoji) r
$$;

-- The message object (doc/protocol.md), as p_viewer (NULL: nobody's "me")
-- sees it; with p_seq, the inbox event {type: "message", seq, ...}.
DROP FUNCTION message_json(messages);
DROP FUNCTION message_out(messages, bigint, text);
CREATE FUNCTION message_out(m messages, p_viewer bigint, p_seq bigint DEFAULT NULL)
RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_seq IS NOT NULL THEN json_build_object(
            'type', 'message', 'seq', p_seq,
            'conversation_id', m.conversation_id,
            'message_id', m.message_id,
            'sender_id', m.sender_id,
            'body', m.body,
            'created_at', rfc3339(m.created_at),
            'client_msg_id', m.client_msg_id,
            'reply_to', m.reply_to,
            'attachments', coalesce(m.attachments, '[]'),
            'edited_at', rfc3339(m.edited_at),
            'deleted_at', rfc3339(m.deleted_at),
            'reactions', reactions_json(m.conversation_id, m.message_id, p_viewer))
        ELSE json_build_object(
            'conversation_id', m.conversation_id,
            'message_id', m.message_id,
            'sender_id', m.sender_id,
            'body', m.body,
            'created_at', rfc3339(m.created_at),
            'client_msg_id', m.client_msg_id,
            'reply_to', m.reply_to,
            'attachments', coalesce(m.attachments, '[]'),
            'edited_at', rfc3339(m.edited_at),
            'deleted_at', rfc3339(m.deleted_at),
            'reactions', reactions_json(m.conversation_id, m.message_id, p_viewer))
    END
$$;
CREATE FUNCTION message_json(m messages) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT message_out(m, NULL)::jsonb
$$;

-- A conversation's last message as its member sees it (their reactions).
CREATE OR REPLACE FUNCTION conversation_json(p_conversation bigint, p_user bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'id', c.id,
        'kind', c.kind,
        'title', c.title,
        'member_ids', (SELECT jsonb_agg(x.user_id ORDER BY x.user_id)
                         FROM members x WHERE x.conversation_id = c.id),
        'admin_ids', (SELECT coalesce(jsonb_agg(x.user_id ORDER BY x.user_id), '[]')
                        FROM members x
                       WHERE x.conversation_id = c.id AND x.role = 'admin'),
        'created_at', rfc3339(c.created_at),
        'last_activity_at', rfc3339(c.last_activity_at),
        'last_message', (SELECT message_out(lm, p_user)::jsonb FROM messages lm
                          WHERE lm.conversation_id = p_conversation
                            AND lm.message_id = c.last_message_id),
        'unread', (SELECT count(*) FROM messages u
                    WHERE u.conversation_id = p_conversation
                      AND u.message_id > me.last_read_message_id
                      AND u.sender_id <> p_user),
        'muted', me.muted,
        'role', me.role,
        'last_read_message_id', me.last_read_message_id)
      FROM conversations c
      JOIN members me ON me.conversation_id = c.id AND me.user_id = p_user
     WHERE c.id = p_conversation);
END
$$;

-- An edit, delete or reaction event as the inbox gives it, with its seq.
CREATE FUNCTION event_out(e message_events, p_seq bigint, p_sender bigint)
RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE e.kind
        WHEN 'edit' THEN json_build_object(
            'type', 'edit', 'seq', p_seq,
            'conversation_id', e.conversation_id, 'message_id', e.message_id,
            'body', e.body, 'edited_at', rfc3339(e.at), 'sender_id', p_sender)
        WHEN 'delete' THEN json_build_object(
            'type', 'delete', 'seq', p_seq,
            'conversation_id', e.conversation_id, 'message_id', e.message_id,
            'deleted_at', rfc3339(e.at), 'deleted_by', e.actor_id)
        ELSE json_build_object(
            'type', 'reaction', 'seq', p_seq,
            'conversation_id', e.conversation_id, 'message_id', e.message_id,
            'user_id', e.actor_id, 'emoji', e.emoji, 'op', e.op)
    END
$$;

-- One edit, deletion or reaction, under the posting path's locks: the
-- conversation's row, then the heads of the members who receive it (those
-- who blocked neither the actor nor the message's sender), in user order.
-- p_kind: 'edit' (p_body), 'delete', 'react' or 'unreact' (p_emoji).
-- status: 'ok' (event stored: event is its object without seq, deliveries
-- [[user_id, seq], ...]), 'noop' (nothing to change: no event),
-- 'not_found', 'forbidden', 'too_late' (edit window passed), 'too_many'
-- (p_max_emoji distinct emoji already).
CREATE FUNCTION post_event(p_kind text, p_actor bigint, p_conversation bigint,
                           p_message bigint, p_body text, p_emoji text,
                           p_edit_window interval, p_max_emoji int)
RETURNS TABLE (status text, event jsonb, deliveries jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    conv    conversations;
    me      members;
    msg     messages;
    ev      message_events;
    now_at  timestamptz := clock_timestamp();
    d       jsonb;
BEGIN
    SELECT * INTO conv FROM conversations c WHERE c.id = p_conversation FOR UPDATE;
    SELECT * INTO me FROM members m
     WHERE m.conversation_id = p_conversation AND m.user_id = p_actor;
    IF conv.id IS NULL OR me.user_id IS NULL THEN
        RETURN QUERY SELECT 'not_found', NULL::jsonb, NULL::jsonb; RETURN;
    END IF;
    SELECT * INTO msg FROM messages m
     WHERE m.conversation_id = p_conversation AND m.message_id = p_message;
    IF msg.message_id IS NULL OR (msg.deleted_at IS NOT NULL AND p_kind <> 'delete')
       OR EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = p_actor
                                           AND b.blocked_id = msg.sender_id) THEN
        RETURN QUERY SELECT 'not_found', NULL::jsonb, NULL::jsonb; RETURN;
    END IF;

    IF p_kind = 'edit' THEN
        IF msg.sender_id <> p_actor THEN
            RETURN QUERY SELECT 'forbidden', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        IF now_at - msg.created_at > p_edit_window THEN
            RETURN QUERY SELECT 'too_late', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        UPDATE messages m SET body = p_body, edited_at = now_at
         WHERE m.conversation_id = p_conversation AND m.message_id = p_message;
        INSERT INTO message_events (conversation_id, message_id, kind, actor_id, body, at)
        VALUES (p_conversation, p_message, 'edit', p_actor, p_body, now_at)
        RETURNING * INTO ev;
    ELSIF p_kind = 'delete' THEN
        IF msg.sender_id <> p_actor AND NOT (conv.kind = 'group' AND me.role = 'admin') THEN
            RETURN QUERY SELECT 'forbidden', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        IF msg.deleted_at IS NOT NULL THEN
            RETURN QUERY SELECT 'noop', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        UPDATE messages m SET body = '', attachments = NULL, deleted_at = now_at,
               deleted_by = p_actor
         WHERE m.conversation_id = p_conversation AND m.message_id = p_message;
        DELETE FROM reactions r
         WHERE r.conversation_id = p_conversation AND r.message_id = p_message;
        -- Its earlier edits, replayed later, no longer carry its text.
        UPDATE message_events e SET body = ''
         WHERE e.conversation_id = p_conversation AND e.message_id = p_message
           AND e.kind = 'edit';
        INSERT INTO message_events (conversation_id, message_id, kind, actor_id, at)
        VALUES (p_conversation, p_message, 'delete', p_actor, now_at)
        RETURNING * INTO ev;
    ELSIF p_kind = 'react' THEN
        IF EXISTS (SELECT 1 FROM reactions r
                    WHERE r.conversation_id = p_conversation AND r.message_id = p_message
                      AND r.emoji = p_emoji AND r.user_id = p_actor) THEN
            RETURN QUERY SELECT 'noop', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM reactions r
                        WHERE r.conversation_id = p_conversation
                          AND r.message_id = p_message AND r.emoji = p_emoji)
           AND (SELECT count(DISTINCT r.emoji) FROM reactions r
                 WHERE r.conversation_id = p_conversation
                   AND r.message_id = p_message) >= p_max_emoji THEN
            RETURN QUERY SELECT 'too_many', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        INSERT INTO reactions (conversation_id, message_id, emoji, user_id, created_at)
        VALUES (p_conversation, p_message, p_emoji, p_actor, now_at);
        INSERT INTO message_events (conversation_id, message_id, kind, actor_id, emoji, op, at)
        VALUES (p_conversation, p_message, 'reaction', p_actor, p_emoji, 'add', now_at)
        RETURNING * INTO ev;
    ELSIF p_kind = 'unreact' THEN
        DELETE FROM reactions r
         WHERE r.conversation_id = p_conversation AND r.message_id = p_message
           AND r.emoji = p_emoji AND r.user_id = p_actor;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'noop', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        INSERT INTO message_events (conversation_id, message_id, kind, actor_id, emoji, op, at)
        VALUES (p_conversation, p_message, 'reaction', p_actor, p_emoji, 'remove', now_at)
        RETURNING * INTO ev;
    ELSE
        RAISE EXCEPTION 'post_event: unknown kind %', p_kind;
    END IF;

    -- The heads, locked in user order, then one inbox row each.
    PERFORM 1 FROM user_heads h
      JOIN members m ON m.user_id = h.user_id AND m.conversation_id = p_conversation
     ORDER BY h.user_id FOR UPDATE OF h;
    WITH heads AS (
        UPDATE user_heads h SET last_seq = h.last_seq + 1
          FROM members m
         WHERE m.conversation_id = p_conversation AND h.user_id = m.user_id
           AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = m.user_id
                             AND b.blocked_id IN (p_actor, msg.sender_id))
        RETURNING h.user_id, h.last_seq
    ), rows AS (
        INSERT INTO inbox (user_id, seq, conversation_id, message_id, event_id)
        SELECT heads.user_id, heads.last_seq, p_conversation, p_message, ev.id
          FROM heads
        RETURNING inbox.user_id, inbox.seq
    )
    SELECT coalesce(jsonb_agg(jsonb_build_array(rows.user_id, rows.seq)
                              ORDER BY rows.user_id), '[]')
      INTO d FROM rows;
    RETURN QUERY SELECT 'ok', event_out(ev, NULL, msg.sender_id)::jsonb, d;
END
$$;

-- Whether p_sender may not send in p_conversation because it is direct and
-- its other member blocked them. Read from blocks first: for a sender
-- nobody blocked, one probe of blocks_blocked.
CREATE FUNCTION blocked_in_direct(p_conversation bigint, p_sender bigint)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM blocks b
          JOIN members o ON o.conversation_id = p_conversation AND o.user_id = b.user_id
          JOIN conversations c ON c.id = p_conversation AND c.kind = 'direct'
         WHERE b.blocked_id = p_sender)
$$;

-- Claims the attachments p_ids (a JSON array of ids) for a message p_sender
-- posts in p_conversation: each must be p_sender's, not yet posted, and
-- named once. Marks them taken (message_id 0 until the caller sets the
-- message's id) and returns their objects in p_ids' order, or NULL (nothing
-- claimed). The caller holds their rows locked.
CREATE FUNCTION claim_attachments(p_ids jsonb, p_sender bigint, p_conversation bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
    out jsonb;
BEGIN
    SELECT array_agg(x::bigint ORDER BY o) INTO ids
      FROM jsonb_array_elements_text(p_ids) WITH ORDINALITY AS t(x, o);
    IF ids IS NULL
       OR (SELECT count(DISTINCT v) FROM unnest(ids) AS v) <> cardinality(ids)
       OR (SELECT count(*) FROM attachments a
            WHERE a.id = ANY (ids) AND a.uploader_id = p_sender
              AND a.message_id IS NULL) <> cardinality(ids) THEN
        RETURN NULL;
    END IF;
    UPDATE attachments a SET conversation_id = p_conversation, message_id = 0
     WHERE a.id = ANY (ids);
    SELECT jsonb_agg(attachment_json(a) ORDER BY array_position(ids, a.id))
      INTO out FROM attachments a WHERE a.id = ANY (ids);
    RETURN out;
END
$$;

CREATE OR REPLACE FUNCTION post_messages_each(p_items jsonb) RETURNS TABLE(idx integer, status text, message_id bigint, created_at text, deliveries jsonb)
    LANGUAGE plpgsql
    AS $_$
#variable_conflict use_column
DECLARE
    n        int := jsonb_array_length(p_items);
    senders  bigint[];
    convs_in bigint[];
    cmids    text[];
    bodies   text[];
    replies  bigint[];
    atts     jsonb[];
    attj     jsonb;
    st       text[];
    mids     bigint[];
    stamps   timestamptz[];
    dels     jsonb[];
    convs    bigint[];
    users    bigint[];
    mem      bigint[];
    old_id   bigint;
    old_body text;
    old_at   timestamptz;
    mid      bigint;
    d        jsonb;
    now_at   timestamptz := clock_timestamp();
BEGIN
    SELECT array_agg((e.j ->> 'sender_id')::bigint ORDER BY e.i),
           array_agg((e.j ->> 'conversation_id')::bigint ORDER BY e.i),
           array_agg(e.j ->> 'client_msg_id' ORDER BY e.i),
           array_agg(e.j ->> 'body' ORDER BY e.i),
           array_agg((e.j ->> 'reply_to')::bigint ORDER BY e.i),
           array_agg(CASE WHEN jsonb_typeof(e.j -> 'attachment_ids') = 'array'
                          AND jsonb_array_length(e.j -> 'attachment_ids') > 0
                     THEN e.j -> 'attachment_ids' END ORDER BY e.i)
      INTO senders, convs_in, cmids, bodies, replies, atts
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(j, i);
    st := array_fill(NULL::text, ARRAY[n]);
    mids := array_fill(NULL::bigint, ARRAY[n]);
    stamps := array_fill(NULL::timestamptz, ARRAY[n]);
    dels := array_fill(NULL::jsonb, ARRAY[n]);

    -- 1. Validate without locks.
    FOR i IN 1 .. n LOOP
        IF senders[i] IS NULL OR convs_in[i] IS NULL
           OR cmids[i] IS NULL OR bodies[i] IS NULL
           OR octet_length(bodies[i]) NOT BETWEEN
              (CASE WHEN atts[i] IS NULL THEN 1 ELSE 0 END) AND 4096
           OR coalesce(jsonb_array_length(atts[i]), 0) > 10
           OR cmids[i] !~ '^[ -~]{1,64}$' THEN
            st[i] := 'bad_request';
        ELSIF NOT EXISTS (SELECT 1 FROM members m
                          WHERE m.conversation_id = convs_in[i]
                            AND m.user_id = senders[i]) THEN
            st[i] := 'not_found';
        ELSIF blocked_in_direct(convs_in[i], senders[i]) THEN
            st[i] := 'forbidden';
        ELSE
            SELECT m.message_id, m.body, m.created_at
              INTO old_id, old_body, old_at
              FROM messages m
             WHERE m.conversation_id = convs_in[i]
               AND m.sender_id = senders[i]
               AND m.client_msg_id = cmids[i];
            IF FOUND THEN
                st[i] := CASE WHEN old_body = bodies[i] THEN 'duplicate'
                              ELSE 'conflict' END;
                mids[i] := old_id;
                stamps[i] := old_at;
            ELSIF replies[i] IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM messages r WHERE r.conversation_id = convs_in[i]
                       AND r.message_id = replies[i]) THEN
                st[i] := 'bad_reply';
            END IF;
        END IF;
    END LOOP;

    -- 2. Lock in the global order: conversations, then users.
    SELECT array_agg(DISTINCT convs_in[g] ORDER BY convs_in[g]) INTO convs
      FROM generate_series(1, n) AS g
     WHERE st[g] IS NULL;

    IF convs IS NOT NULL THEN
        PERFORM 1 FROM conversations c WHERE c.id = ANY (convs)
          ORDER BY c.id FOR UPDATE;
        SELECT array_agg(DISTINCT m.user_id ORDER BY m.user_id) INTO users
          FROM members m WHERE m.conversation_id = ANY (convs);
        PERFORM 1 FROM user_heads h WHERE h.user_id = ANY (users)
          ORDER BY h.user_id FOR UPDATE;
        -- Then the attachments to be posted, in id order (014).
        PERFORM 1 FROM attachments a
         WHERE a.id IN (SELECT x::bigint FROM generate_series(1, n) AS g,
                               jsonb_array_elements_text(atts[g]) AS x
                         WHERE st[g] IS NULL AND atts[g] IS NOT NULL)
         ORDER BY a.id FOR UPDATE;
    END IF;

    -- 3. Store, item by item in input order.
    FOR i IN 1 .. n LOOP
        CONTINUE WHEN st[i] IS NOT NULL;

        SELECT array_agg(m.user_id ORDER BY m.user_id) INTO mem
          FROM members m WHERE m.conversation_id = convs_in[i];
        IF mem IS NULL OR NOT (senders[i] = ANY (mem)) THEN
            st[i] := 'not_found';
            CONTINUE;
        END IF;

        -- Under the lock this also catches a key stored earlier in this
        -- batch or by a batch that committed while this one waited.
        SELECT m.message_id, m.body, m.created_at
          INTO old_id, old_body, old_at
          FROM messages m
         WHERE m.conversation_id = convs_in[i]
           AND m.sender_id = senders[i]
           AND m.client_msg_id = cmids[i];
        IF FOUND THEN
            st[i] := CASE WHEN old_body = bodies[i] THEN 'duplicate'
                          ELSE 'conflict' END;
            mids[i] := old_id;
            stamps[i] := old_at;
            CONTINUE;
        END IF;

        attj := NULL;
        IF atts[i] IS NOT NULL THEN
            attj := claim_attachments(atts[i], senders[i], convs_in[i]);
            IF attj IS NULL THEN
                st[i] := 'bad_attachment';
                CONTINUE;
            END IF;
        END IF;

        UPDATE conversations c
           SET last_message_id = c.last_message_id + 1,
               last_activity_at = now_at
         WHERE c.id = convs_in[i]
        RETURNING c.last_message_id INTO mid;

        INSERT INTO messages (conversation_id, message_id, sender_id,
                              client_msg_id, body, created_at, reply_to,
                              attachments)
        VALUES (convs_in[i], mid, senders[i], cmids[i], bodies[i], now_at,
                replies[i], attj);
        IF attj IS NOT NULL THEN
            UPDATE attachments a SET message_id = mid
             WHERE a.conversation_id = convs_in[i] AND a.message_id = 0
               AND a.uploader_id = senders[i];
        END IF;

        WITH heads AS (
            UPDATE user_heads h SET last_seq = h.last_seq + 1
             WHERE h.user_id = ANY (mem)
               AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = h.user_id
                                 AND b.blocked_id = senders[i])
            RETURNING h.user_id, h.last_seq
        ), rows AS (
            INSERT INTO inbox (user_id, seq, conversation_id, message_id)
            SELECT heads.user_id, heads.last_seq, convs_in[i], mid
              FROM heads
            RETURNING inbox.user_id, inbox.seq
        )
        SELECT jsonb_agg(jsonb_build_array(rows.user_id, rows.seq)
                         ORDER BY rows.user_id)
          INTO d FROM rows;

        st[i] := 'ok';
        mids[i] := mid;
        stamps[i] := now_at;
        dels[i] := d;
    END LOOP;

    RETURN QUERY
        SELECT g, st[g], mids[g], rfc3339(stamps[g]), dels[g]
          FROM generate_series(1, n) AS g
         ORDER BY g;
END
$_$;
CREATE OR REPLACE FUNCTION post_messages_sets(p_items jsonb) RETURNS TABLE(idx integer, status text, message_id bigint, created_at text, deliveries jsonb)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    convs    bigint[];
    users    bigint[];
    now_at   timestamptz := clock_timestamp();
    calls    int;
    conv     bigint;
    item     record;
BEGIN
    -- The batch, numbered in input order, with what can be said without
    -- locks: malformed items, non-members, keys already stored.
    -- A scratch table per connection (007: emptied here, not at COMMIT).
    -- pm_items (014) adds reply_to (r), the attachment ids (a) and their
    -- objects once claimed (aj); a connection from before 014 may still
    -- hold 007's pm_items, of the old shape.
    IF to_regclass('pg_temp.pm_items') IS NULL THEN
        CREATE TEMP TABLE pm_items (
            i int PRIMARY KEY, s bigint, c bigint, k text, b text,
            r bigint, a jsonb, aj jsonb,
            st text, mid bigint, at timestamptz, del jsonb
        );
    END IF;
    -- DELETE leaves dead rows, which nothing vacuums in a temporary table;
    -- every 64th call TRUNCATE drops them (and costs the plans once).
    calls := coalesce(nullif(current_setting('parley.pm_calls', true), ''),
                      '0')::int + 1;
    IF calls >= 64 THEN
        TRUNCATE pm_items;
        calls := 0;
    ELSE
        DELETE FROM pm_items;
    END IF;
    PERFORM set_config('parley.pm_calls', calls::text, false);
    INSERT INTO pm_items (i, s, c, k, b, r, a)
    SELECT e.i, (e.j ->> 'sender_id')::bigint, (e.j ->> 'conversation_id')::bigint,
           e.j ->> 'client_msg_id', e.j ->> 'body', (e.j ->> 'reply_to')::bigint,
           CASE WHEN jsonb_typeof(e.j -> 'attachment_ids') = 'array'
                 AND jsonb_array_length(e.j -> 'attachment_ids') > 0
            THEN e.j -> 'attachment_ids' END
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(j, i);

    UPDATE pm_items SET st = 'bad_request'
     WHERE s IS NULL OR c IS NULL OR k IS NULL OR b IS NULL
        OR octet_length(b) NOT BETWEEN (CASE WHEN a IS NULL THEN 1 ELSE 0 END) AND 4096
        OR coalesce(jsonb_array_length(a), 0) > 10
        OR octet_length(k) NOT BETWEEN 1 AND 64 OR k ~ '[^ -~]';
    UPDATE pm_items p SET st = 'not_found'
     WHERE st IS NULL AND NOT EXISTS (SELECT 1 FROM members m
                                      WHERE m.conversation_id = p.c AND m.user_id = p.s);
    UPDATE pm_items p SET st = 'forbidden'
     WHERE st IS NULL AND blocked_in_direct(p.c, p.s);
    UPDATE pm_items p SET st = 'bad_reply'
     WHERE st IS NULL AND r IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM messages m
                        WHERE m.conversation_id = p.c AND m.message_id = p.r);

    -- Lock in the global order: conversations, then users (002, step 2).
    SELECT array_agg(DISTINCT p.c ORDER BY p.c) INTO convs
      FROM pm_items p WHERE p.st IS NULL;
    IF convs IS NOT NULL THEN
        PERFORM 1 FROM conversations c WHERE c.id = ANY (convs)
          ORDER BY c.id FOR UPDATE;
        SELECT array_agg(DISTINCT m.user_id ORDER BY m.user_id) INTO users
          FROM members m WHERE m.conversation_id = ANY (convs);
        PERFORM 1 FROM user_heads h WHERE h.user_id = ANY (users)
          ORDER BY h.user_id FOR UPDATE;
        -- Then the attachments to be posted, in id order (014).
        PERFORM 1 FROM attachments a
         WHERE a.id IN (SELECT x::bigint FROM pm_items p,
                               jsonb_array_elements_text(p.a) AS x
                         WHERE p.st IS NULL AND p.a IS NOT NULL)
         ORDER BY a.id FOR UPDATE;
    END IF;

    -- Under the locks: membership again, then dedupe against stored rows
    -- (a batch that committed while this one waited included) and within
    -- the batch (the first occurrence of a key is the one stored).
    UPDATE pm_items p SET st = 'not_found'
     WHERE st IS NULL AND NOT EXISTS (SELECT 1 FROM members m
                                      WHERE m.conversation_id = p.c AND m.user_id = p.s);
    -- A batch of few conversations looks its keys up one conversation at a
    -- time, each lookup pruned to its partition of messages as it starts
    -- (012); as one join, every call would set up a scan of every one.
    IF cardinality(convs) > 8 THEN
        UPDATE pm_items p
           SET st = CASE WHEN m.body = p.b THEN 'duplicate' ELSE 'conflict' END,
               mid = m.message_id, at = m.created_at
          FROM messages m
         WHERE p.st IS NULL AND m.conversation_id = p.c AND m.sender_id = p.s
           AND m.client_msg_id = p.k;
    ELSIF convs IS NOT NULL THEN
        FOREACH conv IN ARRAY convs LOOP
            UPDATE pm_items p
               SET st = CASE WHEN m.body = p.b THEN 'duplicate' ELSE 'conflict' END,
                   mid = m.message_id, at = m.created_at
              FROM messages m
             WHERE p.st IS NULL AND p.c = conv AND m.conversation_id = conv
               AND m.sender_id = p.s AND m.client_msg_id = p.k;
        END LOOP;
    END IF;
    UPDATE pm_items p SET st = 'later'
      FROM pm_items f
     WHERE p.st IS NULL AND f.st IS NULL AND f.c = p.c AND f.s = p.s
       AND f.k = p.k AND f.i < p.i;

    -- Attachments, claimed item by item in input order: an id posted twice
    -- in one batch goes with the first item that names it.
    FOR item IN SELECT p.i, p.s, p.c, p.a FROM pm_items p
                 WHERE p.st IS NULL AND p.a IS NOT NULL ORDER BY p.i LOOP
        UPDATE pm_items p
           SET aj = claim_attachments(item.a, item.s, item.c)
         WHERE p.i = item.i;
        UPDATE pm_items p SET st = 'bad_attachment'
         WHERE p.i = item.i AND p.aj IS NULL;
    END LOOP;

    -- New messages: ids follow each conversation's counter in input order.
    WITH fresh AS (
        SELECT p.i, p.c, row_number() OVER (PARTITION BY p.c ORDER BY p.i) AS rn,
               count(*) OVER (PARTITION BY p.c) AS n
          FROM pm_items p WHERE p.st IS NULL
    ), bumped AS (
        UPDATE conversations c
           SET last_message_id = c.last_message_id + x.n,
               last_activity_at = now_at
          FROM (SELECT DISTINCT fresh.c, fresh.n FROM fresh) x
         WHERE c.id = x.c
        RETURNING c.id, c.last_message_id - x.n AS base
    )
    UPDATE pm_items p SET st = 'ok', mid = b.base + f.rn, at = now_at
      FROM fresh f JOIN bumped b ON b.id = f.c
     WHERE p.i = f.i;

    INSERT INTO messages (conversation_id, message_id, sender_id, client_msg_id,
                          body, created_at, reply_to, attachments)
    SELECT p.c, p.mid, p.s, p.k, p.b, p.at, p.r, p.aj
      FROM pm_items p WHERE p.st = 'ok' ORDER BY p.c, p.mid;
    UPDATE attachments a SET message_id = p.mid
      FROM pm_items p
     WHERE p.st = 'ok' AND p.aj IS NOT NULL AND a.message_id = 0
       AND a.conversation_id = p.c AND a.uploader_id = p.s
       AND a.id IN (SELECT x::bigint FROM jsonb_array_elements_text(p.a) AS x);

    -- One inbox row per member and message; each user's seqs follow the
    -- batch's order, after the user's counter (locked above until COMMIT).
    WITH fan AS (
        SELECT p.i, m.user_id,
               row_number() OVER (PARTITION BY m.user_id ORDER BY p.i) AS rn,
               count(*) OVER (PARTITION BY m.user_id) AS n
          FROM pm_items p JOIN members m ON m.conversation_id = p.c
         WHERE p.st = 'ok'
           AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = m.user_id
                             AND b.blocked_id = p.s)
    ), heads AS (
        UPDATE user_heads h SET last_seq = h.last_seq + x.n
          FROM (SELECT DISTINCT fan.user_id, fan.n FROM fan) x
         WHERE h.user_id = x.user_id
        RETURNING h.user_id, h.last_seq - x.n AS base
    ), rows AS (
        INSERT INTO inbox (user_id, seq, conversation_id, message_id)
        SELECT f.user_id, hd.base + f.rn, p.c, p.mid
          FROM fan f JOIN heads hd ON hd.user_id = f.user_id
          JOIN pm_items p ON p.i = f.i
        RETURNING inbox.user_id, inbox.seq, inbox.conversation_id, inbox.message_id
    )
    UPDATE pm_items p SET del = d.del
      FROM (SELECT r.conversation_id, r.message_id,
                   jsonb_agg(jsonb_build_array(r.user_id, r.seq) ORDER BY r.user_id) AS del
              FROM rows r GROUP BY 1, 2) d
     WHERE p.st = 'ok' AND d.conversation_id = p.c AND d.message_id = p.mid;

    -- A key repeated in the batch answers like a retry of its first item.
    UPDATE pm_items p
       SET st = CASE WHEN f.b = p.b THEN 'duplicate' ELSE 'conflict' END,
           mid = f.mid, at = f.at
      FROM pm_items f
     WHERE p.st = 'later' AND f.c = p.c AND f.s = p.s AND f.k = p.k
       AND f.st = 'ok';

    RETURN QUERY
        SELECT p.i, p.st, p.mid, rfc3339(p.at), p.del
          FROM pm_items p ORDER BY p.i;
END
$$;

-- 016: a reaction event says how many gave that emoji once it applied.
--
-- A message read back from the inbox (a replay, /sync) already shows its
-- reactions as they are now, and the reaction events after it in the same
-- page are increments it already holds: a client adding them up would count
-- them twice. Each reaction event now carries "count", the emoji's count on
-- the message after the event, so a client sets the count rather than adds
-- to it, and ends, after the last event, where the server is. (Who the
-- viewer is does not change it: blocked users' reactions count for every
-- viewer, as in history.)

ALTER TABLE message_events ADD COLUMN count int CHECK (count >= 0);

-- How many users gave p_emoji to the message.
CREATE FUNCTION emoji_count(p_conversation bigint, p_message bigint, p_emoji text)
RETURNS int LANGUAGE sql STABLE AS $$
    SELECT count(*)::int FROM reactions
     WHERE conversation_id = p_conversation AND message_id = p_message
       AND emoji = p_emoji
$$;

CREATE OR REPLACE FUNCTION post_event(p_kind text, p_actor bigint, p_conversation bigint, p_message bigint, p_body text, p_emoji text, p_edit_window interval, p_max_emoji integer) RETURNS TABLE(status text, event jsonb, deliveries jsonb)
    LANGUAGE plpgsql
    AS $$
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
        INSERT INTO message_events (conversation_id, message_id, kind, actor_id, emoji, op,
                                    count, at)
        VALUES (p_conversation, p_message, 'reaction', p_actor, p_emoji, 'add',
                emoji_count(p_conversation, p_message, p_emoji), now_at)
        RETURNING * INTO ev;
    ELSIF p_kind = 'unreact' THEN
        DELETE FROM reactions r
         WHERE r.conversation_id = p_conversation AND r.message_id = p_message
           AND r.emoji = p_emoji AND r.user_id = p_actor;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'noop', NULL::jsonb, NULL::jsonb; RETURN;
        END IF;
        INSERT INTO message_events (conversation_id, message_id, kind, actor_id, emoji, op,
                                    count, at)
        VALUES (p_conversation, p_message, 'reaction', p_actor, p_emoji, 'remove',
                emoji_count(p_conversation, p_message, p_emoji), now_at)
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

CREATE OR REPLACE FUNCTION event_out(e public.message_events, p_seq bigint, p_sender bigint) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
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
            'user_id', e.actor_id, 'emoji', e.emoji, 'op', e.op, 'count', e.count)
    END
$$;

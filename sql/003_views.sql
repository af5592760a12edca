-- JSON shapes of the contract, built where the data is, so the API and the
-- relay shape conversations and messages the same way (PROTOCOL.md "REST").

-- A message object: {conversation_id, message_id, sender_id, body,
-- created_at, client_msg_id}.
CREATE FUNCTION message_json(m messages) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'conversation_id', m.conversation_id,
        'message_id', m.message_id,
        'sender_id', m.sender_id,
        'body', m.body,
        'created_at', rfc3339(m.created_at),
        'client_msg_id', m.client_msg_id)
$$;

-- A conversation as p_user sees it: {id, kind, title, member_ids,
-- created_at, last_message, unread, muted, role, last_read_message_id}.
-- NULL when p_user is not a member.
CREATE FUNCTION conversation_json(p_conversation bigint, p_user bigint)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
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
        'last_message', (SELECT message_json(lm) FROM messages lm
                          WHERE lm.conversation_id = c.id
                            AND lm.message_id = c.last_message_id),
        'unread', (SELECT count(*) FROM messages u
                    WHERE u.conversation_id = c.id
                      AND u.message_id > me.last_read_message_id
                      AND u.sender_id <> p_user),
        'muted', me.muted,
        'role', me.role,
        'last_read_message_id', me.last_read_message_id)
      FROM conversations c
      JOIN members me ON me.conversation_id = c.id AND me.user_id = p_user
     WHERE c.id = p_conversation
$$;

-- Conversation lists are ordered by latest activity.
CREATE INDEX conversations_activity ON conversations (last_activity_at DESC, id DESC);

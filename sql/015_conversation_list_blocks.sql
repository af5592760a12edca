-- 015: a conversation's summary leaves out what its member never received.
--
-- In a group, a blocked user's messages never enter the blocker's inbox
-- (014); the blocker's conversation list must not show one as the last
-- message nor count it unread. Nor does a deleted message count unread.
-- last_message is the newest message the member receives: for nearly every
-- member the newest of all, found by the first row read.

CREATE OR REPLACE FUNCTION conversation_json(p_conversation bigint, p_user bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
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
                            AND lm.message_id <= c.last_message_id
                            AND NOT EXISTS (SELECT 1 FROM blocks b
                                             WHERE b.user_id = p_user
                                               AND b.blocked_id = lm.sender_id)
                          ORDER BY lm.message_id DESC LIMIT 1),
        'unread', (SELECT count(*) FROM messages u
                    WHERE u.conversation_id = p_conversation
                      AND u.message_id > me.last_read_message_id
                      AND u.sender_id <> p_user
                      AND u.deleted_at IS NULL
                      AND NOT EXISTS (SELECT 1 FROM blocks b
                                       WHERE b.user_id = p_user
                                         AND b.blocked_id = u.sender_id)),
        'muted', me.muted,
        'role', me.role,
        'last_read_message_id', me.last_read_message_id)
      FROM conversations c
      JOIN members me ON me.conversation_id = c.id AND me.user_id = p_user
     WHERE c.id = p_conversation);
END
$$;

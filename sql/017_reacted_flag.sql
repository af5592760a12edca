-- 017: a message knows whether it ever had a reaction.
--
-- Every message object carries its reactions (014), and reading them is a
-- look-up per message; on a history page of 50 it cost more than half of
-- the page (pgbench, the served statement: 1,401 pages/s against 3,340
-- without). Almost no message has any. messages.reacted is set when a
-- message gets its first reaction (by a trigger on reactions, so every
-- writer sets it) and never cleared; message_out() reads reactions only for
-- a message that has had one. A column with a constant default is added
-- without rewriting the partitions.

ALTER TABLE messages ADD COLUMN reacted boolean NOT NULL DEFAULT false;
UPDATE messages m SET reacted = true
 WHERE EXISTS (SELECT 1 FROM reactions r
                WHERE r.conversation_id = m.conversation_id
                  AND r.message_id = m.message_id);

CREATE FUNCTION reactions_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE messages SET reacted = true
     WHERE conversation_id = NEW.conversation_id
       AND message_id = NEW.message_id AND NOT reacted;
    RETURN NULL;
END
$$;
CREATE TRIGGER reactions_mark AFTER INSERT ON reactions
    FOR EACH ROW EXECUTE FUNCTION reactions_mark();

CREATE OR REPLACE FUNCTION message_out(m messages, p_viewer bigint, p_seq bigint DEFAULT NULL)
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
            'reactions', CASE WHEN m.reacted THEN
                reactions_json(m.conversation_id, m.message_id, p_viewer)
                ELSE '[]'::json END)
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
            'reactions', CASE WHEN m.reacted THEN
                reactions_json(m.conversation_id, m.message_id, p_viewer)
                ELSE '[]'::json END)
    END
$$;

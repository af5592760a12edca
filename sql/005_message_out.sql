-- 005: messages that go straight out as text are built as json, not jsonb.
-- jsonb_build_object() sorts and re-encodes its keys and jsonb_agg() builds
-- a binary tree only for it to be printed again; for a page of 50 messages
-- that was half the cost of a history request. Same object as message_json()
-- (003), keys in the contract's order; p_seq and p_type, when given, come
-- first, as a sync event ({seq, ...}) or a relay frame ({type, seq, ...})
-- carries them.
CREATE FUNCTION message_out(m messages, p_seq bigint DEFAULT NULL,
                            p_type text DEFAULT NULL)
RETURNS json LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_type IS NOT NULL THEN json_build_object(
            'type', p_type, 'seq', p_seq,
            'conversation_id', m.conversation_id,
            'message_id', m.message_id,
            'sender_id', m.sender_id,
            'body', m.body,
            'created_at', rfc3339(m.created_at),
            'client_msg_id', m.client_msg_id)
        WHEN p_seq IS NOT NULL THEN json_build_object(
            'seq', p_seq,
            'conversation_id', m.conversation_id,
            'message_id', m.message_id,
            'sender_id', m.sender_id,
            'body', m.body,
            'created_at', rfc3339(m.created_at),
            'client_msg_id', m.client_msg_id)
        ELSE json_build_object(
            'conversation_id', m.conversation_id,
            'message_id', m.message_id,
            'sender_id', m.sender_id,
            'body', m.body,
            'created_at', rfc3339(m.created_at),
            'client_msg_id', m.client_msg_id)
    END
$$;

-- message_json() (003), still used for a conversation's last_message, is now
-- the same object read back as jsonb, so the message's keys are listed here
-- only.
CREATE OR REPLACE FUNCTION message_json(m messages) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT message_out(m)::jsonb
$$;

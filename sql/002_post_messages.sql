-- post_messages: the one way messages enter Parley (ARCHITECTURE.md "How a
-- message flows", step 2). One call stores a batch of sends in the caller's
-- transaction and answers every item on its own.
--
-- p_items is a JSON array of {sender_id, conversation_id, client_msg_id, body}.
-- One row comes back per item, in input order (idx counts from 1):
--   status      'ok'         stored now;
--               'duplicate'  the same key and body were stored before: the
--                            original message_id and created_at come back;
--               'conflict'   the key was used before with another body;
--               'not_found'  no such conversation, or the sender is not in it;
--               'bad_request' a field is missing or out of its limits.
--   deliveries  for 'ok' only: [[user_id, seq], ...] of every member, the
--               sender included, for the writer to publish.
--
-- The rules, in order:
--   1. validate first, lock later: limits, membership and dedupe are checked
--      without locks, and an invalid item never aborts the batch;
--   2. lock in one global order: conversations by id, then the members'
--      user_heads rows by user_id, so two batches never deadlock;
--   3. per item: take the next gapless message_id under the conversation's
--      lock, store the message once, and append one inbox row per member with
--      the next per-user seq. The user_heads rows stay locked until COMMIT, so
--      a user's commit order equals seq order.
-- Membership and dedupe are checked again under the locks, since a
-- concurrent batch may have committed the same key, or a member may have
-- left, while this one waited.
CREATE FUNCTION post_messages(p_items jsonb)
RETURNS TABLE (idx int, status text, message_id bigint, created_at text,
               deliveries jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    n        int := jsonb_array_length(p_items);
    senders  bigint[];
    convs_in bigint[];
    cmids    text[];
    bodies   text[];
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
           array_agg(e.j ->> 'body' ORDER BY e.i)
      INTO senders, convs_in, cmids, bodies
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(j, i);
    st := array_fill(NULL::text, ARRAY[n]);
    mids := array_fill(NULL::bigint, ARRAY[n]);
    stamps := array_fill(NULL::timestamptz, ARRAY[n]);
    dels := array_fill(NULL::jsonb, ARRAY[n]);

    -- 1. Validate without locks.
    FOR i IN 1 .. n LOOP
        IF senders[i] IS NULL OR convs_in[i] IS NULL
           OR cmids[i] IS NULL OR bodies[i] IS NULL
           OR octet_length(bodies[i]) NOT BETWEEN 1 AND 4096
           OR cmids[i] !~ '^[ -~]{1,64}$' THEN
            st[i] := 'bad_request';
        ELSIF NOT EXISTS (SELECT 1 FROM members m
                          WHERE m.conversation_id = convs_in[i]
                            AND m.user_id = senders[i]) THEN
            st[i] := 'not_found';
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

        UPDATE conversations c
           SET last_message_id = c.last_message_id + 1,
               last_activity_at = now_at
         WHERE c.id = convs_in[i]
        RETURNING c.last_message_id INTO mid;

        INSERT INTO messages (conversation_id, message_id, sender_id,
                              client_msg_id, body, created_at)
        VALUES (convs_in[i], mid, senders[i], cmids[i], bodies[i], now_at);

        WITH heads AS (
            UPDATE user_heads h SET last_seq = h.last_seq + 1
             WHERE h.user_id = ANY (mem)
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
$$;

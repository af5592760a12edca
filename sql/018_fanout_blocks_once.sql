-- 018: the fan-out asks once whether anyone blocked the senders.
--
-- 014 made the fan-out skip members who blocked the sender: a look-up in
-- blocks for every recipient of every message, 51,000 a second for groups
-- of 100 at 510 messages a second, nearly always finding nothing. Whether
-- anyone blocked the batch's senders (post_messages_sets) or the item's
-- sender (post_messages_each) is now asked once, a statement's InitPlan;
-- only then is each recipient looked up.

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
               AND (NOT EXISTS (SELECT 1 FROM blocks b0
                                 WHERE b0.blocked_id = senders[i])
                    OR NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = h.user_id
                                     AND b.blocked_id = senders[i]))
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
           AND (NOT EXISTS (SELECT 1 FROM blocks b0 JOIN pm_items p0
                             ON p0.s = b0.blocked_id WHERE p0.st = 'ok')
                OR NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = m.user_id
                                 AND b.blocked_id = p.s))
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

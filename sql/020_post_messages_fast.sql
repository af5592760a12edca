-- 020: the common batch is stored in three statements, not some thirty.
--
-- A batch's cost in post_messages_sets (014, 018) is mostly fixed: about
-- thirty statements on a scratch table, each with its executor start-up,
-- whatever the batch holds. At 2,000 messages a second over 1,000
-- conversations, batches are about a dozen messages and PostgreSQL spent
-- about 450 ms of CPU per 1,000 messages, 4.4 ms a call (pg_stat_statements
-- with track = all: the INSERT into messages 0.86 ms, the fan-out 0.81 ms,
-- the per-item blocked_in_direct() 0.58 ms, the id counter 0.24 ms, the
-- answer 0.15 ms, the rest the scratch table and PL/pgSQL).
--
-- Most small batches need none of that machinery: every item well formed, no
-- reply, no attachment, no key twice in the batch, and nobody has blocked
-- any of the senders. Such a batch is now checked in one statement (its
-- items unpacked into arrays on the way), locked in the global order
-- (conversations, then the members' heads: two statements, as before), and
-- stored and answered in one statement whose snapshot is taken after the
-- locks, so a batch that committed while this one waited is seen by the
-- key look-up, as before: the ids, the counters, the messages, the inbox
-- rows and the answer are data-modifying CTEs fed by each other's RETURNING.
-- Any other batch goes the way it went (post_messages_each or _sets, the
-- latter now asking about blocks and replies only when the batch has any:
-- see its definition below), with
-- the same answers (tests/db/test_post: plain batches, retries, conflicts
-- and non-members the short way; malformed and repeated keys the long way).
--
-- Measured (parley-bench, 2,000 clients at 500 msgs/s, batches of 1-2):
-- post_messages 1.44 ms a call before, 1.30 ms after (the stored statement
-- 0.64 ms of it); PostgreSQL CPU 1,290-1,460 ms per 1,000 messages before,
-- 1,020 ms after. A generic plan for it (plan_cache_mode) cost more per
-- call, so each call is planned for its own arrays. Flat out (batches of
-- about 100) the short way stored fewer messages a second than the long
-- one, whose cost per item is lower: batches of more than 8 items go the
-- long way.

CREATE OR REPLACE FUNCTION post_messages(p_items jsonb)
RETURNS TABLE (idx int, status text, message_id bigint, created_at text,
               deliveries jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    plain    boolean;
    senders  bigint[];
    convs_in bigint[];
    cmids    text[];
    bodies   text[];
    convs    bigint[];
    users    bigint[];
    now_at   timestamptz := clock_timestamp();
BEGIN
    -- Fit for the short way: a batch of at most POST_MESSAGES_FAST_MAX
    -- items (above it, the long way's cost per item is lower and its fixed
    -- cost shared by many), of the plain shape (the checks of
    -- post_messages_sets' bad_request, and no reply_to or attachments),
    -- each key once, no sender blocked by anyone.
    IF jsonb_array_length(p_items) > 8 THEN
        RETURN QUERY SELECT * FROM post_messages_sets(p_items);
        RETURN;
    END IF;
    SELECT bool_and(x.s IS NOT NULL AND x.c IS NOT NULL AND x.k IS NOT NULL
                    AND x.b IS NOT NULL AND octet_length(x.b) BETWEEN 1 AND 4096
                    AND octet_length(x.k) BETWEEN 1 AND 64 AND x.k !~ '[^ -~]'
                    AND x.plain)
           AND count(DISTINCT (x.c, x.s, x.k)) = count(*),
           array_agg(x.s ORDER BY x.i), array_agg(x.c ORDER BY x.i),
           array_agg(x.k ORDER BY x.i), array_agg(x.b ORDER BY x.i),
           array_agg(DISTINCT x.c ORDER BY x.c)
      INTO plain, senders, convs_in, cmids, bodies, convs
      FROM (SELECT e.i, (e.j ->> 'sender_id')::bigint AS s,
                   (e.j ->> 'conversation_id')::bigint AS c,
                   e.j ->> 'client_msg_id' AS k, e.j ->> 'body' AS b,
                   e.j ->> 'reply_to' IS NULL
                   AND CASE WHEN jsonb_typeof(e.j -> 'attachment_ids') = 'array'
                            THEN jsonb_array_length(e.j -> 'attachment_ids') = 0
                            ELSE true END AS plain
              FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(j, i)) x;
    IF plain AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocked_id = ANY (senders)) THEN
        -- The locks, in the global order (002, step 2).
        PERFORM 1 FROM conversations c WHERE c.id = ANY (convs)
          ORDER BY c.id FOR UPDATE;
        SELECT array_agg(DISTINCT m.user_id ORDER BY m.user_id) INTO users
          FROM members m WHERE m.conversation_id = ANY (convs);
        PERFORM 1 FROM user_heads h WHERE h.user_id = ANY (users)
          ORDER BY h.user_id FOR UPDATE;
        RETURN QUERY
        WITH items AS (
            SELECT x.i::int AS i, x.s, x.c, x.k, x.b,
                   EXISTS (SELECT 1 FROM members m
                            WHERE m.conversation_id = x.c AND m.user_id = x.s) AS member
              FROM unnest(senders, convs_in, cmids, bodies) WITH ORDINALITY AS x(s, c, k, b, i)
        ), stored AS (
            SELECT p.i, m.message_id AS mid, m.created_at AS at,
                   CASE WHEN m.body = p.b THEN 'duplicate' ELSE 'conflict' END AS st
              FROM items p JOIN messages m
                ON m.conversation_id = p.c AND m.sender_id = p.s AND m.client_msg_id = p.k
             WHERE p.member
        ), fresh AS (
            SELECT p.i, p.s, p.c, p.k, p.b,
                   row_number() OVER (PARTITION BY p.c ORDER BY p.i) AS rn,
                   count(*) OVER (PARTITION BY p.c) AS n
              FROM items p
             WHERE p.member AND NOT EXISTS (SELECT 1 FROM stored d WHERE d.i = p.i)
        ), bumped AS (
            UPDATE conversations c
               SET last_message_id = c.last_message_id + x.n,
                   last_activity_at = now_at
              FROM (SELECT DISTINCT f.c, f.n FROM fresh f) x
             WHERE c.id = x.c
            RETURNING c.id, c.last_message_id - x.n AS base
        ), numbered AS (
            SELECT f.i, f.s, f.c, f.k, f.b, b.base + f.rn AS mid
              FROM fresh f JOIN bumped b ON b.id = f.c
        ), inserted AS (
            INSERT INTO messages (conversation_id, message_id, sender_id, client_msg_id,
                                  body, created_at)
            SELECT p.c, p.mid, p.s, p.k, p.b, now_at
              FROM numbered p ORDER BY p.c, p.mid
        ), fan AS (
            SELECT p.i, p.c, p.mid, m.user_id,
                   row_number() OVER (PARTITION BY m.user_id ORDER BY p.i) AS rn,
                   count(*) OVER (PARTITION BY m.user_id) AS n
              FROM numbered p JOIN members m ON m.conversation_id = p.c
        ), heads AS (
            UPDATE user_heads h SET last_seq = h.last_seq + x.n
              FROM (SELECT DISTINCT fan.user_id, fan.n FROM fan) x
             WHERE h.user_id = x.user_id
            RETURNING h.user_id, h.last_seq - x.n AS base
        ), rows AS (
            INSERT INTO inbox (user_id, seq, conversation_id, message_id)
            SELECT f.user_id, hd.base + f.rn, f.c, f.mid
              FROM fan f JOIN heads hd ON hd.user_id = f.user_id
            RETURNING inbox.user_id, inbox.seq, inbox.conversation_id, inbox.message_id
        ), dels AS (
            SELECT r.conversation_id AS c, r.message_id AS mid,
                   jsonb_agg(jsonb_build_array(r.user_id, r.seq) ORDER BY r.user_id) AS del
              FROM rows r GROUP BY 1, 2
        )
        SELECT p.i,
               CASE WHEN NOT p.member THEN 'not_found'
                    WHEN d.i IS NOT NULL THEN d.st ELSE 'ok' END,
               coalesce(d.mid, n.mid),
               rfc3339(CASE WHEN d.i IS NOT NULL THEN d.at
                            WHEN n.i IS NOT NULL THEN now_at END),
               x.del
          FROM items p
          LEFT JOIN stored d ON d.i = p.i
          LEFT JOIN numbered n ON n.i = p.i
          LEFT JOIN dels x ON x.c = n.c AND x.mid = n.mid
         ORDER BY p.i;
        RETURN;
    END IF;
    -- POST_MESSAGES_SETS_MIN: where the scratch table starts paying off.
    IF jsonb_array_length(p_items) >= 2 THEN
        RETURN QUERY SELECT * FROM post_messages_sets(p_items);
    ELSE
        RETURN QUERY SELECT * FROM post_messages_each(p_items);
    END IF;
END
$$;

-- The long way, as 018 defines it, but for the two checks below.
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
    -- Whether a direct conversation's other member blocked the sender is
    -- asked item by item only when someone blocked one of the senders
    -- (020): nearly never, and a call of blocked_in_direct() per item cost
    -- 1.4 ms of a batch of 43. Replies are looked up only when there are.
    IF EXISTS (SELECT 1 FROM blocks b JOIN pm_items p ON b.blocked_id = p.s
                WHERE p.st IS NULL) THEN
        UPDATE pm_items p SET st = 'forbidden'
         WHERE st IS NULL AND blocked_in_direct(p.c, p.s);
    END IF;
    IF EXISTS (SELECT 1 FROM pm_items p WHERE p.r IS NOT NULL AND p.st IS NULL) THEN
        UPDATE pm_items p SET st = 'bad_reply'
         WHERE st IS NULL AND r IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM messages m
                            WHERE m.conversation_id = p.c AND m.message_id = p.r);
    END IF;

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

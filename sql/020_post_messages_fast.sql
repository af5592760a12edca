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
-- Any other batch goes the way it went (post_messages_each or _sets), with
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

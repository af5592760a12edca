-- 012: messages is hash-partitioned by conversation_id, inbox by user_id,
-- 8 partitions each.
--
-- Every read and write of the history names its conversation (a page of
-- history, posting's dedupe and insert, a conversation's last message and
-- unread count), and every read of the inbox names its user (replay, gap
-- fill, /sync, the notifier's badge). The keys already lead with those
-- columns: messages (conversation_id, message_id) and its dedupe key
-- (conversation_id, sender_id, client_msg_id), inbox (user_id, seq). So they
-- stay the tables' primary and unique keys, and each of those lookups is
-- pruned to one partition, whose indexes and vacuums are an 8th of the
-- table's.
--
-- The count is fixed here. Statements that join a page of rows to their
-- messages (an inbox page, search, the notifier) cannot be pruned before
-- they run: each opens every partition of messages, so every partition
-- costs every such read. On 1 million messages and 2 million inbox rows, a
-- /sync page of 50 ran 3,260 a second with 8 partitions, 2,840-2,980 with
-- 16, 2,540-2,620 with 32, and 3,460-3,480 unpartitioned (pgbench, 2
-- clients, the statements below). A hash partition splits later without
-- copying the rest: detach it, attach two of twice the modulus in its
-- place (8 and 16 may coexist), and move its rows into them.
--
-- The tables are rebuilt and filled from the old ones in this transaction,
-- which holds both old tables locked throughout: sends and reads wait for
-- the copy, none is lost. Rows, keys and every message_id stay as they were
-- (the next id still comes from conversations.last_message_id). What the
-- old tables had is made again on the new: the CHECKs, defaults and keys
-- under their old names, the search indexes with 009's
-- gin_pending_list_limit (a partitioned index passes it to each partition's
-- index), and their owner and grants. message_out() and message_json() take
-- a messages row, so they are dropped with the old table and created again,
-- unchanged (005). The functions and triggers that name the tables in their
-- bodies (post_messages and the rest) find the new ones by name.
--
-- conversation_json() (003) becomes PL/pgSQL, with the same result. A SQL
-- function's statement is planned again by every statement that calls it,
-- and its two reads of messages, planned for every partition, made a
-- conversation list more than twice as slow. PL/pgSQL keeps the plan for
-- the session, and the reads name p_conversation (which c.id equals), so
-- each is pruned to one partition as it starts.
--
-- Parley's statements stay as they were where they name a conversation or a
-- user. Those that join a page of rows to their messages (an inbox page,
-- search, the notifier's checks) read each message on its own (LATERAL,
-- LIMIT 1), pruned to its partition when it runs, and Parley's connections
-- keep one generic plan per statement (lib/db.c): PostgreSQL's estimates
-- count every partition where a run reads one, and would otherwise plan
-- each call again, or hash all of messages to find a page's messages.
--
-- post_messages_sets() (010) is defined again with one change: a batch of
-- up to 8 conversations checks its keys against messages one conversation
-- at a time, each check pruned to one partition as it starts, where the
-- join set up scans of every partition at every call. Results are the
-- same.
--
-- A partitioned table holds no storage parameters, so the autovacuum
-- settings go on the partitions, and are chosen so that 16 partitions are
-- not vacuumed and analyzed 8 times as often as two tables were: each run
-- makes every connection plan its statements on that table again (a
-- generic plan names every partition). A messages partition is vacuumed,
-- merging its GIN pending lists, after 2,500 new rows: 20,000 across the
-- table, 009's bound on the pending rows a search may read. Partitions are
-- analyzed after 20,000 changed rows and a tenth of their size (the
-- default floor is 50: with it, and 32 partitions a table, a minute of
-- sends in pgbench ran 790 vacuums and analyzes, and planning took 14% of
-- PostgreSQL's CPU instead of 4%);
-- inbox partitions are vacuumed after 20,000 new rows and a fifth.

LOCK TABLE messages, inbox IN ACCESS EXCLUSIVE MODE;

CREATE TABLE messages_new (
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    sender_id       bigint NOT NULL,
    client_msg_id   text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_message_id_check CHECK (message_id > 0),
    CONSTRAINT messages_client_msg_id_check
        CHECK (octet_length(client_msg_id) BETWEEN 1 AND 64),
    CONSTRAINT messages_body_check CHECK (octet_length(body) BETWEEN 1 AND 4096)
) PARTITION BY HASH (conversation_id);

CREATE TABLE inbox_new (
    user_id         bigint NOT NULL,
    seq             bigint NOT NULL,
    conversation_id bigint NOT NULL,
    message_id      bigint NOT NULL,
    CONSTRAINT inbox_seq_check CHECK (seq > 0)
) PARTITION BY HASH (user_id);

DO $$
BEGIN
    FOR r IN 0 .. 7 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF messages_new '
                       'FOR VALUES WITH (MODULUS 8, REMAINDER %s) '
                       'WITH (autovacuum_vacuum_insert_threshold = 2500, '
                       'autovacuum_vacuum_insert_scale_factor = 0, '
                       'autovacuum_analyze_threshold = 20000)',
                       'messages_p' || r::text, r);
        EXECUTE format('CREATE TABLE %I PARTITION OF inbox_new '
                       'FOR VALUES WITH (MODULUS 8, REMAINDER %s) '
                       'WITH (autovacuum_vacuum_insert_threshold = 20000, '
                       'autovacuum_analyze_threshold = 20000)',
                       'inbox_p' || r::text, r);
    END LOOP;
END
$$;

-- The rows first, the indexes after: one build per index, not one insert
-- per row.
INSERT INTO messages_new (conversation_id, message_id, sender_id,
                          client_msg_id, body, created_at)
SELECT conversation_id, message_id, sender_id, client_msg_id, body, created_at
  FROM messages;
INSERT INTO inbox_new (user_id, seq, conversation_id, message_id)
SELECT user_id, seq, conversation_id, message_id
  FROM inbox;

-- The old owner and grants (none in a stack scripts/dev made, where the
-- migrating role owns everything), on the parent and on every partition.
DO $$
DECLARE
    t   record;
    g   record;
    rel regclass;
BEGIN
    FOR t IN SELECT c.oid::regclass AS old, (c.relname || '_new')::regclass AS new,
                    c.relowner::regrole AS owner
               FROM pg_class c
              WHERE c.oid IN ('messages'::regclass, 'inbox'::regclass) LOOP
        FOR rel IN SELECT t.new UNION ALL
                   SELECT i.inhrelid::regclass FROM pg_inherits i
                    WHERE i.inhparent = t.new LOOP
            EXECUTE format('ALTER TABLE %s OWNER TO %s', rel, t.owner);
            FOR g IN SELECT a.privilege_type, a.is_grantable,
                            CASE a.grantee WHEN 0 THEN 'PUBLIC'
                                 ELSE a.grantee::regrole::text END AS grantee
                       FROM pg_class c, aclexplode(c.relacl) a
                      WHERE c.oid = t.old AND a.grantee <> c.relowner LOOP
                EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type,
                               rel, g.grantee,
                               CASE WHEN g.is_grantable
                                    THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        END LOOP;
    END LOOP;
END
$$;

DROP FUNCTION message_json(messages);
DROP FUNCTION message_out(messages, bigint, text);
DROP TABLE messages;
DROP TABLE inbox;
ALTER TABLE messages_new RENAME TO messages;
ALTER TABLE inbox_new RENAME TO inbox;

ALTER TABLE messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (conversation_id, message_id),
    ADD CONSTRAINT messages_conversation_id_sender_id_client_msg_id_key
        UNIQUE (conversation_id, sender_id, client_msg_id);
CREATE INDEX messages_words ON messages USING gin (to_tsvector('simple', body))
    WITH (gin_pending_list_limit = 32768);
CREATE INDEX messages_trgm ON messages USING gin (body gin_trgm_ops)
    WITH (gin_pending_list_limit = 32768);
ALTER TABLE inbox ADD CONSTRAINT inbox_pkey PRIMARY KEY (user_id, seq);

-- 005's functions, unchanged, on the new row type.
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

CREATE FUNCTION message_json(m messages) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT message_out(m)::jsonb
$$;

-- 003's conversation_json(), the same object, in PL/pgSQL (above).
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
        'last_message', (SELECT message_json(lm) FROM messages lm
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

-- 010's post_messages_sets(), with the stored keys looked up conversation
-- by conversation when the batch has few (above). The rest is unchanged.
CREATE OR REPLACE FUNCTION post_messages_sets(p_items jsonb)
RETURNS TABLE (idx int, status text, message_id bigint, created_at text,
               deliveries jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    convs    bigint[];
    users    bigint[];
    now_at   timestamptz := clock_timestamp();
    calls    int;
    conv     bigint;
BEGIN
    -- The batch, numbered in input order, with what can be said without
    -- locks: malformed items, non-members, keys already stored.
    -- A scratch table per connection (007: emptied here, not at COMMIT).
    IF to_regclass('pg_temp.pm_batch') IS NULL THEN
        CREATE TEMP TABLE pm_batch (
            i int PRIMARY KEY, s bigint, c bigint, k text, b text,
            st text, mid bigint, at timestamptz, del jsonb
        );
    END IF;
    -- DELETE leaves dead rows, which nothing vacuums in a temporary table;
    -- every 64th call TRUNCATE drops them (and costs the plans once).
    calls := coalesce(nullif(current_setting('parley.pm_calls', true), ''),
                      '0')::int + 1;
    IF calls >= 64 THEN
        TRUNCATE pm_batch;
        calls := 0;
    ELSE
        DELETE FROM pm_batch;
    END IF;
    PERFORM set_config('parley.pm_calls', calls::text, false);
    INSERT INTO pm_batch (i, s, c, k, b)
    SELECT e.i, (e.j ->> 'sender_id')::bigint, (e.j ->> 'conversation_id')::bigint,
           e.j ->> 'client_msg_id', e.j ->> 'body'
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e(j, i);

    UPDATE pm_batch SET st = 'bad_request'
     WHERE s IS NULL OR c IS NULL OR k IS NULL OR b IS NULL
        OR octet_length(b) NOT BETWEEN 1 AND 4096
        OR octet_length(k) NOT BETWEEN 1 AND 64 OR k ~ '[^ -~]';
    UPDATE pm_batch p SET st = 'not_found'
     WHERE st IS NULL AND NOT EXISTS (SELECT 1 FROM members m
                                      WHERE m.conversation_id = p.c AND m.user_id = p.s);

    -- Lock in the global order: conversations, then users (002, step 2).
    SELECT array_agg(DISTINCT p.c ORDER BY p.c) INTO convs
      FROM pm_batch p WHERE p.st IS NULL;
    IF convs IS NOT NULL THEN
        PERFORM 1 FROM conversations c WHERE c.id = ANY (convs)
          ORDER BY c.id FOR UPDATE;
        SELECT array_agg(DISTINCT m.user_id ORDER BY m.user_id) INTO users
          FROM members m WHERE m.conversation_id = ANY (convs);
        PERFORM 1 FROM user_heads h WHERE h.user_id = ANY (users)
          ORDER BY h.user_id FOR UPDATE;
    END IF;

    -- Under the locks: membership again, then dedupe against stored rows
    -- (a batch that committed while this one waited included) and within
    -- the batch (the first occurrence of a key is the one stored).
    UPDATE pm_batch p SET st = 'not_found'
     WHERE st IS NULL AND NOT EXISTS (SELECT 1 FROM members m
                                      WHERE m.conversation_id = p.c AND m.user_id = p.s);
    -- A batch of few conversations looks its keys up one conversation at a
    -- time, each lookup pruned to its partition of messages as it starts
    -- (012); as one join, every call would set up a scan of every one.
    IF cardinality(convs) > 8 THEN
        UPDATE pm_batch p
           SET st = CASE WHEN m.body = p.b THEN 'duplicate' ELSE 'conflict' END,
               mid = m.message_id, at = m.created_at
          FROM messages m
         WHERE p.st IS NULL AND m.conversation_id = p.c AND m.sender_id = p.s
           AND m.client_msg_id = p.k;
    ELSIF convs IS NOT NULL THEN
        FOREACH conv IN ARRAY convs LOOP
            UPDATE pm_batch p
               SET st = CASE WHEN m.body = p.b THEN 'duplicate' ELSE 'conflict' END,
                   mid = m.message_id, at = m.created_at
              FROM messages m
             WHERE p.st IS NULL AND p.c = conv AND m.conversation_id = conv
               AND m.sender_id = p.s AND m.client_msg_id = p.k;
        END LOOP;
    END IF;
    UPDATE pm_batch p SET st = 'later'
      FROM pm_batch f
     WHERE p.st IS NULL AND f.st IS NULL AND f.c = p.c AND f.s = p.s
       AND f.k = p.k AND f.i < p.i;

    -- New messages: ids follow each conversation's counter in input order.
    WITH fresh AS (
        SELECT p.i, p.c, row_number() OVER (PARTITION BY p.c ORDER BY p.i) AS rn,
               count(*) OVER (PARTITION BY p.c) AS n
          FROM pm_batch p WHERE p.st IS NULL
    ), bumped AS (
        UPDATE conversations c
           SET last_message_id = c.last_message_id + x.n,
               last_activity_at = now_at
          FROM (SELECT DISTINCT fresh.c, fresh.n FROM fresh) x
         WHERE c.id = x.c
        RETURNING c.id, c.last_message_id - x.n AS base
    )
    UPDATE pm_batch p SET st = 'ok', mid = b.base + f.rn, at = now_at
      FROM fresh f JOIN bumped b ON b.id = f.c
     WHERE p.i = f.i;

    INSERT INTO messages (conversation_id, message_id, sender_id, client_msg_id,
                          body, created_at)
    SELECT p.c, p.mid, p.s, p.k, p.b, p.at
      FROM pm_batch p WHERE p.st = 'ok' ORDER BY p.c, p.mid;

    -- One inbox row per member and message; each user's seqs follow the
    -- batch's order, after the user's counter (locked above until COMMIT).
    WITH fan AS (
        SELECT p.i, m.user_id,
               row_number() OVER (PARTITION BY m.user_id ORDER BY p.i) AS rn,
               count(*) OVER (PARTITION BY m.user_id) AS n
          FROM pm_batch p JOIN members m ON m.conversation_id = p.c
         WHERE p.st = 'ok'
    ), heads AS (
        UPDATE user_heads h SET last_seq = h.last_seq + x.n
          FROM (SELECT DISTINCT fan.user_id, fan.n FROM fan) x
         WHERE h.user_id = x.user_id
        RETURNING h.user_id, h.last_seq - x.n AS base
    ), rows AS (
        INSERT INTO inbox (user_id, seq, conversation_id, message_id)
        SELECT f.user_id, hd.base + f.rn, p.c, p.mid
          FROM fan f JOIN heads hd ON hd.user_id = f.user_id
          JOIN pm_batch p ON p.i = f.i
        RETURNING inbox.user_id, inbox.seq, inbox.conversation_id, inbox.message_id
    )
    UPDATE pm_batch p SET del = d.del
      FROM (SELECT r.conversation_id, r.message_id,
                   jsonb_agg(jsonb_build_array(r.user_id, r.seq) ORDER BY r.user_id) AS del
              FROM rows r GROUP BY 1, 2) d
     WHERE p.st = 'ok' AND d.conversation_id = p.c AND d.message_id = p.mid;

    -- A key repeated in the batch answers like a retry of its first item.
    UPDATE pm_batch p
       SET st = CASE WHEN f.b = p.b THEN 'duplicate' ELSE 'conflict' END,
           mid = f.mid, at = f.at
      FROM pm_batch f
     WHERE p.st = 'later' AND f.c = p.c AND f.s = p.s AND f.k = p.k
       AND f.st = 'ok';

    RETURN QUERY
        SELECT p.i, p.st, p.mid, rfc3339(p.at), p.del
          FROM pm_batch p ORDER BY p.i;
END
$$;

-- Statistics for the planner now, not at autovacuum's first visit (which
-- never analyzes a partitioned parent).
ANALYZE messages;
ANALYZE inbox;

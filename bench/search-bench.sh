#!/bin/bash
# bench/search-bench.sh: the cost of the worst searches on one conversation
# of N messages (default 1,000,000), as PostgreSQL runs them.
#
#   [PARLEY_PG_PORT=...] bench/search-bench.sh [N]
#
# With a stack's PostgreSQL up (scripts/dev up; the test stack's by default):
# creates the database parley_search_bench beside the stack's own (dropped
# first, and left for inspection afterwards), applies sql/ to it, writes N
# messages of 5 to 14 common English words into one conversation of two
# users with SQL, and builds the search indexes. Then times each query below
# twice with EXPLAIN ANALYZE (the second, warm run is printed) in two forms,
# without a statement timeout:
#   - "any length": every message matching the query's words or the query as
#     a substring, whatever its length, ranked;
#   - "as served": what fcgi/messages.c runs: substrings only when a word of
#     the query has 3 characters or more, else whole words only, and only
#     the newest 5,000 matches of each kind ranked.
# parley-api cancels any statement at [database] statement_timeout_ms (5000
# by default) and answers 503, so "as served" times above that are answered
# 503 after 5 s. Keep the two statements in step with fcgi/messages.c.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-1000000}
# The test stack's PostgreSQL (scripts/stacks, PARLEY_PG_PORT overrides it).
# shellcheck source=scripts/stacks
. "$TOP/scripts/stacks"
stack_ports test
DB=parley_search_bench
QUERIES=("e" "th" "ok" "a" "to" "the" "and" "meeting" "zzz" "xq")

pg() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U parley "$@"; }

pg -d parley -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>&1 | grep -v "does not exist, skipping" || true
for f in "$TOP"/sql/[0-9]*.sql; do
	pg -d "$DB" -1 -f "$f" >/dev/null
done

started=$(date +%s)
pg -d "$DB" <<SQL
INSERT INTO users (username, password_hash, display_name) VALUES ('alice', 'x', 'Alice'), ('bob', 'x', 'Bob');
INSERT INTO conversations (kind, created_by, direct_key) VALUES ('direct', 1, '1:2');
INSERT INTO members (conversation_id, user_id) VALUES (1, 1), (1, 2);
-- Bulk load: the search indexes are built once afterwards.
DROP INDEX messages_words;
DROP INDEX messages_trgm;
WITH w AS (SELECT string_to_array(
  'the of and to a in is you that it he was for on are as with his they I at be this have from '
  'or one had by word but not what all were we when your can said there use an each which she do '
  'how their if will up other about out many then them these so some her would make like him into '
  'time has look two more write go see number no way could people my than first water been call '
  'who oil its now find long down day did get come made may part ok lunch meeting tomorrow today '
  'thanks sure yes great see later home work coffee train late call back send photo', ' ') AS words)
INSERT INTO messages (conversation_id, message_id, sender_id, client_msg_id, body, created_at)
SELECT 1, g, 1 + g % 2, 'b' || g,
       (SELECT string_agg(w.words[1 + floor(random() * array_length(w.words, 1))::int], ' ')
          FROM w, generate_series(1, 5 + g % 10) AS s(i)),
       now() - make_interval(secs => ($N - g))
FROM generate_series(1, $N) AS g;
UPDATE conversations SET last_message_id = $N WHERE id = 1;
CREATE INDEX messages_words ON messages USING gin (to_tsvector('simple', body));
CREATE INDEX messages_trgm ON messages USING gin (body gin_trgm_ops);
VACUUM ANALYZE messages;
SQL
echo "# $N messages written and indexed in $(($(date +%s) - started)) s"

# The statements: $1 user, $2 q, $3 conversation (0: all), $4 limit.
q="WITH q AS (SELECT plainto_tsquery('simple', \$2) AS ts, '%' || replace(replace(replace(\$2, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' AS pat)"
out="SELECT json_build_object('messages', coalesce(json_agg(message_out(r.msg, NULL) ORDER BY r.rank DESC, r.created_at DESC, r.message_id DESC), '[]')) FROM ("
# "any length": every match ranked, words or substrings of any length.
any="$q $out SELECT m AS msg, m.created_at, m.message_id, ts_rank(to_tsvector('simple', m.body), q.ts) AS rank FROM q, messages m JOIN members b ON b.conversation_id = m.conversation_id AND b.user_id = \$1 WHERE (\$3::bigint = 0 OR m.conversation_id = \$3) AND (to_tsvector('simple', m.body) @@ q.ts OR m.body ILIKE q.pat) ORDER BY rank DESC, m.created_at DESC, m.message_id DESC LIMIT \$4) r"
# "as served" (fcgi/messages.c): the newest 5000 matches of each kind, ranked.
branch() {
	printf '%s' "(SELECT m.conversation_id, m.message_id FROM q, messages m JOIN members b ON b.conversation_id = m.conversation_id AND b.user_id = \$1 WHERE (\$3::bigint = 0 OR m.conversation_id = \$3) AND $1 ORDER BY m.created_at DESC, m.message_id DESC LIMIT 5000)"
}
ranked="$out SELECT m.msg, m.created_at, m.message_id, ts_rank(to_tsvector('simple', m.body), q.ts) AS rank FROM q, c CROSS JOIN LATERAL (SELECT m AS msg, m.created_at, m.message_id, m.body FROM messages m WHERE m.conversation_id = c.conversation_id AND m.message_id = c.message_id LIMIT 1) m ORDER BY rank DESC, m.created_at DESC, m.message_id DESC LIMIT \$4) r"
words=$(branch "to_tsvector('simple', m.body) @@ q.ts")
substrings=$(branch "m.body ILIKE q.pat")
served_words="$q, c AS ($words) $ranked"
served_substrings="$q, c AS ($words UNION $substrings) $ranked"

# ms QUERY STATEMENT: the warm execution time of one search, in ms, in a
# session set up as lib/db.c sets up parley-api's.
ms() {
	local q=${1//\'/\'\'}
	pg -d "$DB" <<SQL | sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p' | tail -1
SET statement_timeout = 0;
SET jit = off;
SET plan_cache_mode = force_generic_plan;
SET max_parallel_workers_per_gather = 0;
PREPARE s(bigint, text, bigint, bigint) AS $2;
EXPLAIN (ANALYZE, TIMING OFF) EXECUTE s(1, '$q', 0, 20);
EXPLAIN (ANALYZE, TIMING OFF) EXECUTE s(1, '$q', 0, 20);
SQL
}

printf '| q | matches | any length (ms) | as served (ms) |\n| --- | --- | --- | --- |\n'
for text in "${QUERIES[@]}"; do
	t_any=$(ms "$text" "$any")
	longest=$(printf '%s' "$text" | tr ' ' '\n' | awk '{ n = length($0); if (n > m) m = n } END { print m + 0 }')
	if [ "$longest" -ge 3 ]; then t_served=$(ms "$text" "$served_substrings"); else t_served=$(ms "$text" "$served_words"); fi
	matches=$(pg -d "$DB" -c "SELECT count(*) FROM messages WHERE to_tsvector('simple', body) @@ plainto_tsquery('simple', '${text//\'/\'\'}') OR body ILIKE '%${text//\'/\'\'}%'")
	printf '| `%s` | %s | %s | %s |\n' "$text" "$matches" "$t_any" "$t_served"
done

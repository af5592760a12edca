#!/bin/bash
# bench/push-bench.sh: pushes per second from parley-notify to the test
# stack's fake APNs (service "pushfake"), over one multiplexed HTTP/2
# connection.
#
#   PARLEY_STACK=test [PARLEY_RUNDIR=... PARLEY_*_PORT=...] bench/push-bench.sh [N]
#
# With the test stack up: creates N users (default 2000) with an APNs token
# each in one group conversation, stops the notifier, queues one push job per
# user on parley:push, starts the notifier again and times the requests the
# fake server receives. Prints jobs, seconds, pushes/s and the connections
# the notifier opened (from its /metrics).
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-2000}
# The test stack's runtime dir and ports (scripts/stacks, PARLEY_* overrides).
# shellcheck source=scripts/stacks
. "$TOP/scripts/stacks"
stack_ports test
FAKE=https://127.0.0.1:$PUSHFAKE_PORT
METRICS=http://127.0.0.1:$NOTIFY_METRICS_PORT/metrics
CA=$RUNDIR/etc/push/tls.crt
export PARLEY_STACK=test

tag=b$(date +%s)
conv=$(psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U parley parley <<SQL
INSERT INTO users (username, password_hash, display_name)
  SELECT '$tag-' || g, 'x', 'Bench ' || g FROM generate_series(0, $N) AS g;
INSERT INTO devices (user_id, platform, push_token, push_token_set_at)
  SELECT id, 'apns', md5(username) || md5(username || 'x'), now()
  FROM users WHERE username LIKE '$tag-%' AND username <> '$tag-0';
INSERT INTO sessions (user_id, device_id, expires_at)
  SELECT d.user_id, d.id, now() + interval '1 day' FROM devices d
  JOIN users u ON u.id = d.user_id
  WHERE u.username LIKE '$tag-%' AND u.username <> '$tag-0';
WITH c AS (INSERT INTO conversations (kind, title, last_message_id)
  VALUES ('group', 'push bench', 1) RETURNING id),
m AS (INSERT INTO members (conversation_id, user_id)
  SELECT c.id, u.id FROM c, users u WHERE u.username LIKE '$tag-%' RETURNING conversation_id),
x AS (INSERT INTO messages (conversation_id, message_id, sender_id, client_msg_id, body)
  SELECT c.id, 1, u.id, 'bench', 'a benchmark push' FROM c, users u WHERE u.username = '$tag-0')
SELECT id FROM c;
SQL
)
"$TOP/scripts/dev" stop notify >/dev/null
psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U parley parley -c \
	"SELECT id FROM users WHERE username LIKE '$tag-%' AND username <> '$tag-0'" |
	awk -v c="$conv" '{ print "XADD parley:push * user_id " $1 " conversation_id " c " message_id 1 seq 1" }' |
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" >/dev/null
curl -s --cacert "$CA" -X POST "$FAKE/_reset" >/dev/null
"$TOP/scripts/dev" start notify >/dev/null
deadline=$((SECONDS + 120))
while :; do
	sent=$(curl -s "$METRICS" | awk '$1 == "parley_notify_pushes_sent_total" { print $2 }')
	[ "${sent:-0}" -lt "$N" ] || break
	[ "$SECONDS" -lt "$deadline" ] || { echo "push-bench: only ${sent:-0} of $N sent" >&2; exit 1; }
	sleep 0.2
done
curl -s --cacert "$CA" "$FAKE/_requests" | python3 -c '
import json, sys
rs = [r for r in json.load(sys.stdin) if r.get("kind") == "apns"]
ok = [r for r in rs if r["status"] == 200]
t = (max(r["time"] for r in rs) - min(r["time"] for r in rs)) / 1000.0
print("push-bench: %d APNs requests (%d accepted) in %.3f s: %.0f pushes/s"
      % (len(rs), len(ok), t, len(rs) / t if t else float("inf")))'
curl -s "$METRICS" | awk '$1 == "parley_notify_connections_total" { print "push-bench: connections opened by the notifier: " $2 }'

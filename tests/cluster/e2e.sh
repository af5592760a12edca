#!/bin/bash
# tests/cluster/e2e.sh: the REST e2e suites and the web client's browser
# tests against the cluster bed's nginx ("scripts/cluster e2e", which sets
# PARLEY_TEST_URL and the rest; see scripts/cluster env).
#
#   e2e.sh [SUITE...]    e.g. 02-auth 05-messages browser/01-chat
#                        (default: the lists below)
#
# The suites are those tests/stack-tests.sh also runs through Apache (the
# REST surface), with health and authorization, and the live and resume
# suites through a relay's public URL (PARLEY_TEST_RELAY, /r/1/ws on nginx).
# The few tests that stop a local stack's services (scripts/dev stop) or
# read its run dir are left out by name (PARLEY_TEST_SKIP), each with the
# reason below. Prints one line per suite and "e2e: N passed, N failed";
# exits 1 if any failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
e2e=$here/../e2e
: "${PARLEY_TEST_URL:?run through scripts/cluster e2e}"

SUITES=(01-health 02-auth 03-friends 04-conversations 05-messages 06-sync-devices
	10-bad-input 12-authz 15-deploy-headers 20-live 21-resume)
# Tests that stop or read a local stack (scripts/dev stop, its run dir, a
# relay's own port): on the bed, the cluster faults do that part.
SKIP=(
	test_redis_down_degrades_then_recovers    # 01: scripts/dev stop redis
	test_postgres_down_degrades_then_recovers # 01: scripts/dev stop postgres
	test_api_down_is_503_json_from_nginx      # 01: scripts/dev stop api
	test_relay_metrics_are_not_public         # 15: the relay's own port
	test_sse_token_never_reaches_the_logs     # 15: scripts/dev stop relay, the run dir's logs
	test_metrics_count_what_happened          # 20: the relay's own /metrics
	test_search_past_the_statement_timeout_is_503 # 05: a lock on the primary; the bed's searches go to a standby
)

# Every browser test but 09-server-down, which stops a local stack's API.
BROWSER=(01-chat 02-resume 03-history-search 04-group 05-long-poll
	06-messages-ux 07-notifications 08-friends-live)
for b in "${BROWSER[@]}"; do SUITES+=("browser/$b"); done
[ $# -eq 0 ] || SUITES=("$@")
# The browser tests' node and Chromium, as tests/stack-tests.sh picks them.
node=${PARLEY_NODE:-}
[ -n "$node" ] || { [ -x /usr/bin/node ] && node=/usr/bin/node; } || node=$(command -v node || true)
export PARLEY_TEST_SKIP="${SKIP[*]}" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# No local stack: rest.py and others must not find one's files.
export PARLEY_RUNDIR=${PARLEY_CLUSTER_RUNDIR:-/var/tmp/parley-cluster}
pass=0 fail=0
for s in "${SUITES[@]}"; do
	case $s in
	browser/*) f=$here/../browser/${s#browser/}; f=${f%.mjs}.mjs ;;
	*) f=$e2e/${s%.py}.py ;;
	esac
	[ -f "$f" ] || { echo "e2e: no suite $f" >&2; fail=$((fail + 1)); continue; }
	t0=$SECONDS
	if [[ $s == browser/* ]]; then
		out=$(cd "$here/../browser" && timeout 600 "$node" run.mjs "${f##*/}" 2>&1)
	else
		out=$(timeout 600 /usr/bin/python3 "$f" 2>&1)
	fi
	rc=$?
	printf 'e2e: %-22s %s  (%d ok, %d skipped, %d failed, %d s)\n' "${s%.py}" \
		"$([ $rc -eq 0 ] && echo pass || echo FAIL)" "$(grep -c '^# ok' <<<"$out")" \
		"$(grep -c '^# skip' <<<"$out")" "$(grep -c '^# FAIL' <<<"$out")" $((SECONDS - t0))
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		grep -A6 '^# FAIL' <<<"$out" | head -40 | sed 's/^/    /'
	fi
done
echo "e2e: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

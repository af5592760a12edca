#!/bin/bash
# tests/stack-tests.sh: the tests that need running servers, as one TAP
# script for "make check" (automake's tap-driver.sh).
#
# Brings up the throwaway "test" stack (scripts/dev with PARLEY_STACK=test:
# its own PostgreSQL, Redis, parley-api, parley-relay, parley-notify and
# nginx, on the ports scripts/stacks gives it or PARLEY_*_PORT, from fresh
# data), then runs one TAP test each:
#   - scripts/sql-current --check: sql/current/ is what the migrations leave;
#   - tests/db/test_post and test_change of the build dir (cmocka, against
#     PostgreSQL), if built;
#   - tests/redis/run-cluster: tests/redis/test_cluster against a Redis
#     Cluster it starts on loopback, if built;
#   - every tests/e2e/NN-*.py in name order, with /usr/bin/python3;
#   - every tests/browser/NN-*.mjs (the web client in headless Chromium),
#     with node (PARLEY_NODE, else /usr/bin/node, else the first on PATH);
#   - every clients/js/test/NN-*.test.mjs (the client library), with the
#     same node's test runner;
#   - last, tests/faults/run.py --reduced: the fault suite's short form
#     (services killed and restarted under a load; "scripts/dev faults" runs
#     the full one).
# Their output goes to stderr (the test log) as "# " comments, so stdout
# stays clean TAP. A suite that cannot run here (no servers, no Apache for
# the second run, no Chromium, node or playwright-core for the browser tests,
# no ws package for the client library's)
# is one skipped test naming what is missing, and under CI=true one failed
# test instead: CI must not pass with part of the suite quietly left out.
# PARLEY_STACK_TESTS=no (configure --disable-stack-tests) skips them all.
# The stack is taken down at the end, also on failure or interrupt; its
# runtime dir stays for inspection until the next run.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/.." && pwd)
dev=$top_srcdir/scripts/dev

# The build dir holding the binaries: automake's, else the one this runs in.
if [ -n "${abs_top_builddir:-}" ]; then
	PARLEY_BUILDDIR=$abs_top_builddir
elif [ -n "${PARLEY_BUILDDIR:-}" ]; then
	:
elif [ -f config.status ]; then
	PARLEY_BUILDDIR=$PWD
elif [ -f ../config.status ]; then
	PARLEY_BUILDDIR=$(cd .. && pwd)
else
	PARLEY_BUILDDIR=$top_srcdir
fi
export PARLEY_BUILDDIR
export PARLEY_STACK=test

ci=
[ "${CI:-}" != true ] || ci=1

# configure --disable-stack-tests (make distcheck passes it) switches them
# off on purpose: reported skipped, under CI=true too.
if [ "${PARLEY_STACK_TESTS:-yes}" = no ]; then
	echo "1..0 # SKIP stack tests switched off (configure --disable-stack-tests)"
	exit 0
fi

for server in /usr/lib/postgresql/15/bin/postgres /usr/bin/redis-server /usr/sbin/nginx; do
	if [ ! -x "$server" ]; then
		if [ -n "$ci" ]; then
			echo "1..1"
			echo "not ok 1 - server tests could not run: $server is not installed (scripts/dev check installs it)"
		else
			echo "1..0 # SKIP servers not installed ($server is missing)"
		fi
		exit 0
	fi
done

export PARLEY_DEV=$dev
# The test stack's runtime dir and ports (scripts/stacks, and the PARLEY_*
# overrides), exported for scripts/dev and the tests.
# shellcheck source=scripts/stacks
. "$top_srcdir/scripts/stacks"
stack_ports test
stack_export
export PARLEY_TEST_URL=http://127.0.0.1:$HTTP_PORT
export PARLEY_TEST_RELAY=ws://127.0.0.1:$RELAY_PORT/ws
export PARLEY_TEST_RELAY2=ws://127.0.0.1:$RELAY2_PORT/ws
export PARLEY_TEST_PG="host=127.0.0.1 port=$PG_PORT dbname=parley user=parley"
export PARLEY_TEST_PUSHFAKE=https://127.0.0.1:$PUSHFAKE_PORT
export PARLEY_TEST_NOTIFY_METRICS=http://127.0.0.1:$NOTIFY_METRICS_PORT/metrics
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
rundir=$RUNDIR
test_timeout=${PARLEY_TEST_TIMEOUT:-300}

# Turns output into TAP comments (lines already starting with '#' stay).
comment() { sed -u -e '/^#/!s/^/# /'; }

dump_logs() {
	local f
	for f in "$rundir"/log/*.log; do
		[ -s "$f" ] || continue
		echo "# ---- last lines of $f ----"
		tail -n 40 "$f" | comment
	done >&2
}

# Runs a command with its output turned into comments. It runs in the
# background so that a signal to this script interrupts the wait at once.
child=
run() {
	"$@" > >(comment >&2) 2>&1 &
	child=$!
	wait "$child"
	local rc=$?
	child=
	return "$rc"
}

# shellcheck disable=SC2317 # called by traps
on_signal() {
	trap '' INT TERM HUP
	[ -z "$child" ] || kill -TERM "$child" 2>/dev/null
	exit 130
}

stack_up=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$stack_up" ]; then
		"$dev" down 2>&1 | comment >&2
	fi
}
trap cleanup EXIT
trap on_signal INT TERM HUP

tests=()
names=()
# First, before any test adds to the database: sql/current/ matches what
# the migrations leave (sql/README).
tests+=("sqlcurrent:$top_srcdir/scripts/sql-current")
names+=("db/sql-current")
if [ -x "$PARLEY_BUILDDIR/tests/db/test_post" ]; then
	tests+=("$PARLEY_BUILDDIR/tests/db/test_post")
	names+=("db/test_post")
fi
if [ -x "$PARLEY_BUILDDIR/tests/db/test_change" ]; then
	tests+=("$PARLEY_BUILDDIR/tests/db/test_change")
	names+=("db/test_change")
fi
# lib/redis.c against a throwaway Redis Cluster of its own (3 masters, 3
# replicas on loopback): redirections, scripts, a failover.
if [ -x "$PARLEY_BUILDDIR/tests/redis/test_cluster" ]; then
	tests+=("$here/redis/run-cluster")
	names+=("redis/run-cluster")
fi
for f in "$here"/e2e/[0-9][0-9]-*.py; do
	[ -f "$f" ] || continue
	tests+=("$f")
	names+=("e2e/${f##*/}")
done
# A suite that cannot run: one test, skipped (failed under CI=true).
cannot_run() {
	tests+=("skip:$2")
	names+=("$1")
}
# The REST suites marked "# also through apache" run a second time with
# Apache in front instead of nginx (deploy/apache).
if [ -x /usr/sbin/apache2 ]; then
	for f in "$here"/e2e/[0-9][0-9]-*.py; do
		grep -qx '# also through apache' "$f" || continue
		tests+=("apache:$f")
		names+=("apache/${f##*/}")
	done
else
	cannot_run "apache reruns" "apache2 is not installed (apt-get install apache2)"
fi
# The browser tests (tests/browser/NN-*.mjs) drive the web client in
# Debian's Chromium (PARLEY_CHROMIUM overrides /usr/bin/chromium) with
# playwright-core (npm ci in tests/browser), under one node: PARLEY_NODE,
# else Debian's /usr/bin/node (Node.js 18 on bookworm), else the first on
# PATH, as scripts/dev picks it for npm ci.
node=${PARLEY_NODE:-}
if [ -z "$node" ]; then
	if [ -x /usr/bin/node ]; then node=/usr/bin/node; else node=$(command -v node || true); fi
fi
browser_skip=
if [ ! -x "${PARLEY_CHROMIUM:-/usr/bin/chromium}" ]; then
	browser_skip="chromium is not installed (${PARLEY_CHROMIUM:-/usr/bin/chromium} is missing; apt-get install chromium)"
elif [ -z "$node" ] || [ ! -x "$node" ]; then
	browser_skip="node is not installed (${node:-no node on PATH}; apt-get install nodejs)"
elif [ ! -f "$here/browser/node_modules/playwright-core/package.json" ]; then
	browser_skip="playwright-core is not installed (npm ci in tests/browser)"
fi
if [ -n "$browser_skip" ]; then
	cannot_run "browser tests" "$browser_skip"
else
	echo "# browser tests run with $node ($("$node" --version 2>&1))" >&2
	for f in "$here"/browser/[0-9][0-9]-*.mjs; do
		[ -f "$f" ] || continue
		tests+=("$f")
		names+=("browser/${f##*/}")
	done
fi
# The client library's tests (clients/js/test/NN-*.test.mjs, node --test)
# against the same stack, with the ws package (npm ci in clients/js) as
# Node's WebSocket.
clientjs=$top_srcdir/clients/js
clientjs_skip=
if [ -z "$node" ] || [ ! -x "$node" ]; then
	clientjs_skip="node is not installed (${node:-no node on PATH}; apt-get install nodejs)"
elif [ ! -f "$clientjs/node_modules/ws/package.json" ]; then
	clientjs_skip="the ws package is not installed (npm ci in clients/js)"
fi
if [ -n "$clientjs_skip" ]; then
	cannot_run "clients/js tests" "$clientjs_skip"
else
	for f in "$clientjs"/test/[0-9][0-9]-*.test.mjs; do
		[ -f "$f" ] || continue
		tests+=("nodetest:$f")
		names+=("clients/js/${f##*/}")
	done
fi
# Last, as it kills and restarts services (it waits until they serve again).
if [ -f "$here/faults/run.py" ]; then
	tests+=("faults:$here/faults/run.py")
	names+=("faults/run.py --reduced")
fi
# Then the cluster bed's reduced run (scripts/cluster check: three hosts in
# network namespaces, ZooKeeper discovery, a host killed and one cut off),
# which needs root for the namespaces.
if [ "$(id -u)" -eq 0 ]; then
	tests+=("cluster:$here/../scripts/cluster")
	names+=("cluster: scripts/cluster check")
else
	tests+=("skip:the cluster bed needs root (network namespaces)")
	names+=("cluster: scripts/cluster check")
fi
if [ ${#tests[@]} -eq 0 ]; then
	echo "1..0 # SKIP no stack tests found"
	exit 0
fi
echo "1..${#tests[@]}"

# A stack left over by an interrupted run holds the ports: stop it, and
# start from fresh data.
stack_up=1
run "$dev" down --purge
if ! run "$dev" up --no-install --no-build; then
	echo "Bail out! the test stack did not come up (scripts/dev up failed; its output and the service logs are in the test log)"
	dump_logs
	exit 1
fi

failed=0
apache_up=
for i in "${!tests[@]}"; do
	echo "# ---- ${names[$i]}" >&2
	cmd=("${tests[$i]}")
	case ${tests[$i]} in
	apache:*)
		if [ -z "$apache_up" ]; then
			run "$dev" start apache || echo "# apache did not start" >&2
			apache_up=1
		fi
		cmd=(env PARLEY_TEST_URL="http://127.0.0.1:$APACHE_PORT"
			/usr/bin/python3 "${tests[$i]#apache:}")
		;;
	faults:*) cmd=(/usr/bin/python3 "${tests[$i]#faults:}" --reduced) ;;
	cluster:*) cmd=("${tests[$i]#cluster:}" check) ;;
	sqlcurrent:*) cmd=(/usr/bin/python3 "${tests[$i]#sqlcurrent:}" --check) ;;
	*.py) cmd=(/usr/bin/python3 "${tests[$i]}") ;;
	nodetest:*) cmd=("$node" --test --test-reporter=spec "${tests[$i]#nodetest:}") ;;
	*.mjs) cmd=("$node" "${tests[$i]}") ;;
	skip:*)
		if [ -n "$ci" ]; then
			echo "not ok $((i + 1)) - ${names[$i]} could not run: ${tests[$i]#skip:}"
			echo "# CI=true: a suite that cannot run fails the check" >&2
		else
			echo "ok $((i + 1)) - ${names[$i]} # SKIP ${tests[$i]#skip:}"
		fi
		continue
		;;
	esac
	if run timeout -k 10 "$test_timeout" "${cmd[@]}"; then
		echo "ok $((i + 1)) - ${names[$i]}"
	else
		echo "not ok $((i + 1)) - ${names[$i]}"
		failed=1
	fi
done

[ "$failed" -eq 0 ] || dump_logs
exit 0

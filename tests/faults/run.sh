#!/bin/bash
# tests/faults/run.sh [FAULT...]: the full fault suite (tests/faults/run.py:
# one line per fault) on a fresh test stack of its own, taken down
# afterwards; exits with the suite's status. "scripts/dev faults" builds
# (PARLEY_BUILDDIR, with sanitizers under CI=true) and runs this; the test
# stack's runtime dir and ports come from scripts/stacks and the PARLEY_*
# overrides.
set -eEuo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dev=$top/scripts/dev
# shellcheck source=scripts/stacks
. "$top/scripts/stacks"
stack_ports test
export PARLEY_STACK=test

"$dev" down --purge >/dev/null 2>&1 || true
"$dev" up --no-install --no-build || { echo "dev: the test stack did not come up" >&2; exit 1; }
rc=0
PARLEY_RUNDIR=$RUNDIR PARLEY_DEV=$dev PARLEY_TEST_URL=http://127.0.0.1:$HTTP_PORT \
	PARLEY_TEST_RELAY=ws://127.0.0.1:$RELAY_PORT/ws PARLEY_TEST_RELAY2=ws://127.0.0.1:$RELAY2_PORT/ws \
	PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 "$top/tests/faults/run.py" "$@" || rc=$?
[ "$rc" -eq 0 ] || echo "dev: the fault suite failed; the service logs are in $RUNDIR/log"
"$dev" down >/dev/null 2>&1 || true
exit "$rc"

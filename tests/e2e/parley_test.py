"""Helpers shared by Parley's end-to-end tests (tests/e2e/NN-area-behaviour.py).

Each test file is a plain script run by tests/stack-tests.sh against the
throwaway "test" stack (scripts/dev with PARLEY_STACK=test). It defines
functions named test_* and ends with:

    if __name__ == "__main__":
        parley_test.run()

The functions run in the order they are defined; each prints "# ok NAME" or
"# FAIL NAME: reason"; the script exits 1 if any failed. Tests talk to the
stack as a client would, through nginx (PARLEY_TEST_URL) or the relay
(PARLEY_TEST_RELAY), and wait for state changes with wait_for(), never with
bare sleeps: a time.sleep() is left only where the waiting is the behaviour
under test or paces a load, and says so in a comment. Only the standard
library is used (python3-websocket comes in for the WebSocket tests).

Environment (set by stack-tests.sh; defaults are the test stack's row of
scripts/stacks, with the PARLEY_*_PORT and PARLEY_RUNDIR overrides):
  PARLEY_TEST_URL    http://127.0.0.1:HTTP      nginx in front of the stack
  PARLEY_TEST_RELAY  ws://127.0.0.1:RELAY/ws    the relay's own WebSocket URL
  PARLEY_TEST_PG     host=127.0.0.1 port=PG dbname=parley user=parley
  PARLEY_DEV         path of scripts/dev
  PARLEY_TEST_SKIP   names of test functions not to run, space-separated
"""

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import urllib.parse

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def _stack(name):
    """A stack's row of scripts/stacks ({"rundir", "http", "relay", "pg",
    "redis"}), with the PARLEY_* overrides scripts/dev honours."""
    inside, row = False, None
    with open(os.path.join(TOP, "scripts", "stacks")) as f:
        for line in f:
            if line.startswith("#STACKS-"):
                inside = line.startswith("#STACKS-BEGIN")
                continue
            cols = line[1:].split()
            if inside and len(cols) == 6 and cols[0] == name:
                row = dict(zip(("rundir", "http", "relay", "pg", "redis"), cols[1:]))
    assert row, "no stack named %r in scripts/stacks" % name
    for key, var in (("rundir", "PARLEY_RUNDIR"), ("http", "PARLEY_HTTP_PORT"), ("relay", "PARLEY_RELAY_PORT"),
                     ("pg", "PARLEY_PG_PORT"), ("redis", "PARLEY_REDIS_PORT")):
        row[key] = os.environ.get(var) or row[key]
    return row


STACK = _stack("test")
RUNDIR = STACK["rundir"]
REDIS_PORT = STACK["redis"]
BASE_URL = os.environ.get("PARLEY_TEST_URL", "http://127.0.0.1:%s" % STACK["http"]).rstrip("/")
RELAY_URL = os.environ.get("PARLEY_TEST_RELAY", "ws://127.0.0.1:%s/ws" % STACK["relay"])
PG = os.environ.get("PARLEY_TEST_PG", "host=127.0.0.1 port=%s dbname=parley user=parley" % STACK["pg"])
DEV = os.environ.get("PARLEY_DEV", os.path.join(TOP, "scripts", "dev"))


def request(method, path, body=None, token=None, headers=None, timeout=10):
    """Sends one HTTP request to BASE_URL + path on a new connection.

    body: a dict or list is sent as JSON; bytes or str are sent as they are.
    token: sent as "Authorization: Bearer <token>".
    Returns (status, headers, body): headers is an http.client.HTTPMessage
    (case-insensitive .get()), body the parsed JSON when the response says
    application/json, else the text. HTTP error statuses are returned, not
    raised; network errors (connection refused, timeout) do raise OSError.
    """
    url = urllib.parse.urlsplit(BASE_URL)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    if token:
        hdrs["Authorization"] = "Bearer " + token
    try:
        try:
            conn.request(method, url.path + path, body=body, headers=hdrs)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered (e.g. 413) and closed before reading the
            # whole body: its response is still there to read.
            pass
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    text = raw.decode("utf-8", "replace")
    if (resp.headers.get("Content-Type") or "").startswith("application/json"):
        try:
            return resp.status, resp.headers, json.loads(text)
        except ValueError:
            pass
    return resp.status, resp.headers, text


def wait_for(predicate, timeout_s, what, interval_s=0.1):
    """Calls predicate() until it returns a true value, and returns that value.

    An exception from predicate() counts as "not yet" (a server that is
    still restarting refuses connections). Raises AssertionError naming
    `what` and the last result or exception after timeout_s seconds.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            result = predicate()
            if result:
                return result
            last = result
        except Exception as e:  # noqa: BLE001 - reported below on timeout
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %gs waiting for %s (last: %r)" % (timeout_s, what, last))
        time.sleep(interval_s)


def dev(*args, check=True, timeout=120):
    """Runs scripts/dev against the test stack, e.g. dev("stop", "redis").

    Returns the CompletedProcess (stdout and stderr merged in .stdout);
    with check=True a non-zero exit raises AssertionError with the output.
    """
    env = dict(os.environ, PARLEY_STACK="test")
    proc = subprocess.run(
        [DEV, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError("scripts/dev %s exited %d:\n%s" % (" ".join(args), proc.returncode, proc.stdout))
    return proc


def service_pid(service):
    """The pid of a test stack service's process (scripts/supervise's pid file)."""
    with open(os.path.join(RUNDIR, "run", service + ".child.pid")) as f:
        return int(f.read())


def ppid(pid):
    """The parent of process pid, or -1 when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def postgres_pids():
    """The test stack's postmaster and its backends."""
    postmaster = service_pid("postgres")
    return [postmaster] + [int(p) for p in os.listdir("/proc") if p.isdigit() and ppid(int(p)) == postmaster]


@contextlib.contextmanager
def frozen(pids):
    """Stops the processes pids (SIGSTOP) for the with block, then lets them go on."""
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def assert_error(response, status, code):
    """Asserts that a request() result is the JSON error {"error":{code,message}}."""
    got_status, headers, body = response
    assert got_status == status, "status %d, want %d: %r" % (got_status, status, body)
    ctype = headers.get("Content-Type") or ""
    assert ctype.startswith("application/json"), "Content-Type %r, want application/json: %r" % (ctype, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), "not an error object: %r" % (body,)
    assert body["error"].get("code") == code, "error code %r, want %r: %r" % (body["error"].get("code"), code, body)
    assert isinstance(body["error"].get("message"), str), "error without a message: %r" % (body,)


def run(namespace=None):
    """Runs the test_* functions of the calling script in definition order,
    prints one "# ok" / "# FAIL" line each, and exits 1 if any failed."""
    if namespace is None:
        namespace = vars(sys.modules["__main__"])
    tests = [(name, fn) for name, fn in namespace.items() if name.startswith("test_") and callable(fn)]
    # PARLEY_TEST_SKIP names tests that need a local stack's files or
    # processes, left out where there is none (tests/cluster/e2e.sh).
    skip = set(os.environ.get("PARLEY_TEST_SKIP", "").split())
    failed = 0
    for name, fn in tests:
        if name in skip:
            print("# skip %s (PARLEY_TEST_SKIP)" % name, flush=True)
            continue
        try:
            fn()
            print("# ok %s" % name, flush=True)
        except Exception as e:  # noqa: BLE001 - any exception fails the test
            failed += 1
            print("# FAIL %s: %s" % (name, e), flush=True)
            for line in traceback.format_exc().rstrip().splitlines():
                print("#   " + line, flush=True)
    if not tests:
        print("# FAIL no test_* functions found", flush=True)
        sys.exit(1)
    sys.exit(1 if failed else 0)

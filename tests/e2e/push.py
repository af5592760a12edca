"""Helpers for the push suites (tests/e2e/30-push*.py): the fake APNs/FCM
server of the test stack (tests/fake/push-server.mjs, service "pushfake"),
devices with push tokens, the notifier's process and the push stream.

Environment (set by stack-tests.sh; defaults match the test stack):
  PARLEY_TEST_PUSHFAKE         https://127.0.0.1:18082
  PARLEY_TEST_NOTIFY_METRICS   http://127.0.0.1:18083/metrics
  PARLEY_TEST_PG               host=127.0.0.1 port=PG dbname=parley user=parley (scripts/stacks)
  PARLEY_RUNDIR, PARLEY_REDIS_PORT
"""

import http.client
import json
import os
import secrets
import ssl
import subprocess
import urllib.parse
import urllib.request

import parley_test
import rest
from parley_test import wait_for

FAKE = os.environ.get("PARLEY_TEST_PUSHFAKE", "https://127.0.0.1:18082")
METRICS = os.environ.get("PARLEY_TEST_NOTIFY_METRICS", "http://127.0.0.1:18083/metrics")
RUNDIR = rest.RUNDIR
REDIS_PORT = parley_test.REDIS_PORT
PG = parley_test.PG
# The test stack's [apns] token_lifetime_s and [notify] claim_idle_ms.
JWT_LIFETIME_S = 4
CLAIM_IDLE_S = 2.0


def fake(method, path, body=None):
    """One request to the fake server's control API; returns parsed JSON."""
    url = urllib.parse.urlsplit(FAKE)
    ctx = ssl.create_default_context(cafile=os.path.join(RUNDIR, "etc", "push", "tls.crt"))
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, "fake %s %s: %d %r" % (method, path, resp.status, data)
    return json.loads(data)


def requests(kind=None, token=None):
    """The requests the fake server got, optionally of one kind/token."""
    return [r for r in fake("GET", "/_requests")
            if (kind is None or r.get("kind") == kind) and (token is None or r.get("token") == token)]


def script(*answers):
    """Queues answers: dicts {kind, token, status, retry_after?, delay_ms?}."""
    fake("POST", "/_script", {"answers": list(answers)})


def new_token(platform):
    """A fresh device token: 64 hex digits (APNs) or an FCM-like string."""
    return secrets.token_hex(32) if platform == "apns" else "fcm:" + secrets.token_urlsafe(40)


def phone(user, platform, token=None):
    """A new device of user (a login) with a push token; returns (device, token)."""
    import ws
    dev = ws.device(user)
    token = token or new_token(platform)
    rest.expect(dev.call("POST", "/devices", {"platform": platform, "push_token": token}), 201,
                "register " + platform)
    return dev, token


def register(user, platform):
    """Gives user's own session device a push token; returns the token."""
    token = new_token(platform)
    rest.expect(user.call("POST", "/devices", {"platform": platform, "push_token": token}), 201,
                "register " + platform)
    return token


def wait_requests(token, n, timeout=10, status=None):
    """Waits until the fake server got at least n requests for token (with
    the given status, if any); returns them all."""
    def got():
        rs = requests(token=token)
        return rs if len([r for r in rs if status is None or r["status"] == status]) >= n else None
    return wait_for(got, timeout, "%d push request(s) for a token" % n)


def redis(*args):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", REDIS_PORT, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    return out.stdout.strip()


def sql(statement):
    """Runs one SQL statement on the stack's database with psql, as an
    operator would; returns its rows as lists of strings."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", statement, PG],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, "psql %r: %s" % (statement, out.stderr)
    return [line.split("\t") for line in out.stdout.splitlines()]


def has_token(device_id):
    """Whether the device still holds a push token (read in the database)."""
    rows = sql("SELECT push_token IS NOT NULL FROM devices WHERE id = %d" % device_id)
    return bool(rows) and rows[0][0] == "t"


def pending():
    """Jobs read by a notifier and not yet acknowledged, in every bucket's
    stream parley:push:{B} (lib/keys.h)."""
    return sum(int(redis("XPENDING", "parley:push:{%d}" % b, "notify").splitlines()[0] or 0)
               for b in range(16))


def notifier_pid():
    """The running notifier's pid, or None."""
    try:
        with open(os.path.join(RUNDIR, "run", "notify.child.pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def metrics():
    """The notifier's /metrics as {name: value}."""
    with urllib.request.urlopen(METRICS, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split()
            out[name] = float(value)
    return out

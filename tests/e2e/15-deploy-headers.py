"""15 the web server's own rules (deploy/): the web client is served with a
Content-Security-Policy (frame-ancestors 'none' included),
X-Content-Type-Options and Referrer-Policy; a relay's /metrics is not
reachable through the public /r/N/ routes (only /r/N/ws, /r/N/poll and
/r/N/events are); a burst of GET /api/v1/discover from one address is
answered 429 rate_limited in the JSON error shape with Retry-After; and an
SSE ?token= never reaches the web server's logs, the error log included,
when the relay behind it is down (SECURITY.md "What an operator must
configure").

Through Apache the discovery limit is not tested: Debian's Apache has no
per-client request-rate module (SECURITY.md, "Discovery behind Apache"),
and the test says so."""

# also through apache

import os
import secrets
import threading
import urllib.parse

import parley_test
from parley_test import assert_error, request

RUNDIR = parley_test.RUNDIR
RELAY_URL = urllib.parse.urlsplit(parley_test.RELAY_URL)


def server():
    """"apache" or "nginx": which web server answers PARLEY_TEST_URL."""
    _, headers, _ = request("GET", "/")
    return "apache" if (headers.get("Server") or "").startswith("Apache") else "nginx"


def csp_directives(value):
    out = {}
    for part in filter(None, (p.strip() for p in (value or "").split(";"))):
        name, *sources = part.split()
        out[name] = sources
    return out


def test_web_client_is_served_with_security_headers():
    for path in ("/", "/index.html", "/js/app.js", "/app.css"):
        status, headers, _ = request("GET", path)
        assert status == 200, (path, status)
        csp = csp_directives(headers.get("Content-Security-Policy"))
        assert csp.get("default-src") == ["'self'"], (path, headers.get("Content-Security-Policy"))
        assert set(csp.get("connect-src", [])) >= {"'self'", "ws:", "wss:"}, (path, csp)
        assert csp.get("frame-ancestors") == ["'none'"], (path, csp)
        assert csp.get("object-src") == ["'none'"], (path, csp)
        # No inline scripts: script-src is not loosened anywhere.
        for name in ("script-src", "default-src"):
            assert not {"'unsafe-inline'", "'unsafe-eval'"} & set(csp.get(name, [])), (path, csp)
        assert headers.get("X-Content-Type-Options") == "nosniff", (path, dict(headers))
        assert headers.get("Referrer-Policy") == "no-referrer", (path, dict(headers))


def test_api_answers_carry_nosniff_too():
    status, headers, _ = request("GET", "/health")
    assert status == 200, status
    assert headers.get("X-Content-Type-Options") == "nosniff", dict(headers)
    status, headers, _ = request("GET", "/api/v1/nothing-here")
    assert status == 404 and headers.get("X-Content-Type-Options") == "nosniff", (status, dict(headers))


def test_relay_metrics_are_not_public():
    # The relay serves /metrics itself ...
    conn_url = "http://%s:%d/metrics" % (RELAY_URL.hostname, RELAY_URL.port)
    import urllib.request
    with urllib.request.urlopen(conn_url, timeout=10) as resp:
        assert resp.status == 200 and b"# TYPE" in resp.read(), conn_url
    # ... but not through the web server, however the path is spelled.
    for n in (1, 2):
        for path in ("/r/%d/metrics" % n, "/r/%d/metrics?x=1" % n, "/r/%d//metrics" % n,
                     "/r/%d/./metrics" % n, "/r/%d/ws/../metrics" % n, "/r/%d/%%6detrics" % n,
                     "/r/%d/" % n, "/r/%d/anything" % n):
            status, _, body = request("GET", path)
            assert status in (400, 404), (path, status, body)
            assert_error((status, _, body), status, "not_found" if status == 404 else "bad_request")
            assert "# TYPE" not in str(body), (path, body)
    # The client endpoints still reach the relay.
    status, headers, body = request("GET", "/r/1/ws")
    assert status == 426 and (headers.get("Upgrade") or "").lower() == "websocket", (status, body)
    assert_error(request("GET", "/r/1/poll?after=0"), 401, "unauthorized")


def test_discover_burst_is_rate_limited_in_json():
    if server() == "apache":
        print("# apache: no per-client request-rate module in Debian, nothing to test")
        return
    answers = []
    lock = threading.Lock()

    def burst():
        for _ in range(40):
            response = request("GET", "/api/v1/discover")
            with lock:
                answers.append(response)

    threads = [threading.Thread(target=burst) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    statuses = [a[0] for a in answers]
    assert 200 in statuses, statuses
    limited = [a for a in answers if a[0] == 429]
    assert limited, "no 429 among %d discoveries from one address: %r" % (len(answers), sorted(set(statuses)))
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    for response in limited[:5]:
        assert_error(response, 429, "rate_limited")
        retry = response[1].get("Retry-After")
        assert retry and retry.strip().isdigit() and int(retry) >= 1, retry
    # The limit refills: discovery answers again soon.
    parley_test.wait_for(lambda: request("GET", "/api/v1/discover")[0] == 200, 30, "discovery to answer again",
                         interval_s=0.5)


def logs():
    names = ("nginx.log", "nginx-access.log") if server() == "nginx" else ("apache.log", "apache-access.log")
    out = ""
    for name in names:
        try:
            with open(os.path.join(RUNDIR, "log", name), errors="replace") as f:
                out += f.read()
        except FileNotFoundError:
            pass
    return out


def test_sse_token_never_reaches_the_logs():
    secret = "tok" + secrets.token_hex(16)
    parley_test.dev("stop", "relay")
    try:
        # Relay 1 is down: its own route fails, and the shared /events may
        # try it first (the other relay then refuses the bad token); both
        # are upstream errors the web server logs.
        status, _, body = request("GET", "/r/1/events?after=0&token=" + secret)
        assert_error((status, _, body), 503, "unavailable")
        for _ in range(4):
            status, _, body = request("GET", "/events?after=0&token=" + secret)
            assert status in (401, 503), (status, body)
    finally:
        parley_test.dev("start", "relay")
    text = logs()
    assert "/r/1/events" in text, "the request was not logged at all"
    assert secret not in text, "the SSE token is in the web server's logs: %r" % [
        line for line in text.splitlines() if secret in line][:3]


if __name__ == "__main__":
    parley_test.run()

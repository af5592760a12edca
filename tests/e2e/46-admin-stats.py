"""46 admin stats: parley-admin stats tells an operator what the service
holds and does, and its figures move with what users do: a signup adds a
user, a login a live session and a logout takes it away, messages sent
during the window are counted (and as a rate per minute), every relay of
the stack is listed with its sockets (an open WebSocket counts once the
relay's registry entry is refreshed), and the push queue is reported. A bad
--window is refused."""

import os
import re
import subprocess
import threading
import time

import parley_test
import rest
import ws
from rest import direct, expect, send

BUILD = os.environ.get("PARLEY_BUILDDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ADMIN = os.path.join(BUILD, "admin", "parley-admin")
CONF = os.path.join(rest.RUNDIR, "etc", "parley.conf")


def stats(*args):
    """parley-admin stats ARGS; (exit status, {line name: text}, stderr)."""
    p = subprocess.run([ADMIN, "-c", CONF, "stats", *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=120)
    lines = {}
    for line in p.stdout.splitlines():
        if not line.startswith(" ") and ": " in line:
            name, text = line.split(": ", 1)
            lines[name] = text
    return p.returncode, lines, p.stdout + p.stderr


def first_int(text):
    return int(re.match(r"(\d+)", text).group(1))


def test_accounts_and_sessions_move():
    rc, before, out = stats("--window", "1")
    assert rc == 0, out
    u = rest.new_user("st")
    rc, after, out = stats("--window", "1")
    assert rc == 0, out
    assert first_int(after["users"]) >= first_int(before["users"]) + 1, (before, after)
    assert first_int(after["sessions"]) >= first_int(before["sessions"]) + 1, (before, after)
    assert re.fullmatch(r"\d+ \(\d+ disabled, \d+ signed up in the last 24 h\)", after["users"]), after
    expect(u.call("DELETE", "/sessions/current"), 204)
    rc, gone, out = stats("--window", "1")
    assert first_int(gone["sessions"]) == first_int(after["sessions"]) - 1, (after, gone)


def test_messages_in_the_window_are_counted():
    a, b = rest.new_user("sma"), rest.new_user("smb")
    cid = direct(a, b)
    result = {}
    runner = threading.Thread(target=lambda: result.update(zip(("rc", "lines", "out"), stats("--window", "15"))))
    runner.start()
    time.sleep(1)
    for k in range(20):
        send((a, b)[k % 2], cid, "counted %d" % k)
    runner.join(60)
    assert result.get("rc") == 0, result
    m = re.fullmatch(r"(\d+) in the last 15 s \((\d+) a minute\)", result["lines"]["messages"])
    assert m, result["lines"]
    assert int(m.group(1)) >= 20 and int(m.group(2)) == int(m.group(1)) * 4, result["lines"]
    assert re.fullmatch(r"about \d+ messages stored", result["lines"]["history"]), result["lines"]


def test_relays_and_their_sockets_are_listed():
    u = rest.new_user("sr")
    s = ws.connect(u)
    try:
        deadline = time.monotonic() + 20
        while True:
            rc, lines, out = stats("--window", "1")
            assert rc == 0, out
            m = re.fullmatch(r"(\d+), (\d+) of (\d+) sockets", lines["relays"])
            assert m and int(m.group(1)) == 2, out
            listed = [l for l in out.splitlines() if l.startswith("  ")]
            assert len(listed) == 2 and all("/r/" in l for l in listed), out
            if int(m.group(2)) >= 1:
                break
            assert time.monotonic() < deadline, "the open socket never showed: " + out
            time.sleep(1)
    finally:
        s.close()
    assert re.fullmatch(r"\d+ waiting, \d+ being sent", lines["push queue"]), lines


def test_a_bad_window_is_refused():
    for bad in ("0", "-3", "ten", "3601"):
        rc, _, out = stats("--window", bad)
        assert rc == 2 and "usage" in out, (bad, rc, out)
    rc, _, out = stats("--frobnicate")
    assert rc == 2 and "usage" in out, out


if __name__ == "__main__":
    parley_test.run()

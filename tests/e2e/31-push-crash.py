"""31 push crash: a notifier killed with SIGKILL in the middle of a batch
loses no job, and sends no job twice that it had already acknowledged
(issue "Notifier": at least once, never twice on screen). Half the pushes
are answered at once, half only after 4 s; the notifier is killed while
those are in flight. The supervisor restarts it and the new process takes
the dead one's pending jobs over after [notify] claim_idle_ms (2 s)."""

import os
import signal
import time

import parley_test
import push
import rest
from parley_test import wait_for

A = rest.new_user("ka")


def test_kill_9_mid_batch_loses_nothing_and_repeats_nothing():
    fast = [rest.new_user("kf") for _ in range(5)]
    slow = [rest.new_user("ks") for _ in range(5)]
    fast_toks = [push.register(u, "apns") for u in fast]
    slow_toks = [push.register(u, "apns") for u in slow]
    push.script(*[{"kind": "apns", "token": t, "status": 200, "delay_ms": 4000} for t in slow_toks])
    wait_for(lambda: push.pending() == 0, 10, "an idle push stream")
    for u in fast + slow:
        rest.send(A, rest.direct(A, u), "before the crash")
    for t in fast_toks:
        push.wait_requests(t, 1, status=200)
    for t in slow_toks:
        push.wait_requests(t, 1)
    # The fast jobs are acknowledged; the slow ones are pending, in flight.
    wait_for(lambda: push.pending() == len(slow_toks), 5, "only the in-flight jobs to be pending")
    pid = push.notifier_pid()
    assert pid, "no notifier running"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: push.notifier_pid() not in (None, pid), 15, "the notifier to be restarted")
    # Every job of the killed notifier is sent again and acknowledged.
    for t in slow_toks:
        rs = push.wait_requests(t, 2, timeout=20)
        assert any(r.get("answered") for r in rs), rs
    wait_for(lambda: push.pending() == 0, 15, "the taken-over jobs to be acknowledged")
    # Nothing acknowledged before the crash comes back, even after a further
    # takeover period: waiting that period out is the behaviour under test.
    time.sleep(push.CLAIM_IDLE_S + 1.5)
    for t in fast_toks:
        assert len(push.requests(token=t)) == 1, "an acknowledged job was sent again"
    for t in slow_toks:
        assert len(push.requests(token=t)) == 2, [r["status"] for r in push.requests(token=t)]
    m = push.metrics()
    assert m["parley_notify_jobs_claimed_total"] >= len(slow_toks), m


def test_redis_back_empty_keeps_the_notifier_up():
    """Redis emptied while the notifier's command connection is stale: it
    recreates its consumer group on a new connection instead of crashing
    (it read a freed host name), and pushes flow."""
    wait_for(lambda: push.pending() == 0, 15, "an idle push stream")
    pid = push.notifier_pid()
    assert pid, "no notifier running"
    # Every connection but the notifier's blocked read is cut, then the
    # data goes: the read fails with the stream gone while the notifier's
    # other connection is stale.
    for line in push.redis("CLIENT", "LIST").splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("cmd") not in ("xreadgroup", "client|list"):
            push.redis("CLIENT", "KILL", "ID", fields["id"])
    push.redis("FLUSHALL")
    b = rest.new_user("kr")
    token = push.register(b, "fcm")
    conv = rest.direct(A, b)
    # Sends until one is pushed: the first may come before the notifier
    # has seen Redis again; the stream keeps every job until then.
    rest.send(A, conv, "after the wipe")
    push.wait_requests(token, 1, timeout=20, status=200)
    assert push.notifier_pid() == pid, "the notifier was restarted (crashed)"
    # The relays register again within their refresh period.
    wait_for(lambda: A.call("GET", "/discover")[0] == 200, 30, "a relay to be discoverable")


if __name__ == "__main__":
    parley_test.run()

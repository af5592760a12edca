"""24 stores down: the relay while Redis or PostgreSQL is away
(doc/architecture.md "When a store is down"). Redis down: sends still commit
and get "sent", and recipients get them once Redis is back. PostgreSQL
down: sends are answered "unavailable" (not silence), and a retry with the
same client_msg_id succeeds once it is back. The relay recovers by itself."""

import os
import re
import socket
import subprocess
import time

import parley_test
import rest
import ws
from parley_test import dev, wait_for

RELAY2 = os.environ.get("PARLEY_TEST_RELAY2", "ws://127.0.0.1:%d/ws" % (int(parley_test.STACK["relay"]) + 1))
A = rest.new_user("sa")
B = rest.new_user("sb")
CONV = rest.direct(A, B)


def test_redis_down_sends_commit_and_arrive_after():
    a, b = ws.connect(A), ws.connect(B)
    dev("stop", "redis")
    try:
        a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "rd-1",
                "body": "while redis is down"})
        sent = a.expect("sent", timeout=10)
    finally:
        dev("start", "redis")
    # The relay resubscribes and re-reads the inbox: the message arrives once.
    m = b.expect("message", timeout=15)
    assert m["message_id"] == sent["message_id"] and m["body"] == "while redis is down", m
    b.quiet(1.0)
    a.close()
    b.close()


def test_postgres_down_answers_unavailable_then_recovers():
    a, b = ws.connect(A), ws.connect(B)
    dev("stop", "postgres")
    try:
        a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "pg-1",
                "body": "while postgres is down"})
        err = a.expect("error", timeout=15)
        assert err["error"]["code"] == "unavailable" and err["ref"] == "pg-1", err
    finally:
        dev("start", "postgres")

    def retried():
        a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "pg-1",
                "body": "while postgres is down"})
        f = a.expect("sent", timeout=5, skip=("presence", "typing", "read", "conversation",
                                              "message", "error"))
        return f

    sent = wait_for(retried, 30, "a retried send to succeed")
    m = b.expect("message", timeout=10)
    assert m["message_id"] == sent["message_id"], (m, sent)
    a.close()
    b.close()


def redis_kill_clients():
    """Closes every Redis connection of the stack but the relays' pub/sub
    ones, as a Redis restart does to connections idle through it (the
    subscriptions stay, so nothing else is replayed meanwhile)."""
    conf = open(os.path.join(rest.RUNDIR, "etc", "parley.conf")).read()
    port = int(re.search(r"^\[redis\][^[]*?^port\s*=\s*(\d+)", conf, re.M | re.S).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"*4\r\n$6\r\nCLIENT\r\n$4\r\nKILL\r\n$4\r\nTYPE\r\n$6\r\nnormal\r\n")
        # Its own connection is "normal" too: the answer may not come.
        s.recv(64)


def test_first_send_on_a_dead_redis_connection_arrives_live():
    # The first send through each relay store thread finds its Redis
    # connection dead: it must still reach the recipient live, not wait in
    # the inbox for a later event to reveal the gap.
    a, b = ws.connect(A), ws.connect(B, url=RELAY2)
    redis_kill_clients()
    for i in range(6):  # more sends than the relay has store threads
        a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "rk-%d" % i,
                "body": "after the kill %d" % i})
        sent = a.expect("sent", timeout=10)
        m = b.expect("message", timeout=5)
        assert m["message_id"] == sent["message_id"], (m, sent)
    a.close()
    b.close()


def test_rate_limits_hold_after_a_redis_restart():
    # The limits run as Lua scripts called by SHA1; a restarted Redis has
    # forgotten them, so the API must load them again rather than fail open.
    dev("restart", "redis")
    u = rest.new_user("sr")
    answers = []
    for i in range(15):
        status = rest.call("POST", "/sessions", {"username": u.username,
                                                 "password": "guess-%d" % i})[0]
        answers.append(status)
        if status == 429:
            break
    assert answers[-1] == 429, "logins were not limited after the restart: %r" % answers


# The test stack checks open sockets' sessions every 3 s ([relay]
# session_check_interval); production every 60 s.
SESSION_CHECK_S = 3


def close_code_within(sock, seconds):
    """The socket's close code, which must come within seconds."""
    return sock.expect_close(timeout=seconds)


def test_logout_while_redis_is_down_closes_the_socket_once_it_is_back():
    d = ws.device(A)
    s = ws.connect(d)
    dev("stop", "redis")
    try:
        # The revocation's publish is lost: Redis is down.
        rest.expect(d.call("DELETE", "/sessions/current"), 204)
    finally:
        dev("start", "redis")
    # Checked again after the relay resubscribes, and every interval.
    assert close_code_within(s, 15 + SESSION_CHECK_S) == 4003


def test_session_revoked_without_a_publish_closes_the_socket():
    d = ws.device(A)
    s = ws.connect(d)
    claims = rest.token_claims(d.token)
    out = subprocess.run(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                          parley_test.PG,
                          "-c", "UPDATE sessions SET revoked_at = now() WHERE id = %d" % claims["sid"]],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    t0 = time.monotonic()
    assert close_code_within(s, SESSION_CHECK_S + 5) == 4003
    print("# revoked in the database only: closed after %.1f s" % (time.monotonic() - t0))


def test_socket_closes_at_its_tokens_expiry():
    secret = rest.stack_secret()
    assert secret, "cannot read the test stack's secret"
    d = ws.device(A)
    claims = dict(rest.token_claims(d.token), exp=int(time.time()) + 3)
    short = rest.forge_token(claims, secret)
    s = ws.connect(type("S", (), {"token": short})())
    t0 = time.monotonic()
    assert close_code_within(s, 10) == 4003
    took = time.monotonic() - t0
    assert took >= 1, "closed before its token expired: %.1f s" % took


if __name__ == "__main__":
    parley_test.run()

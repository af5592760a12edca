"""The scripted session of "scripts/dev leaks": one pass through what each
daemon does, against the test stack whose parley-api, parley-relay and
parley-notify run under LeakSanitizer or valgrind (so every wait is
generous). Signup, login, friends, a direct and a group conversation,
messages over REST and WebSocket, typing, read, ack, presence, long-poll and
SSE, search and sync, a push to an offline user through the fake push
server (APNs and FCM), refused input (bad JSON, a bad token, an oversized
frame), logout and device removal. Exits 0 when the session went through;
the leak verdict is tests/leaks/run's, from the daemons' logs after they stop.

Run by tests/leaks/run with the environment of tests/stack-tests.sh."""

import http.client
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

import parley_test  # noqa: E402
import push  # noqa: E402
import rest  # noqa: E402
import ws  # noqa: E402
from parley_test import wait_for  # noqa: E402
from rest import expect  # noqa: E402

SLOW = 60  # seconds for anything to arrive under valgrind


def relay_get(path, token):
    url = urllib.parse.urlsplit(parley_test.RELAY_URL)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=SLOW)
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def step(what):
    print("leak-session: %s" % what, flush=True)


def main():
    step("health, signup, login, profile")
    expect(parley_test.request("GET", "/health"), 200)
    a, b, c = rest.new_user("ka", display_name="Leak A"), rest.new_user("kb"), rest.new_user("kc")
    expect(a.call("PATCH", "/me", {"display_name": "A", "settings": {"theme": "dark"}}), 200)
    expect(a.call("GET", "/users?q=k&limit=5"), 200)
    expect(b.call("GET", "/users/%d" % a.id), 200)

    step("friends and presence")
    expect(a.call("POST", "/friends", {"user_id": b.id}), 201)
    expect(b.call("POST", "/friends", {"user_id": a.id}), 200)
    expect(a.call("POST", "/friends", {"user_id": c.id}), 201)
    expect(c.call("DELETE", "/friends/%d" % a.id), 204)
    expect(a.call("GET", "/friends"), 200)
    expect(a.call("GET", "/presence?user_ids=%d,%d" % (b.id, c.id)), 200)
    expect(a.call("GET", "/discover?region=local"), 200)

    step("conversations and REST messages")
    ab = rest.direct(a, b)
    g = rest.group(a, [b, c], title="leaks")
    expect(a.call("PATCH", "/conversations/%d" % g, {"title": "leaks 2", "muted": True}), 200)
    expect(a.call("DELETE", "/conversations/%d/members/%d" % (g, c.id)), 204)
    expect(a.call("POST", "/conversations/%d/members" % g, {"user_id": c.id}), 204)
    first = rest.send(a, ab, "hello over REST", "rest-1")
    rest.send(a, ab, "hello over REST", "rest-1", status=200)
    expect(a.call("POST", "/conversations/%d/messages" % ab, {"client_msg_id": "rest-1", "body": "other"}), 409)
    rest.send(b, g, "group hello 世界")
    expect(a.call("GET", "/conversations"), 200)
    expect(a.call("GET", "/conversations/%d/messages?before=%d&limit=10" % (ab, first["message_id"] + 1)), 200)
    expect(a.call("GET", "/conversations/%d/messages?after=0" % ab), 200)
    expect(a.call("GET", "/search?q=hello"), 200)
    expect(a.call("GET", "/search?q=%s&conversation_id=%d" % (urllib.parse.quote("世界"), g)), 200)
    expect(b.call("POST", "/conversations/%d/read" % ab, {"message_id": first["message_id"]}), 204)
    expect(b.call("GET", "/sync?after=0&limit=50"), 200)

    step("WebSocket: send, typing, read, ack, presence")
    sa, sb = ws.connect(a), ws.connect(b)
    # b's second device on the other relay: the message crosses the bus.
    sb2 = ws.connect(ws.device(b), url=os.environ.get("PARLEY_TEST_RELAY2"))
    sa.send({"type": "send", "conversation_id": ab, "client_msg_id": "ws-1", "body": "hello over WS"})
    sa.expect("sent", timeout=SLOW)
    m = sb.expect("message", timeout=SLOW)
    sb2.expect("message", timeout=SLOW)
    sb.send({"type": "ack", "seq": m["seq"]})
    sb.send({"type": "typing", "conversation_id": ab})
    sa.expect("typing", timeout=SLOW)
    sb.send({"type": "read", "conversation_id": ab, "message_id": m["message_id"]})
    sa.expect("read", timeout=SLOW)
    sb.send({"type": "heartbeat"})
    sa.send({"type": "send", "conversation_id": ab, "client_msg_id": "ws-1", "body": "changed"})
    sa.expect("error", timeout=SLOW)
    sa.send("{not json")
    sa.expect("error", timeout=SLOW)
    sa.send({"type": "nope"})
    sa.expect("error", timeout=SLOW)
    wait_for(lambda: [p for p in expect(a.call("GET", "/presence?user_ids=%d" % b.id), 200)["presence"]
                      if p["status"] == "online"], SLOW, "b online")

    step("long-poll and SSE")
    status, _ = relay_get("/poll?after=0&timeout=1", b.token)
    assert status == 200, status
    url = urllib.parse.urlsplit(parley_test.RELAY_URL)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=SLOW)
    conn.request("GET", "/events?after=0", headers={"Authorization": "Bearer " + b.token})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    resp.fp.readline()
    conn.close()

    step("refused input")
    expect(rest.call("POST", "/users", b"{"), 400)
    expect(rest.call("GET", "/me", token="a.b.c"), 401)
    big = ws.connect(a)
    big.send('{"type":"send","body":"' + "x" * 70000 + '"}')
    assert big.expect_close(timeout=SLOW) == 4008
    bad = ws.Socket()
    bad.send({"type": "hello", "token": "not.a.token"})
    bad.expect_close(timeout=SLOW)

    step("push to an offline user (APNs and FCM)")
    d = rest.new_user("kd")
    apns_tok = push.register(d, "apns")
    _, fcm_tok = push.phone(d, "fcm")
    ad = rest.direct(a, d)
    rest.send(a, ad, "a push for you")
    push.wait_requests(apns_tok, 1, timeout=SLOW, status=200)
    push.wait_requests(fcm_tok, 1, timeout=SLOW, status=200)
    wait_for(lambda: push.pending() == 0, SLOW, "the push stream to be acknowledged")

    step("logout and device removal")
    for s in (sa, sb):
        s.close()
    other = ws.device(a)
    so = ws.connect(other)
    expect(other.call("DELETE", "/sessions/current"), 204)
    assert so.expect_close(timeout=SLOW) == 4003
    expect(rest.call("POST", "/sessions/refresh", token=a.token), 200)
    expect(b.call("DELETE", "/devices/%d" % b.device_id), 204)
    sb2.close()
    step("done")


if __name__ == "__main__":
    main()

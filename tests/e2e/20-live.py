"""20 live: the relay's WebSocket contract (doc/protocol.md "WebSocket"): hello
and welcome, live delivery to every device of every member (the sender's
other devices included), sent after commit, dedupe and errors with ref,
typing and read receipts, conversation events, acks, close codes."""

import time

import parley_test
import rest
import ws
from rest import expect

A = rest.new_user("la")
B = rest.new_user("lb")
A2 = ws.device(A)  # A's second device
C = rest.new_user("lc")
CONV = rest.direct(A, B)


def test_welcome_names_user_device_and_cursor():
    s = ws.connect(A)
    w = s.welcome
    assert w["user_id"] == A.id and w["device_id"] == A.device_id, w
    assert isinstance(w["heartbeat_interval"], int) and w["heartbeat_interval"] > 0, w
    assert isinstance(w["cursor"], int), w
    s.close()


def test_send_reaches_recipient_and_senders_devices():
    a, a2, b = ws.connect(A), ws.connect(A2), ws.connect(B)
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "live-1", "body": "hi B"})
    sent = a.expect("sent")
    assert sent["client_msg_id"] == "live-1" and sent["conversation_id"] == CONV, sent
    assert isinstance(sent["message_id"], int) and rest.is_rfc3339(sent["created_at"]), sent
    for sock in (a, a2, b):
        m = sock.expect("message")
        assert m["body"] == "hi B" and m["message_id"] == sent["message_id"], m
        assert m["sender_id"] == A.id and m["client_msg_id"] == "live-1", m
        assert isinstance(m["seq"], int) and m["seq"] > 0, m
    # A send over HTTP reaches the sockets too.
    rest.send(B, CONV, "over http")
    for sock in (a, a2, b):
        assert sock.expect("message")["body"] == "over http"
    for sock in (a, a2, b):
        sock.close()


def test_retry_returns_original_and_conflict_has_ref():
    a, b = ws.connect(A), ws.connect(B)
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "dup-1", "body": "once"})
    first = a.expect("sent")
    b.expect("message")
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "dup-1", "body": "once"})
    again = a.expect("sent")
    assert again["message_id"] == first["message_id"], (first, again)
    b.quiet(0.5)  # stored once, delivered once
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "dup-1", "body": "other"})
    err = a.expect("error")
    assert err["error"]["code"] == "conflict" and err["ref"] == "dup-1", err
    a.close()
    b.close()


def test_errors_keep_the_socket_open():
    a = ws.connect(A)
    other = rest.direct(B, C)
    cases = [
        ({"type": "send", "conversation_id": other, "client_msg_id": "x1", "body": "no"}, "not_found"),
        ({"type": "send", "conversation_id": CONV, "client_msg_id": "x2", "body": ""}, "bad_request"),
        ({"type": "send", "conversation_id": CONV, "client_msg_id": "x3", "body": "y" * 4097}, "too_large"),
        ({"type": "send", "conversation_id": "1", "client_msg_id": "x4", "body": "b"}, "bad_request"),
        ({"type": "nonsense"}, "bad_request"),
        ("{not json", "bad_request"),
        ({"no": "type"}, "bad_request"),
        ({"type": "ack", "seq": 10 ** 9}, "bad_request"),
    ]
    for frame, code in cases:
        a.send(frame)
        err = a.expect("error")
        assert err["error"]["code"] == code, (frame if isinstance(frame, str) else frame.get("type"), err)
    # Still usable.
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "x5", "body": "still here"})
    a.expect("sent")
    a.close()


def test_group_delivery_reaches_every_member_device():
    g = rest.group(A, [B, C], title="fan-out")
    socks = [ws.connect(u) for u in (A, A2, B, C)]
    socks[2].send({"type": "send", "conversation_id": g, "client_msg_id": "g-1", "body": "to all"})
    socks[2].expect("sent")
    for s in socks:
        m = s.expect("message")
        assert m["conversation_id"] == g and m["body"] == "to all" and m["sender_id"] == B.id, m
    for s in socks:
        s.close()


def test_send_rate_limit_is_per_user():
    u = rest.new_user("lr")
    conv = rest.direct(u, A)
    s1, s2 = ws.connect(u), ws.connect(u)
    # The default bucket holds 200 sends; two sockets of one user share it.
    for i in range(110):
        s1.send({"type": "send", "conversation_id": conv, "client_msg_id": "r1-%d" % i, "body": "x"})
        s2.send({"type": "send", "conversation_id": conv, "client_msg_id": "r2-%d" % i, "body": "x"})
    limited = 0
    for s in (s1, s2):
        for _ in range(110):
            f = s.expect("sent", skip=("presence", "typing", "read", "conversation", "message", "error"))
            if f["type"] == "error":
                assert f["error"]["code"] == "rate_limited" and f["ref"].startswith("r"), f
                limited += 1
    assert limited >= 10, "only %d of 220 quick sends were limited" % limited
    s1.close()
    s2.close()


def test_typing_and_read_fan_out():
    a, a2, b = ws.connect(A), ws.connect(A2), ws.connect(B)
    a.send({"type": "typing", "conversation_id": CONV})
    t = b.expect("typing", skip=("presence", "message", "read", "conversation"))
    assert t == {"type": "typing", "conversation_id": CONV, "user_id": A.id}, t
    mid = rest.send(B, CONV, "read me")["message_id"]
    a.send({"type": "read", "conversation_id": CONV, "message_id": mid})
    for sock in (a2, b):  # the other member and the reader's other device
        r = sock.expect("read", skip=("presence", "message", "typing", "conversation"))
        assert r == {"type": "read", "conversation_id": CONV, "user_id": A.id, "message_id": mid}, r
    convs = expect(A.call("GET", "/conversations"), 200)["conversations"]
    assert [c for c in convs if c["id"] == CONV][0]["unread"] == 0, convs
    for sock in (a, a2, b):
        sock.close()


def test_conversation_events_reach_members():
    b, c = ws.connect(B), ws.connect(C)
    g = rest.group(A, [B, C], title="live group")
    for sock in (b, c):
        e = sock.expect("conversation", skip=("presence", "message", "typing", "read"))
        assert e["change"] == "created" and e["conversation"]["id"] == g, e
    b.close()
    c.close()


def test_ack_is_stored_as_cursor():
    b = ws.connect(B)
    m = rest.send(A, CONV, "ack me")
    seq = b.expect("message")["seq"]
    b.send({"type": "ack", "seq": seq})
    b.close()
    # Within 250 ms of the ack, or on close: a hello without cursor resumes there.
    def resumed():
        s = ws.connect(B, cursor=ws.STORED)
        cur = s.welcome["cursor"]
        s.close()
        return cur == seq
    parley_test.wait_for(resumed, 5, "the acked cursor to be stored")
    assert m["body"] == "ack me"


def test_hello_cursor_above_head_is_clamped():
    # The head is B's newest seq: a message to B makes it known.
    rest.send(A, CONV, "the head")
    head = expect(B.call("GET", "/sync?after=0&limit=1000"), 200)["events"][-1]["seq"]
    s = ws.connect(B, cursor=10 ** 12)
    assert s.welcome["cursor"] == head, (s.welcome, head)
    s.quiet(0.5)  # nothing after the head to replay
    s.close()


def test_frames_before_hello_close_4001():
    s = ws.Socket()
    s.send({"type": "send", "conversation_id": CONV, "client_msg_id": "z", "body": "z"})
    assert s.expect_close() == 4001


def test_bad_token_closes_4001():
    s = ws.Socket()
    s.send({"type": "hello", "token": "not.a.token"})
    assert s.expect_close() == 4001


def test_no_hello_closes_4001_after_10s():
    s = ws.Socket(timeout=20)
    t0 = time.monotonic()
    assert s.expect_close(timeout=15) == 4001
    assert 8 <= time.monotonic() - t0 <= 13


def test_oversized_frame_closes_4008():
    s = ws.connect(A)
    s.send('{"type":"send","body":"' + "x" * 70000 + '"}')
    assert s.expect_close() == 4008


def test_logout_closes_sockets_4003():
    d = ws.device(B)
    s = ws.connect(d)
    expect(d.call("DELETE", "/sessions/current"), 204)
    assert s.expect_close(timeout=3) == 4003
    # The revoked token cannot say hello again.
    s = ws.Socket()
    s.send({"type": "hello", "token": d.token})
    assert s.expect_close() in (4001, 4003)


def test_through_nginx():
    s = ws.connect(A, url=ws.NGINX_WS)
    b = ws.connect(B)
    s.send({"type": "send", "conversation_id": CONV, "client_msg_id": "ngx-1", "body": "via nginx"})
    s.expect("sent")
    assert b.expect("message")["body"] == "via nginx"
    s.close()
    b.close()


def test_metrics_count_what_happened():
    import http.client
    import urllib.parse
    relay = urllib.parse.urlsplit(parley_test.RELAY_URL)
    conn = http.client.HTTPConnection(relay.hostname, relay.port, timeout=5)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    text = resp.read().decode()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/plain"), resp.status
    values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                  if line and not line.startswith("#"))
    for name in ("parley_relay_sockets", "parley_relay_frames_in_total",
                 "parley_relay_sends_total", "parley_relay_store_seconds_count",
                 "parley_relay_deliver_seconds_count", "parley_relay_revoked_closes_total"):
        assert name in values, name
    # This suite sent over this relay and logged a socket out.
    assert float(values["parley_relay_sends_total"]) > 0, values
    assert float(values["parley_relay_store_seconds_count"]) > 0, values
    assert float(values["parley_relay_revoked_closes_total"]) >= 1, values


if __name__ == "__main__":
    parley_test.run()

"""26 client courtesies: what an app written from the protocol page meets
first (doc/protocol.md "WebSocket"): frames sent right after hello are taken
in order and answered after welcome; every error answering a send names it
in "ref"; an unknown frame type's error lists the valid ones; a plain GET on
/ws says it is a WebSocket endpoint (426); friend requests, acceptances and
removals arrive live as "friend" events."""

import json
import time
import urllib.error
import urllib.request

import websocket

import parley_test
import rest
import ws
from parley_test import BASE_URL, RELAY_URL

A = rest.new_user("ca")
B = rest.new_user("cb")
CONV = rest.direct(A, B)


def hello(sock, user):
    sock.send({"type": "hello", "token": user.token, "cursor": 2 ** 53})


def test_frames_right_after_hello_are_answered_after_welcome():
    b = ws.connect(B)
    a = ws.Socket()
    hello(a, A)
    # An outbox flush on reconnect: sends, typing and a bad send, all
    # before the welcome arrives.
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "pipe-1",
            "body": "first"})
    a.send({"type": "typing", "conversation_id": CONV})
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "pipe-2",
            "body": "second"})
    a.send({"type": "send", "conversation_id": 999999999, "client_msg_id": "pipe-3",
            "body": "nowhere"})
    first = a.recv()
    assert first["type"] == "welcome", "the first frame must be welcome: %r" % (first,)
    answers = {}
    while len(answers) < 3:
        f = a.recv()
        if f["type"] in ("sent", "error"):
            ref = f.get("client_msg_id") or f.get("ref")
            assert ref, "an answer to a send without its id: %r" % (f,)
            answers[ref] = f
        else:
            assert f["type"] in ("message", "presence", "typing"), f
    assert answers["pipe-1"]["type"] == "sent", answers
    assert answers["pipe-2"]["type"] == "sent", answers
    assert answers["pipe-3"]["type"] == "error", answers
    assert answers["pipe-3"]["error"]["code"] == "not_found", answers
    # Stored in the order they were sent.
    assert answers["pipe-1"]["message_id"] < answers["pipe-2"]["message_id"], answers
    got = [m["body"] for m in ws.messages(b, 2)]
    assert got == ["first", "second"], got
    a.close()
    b.close()


def test_too_many_frames_before_welcome_close_4008():
    a = ws.Socket()
    # hello and 65 more frames in one write: all of them reach the relay
    # before the session check can answer.
    frames = [{"type": "hello", "token": A.token, "cursor": 2 ** 53}]
    frames += [{"type": "typing", "conversation_id": CONV}] * 65
    a.ws.sock.sendall(b"".join(
        websocket.ABNF.create_frame(json.dumps(f), websocket.ABNF.OPCODE_TEXT).format()
        for f in frames))
    assert a.expect_close() == 4008
    a.close()


def test_every_error_answering_a_send_has_its_ref():
    a = ws.connect(A)
    cases = [
        ({"conversation_id": CONV, "client_msg_id": "r-1", "body": ""}, "bad_request"),
        ({"conversation_id": CONV, "client_msg_id": "r-2", "body": "x" * 5000}, "too_large"),
        ({"conversation_id": 0, "client_msg_id": "r-3", "body": "hi"}, "bad_request"),
        ({"conversation_id": CONV, "client_msg_id": "r\t4", "body": "hi"}, "bad_request"),
        ({"conversation_id": CONV, "client_msg_id": "r" * 65, "body": "hi"}, "too_large"),
        ({"conversation_id": 999999999, "client_msg_id": "r-6", "body": "hi"}, "not_found"),
    ]
    for fields, code in cases:
        a.send(dict(fields, type="send"))
        err = a.expect("error")
        assert err["error"]["code"] == code, (fields, err)
        assert err.get("ref") == fields["client_msg_id"], (fields, err)
    a.close()


def test_unknown_frame_type_lists_the_valid_ones():
    a = ws.connect(A)
    a.send({"type": "sned", "conversation_id": CONV})
    err = a.expect("error")
    assert err["error"]["code"] == "bad_request", err
    message = err["error"]["message"]
    assert "sned" in message, message
    for name in ("hello", "send", "ack", "heartbeat", "typing", "read"):
        assert "'%s'" % name in message, message
    a.close()


def test_plain_get_on_ws_is_426_with_the_error_shape():
    for url in (RELAY_URL.replace("ws://", "http://"), BASE_URL + "/ws"):
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                raise AssertionError("GET %s answered %s" % (url, r.status))
        except urllib.error.HTTPError as e:
            body = json.loads(e.read())
            assert e.code == 426, (url, e.code, body)
            assert e.headers.get("Upgrade", "").lower() == "websocket", (url, dict(e.headers))
            assert body["error"]["code"] == "bad_request", body
            assert "WebSocket" in body["error"]["message"], body


def friend_event(sock, change, user):
    f = sock.expect("friend", skip=("presence", "typing", "read", "conversation",
                                    "message"))
    assert f["change"] == change, (change, f)
    assert f["user"] == {"id": user.id, "username": user.username,
                         "display_name": user.display_name}, f
    return f


def no_friend_event(sock, seconds=0.5):
    """Asserts that no friend event arrives for a short while."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            f = sock.recv(left)
        except AssertionError:
            return
        assert f["type"] != "friend", "an unexpected friend event: %r" % (f,)


def test_friend_requests_acceptance_and_removal_are_live():
    c, d = rest.new_user("cc"), rest.new_user("cd")
    sc, sd = ws.connect(c), ws.connect(d)
    rest.expect(c.call("POST", "/friends", {"user_id": d.id}), 201)
    friend_event(sd, "request", c)
    no_friend_event(sc)  # the sender is not told of its own request
    rest.expect(d.call("POST", "/friends", {"user_id": c.id}), 200)
    friend_event(sc, "accepted", d)
    friend_event(sd, "accepted", c)
    # Asking again changes nothing and says nothing.
    rest.expect(c.call("POST", "/friends", {"user_id": d.id}), 200)
    rest.expect(d.call("DELETE", "/friends/%d" % c.id), 204)
    friend_event(sd, "removed", c)
    friend_event(sc, "removed", d)
    for s in (sc, sd):
        no_friend_event(s)
    sc.close()
    sd.close()


def test_declined_request_is_live_for_the_sender():
    e, g = rest.new_user("ce"), rest.new_user("cg")
    se = ws.connect(e)
    rest.expect(e.call("POST", "/friends", {"user_id": g.id}), 201)
    rest.expect(g.call("DELETE", "/friends/%d" % e.id), 204)
    friend_event(se, "removed", g)
    se.close()


if __name__ == "__main__":
    parley_test.run()

"""13 abuse of the relay and floods: deeply nested and oversized WebSocket
frames (one frame, or fragments adding up over 64 KiB), sockets per user
capped at 32 (the 33rd gets rate_limited and 4008; others are not
affected), and floods of sends from one user over WebSocket and REST: the
flooder is rate limited with the contract's error while another pair of
users keeps its latency (doc/protocol.md "Limits", close codes; SECURITY.md
"Abuse")."""

import threading
import time

import websocket

import parley_test
import rest
import ws
from rest import Client, direct, expect, new_user

A = B = C = D = None
AB = CD = None
CAP = 32


def test_setup_users():
    global A, B, C, D, AB, CD
    A, B, C, D = new_user("ya"), new_user("yb"), new_user("yc"), new_user("yd")
    AB, CD = direct(A, B), direct(C, D)


def still_works(user=None, peer=None, conv=None):
    """A send of user over a fresh socket is stored and reaches peer."""
    user, peer, conv = user or C, peer or D, conv or CD
    s, p = ws.connect(user), ws.connect(peer)
    try:
        s.send({"type": "send", "conversation_id": conv, "client_msg_id": "ok-%f" % time.time(), "body": "fine"})
        s.expect("sent")
        assert p.expect("message")["body"] == "fine"
    finally:
        s.close()
        p.close()


def test_deeply_nested_frames_are_refused():
    s = ws.connect(A)
    for frame in ['{"type":"send","conversation_id":%d,"client_msg_id":"n","body":%s}'
                  % (AB, "[" * 20000 + "]" * 20000),
                  '{"type":"typing","conversation_id":' + '{"a":' * 9000 + "1" + "}" * 9000 + "}",
                  "[" * 60000, '{"type":' * 7000]:
        assert len(frame.encode()) <= 65536, len(frame)
        s.send(frame)
        try:
            f = s.expect("error")
            assert f["error"]["code"] == "bad_request", f
        except ws.Closed as c:
            assert c.code == 4008, "nested frame closed the socket with %r" % c.code
            s = ws.connect(A)
    # Still usable after the refusals, and nothing was stored.
    s.send({"type": "send", "conversation_id": AB, "client_msg_id": "after-nest", "body": "ok"})
    assert s.expect("sent")["client_msg_id"] == "after-nest"
    s.close()
    assert [m["client_msg_id"] for m in expect(A.call("GET", "/conversations/%d/messages" % AB), 200)["messages"]] \
        == ["after-nest"]
    # Nested as the first frame: not a hello, so 4001.
    s = ws.Socket()
    s.send("[" * 50000)
    assert s.expect_close() == 4001


def test_fragments_adding_up_over_the_frame_limit_close_4008():
    s = ws.connect(A)
    chunk = "x" * 40000
    s.ws.send_frame(websocket.ABNF.create_frame('{"type":"send","body":"' + chunk, websocket.ABNF.OPCODE_TEXT, 0))
    s.ws.send_frame(websocket.ABNF.create_frame(chunk, websocket.ABNF.OPCODE_CONT, 0))
    s.ws.send_frame(websocket.ABNF.create_frame(chunk + '"}', websocket.ABNF.OPCODE_CONT, 1))
    assert s.expect_close() == 4008
    # A frame just under the limit is read (and refused for its content).
    s = ws.connect(A)
    s.send('{"type":"send","conversation_id":%d,"client_msg_id":"big","body":"%s"}' % (AB, "y" * 60000))
    f = s.expect("error")
    assert f["error"]["code"] in ("too_large", "bad_request") and f.get("ref") == "big", f
    # Binary frames are not part of the protocol.
    s.ws.send_binary(b"\x00" * 100)
    try:
        f = s.expect("error", timeout=5)
        assert f["error"]["code"] == "bad_request", f
    except ws.Closed as c:
        assert c.code in (4008, 1003), c.code
    s.close()
    still_works()


def test_sockets_per_user_are_capped():
    socks = []
    try:
        for _ in range(CAP):
            socks.append(ws.connect(A))
        extra = ws.Socket()
        extra.send({"type": "hello", "token": A.token})
        f = extra.recv()
        assert f["type"] == "error" and f["error"]["code"] == "rate_limited", f
        assert extra.expect_close() == 4008
        # Another user is not affected, nor are the user's open sockets.
        still_works()
        socks[0].send({"type": "send", "conversation_id": AB, "client_msg_id": "cap-ok", "body": "x"})
        assert socks[0].expect("sent")["client_msg_id"] == "cap-ok"
        # Once one closes, a new one gets in.
        socks.pop().close()
        parley_test.wait_for(lambda: ws.connect(A), 5, "a socket after one of 32 closed").close()
    finally:
        for s in socks:
            s.close()


def latencies(sender, receiver, conv, n, prefix):
    """Sends n messages one after another over sender's socket and returns
    the seconds each took until receiver's socket got it."""
    out = []
    for i in range(n):
        t0 = time.monotonic()
        sender.send({"type": "send", "conversation_id": conv, "client_msg_id": "%s%d" % (prefix, i), "body": "p"})
        m = receiver.expect("message", timeout=10)
        assert m["client_msg_id"] == "%s%d" % (prefix, i), m
        out.append(time.monotonic() - t0)
    return out


def test_websocket_flood_is_limited_and_others_keep_their_latency():
    c, d = ws.connect(C), ws.connect(D)
    baseline = latencies(c, d, CD, 5, "base")
    flooder = [ws.connect(A), ws.connect(A)]
    stop = threading.Event()
    result = {"sent": 0, "limited": 0, "closed": None}

    def flood(s, tag):
        i = 0
        try:
            while not stop.is_set() and i < 3000:
                s.send({"type": "send", "conversation_id": AB, "client_msg_id": "%s%d" % (tag, i), "body": "f"})
                i += 1
                result["sent"] += 1
        except Exception as e:  # noqa: BLE001 - the relay may close a flooder
            result["closed"] = e

    def count(s):
        try:
            while True:
                f = s.recv(3)
                if f.get("type") == "error":
                    assert f["error"]["code"] == "rate_limited", f
                    result["limited"] += 1
        except ws.Closed as e:
            assert e.code in (4008, None), e.code
        except AssertionError:
            pass  # quiet for 3 s: the flood is over

    threads = [threading.Thread(target=flood, args=(s, "fl%d-" % i)) for i, s in enumerate(flooder)]
    threads += [threading.Thread(target=count, args=(s,)) for s in flooder]
    for t in threads:
        t.start()
    try:
        during = latencies(c, d, CD, 10, "during")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    for s in flooder + [c, d]:
        s.close()
    print("# websocket flood: %d sends, %d refused; other pair's latency %.3f s before, %.3f s during (max)"
          % (result["sent"], result["limited"], max(baseline), max(during)))
    assert result["limited"] > 0, "no rate_limited error for %d quick sends" % result["sent"]
    assert max(during) < max(0.5, 5 * max(baseline)) + 1.5, "latency %r while flooded, %r before" % (
        during, baseline)
    # The flood stored no more than the burst and the sustained rate allow.
    stored = expect(B.call("GET", "/sync?after=0&limit=1000"), 200)["events"]
    assert len(stored) <= 200 + 50 * 60, len(stored)


def test_rest_flood_is_limited_and_others_keep_their_latency():
    stop = threading.Event()
    seen = {"429": 0, "other": []}

    def flood(n):
        client = Client()
        i = 0
        try:
            while not stop.is_set() and i < 3000:
                st, _, body = client.request("POST", "/conversations/%d/messages" % AB,
                                             {"client_msg_id": "r%d-%d" % (n, i), "body": "f"}, token=B.token)
                i += 1
                if st == 429:
                    seen["429"] += 1
                elif st not in (200, 201):
                    seen["other"].append((st, body))
        finally:
            client.close()

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    took = []
    try:
        # Measure once the flooder is past its burst and being refused.
        parley_test.wait_for(lambda: seen["429"] > 0 or seen["other"], 60, "the REST flood to be limited")
        for i in range(10):
            t0 = time.monotonic()
            rest.send(C, CD, "calm %d" % i)
            took.append(time.monotonic() - t0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert seen["429"] > 0, "no 429 for the flooder"
    print("# rest flood: %d refused; other user's sends took %.3f s at most" % (seen["429"], max(took)))
    assert not seen["other"], seen["other"][:3]
    assert max(took) < 2.5, "REST sends took %r while another user flooded" % took


if __name__ == "__main__":
    parley_test.run()

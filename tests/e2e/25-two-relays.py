"""25 two relays: users on different relays chat through Redis; each relay
registers itself for discovery at its own public URL; a relay killed with
SIGKILL loses nothing: its clients reconnect to the other relay and get
every acknowledged message, none twice on one socket (doc/architecture.md
"Service discovery and scale-out")."""

import os
import signal
import time

import parley_test
import rest
import ws
from parley_test import dev, wait_for
from rest import expect

RELAY1 = parley_test.RELAY_URL
RELAY2 = os.environ.get("PARLEY_TEST_RELAY2", "ws://127.0.0.1:%d/ws" % (int(parley_test.STACK["relay"]) + 1))
RUNDIR = parley_test.RUNDIR
A = rest.new_user("ta")
B = rest.new_user("tb")
CONV = rest.direct(A, B)


def test_users_on_different_relays_chat():
    a = ws.connect(A, url=RELAY1)
    b = ws.connect(B, url=RELAY2)
    a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "x-1", "body": "across"})
    a.expect("sent")
    assert a.expect("message")["body"] == "across"  # the sender's own copy
    assert b.expect("message")["body"] == "across"
    b.send({"type": "send", "conversation_id": CONV, "client_msg_id": "x-2", "body": "and back"})
    assert a.expect("message")["body"] == "and back"
    a.close()
    b.close()


def test_discover_hands_out_a_registered_relay():
    def both_registered():
        urls = set()
        for _ in range(20):
            body = expect(A.call("GET", "/discover?region=local"), 200)
            urls.add(body["relay"]["url"])
        return urls
    # Discovery answers with a live relay's public URL ending in /ws.
    body = expect(A.call("GET", "/discover"), 200)
    assert body["relay"]["url"].endswith("/ws") and body["relay"]["region"], body
    # That URL works: say hello through it.
    s = ws.connect(A, url=body["relay"]["url"])
    s.close()
    assert both_registered()


def test_killed_relay_loses_nothing():
    a = ws.connect(A, url=RELAY1)
    b = ws.connect(B, url=RELAY2)
    got = []
    sent = []
    for i in range(20):
        a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "k-%d" % i,
                "body": "before kill %d" % i})
        sent.append(a.expect("sent")["message_id"])
    for _ in range(10):  # b reads and acks half of them
        m = b.expect("message")
        got.append(m["message_id"])
        b.send({"type": "ack", "seq": m["seq"]})

    def stored():
        devices = expect(B.call("GET", "/devices"), 200)["devices"]
        return [d for d in devices if d["id"] == B.device_id][0]["cursor"] == m["seq"]
    wait_for(stored, 5, "the acked cursor to be stored")
    pid = int(open(os.path.join(RUNDIR, "run", "relay2.child.pid")).read())
    os.kill(pid, signal.SIGKILL)
    for i in range(20, 30):  # sends go on while b is away
        a.send({"type": "send", "conversation_id": CONV, "client_msg_id": "k-%d" % i,
                "body": "after kill %d" % i})
        sent.append(a.expect("sent")["message_id"])
    # b reconnects to the other relay with no cursor: it resumes after its
    # stored (acked) cursor, so nothing is missing and nothing repeats.
    b2 = ws.connect(B, url=RELAY1, cursor=ws.STORED)
    again = [m["message_id"] for m in ws.messages(b2, len(sent) - 10, timeout=10)]
    assert got + again == sent, (got, again, sent)
    b2.quiet(0.5)
    # The supervisor brings the killed relay back.
    wait_for(lambda: ws.connect(B, url=RELAY2).close() or True, 20, "relay2 to come back")
    a.close()
    b2.close()


def test_killed_relays_users_go_offline_for_friends():
    u, f = rest.new_user("tu"), rest.new_user("tf")
    expect(u.call("POST", "/friends", {"user_id": f.id}), 201)
    expect(f.call("POST", "/friends", {"user_id": u.id}), 200)
    watcher = ws.connect(f, url=RELAY1)
    s = ws.connect(u, url=RELAY2)
    frame = watcher.expect("presence", timeout=10)
    assert frame["user_id"] == u.id and frame["status"] == "online", frame
    pid = int(open(os.path.join(RUNDIR, "run", "relay2.child.pid")).read())
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    # The other relay's sweep expires the dead relay's devices: offline
    # within the presence timeout (3 s on the test stack) + 5 s.
    frame = watcher.expect("presence", timeout=20)
    assert frame["user_id"] == u.id and frame["status"] == "offline", frame
    assert time.monotonic() - t0 <= 3 + 5 + 1, time.monotonic() - t0
    watcher.close()
    wait_for(lambda: ws.connect(B, url=RELAY2).close() or True, 20, "relay2 to come back")


def test_stopping_relay_closes_1001_and_deregisters():
    s = ws.connect(A, url=RELAY2)
    dev("stop", "relay2")
    try:
        assert s.expect_close(timeout=10) == 1001
        # Its registration is gone: discovery hands out the other relay only.
        for _ in range(10):
            url = expect(A.call("GET", "/discover"), 200)["relay"]["url"]
            assert "/r/2/" not in url, url
    finally:
        dev("start", "relay2")


if __name__ == "__main__":
    parley_test.run()

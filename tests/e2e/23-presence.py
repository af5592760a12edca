"""23 presence: friends see each other come and go (doc/architecture.md
"Presence"): online on the first socket, offline after the last one closes
(after presence_grace) or goes silent (presence_timeout), changes only.
Written for the test stack's short timers (heartbeat 1 s, timeout 3 s,
grace 1 s)."""

import time

import parley_test
import rest
import ws
from rest import expect

U = rest.new_user("pu")
F = rest.new_user("pf")
STRANGER = rest.new_user("ps")
expect(U.call("POST", "/friends", {"user_id": F.id}), 201)
expect(F.call("POST", "/friends", {"user_id": U.id}), 200)


def status_of(viewer, user):
    body = expect(viewer.call("GET", "/presence?user_ids=%d" % user.id), 200)
    entries = [p for p in body["presence"] if p["user_id"] == user.id]
    return entries[0]["status"] if entries else None


def presence_frame(sock, user, status, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no %s presence for %d" % (status, user.id)
        f = sock.expect("presence", timeout=left, skip=("message", "typing", "read", "conversation"))
        if f["user_id"] == user.id:
            assert f["status"] == status, f
            assert rest.is_rfc3339(f["last_seen"]), f
            return f


def test_friend_sees_online_then_offline_after_close():
    f = ws.connect(F)
    u = ws.connect(U)
    presence_frame(f, U, "online")
    assert status_of(F, U) == "online"
    u.close()
    t0 = time.monotonic()
    presence_frame(f, U, "offline")
    assert time.monotonic() - t0 < 8
    assert status_of(F, U) == "offline"
    f.close()


def test_quick_reconnect_does_not_flap():
    f = ws.connect(F)
    u = ws.connect(U)
    presence_frame(f, U, "online")
    u.close()
    u = ws.connect(U)  # back within the grace period
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        try:
            frame = f.recv(max(0.05, deadline - time.monotonic()))
        except AssertionError:
            break
        assert not (frame.get("type") == "presence" and frame["user_id"] == U.id), frame
    u.close()
    presence_frame(f, U, "offline")
    f.close()


def test_silent_socket_goes_offline_after_timeout():
    f = ws.connect(F)
    u = ws.connect(U)  # never heartbeats
    presence_frame(f, U, "online")
    presence_frame(f, U, "offline", timeout=15)
    # A heartbeat brings it back.
    u.send({"type": "heartbeat"})
    presence_frame(f, U, "online")
    u.close()
    f.close()


def test_strangers_see_nothing():
    u = ws.connect(U)
    assert status_of(STRANGER, U) is None
    friends = expect(F.call("GET", "/friends"), 200)["friends"]
    assert [x for x in friends if x["id"] == U.id][0]["presence"]["status"] == "online"
    u.close()


if __name__ == "__main__":
    parley_test.run()

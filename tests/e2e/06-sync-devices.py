"""06 sync and devices: GET /sync over the inbox (order, limit, cursor, a
new device starting at the head, cursors only moving forward), push token
registration and its move between users, the device list, and deleting a
device (doc/protocol.md "REST": /sync, /devices; "Cursors")."""

# also through apache

import secrets
import time

import parley_test
from parley_test import assert_error
from rest import call, direct, expect, new_user, parse_time, send, uniq

EVENT_FIELDS = {"conversation_id", "message_id", "sender_id", "body", "created_at", "client_msg_id", "seq"}

A = B = None
AB = None
SENT = []


def sync(user_or_token, query=""):
    token = getattr(user_or_token, "token", user_or_token)
    body = expect(call("GET", "/sync" + query, token=token), 200, "sync" + query)
    assert set(body) >= {"events", "cursor"}, body
    return body


def devices_of(token):
    return expect(call("GET", "/devices", token=token), 200)["devices"]


def test_setup_users():
    global A, B, AB
    A, B = new_user("sa"), new_user("sb")
    AB = direct(A, B)
    for i in range(3):
        SENT.append(send(B, AB, "from B %d" % i))
    for i in range(2):
        SENT.append(send(A, AB, "from A %d" % i))


def test_sync_returns_inbox_events_in_seq_order():
    body = sync(A, "?after=0")
    events = body["events"]
    # The user's own sends are in the inbox too, so every device has them.
    assert [(e["conversation_id"], e["message_id"]) for e in events] == [
        (m["conversation_id"], m["message_id"]) for m in SENT], events
    seqs = [e["seq"] for e in events]
    assert all(isinstance(s, int) and s > 0 for s in seqs) and seqs == sorted(set(seqs)), seqs
    for event, message in zip(events, SENT):
        assert set(event) >= EVENT_FIELDS, event
        assert {k: event[k] for k in message} == message, (event, message)
    assert body["cursor"] == seqs[-1], body
    # B's inbox holds the same messages under B's own seqs.
    assert [e["message_id"] for e in sync(B, "?after=0")["events"]] == [m["message_id"] for m in SENT]


def test_sync_limit_and_paging():
    everything = sync(A, "?after=0")["events"]
    first = sync(A, "?after=0&limit=2")
    assert first["events"] == everything[:2], first
    assert first["cursor"] == everything[1]["seq"], first
    rest = sync(A, "?after=%d&limit=1000" % first["cursor"])
    assert rest["events"] == everything[2:], rest
    assert rest["cursor"] == everything[-1]["seq"]
    assert_error(A.call("GET", "/sync?after=0&limit=1001"), 400, "bad_request")
    assert_error(A.call("GET", "/sync?after=-1"), 400, "bad_request")


def test_sync_default_limit_is_100():
    u = new_user("sj")
    conv = direct(B, u)
    for i in range(105):
        send(B, conv, "bulk %d" % i, "bulk-%d" % i)
    body = sync(u, "?after=0")
    assert [e["client_msg_id"] for e in body["events"]] == ["bulk-%d" % i for i in range(100)], len(body["events"])
    assert body["cursor"] == body["events"][-1]["seq"]
    rest = sync(u, "?after=%d" % body["cursor"])
    assert [e["client_msg_id"] for e in rest["events"]] == ["bulk-%d" % i for i in range(100, 105)], rest


def test_sync_after_the_end_is_empty_with_the_same_cursor():
    head = sync(A, "?after=0")["cursor"]
    for after in (head, head + 1, head + 1000):
        body = sync(A, "?after=%d" % after)
        assert body["events"] == [] and body["cursor"] == after, (after, body)


def test_new_device_starts_at_the_head():
    head = sync(A, "?after=0")["cursor"]
    fresh = A.login()["token"]
    body = sync(fresh)
    assert body["events"] == [], "a new device got old inbox events: %r" % body
    assert body["cursor"] == head, body
    # Older history is still there through the messages endpoint.
    history = expect(call("GET", "/conversations/%d/messages" % AB, token=fresh), 200)["messages"]
    assert {m["message_id"] for m in SENT} <= {m["message_id"] for m in history}
    # New messages do arrive.
    new = send(B, AB, "after the new login")
    events = sync(fresh)["events"]
    assert [e["message_id"] for e in events] == [new["message_id"]], events


def test_sync_stores_the_cursor_and_it_only_moves_forward():
    u = new_user("sc")
    conv = direct(u, B)
    token = u.login()["token"]  # a device whose cursor is 0 (u had no events then)
    sent = [send(B, conv, "m%d" % i) for i in range(4)]
    events = sync(token, "?after=0")["events"]
    assert [e["message_id"] for e in events] == [m["message_id"] for m in sent], events
    seqs = [e["seq"] for e in events]
    sync(token, "?after=%d&limit=1" % seqs[1])  # stores seqs[1]
    resumed = sync(token)["events"]
    assert [e["seq"] for e in resumed] == seqs[2:], "sync without after did not resume at the stored cursor"
    sync(token, "?after=%d" % seqs[0])  # an older cursor does not move it back
    assert [e["seq"] for e in sync(token)["events"]] == seqs[2:]


def test_register_push_token():
    token = "fcm-" + uniq("t") * 3
    status, _, body = A.call("POST", "/devices", {"platform": "fcm", "push_token": token, "name": "Pixel 8"})
    assert status == 201, "status %d: %r" % (status, body)
    assert body["device_id"] == A.device_id, body
    mine = [d for d in devices_of(A.token) if d["id"] == A.device_id]
    assert len(mine) == 1, devices_of(A.token)
    assert mine[0]["platform"] == "fcm" and mine[0]["name"] == "Pixel 8", mine


def test_register_push_token_bad_input():
    assert_error(A.call("POST", "/devices", {"platform": "blackberry", "push_token": "t1"}), 400, "bad_request")
    assert_error(A.call("POST", "/devices", {"platform": "apns"}), 400, "bad_request")
    assert_error(A.call("POST", "/devices", {"platform": "apns", "push_token": ""}), 400, "bad_request")
    assert_error(A.call("POST", "/devices", {"platform": "apns", "push_token": "bad\ntoken"}), 400, "bad_request")
    assert_error(A.call("POST", "/devices", {"platform": "apns", "push_token": "t" * 4097}), 413, "too_large")


# Tokens each platform takes, and tokens it refuses with (status, code). An
# APNs token goes into the request path, so only hex digits may reach it.
HEX = secrets.token_hex(32)
GOOD_TOKENS = [("apns", HEX), ("apns", HEX.upper()), ("apns", secrets.token_hex(100)),
               ("fcm", "dGVzdA:APA91b_x-Y" + secrets.token_hex(20)), ("fcm", "x"),
               ("web", "https://push.example/v1/" + secrets.token_hex(8) + "?a=b c")]
BAD_TOKENS = [("apns", HEX[:-2] + "/a", 400), ("apns", HEX[:-2] + "?a", 400), ("apns", HEX[:-1] + "g", 400),
              ("apns", "../" + HEX, 400), ("apns", HEX[:-2] + "%2", 400), ("apns", HEX + " ", 400),
              ("apns", HEX[:-2], 400), ("apns", HEX + "a", 400), ("apns", secrets.token_hex(101), 413),
              ("fcm", "fcm/" + HEX, 400), ("fcm", "fcm?" + HEX, 400), ("fcm", "a b", 400),
              ("fcm", "\"quoted\"", 400), ("fcm", "t\u00e9", 400), ("fcm", "t" * 4097, 413),
              ("web", "bad\ttoken", 400), ("web", "t" * 4097, 413)]


def test_push_token_checked_per_platform():
    for platform, token in GOOD_TOKENS:
        status, _, body = A.call("POST", "/devices", {"platform": platform, "push_token": token})
        assert status == 201, "%s %r: %d %r" % (platform, token, status, body)
    for platform, token, status in BAD_TOKENS:
        code = "bad_request" if status == 400 else "too_large"
        response = A.call("POST", "/devices", {"platform": platform, "push_token": token})
        assert response[0] == status, "%s %r: %d %r" % (platform, token, response[0], response[2])
        assert_error(response, status, code)


def test_login_push_token_checked_per_platform():
    u = new_user("sj")  # its own login budget: 1 + len(GOOD_TOKENS) logins
    for platform, token, status in BAD_TOKENS:
        code = "bad_request" if status == 400 else "too_large"
        response = call("POST", "/sessions", {"username": u.username, "password": u.password,
                                              "device": {"platform": platform, "push_token": token}})
        assert response[0] == status, "login %s %r: %d %r" % (platform, token, response[0], response[2])
        assert_error(response, status, code)
    for platform, token in GOOD_TOKENS:
        session = u.login(device={"platform": platform, "push_token": token})
        expect(call("DELETE", "/sessions/current", token=session["token"]), 204)


def test_devices_lists_the_callers_own():
    second = A.login(device={"platform": "apns", "name": "iPad"})
    devices = devices_of(A.token)
    ids = [d["id"] for d in devices]
    assert {A.device_id, second["device_id"]} <= set(ids), devices
    assert B.device_id not in ids, "B's device is in A's list"
    for d in devices:
        assert set(d) >= {"id", "platform", "name", "created_at", "last_seen"}, d
        parse_time(d["created_at"])
        parse_time(d["last_seen"])
    ipad = [d for d in devices if d["id"] == second["device_id"]][0]
    assert ipad["platform"] == "apns" and ipad["name"] == "iPad", ipad
    assert abs(parse_time(ipad["created_at"]).timestamp() - time.time()) < 300, ipad


def token_shown(device, token):
    """Whether the device list shows the push token on this device: the
    contract does not list the token, so only what the API chooses to show
    can be checked."""
    if "push_token" in device:
        return device["push_token"] == token
    if "has_push_token" in device:
        return bool(device["has_push_token"])
    return None


def test_push_token_moves_to_another_users_device():
    u, v = new_user("sd"), new_user("se")
    token = secrets.token_hex(32)
    expect(u.call("POST", "/devices", {"platform": "apns", "push_token": token}), 201)
    before = [d for d in devices_of(u.token) if d["id"] == u.device_id][0]
    expect(v.call("POST", "/devices", {"platform": "apns", "push_token": token}), 201)
    after = [d for d in devices_of(u.token) if d["id"] == u.device_id][0]
    theirs = [d for d in devices_of(v.token) if d["id"] == v.device_id][0]
    if token_shown(before, token) is None:
        print("# note: GET /devices shows no push token; the move is not observable here")
        return
    assert token_shown(before, token) is True, before
    assert token_shown(after, token) is False, "the token stayed on the first user's device: %r" % after
    assert token_shown(theirs, token) is True, theirs


def test_login_with_a_push_token_another_device_holds():
    u, v = new_user("sf"), new_user("sg")
    token = "fcm-" + uniq("login")
    expect(u.call("POST", "/devices", {"platform": "fcm", "push_token": token}), 201)
    session = v.login(device={"platform": "fcm", "push_token": token, "name": "v's phone"})
    assert expect(call("GET", "/me", token=session["token"]), 200)["id"] == v.id
    u_device = [d for d in devices_of(u.token) if d["id"] == u.device_id][0]
    if token_shown(u_device, token) is not None:
        assert token_shown(u_device, token) is False, "the token stayed on the first device: %r" % u_device


def test_delete_device():
    u, other = new_user("sh"), new_user("si")
    second = u.login()
    assert_error(other.call("DELETE", "/devices/%d" % u.device_id), 404, "not_found")
    assert expect(call("GET", "/me", token=u.token), 200)["id"] == u.id, "B's delete hurt A's device"
    status, _, body = call("DELETE", "/devices/%d" % u.device_id, token=second["token"])
    assert status == 204, "status %d: %r" % (status, body)
    assert_error(u.call("GET", "/me"), 401, "unauthorized")
    assert_error(u.call("GET", "/sync?after=0"), 401, "unauthorized")
    devices = devices_of(second["token"])
    assert [d["id"] for d in devices] == [second["device_id"]], devices
    # Deleting it again, or a device that never existed, finds nothing.
    assert_error(call("DELETE", "/devices/%d" % u.device_id, token=second["token"]), 404, "not_found")
    # A device can delete itself (the app's "sign out and forget this device").
    expect(call("DELETE", "/devices/%d" % second["device_id"], token=second["token"]), 204)
    assert_error(call("GET", "/me", token=second["token"]), 401, "unauthorized")


if __name__ == "__main__":
    parley_test.run()

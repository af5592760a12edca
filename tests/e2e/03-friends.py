"""03 friends and profiles: friend requests and their acceptance, the
friends list with presence, unfriending, user search by username prefix,
GET /users/{id}, and PATCH /me (doc/protocol.md "REST": /friends, /users, /me)."""

# also through apache

import threading

import parley_test
from parley_test import assert_error
from rest import expect, is_rfc3339, new_user, uniq

NO_SUCH_USER = 9007199254740991  # 2^53 - 1: a valid id that no test creates

A = B = C = None


def friends_of(user):
    """The user's friends list as {friend id: entry}."""
    listed = user.get("/friends")["friends"]
    by_id = {f["id"]: f for f in listed}
    assert len(by_id) == len(listed), "a friend is listed twice: %r" % listed
    return by_id


def test_setup_users():
    global A, B, C
    A, B, C = new_user("fa"), new_user("fb"), new_user("fc")


def test_request_is_201_and_pending_on_both_sides():
    status, _, body = A.call("POST", "/friends", {"user_id": B.id})
    assert status == 201, "status %d: %r" % (status, body)
    mine, theirs = friends_of(A), friends_of(B)
    assert mine[B.id]["state"] == "outgoing", mine
    assert theirs[A.id]["state"] == "incoming", theirs
    assert mine[B.id]["username"] == B.username and theirs[A.id]["username"] == A.username
    # Nobody else sees anything.
    assert A.id not in friends_of(C) and B.id not in friends_of(C)


def test_accepting_by_posting_back_is_200():
    status, _, body = B.call("POST", "/friends", {"user_id": A.id})
    assert status == 200, "status %d: %r" % (status, body)
    assert friends_of(A)[B.id]["state"] == "accepted"
    assert friends_of(B)[A.id]["state"] == "accepted"


def test_friends_carry_profile_and_presence():
    for user, friend in ((A, B), (B, A)):
        entry = friends_of(user)[friend.id]
        assert set(entry) >= {"id", "username", "display_name", "state", "presence"}, entry
        assert entry["display_name"] == friend.display_name, entry
        presence = entry["presence"]
        assert isinstance(presence, dict) and set(presence) >= {"status", "last_seen"}, entry
        # No relay heartbeats for these users: offline.
        assert presence["status"] == "offline", entry
        assert presence["last_seen"] is None or is_rfc3339(presence["last_seen"]), entry


def test_request_to_unknown_user_is_404():
    assert_error(A.call("POST", "/friends", {"user_id": NO_SUCH_USER}), 404, "not_found")
    assert NO_SUCH_USER not in friends_of(A)


def test_request_to_self_is_400():
    assert_error(A.call("POST", "/friends", {"user_id": A.id}), 400, "bad_request")
    assert A.id not in friends_of(A)


def test_unfriend_is_204_and_gone_for_both():
    status, _, body = A.call("DELETE", "/friends/%d" % B.id)
    assert status == 204, "status %d: %r" % (status, body)
    assert B.id not in friends_of(A)
    assert A.id not in friends_of(B)
    # Gone for good: deleting again finds nothing.
    assert_error(B.call("DELETE", "/friends/%d" % A.id), 404, "not_found")


def test_withdrawn_request_is_gone_for_both():
    expect(C.call("POST", "/friends", {"user_id": A.id}), 201)
    assert friends_of(A)[C.id]["state"] == "incoming"
    expect(C.call("DELETE", "/friends/%d" % A.id), 204)
    assert C.id not in friends_of(A) and A.id not in friends_of(C)


def test_unfriend_non_friend_is_404():
    assert_error(A.call("DELETE", "/friends/%d" % C.id), 404, "not_found")
    assert_error(A.call("DELETE", "/friends/%d" % NO_SUCH_USER), 404, "not_found")


def test_simultaneous_requests_both_ways_end_accepted():
    # A race: try it a few times (the pairs are cheap).
    for _ in range(10):
        x, y = new_user("fx"), new_user("fy")
        answers = {}
        start = threading.Barrier(2)

        def ask(me, other):
            start.wait()
            for _ in range(3):
                # 503 means "retry" (doc/protocol.md "Errors"), as an app would.
                answers[me.id] = me.call("POST", "/friends", {"user_id": other.id})
                if answers[me.id][0] != 503:
                    break

        threads = [threading.Thread(target=ask, args=pair) for pair in ((x, y), (y, x))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(r[0] for r in answers.values())
        assert statuses in ([200, 201], [201, 201], [200, 200]), "answers %r" % [
            (r[0], r[2]) for r in answers.values()]
        # Both asked: whatever the timing, they are friends now.
        states = (friends_of(x).get(y.id, {}).get("state"), friends_of(y).get(x.id, {}).get("state"))
        assert states == ("accepted", "accepted"), "both asked (answers %r), states afterwards %r" % (
            statuses, states)


def test_user_search_by_username_prefix():
    prefix = uniq("fs")
    users = [new_user(prefix + suffix) for suffix in ("a", "b", "c")]
    got = A.get("/users?q=" + prefix)["users"]
    assert sorted(u["id"] for u in got) == sorted(u.id for u in users), got
    for entry in got:
        assert set(entry) >= {"id", "username", "display_name"}, entry
        assert entry["username"].startswith(prefix), entry
        assert "password_hash" not in entry and "settings" not in entry, entry
    # The prefix of one user finds that one only.
    one = users[1].username[:len(prefix) + 2]
    assert [u["id"] for u in A.get("/users?q=" + one)["users"]] == [users[1].id]
    # limit is honoured.
    limited = A.get("/users?q=%s&limit=2" % prefix)["users"]
    assert len(limited) == 2, limited
    assert {u["id"] for u in limited} <= {u.id for u in users}, limited
    # A prefix, not a substring anywhere in the name.
    inner = users[0].username[2:]
    found = A.get("/users?q=" + inner)["users"]
    assert all(u["username"].startswith(inner) for u in found), found
    assert users[0].id not in [u["id"] for u in found], found
    assert A.get("/users?q=" + uniq("nobody"))["users"] == []


def test_get_user_by_id():
    body = A.get("/users/%d" % B.id)
    assert (body["id"], body["username"], body["display_name"]) == (B.id, B.username, B.display_name), body
    assert "password_hash" not in body and "settings" not in body, body
    assert_error(A.call("GET", "/users/%d" % NO_SUCH_USER), 404, "not_found")


def test_patch_me_display_name_and_settings():
    settings = {"theme": "dark", "notifications": {"sound": False, "preview": True}, "lang": "fr"}
    body = expect(C.call("PATCH", "/me", {"display_name": "Zo\u00eb \U0001f98a", "settings": settings}), 200)
    assert body["id"] == C.id and body["display_name"] == "Zo\u00eb \U0001f98a", body
    for key, value in settings.items():
        assert body["settings"].get(key) == value, body
    me = C.get("/me")
    assert me["display_name"] == "Zo\u00eb \U0001f98a", me
    for key, value in settings.items():
        assert me["settings"].get(key) == value, me
    # Other users see the new name.
    assert A.get("/users/%d" % C.id)["display_name"] == "Zo\u00eb \U0001f98a"


def test_patch_me_changes_only_what_it_names():
    before = C.get("/me")
    expect(C.call("PATCH", "/me", {"display_name": "Just The Name"}), 200)
    after = C.get("/me")
    assert after["display_name"] == "Just The Name"
    assert after["settings"] == before["settings"], (before, after)
    expect(C.call("PATCH", "/me", {"settings": {"theme": "light"}}), 200)
    after = C.get("/me")
    assert after["display_name"] == "Just The Name", after
    assert after["settings"].get("theme") == "light", after


def test_patch_me_bad_display_name():
    assert_error(C.call("PATCH", "/me", {"display_name": ""}), 400, "bad_request")
    assert_error(C.call("PATCH", "/me", {"display_name": "x" * 65}), 413, "too_large")
    assert_error(C.call("PATCH", "/me", {"display_name": 42}), 400, "bad_request")
    assert_error(C.call("PATCH", "/me", {"settings": "dark"}), 400, "bad_request")
    # 64 characters (not bytes) is within the limit.
    name = "\u00e9" * 64
    assert expect(C.call("PATCH", "/me", {"display_name": name}), 200)["display_name"] == name
    assert C.get("/me")["display_name"] == name


def test_patch_me_caps_the_merged_settings():
    u = new_user("fs")
    # Each patch is small; together they would pass the 8 KiB cap.
    status = 200
    for i in range(8):
        status, _, body = u.call("PATCH", "/me", {"settings": {"k%d" % i: "v" * 2000}})
        if status != 200:
            break
    assert status == 413 and body["error"]["code"] == "too_large", (i, status, body)
    kept = u.get("/me")["settings"]
    assert "k%d" % i not in kept and len(kept) == i, sorted(kept)
    # Removing keys makes room again.
    expect(u.call("PATCH", "/me", {"settings": {"k0": None, "k1": None}}), 200)
    expect(u.call("PATCH", "/me", {"settings": {"k%d" % i: "v" * 2000}}), 200)


if __name__ == "__main__":
    parley_test.run()

"""04 conversations: direct (idempotent per pair) and group creation, the
list ordered by activity with last_message, unread and muted, read
markers, titles and mute, adding, removing and leaving members, and what a
non-member can reach (doc/protocol.md "REST": /conversations)."""

# also through apache

import threading

import parley_test
from parley_test import assert_error
from rest import expect, new_user, parse_time, send

NO_SUCH_USER = 9007199254740991

A = B = C = D = E = None
DIRECT = GROUP = None


def listing(user):
    """The user's conversation list, in the order the API gives it."""
    return user.get("/conversations")["conversations"]


def entry(user, conversation_id):
    found = [c for c in listing(user) if c["id"] == conversation_id]
    assert len(found) == 1, "conversation %d listed %d times for %r" % (conversation_id, len(found), user)
    return found[0]


def test_setup_users():
    global A, B, C, D, E
    A, B, C, D, E = (new_user(p) for p in ("ca", "cb", "cc", "cd", "ce"))


def test_direct_create_is_201():
    global DIRECT
    body = expect(A.call("POST", "/conversations", {"kind": "direct", "user_id": B.id}), 201)
    assert set(body) >= {"id", "kind", "title", "member_ids", "created_at"}, body
    assert isinstance(body["id"], int) and body["id"] > 0, body
    assert body["kind"] == "direct", body
    assert sorted(body["member_ids"]) == sorted([A.id, B.id]), body
    parse_time(body["created_at"])
    DIRECT = body["id"]


def test_direct_again_is_200_with_the_same_id():
    again = expect(A.call("POST", "/conversations", {"kind": "direct", "user_id": B.id}), 200)
    assert again["id"] == DIRECT, again
    reverse = expect(B.call("POST", "/conversations", {"kind": "direct", "user_id": A.id}), 200)
    assert reverse["id"] == DIRECT, reverse
    assert [c["id"] for c in listing(A)].count(DIRECT) == 1


def test_simultaneous_direct_creates_agree():
    x, y = new_user("cx"), new_user("cy")
    answers = []
    start = threading.Barrier(8)

    def create(me, other):
        start.wait()
        answers.append(me.call("POST", "/conversations", {"kind": "direct", "user_id": other.id}))

    threads = [threading.Thread(target=create, args=(x, y) if i % 2 else (y, x)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(r[0] for r in answers)
    assert statuses == [200] * 7 + [201], "answers %r" % [(r[0], r[2]) for r in answers]
    assert len({r[2]["id"] for r in answers}) == 1, answers
    assert [c["kind"] for c in listing(x)] == ["direct"], listing(x)


def test_direct_with_unknown_user_is_404():
    assert_error(A.call("POST", "/conversations", {"kind": "direct", "user_id": NO_SUCH_USER}),
                 404, "not_found")


def test_group_create_is_201_with_the_creator():
    global GROUP
    body = expect(A.call("POST", "/conversations", {
        "kind": "group", "title": "Trip \U0001f3d4", "member_ids": [B.id, C.id]}), 201)
    assert body["kind"] == "group" and body["title"] == "Trip \U0001f3d4", body
    assert sorted(body["member_ids"]) == sorted([A.id, B.id, C.id]), body
    parse_time(body["created_at"])
    GROUP = body["id"]
    # Every member sees it; no friendship was needed.
    for user in (A, B, C):
        assert sorted(user.get("/conversations/%d" % GROUP)["member_ids"]) == sorted([A.id, B.id, C.id])


def test_group_with_unknown_member_is_404():
    before = {c["id"] for c in listing(A)}
    assert_error(A.call("POST", "/conversations", {
        "kind": "group", "title": "ghosts", "member_ids": [B.id, NO_SUCH_USER]}), 404, "not_found")
    assert {c["id"] for c in listing(A)} == before, "a group was created anyway"


def test_group_with_too_few_members_is_400():
    for members in ([], [A.id]):
        assert_error(A.call("POST", "/conversations", {
            "kind": "group", "title": "alone", "member_ids": members}), 400, "bad_request")


def test_list_is_ordered_by_latest_activity():
    u = new_user("co")
    first = expect(u.call("POST", "/conversations", {"kind": "direct", "user_id": D.id}), 201)["id"]
    second = expect(u.call("POST", "/conversations", {"kind": "direct", "user_id": E.id}), 201)["id"]
    ids = [c["id"] for c in listing(u)]
    assert ids == [second, first], "newest conversation not first: %r" % ids
    for c in listing(u):
        assert set(c) >= {"id", "kind", "title", "member_ids", "last_message", "unread", "muted"}, c
        assert c["last_message"] is None and c["unread"] == 0 and c["muted"] is False, c
    # A message in the older one moves it to the top.
    msg = send(D, first, "hello from D")
    conversations = listing(u)
    assert [c["id"] for c in conversations] == [first, second], conversations
    last = conversations[0]["last_message"]
    assert last["message_id"] == msg["message_id"] and last["body"] == "hello from D", last
    assert last["sender_id"] == D.id and last["conversation_id"] == first, last
    send(u, second, "and now E's")
    assert [c["id"] for c in listing(u)] == [second, first]


def test_unread_counts_the_others_messages_and_clears_after_read():
    for i in range(3):
        send(B, DIRECT, "from B %d" % i)
    last = send(A, DIRECT, "from A")
    assert entry(A, DIRECT)["unread"] == 3, entry(A, DIRECT)
    assert entry(B, DIRECT)["unread"] == 1, entry(B, DIRECT)
    assert A.get("/conversations/%d" % DIRECT)["unread"] == 3
    status, _, body = A.call("POST", "/conversations/%d/read" % DIRECT, {"message_id": last["message_id"]})
    assert status == 204, "read: %d %r" % (status, body)
    assert entry(A, DIRECT)["unread"] == 0, entry(A, DIRECT)
    assert entry(B, DIRECT)["unread"] == 1, "A's read marker changed B's count"
    # Reading up to an earlier message leaves the later ones unread.
    m = [send(B, DIRECT, "more %d" % i) for i in range(2)]
    expect(A.call("POST", "/conversations/%d/read" % DIRECT, {"message_id": m[0]["message_id"]}), 204)
    assert entry(A, DIRECT)["unread"] == 1, entry(A, DIRECT)


def test_get_conversation_and_non_member_404():
    body = A.get("/conversations/%d" % GROUP)
    assert body["id"] == GROUP and body["kind"] == "group", body
    assert set(body) >= {"id", "kind", "title", "member_ids", "created_at"}, body
    assert_error(D.call("GET", "/conversations/%d" % GROUP), 404, "not_found")
    assert_error(D.call("GET", "/conversations/%d" % DIRECT), 404, "not_found")
    assert GROUP not in [c["id"] for c in listing(D)]


def test_title_by_admin_200_by_non_admin_403():
    body = expect(A.call("PATCH", "/conversations/%d" % GROUP, {"title": "Summit"}), 200)
    assert body["title"] == "Summit", body
    assert B.get("/conversations/%d" % GROUP)["title"] == "Summit"
    assert_error(B.call("PATCH", "/conversations/%d" % GROUP, {"title": "Mine now"}), 403, "forbidden")
    assert A.get("/conversations/%d" % GROUP)["title"] == "Summit"


def test_muted_is_per_user():
    body = expect(B.call("PATCH", "/conversations/%d" % GROUP, {"muted": True}), 200)
    assert body["muted"] is True, body
    assert entry(B, GROUP)["muted"] is True
    assert entry(A, GROUP)["muted"] is False, "B's mute changed A's"
    assert entry(C, GROUP)["muted"] is False, "B's mute changed C's"
    expect(B.call("PATCH", "/conversations/%d" % GROUP, {"muted": False}), 200)
    assert entry(B, GROUP)["muted"] is False


def test_add_member_by_admin_204_by_non_admin_403():
    status, _, body = A.call("POST", "/conversations/%d/members" % GROUP, {"user_id": D.id})
    assert status == 204, "status %d: %r" % (status, body)
    assert D.id in D.get("/conversations/%d" % GROUP)["member_ids"]
    assert D.id in A.get("/conversations/%d" % GROUP)["member_ids"]
    assert GROUP in [c["id"] for c in listing(D)]
    assert_error(B.call("POST", "/conversations/%d/members" % GROUP, {"user_id": E.id}), 403, "forbidden")
    assert_error(E.call("GET", "/conversations/%d" % GROUP), 404, "not_found")
    assert_error(A.call("POST", "/conversations/%d/members" % GROUP, {"user_id": NO_SUCH_USER}),
                 404, "not_found")


def test_remove_member_and_leave():
    # A non-admin cannot remove someone else.
    assert_error(B.call("DELETE", "/conversations/%d/members/%d" % (GROUP, C.id)), 403, "forbidden")
    status, _, body = A.call("DELETE", "/conversations/%d/members/%d" % (GROUP, C.id))
    assert status == 204, "remove: %d %r" % (status, body)
    assert_error(C.call("GET", "/conversations/%d" % GROUP), 404, "not_found")
    assert C.id not in A.get("/conversations/%d" % GROUP)["member_ids"]
    assert GROUP not in [c["id"] for c in listing(C)]
    # A member leaves on their own.
    status, _, body = D.call("DELETE", "/conversations/%d/members/%d" % (GROUP, D.id))
    assert status == 204, "leave: %d %r" % (status, body)
    assert_error(D.call("GET", "/conversations/%d" % GROUP), 404, "not_found")
    assert sorted(B.get("/conversations/%d" % GROUP)["member_ids"]) == sorted([A.id, B.id])


def test_non_member_cannot_read_or_post():
    send(A, GROUP, "members only")
    for user in (C, E):  # C was removed, E never joined
        path = "/conversations/%d" % GROUP
        assert_error(user.call("GET", path + "/messages"), 404, "not_found")
        assert_error(user.call("POST", path + "/messages", {"client_msg_id": "x1", "body": "let me in"}),
                     404, "not_found")
        assert_error(user.call("POST", path + "/read", {"message_id": 1}), 404, "not_found")
        assert_error(user.call("PATCH", path, {"muted": True}), 404, "not_found")
        assert_error(user.call("POST", path + "/members", {"user_id": user.id}), 404, "not_found")
    bodies = [m["body"] for m in A.get("/conversations/%d/messages" % GROUP)["messages"]]
    assert "let me in" not in bodies, bodies


if __name__ == "__main__":
    parley_test.run()

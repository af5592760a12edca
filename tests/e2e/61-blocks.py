"""61 blocking (doc/protocol.md "Blocking"): when A blocks B, every path B
has to A is closed, B's group messages never reach A, presence stops both
ways, and unblocking opens it all again."""

import secrets
import time

import parley_test
import rest
import ws
from parley_test import assert_error, wait_for
from rest import expect


def befriend(a, b):
    expect(a.call("POST", "/friends", {"user_id": b.id}), 201)
    expect(b.call("POST", "/friends", {"user_id": a.id}), 200)


def block(a, b):
    expect(a.call("POST", "/blocks", {"user_id": b.id}), 204)


def unblock(a, b):
    expect(a.call("DELETE", "/blocks/%d" % b.id), 204)


def post(user, conv, body):
    return user.call("POST", "/conversations/%d/messages" % conv,
                     {"client_msg_id": secrets.token_hex(8), "body": body})


def frames_for(sock, seconds):
    """Every frame that arrives on sock within seconds."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(max(0.05, deadline - time.monotonic())))
        except AssertionError:
            break
    return out


def presence_of(user, other):
    return user.get("/presence?user_ids=%d" % other.id)["presence"]


def friend_presence(user, other):
    [f] = [f for f in user.get("/friends")["friends"] if f["id"] == other.id]
    return f["presence"]


def test_block_is_idempotent_listed_and_undone():
    a, b = rest.new_user("ba"), rest.new_user("bb")
    block(a, b)
    block(a, b)
    listed = a.get("/blocks")["users"]
    assert listed == [{"id": b.id, "username": b.username, "display_name": b.display_name}], listed
    assert b.get("/blocks")["users"] == []
    unblock(a, b)
    unblock(a, b)
    assert a.get("/blocks")["users"] == []
    assert_error(a.call("POST", "/blocks", {"user_id": a.id}), 400, "bad_request")
    assert_error(a.call("POST", "/blocks", {"user_id": 10 ** 12}), 404, "not_found")
    assert_error(a.call("POST", "/blocks", {"user_id": "x"}), 400, "bad_request")
    assert_error(a.call("POST", "/blocks", {}), 400, "bad_request")
    assert_error(rest.call("GET", "/blocks"), 401, "unauthorized")


def test_blocked_user_cannot_reach_the_blocker():
    a, b, c = rest.new_user("ba"), rest.new_user("bb"), rest.new_user("bc")
    dm = rest.direct(a, b)
    expect(post(b, dm, "before"), 201)
    block(a, b)
    assert_error(b.call("POST", "/conversations", {"kind": "direct", "user_id": a.id}), 403, "forbidden")
    assert_error(post(b, dm, "after"), 403, "forbidden")
    assert_error(b.call("POST", "/friends", {"user_id": a.id}), 403, "forbidden")
    assert_error(b.call("POST", "/conversations", {"kind": "group", "title": "t",
                                                    "member_ids": [a.id, c.id]}), 403, "forbidden")
    g = rest.group(b, [c], "without a")
    assert_error(b.call("POST", "/conversations/%d/members" % g, {"user_id": a.id}), 403, "forbidden")
    assert a.id not in b.get("/conversations/%d" % g)["member_ids"]
    # The blocker is not stopped, and others are not either.
    expect(post(a, dm, "a may still write"), 201)
    expect(c.call("POST", "/friends", {"user_id": a.id}), 201)
    # Over the WebSocket too, with the send's ref.
    sock = ws.connect(b)
    try:
        sock.send({"type": "send", "conversation_id": dm, "client_msg_id": "blocked-1", "body": "x"})
        err = sock.expect("error")
        assert err["error"]["code"] == "forbidden" and err["ref"] == "blocked-1", err
    finally:
        sock.close()
    unblock(a, b)
    expect(post(b, dm, "after unblock"), 201)
    expect(b.call("POST", "/friends", {"user_id": a.id}), 201)


def test_group_messages_of_the_blocked_never_reach_the_blocker():
    a, b, c = rest.new_user("ba"), rest.new_user("bb"), rest.new_user("bc")
    g = rest.group(c, [a, b], "shared")
    block(a, b)
    start = a.get("/sync?after=0&limit=1000")["cursor"]
    sa, sc = ws.connect(a), ws.connect(c)
    try:
        hidden = expect(post(b, g, "from the blocked"), 201)
        shown = expect(post(c, g, "from another"), 201)
        got = sc.expect("message")
        assert got["message_id"] == hidden["message_id"], got
        assert sc.expect("message")["message_id"] == shown["message_id"]
        got = sa.expect("message")
        assert got["message_id"] == shown["message_id"], "the blocker got %r" % got
        # Reactions and edits of the blocked user do not reach the blocker.
        expect(b.call("PUT", "/conversations/%d/messages/%d/reactions/%%F0%%9F%%91%%8D"
                      % (g, shown["message_id"])), 204)
        expect(b.call("PATCH", "/conversations/%d/messages/%d" % (g, hidden["message_id"]),
                      {"body": "edited"}), 200)
        assert sc.expect("reaction")["user_id"] == b.id
        assert sc.expect("edit")["message_id"] == hidden["message_id"]
        leaked = [f for f in frames_for(sa, 1.0) if f.get("type") != "presence"]
        assert leaked == [], "the blocker got %r" % leaked
    finally:
        sa.close()
        sc.close()
    events = a.get("/sync?after=%d" % start)["events"]
    assert [e["message_id"] for e in events] == [shown["message_id"]], events
    assert [m["message_id"] for m in a.get("/conversations/%d/messages" % g)["messages"]] == [shown["message_id"]]
    assert a.get("/search?q=blocked&conversation_id=%d" % g)["messages"] == []
    seen_by_c = [m["message_id"] for m in c.get("/conversations/%d/messages" % g)["messages"]]
    assert seen_by_c == [shown["message_id"], hidden["message_id"]], seen_by_c
    # The blocker's conversation list neither shows nor counts it.
    [summary] = [x for x in a.get("/conversations")["conversations"] if x["id"] == g]
    assert summary["last_message"]["message_id"] == shown["message_id"], summary
    assert summary["unread"] == 1, summary
    expect(b.call("POST", "/conversations/%d/messages" % g,
                  {"client_msg_id": secrets.token_hex(8), "body": "newest, still hidden"}), 201)
    [summary] = [x for x in a.get("/conversations")["conversations"] if x["id"] == g]
    assert summary["last_message"]["message_id"] == shown["message_id"], summary
    assert summary["unread"] == 1, summary
    [theirs] = [x for x in c.get("/conversations")["conversations"] if x["id"] == g]
    assert theirs["last_message"]["body"] == "newest, still hidden" and theirs["unread"] == 2, theirs
    # The blocked user does not learn of it: their send went through.
    assert hidden["body"] == "from the blocked"


def test_presence_stops_both_ways():
    a, b = rest.new_user("ba"), rest.new_user("bb")
    befriend(a, b)
    sa, sb = ws.connect(a), ws.connect(b)
    try:
        wait_for(lambda: presence_of(a, b) and presence_of(a, b)[0]["status"] == "online", 10, "b online")
        block(a, b)
        assert presence_of(a, b) == [] and presence_of(b, a) == []
        for viewer, other in ((a, b), (b, a)):
            p = friend_presence(viewer, other)
            assert p == {"status": "offline", "last_seen": None}, p
        # No live presence frames across the block: b goes offline (the
        # grace is 5 s), a hears nothing.
        frames_for(sa, 0.5)
        sb.close()
        heard = [f for f in frames_for(sa, 8) if f.get("type") == "presence"]
        assert heard == [], heard
        unblock(a, b)
        sb = ws.connect(b)
        wait_for(lambda: presence_of(a, b) and presence_of(a, b)[0]["status"] == "online", 10,
                 "b online again after the unblock")
    finally:
        sa.close()
        sb.close()


def test_presence_is_for_accepted_friends_only():
    a, b = rest.new_user("ba"), rest.new_user("bb")
    rest.direct(a, b)   # sharing a conversation is not enough
    sb = ws.connect(b)
    try:
        assert presence_of(a, b) == []
        expect(a.call("POST", "/friends", {"user_id": b.id}), 201)
        assert presence_of(a, b) == []       # a request is not a friendship
        expect(b.call("POST", "/friends", {"user_id": a.id}), 200)
        wait_for(lambda: presence_of(a, b) and presence_of(a, b)[0]["status"] == "online", 10, "b online")
    finally:
        sb.close()


parley_test.run()

"""60 replies, edits, deletions and reactions (doc/protocol.md "Replies,
edits, deletions and reactions"): who may do what, the message object's new
fields in every answer, and the inbox events every transport gives in seq
order."""

import http.client
import json
import secrets
import subprocess
import urllib.parse

import parley_test
import rest
import ws
from parley_test import assert_error
from rest import expect

A = rest.new_user("ea")
B = rest.new_user("eb")
C = rest.new_user("ec")
DM = rest.direct(A, B)
GROUP = rest.group(A, [B, C], "events")   # A is the admin


def post(user, conv, body=None, **extra):
    payload = {"client_msg_id": secrets.token_hex(8)}
    if body is not None:
        payload["body"] = body
    payload.update(extra)
    return user.call("POST", "/conversations/%d/messages" % conv, payload)


def history(user, conv):
    return user.get("/conversations/%d/messages?limit=100" % conv)["messages"]


def by_id(user, conv, mid):
    found = [m for m in history(user, conv) if m["message_id"] == mid]
    assert len(found) == 1, "message %d not in history: %r" % (mid, found)
    return found[0]


def react(user, conv, mid, emoji, method="PUT"):
    return user.call(method, "/conversations/%d/messages/%d/reactions/%s"
                     % (conv, mid, urllib.parse.quote(emoji, safe="")))


def sync(user, after):
    return user.get("/sync?after=%d&limit=1000" % after)["events"]


def head(user):
    body = user.get("/sync?after=0&limit=1000")
    return body["cursor"]


def test_new_message_carries_the_new_fields():
    m = expect(post(A, DM, "plain"), 201)
    for key, want in (("reply_to", None), ("attachments", []), ("edited_at", None),
                      ("deleted_at", None), ("reactions", [])):
        assert m[key] == want, "%s: %r" % (key, m)
    stored = by_id(B, DM, m["message_id"])
    assert stored["reactions"] == [] and stored["reply_to"] is None, stored


def test_reply_to_a_message_of_the_same_conversation():
    first = expect(post(A, DM, "question?"), 201)
    reply = expect(post(B, DM, "answer", reply_to=first["message_id"]), 201)
    assert reply["reply_to"] == first["message_id"], reply
    assert by_id(A, DM, reply["message_id"])["reply_to"] == first["message_id"]
    # Message ids count per conversation: an empty one has none of them.
    other = expect(post(A, GROUP, "in the group"), 201)
    empty = rest.group(A, [B], "empty")
    assert_error(post(B, empty, "cross", reply_to=other["message_id"]), 400, "bad_request")
    assert_error(post(B, DM, "nowhere", reply_to=10 ** 9), 400, "bad_request")
    assert_error(post(B, DM, "typed", reply_to="1"), 400, "bad_request")
    assert_error(post(B, DM, "zero", reply_to=0), 400, "bad_request")


def test_reply_over_the_websocket():
    first = expect(post(A, DM, "ws question"), 201)
    sa, sb = ws.connect(A), ws.connect(B)
    try:
        sb.send({"type": "send", "conversation_id": DM, "client_msg_id": "r" + secrets.token_hex(4),
                 "body": "ws answer", "reply_to": first["message_id"]})
        sb.expect("sent")
        got = sa.expect("message")
        assert got["reply_to"] == first["message_id"] and got["body"] == "ws answer", got
        assert got["attachments"] == [] and got["reactions"] == [], got
        sb.send({"type": "send", "conversation_id": DM, "client_msg_id": "bad-reply",
                 "body": "x", "reply_to": 10 ** 9})
        err = sb.expect("error")
        assert err["error"]["code"] == "bad_request" and err["ref"] == "bad-reply", err
    finally:
        sa.close()
        sb.close()


def test_edit_by_the_sender_only():
    m = expect(post(A, GROUP, "tpyo"), 201)
    path = "/conversations/%d/messages/%d" % (GROUP, m["message_id"])
    edited = expect(A.call("PATCH", path, {"body": "typo"}), 200)
    assert edited["body"] == "typo" and rest.is_rfc3339(edited["edited_at"]), edited
    assert edited["message_id"] == m["message_id"] and edited["created_at"] == m["created_at"]
    seen = by_id(C, GROUP, m["message_id"])
    assert seen["body"] == "typo" and seen["edited_at"] == edited["edited_at"], seen
    assert_error(B.call("PATCH", path, {"body": "not mine"}), 403, "forbidden")
    outsider = rest.new_user("eo")
    assert_error(outsider.call("PATCH", path, {"body": "x"}), 404, "not_found")
    assert_error(A.call("PATCH", path, {"body": ""}), 400, "bad_request")
    assert_error(A.call("PATCH", path, {"body": "x" * 4097}), 413, "too_large")
    assert_error(A.call("PATCH", path, {}), 400, "bad_request")
    assert_error(A.call("PATCH", "/conversations/%d/messages/%d" % (GROUP, 10 ** 9),
                        {"body": "x"}), 404, "not_found")
    hits = A.get("/search?q=typo&conversation_id=%d" % GROUP)["messages"]
    assert [h["message_id"] for h in hits] == [m["message_id"]], hits


def test_edit_after_the_window_is_403():
    m = expect(post(A, DM, "old news"), 201)
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", parley_test.PG, "-c",
                    "UPDATE messages SET created_at = now() - interval '49 hours' "
                    "WHERE conversation_id = %d AND message_id = %d" % (DM, m["message_id"])],
                   check=True, capture_output=True)
    assert_error(A.call("PATCH", "/conversations/%d/messages/%d" % (DM, m["message_id"]),
                        {"body": "new news"}), 403, "forbidden")
    assert by_id(A, DM, m["message_id"])["body"] == "old news"


def test_delete_leaves_a_tombstone_search_never_finds():
    word = "zebra" + secrets.token_hex(3)
    m = expect(post(B, DM, "a %s here" % word), 201)
    react(A, DM, m["message_id"], "👍")
    assert len(A.get("/search?q=%s" % word)["messages"]) == 1
    path = "/conversations/%d/messages/%d" % (DM, m["message_id"])
    assert_error(A.call("DELETE", path), 403, "forbidden")   # not the sender, not a group
    expect(B.call("DELETE", path), 204)
    expect(B.call("DELETE", path), 204)                      # idempotent
    gone = by_id(A, DM, m["message_id"])
    assert gone["body"] == "" and gone["attachments"] == [] and gone["reactions"] == [], gone
    assert rest.is_rfc3339(gone["deleted_at"]), gone
    assert A.get("/search?q=%s" % word)["messages"] == []
    assert_error(B.call("PATCH", path, {"body": "back"}), 404, "not_found")
    assert_error(react(A, DM, m["message_id"], "👍"), 404, "not_found")


def test_deleted_messages_are_not_unread():
    a, b = rest.new_user("eu"), rest.new_user("ev")
    dm = rest.direct(a, b)
    keep = expect(post(a, dm, "keep"), 201)
    gone = expect(post(a, dm, "take back"), 201)
    expect(a.call("DELETE", "/conversations/%d/messages/%d" % (dm, gone["message_id"])), 204)
    [summary] = [x for x in b.get("/conversations")["conversations"] if x["id"] == dm]
    assert summary["unread"] == 1, summary
    assert summary["last_message"]["message_id"] == gone["message_id"], summary
    assert summary["last_message"]["deleted_at"] is not None and summary["last_message"]["body"] == ""
    assert keep["message_id"] < gone["message_id"]


def test_group_admin_deletes_others_members_do_not():
    m = expect(post(B, GROUP, "spam"), 201)
    path = "/conversations/%d/messages/%d" % (GROUP, m["message_id"])
    assert_error(C.call("DELETE", path), 403, "forbidden")
    expect(A.call("DELETE", path), 204)
    assert by_id(C, GROUP, m["message_id"])["deleted_at"] is not None


def test_reactions_are_counted_per_emoji_with_me():
    m = expect(post(A, GROUP, "react to me"), 201)
    mid = m["message_id"]
    expect(react(B, GROUP, mid, "👍"), 204)
    expect(react(B, GROUP, mid, "👍"), 204)          # adding twice is one reaction
    expect(react(C, GROUP, mid, "👍"), 204)
    expect(react(C, GROUP, mid, "🎉"), 204)
    seen_b = by_id(B, GROUP, mid)["reactions"]
    assert seen_b == [{"emoji": "👍", "count": 2, "me": True},
                      {"emoji": "🎉", "count": 1, "me": False}], seen_b
    assert by_id(A, GROUP, mid)["reactions"][0] == {"emoji": "👍", "count": 2, "me": False}
    expect(react(B, GROUP, mid, "👍", "DELETE"), 204)
    expect(react(B, GROUP, mid, "👍", "DELETE"), 204)  # not there: 204 too
    assert by_id(B, GROUP, mid)["reactions"][0] == {"emoji": "👍", "count": 1, "me": False}
    word = "reactword" + secrets.token_hex(2)
    s = expect(post(A, GROUP, word), 201)
    expect(react(C, GROUP, s["message_id"], "❤"), 204)
    hit = A.get("/search?q=%s" % word)["messages"][0]
    assert hit["reactions"] == [{"emoji": "❤", "count": 1, "me": False}], hit


def test_reaction_limits():
    m = expect(post(A, DM, "many"), 201)
    assert_error(react(A, DM, m["message_id"], "x" * 33), 400, "bad_request")
    expect(react(A, DM, m["message_id"], "x" * 32), 204)
    for i in range(19):
        expect(react(B, DM, m["message_id"], "e%d" % i), 204)
    assert_error(react(A, DM, m["message_id"], "one-too-many"), 400, "bad_request")
    expect(react(A, DM, m["message_id"], "e3"), 204)  # an emoji already there is fine
    assert len(by_id(A, DM, m["message_id"])["reactions"]) == 20
    outsider = rest.new_user("er")
    assert_error(react(outsider, DM, m["message_id"], "👍"), 404, "not_found")
    assert_error(A.call("PUT", "/conversations/%d/messages/%d/reactions/%%FF" % (DM, m["message_id"])),
                 400, "bad_request")


def test_events_reach_live_sockets_with_their_own_seq():
    m = expect(post(A, GROUP, "live"), 201)
    mid = m["message_id"]
    sa, sc = ws.connect(A), ws.connect(C)
    try:
        expect(A.call("PATCH", "/conversations/%d/messages/%d" % (GROUP, mid), {"body": "live!"}), 200)
        expect(react(C, GROUP, mid, "🔥"), 204)
        expect(react(C, GROUP, mid, "🔥"), 204)              # no second event
        expect(react(C, GROUP, mid, "🔥", "DELETE"), 204)
        expect(A.call("DELETE", "/conversations/%d/messages/%d" % (GROUP, mid)), 204)
        for sock in (sa, sc):
            frames = [sock.recv() for _ in range(4)]
            kinds = [f["type"] for f in frames]
            assert kinds == ["edit", "reaction", "reaction", "delete"], frames
            seqs = [f["seq"] for f in frames]
            assert seqs == sorted(seqs) and len(set(seqs)) == 4, frames
            edit, add, remove, delete = frames
            assert edit["body"] == "live!" and edit["sender_id"] == A.id, edit
            assert rest.is_rfc3339(edit["edited_at"]) and edit["message_id"] == mid, edit
            assert (add["op"], remove["op"]) == ("add", "remove"), frames
            assert add["user_id"] == C.id and add["emoji"] == "🔥", add
            # Each says the emoji's count once it applied.
            assert (add["count"], remove["count"]) == (1, 0), frames
            assert delete["deleted_by"] == A.id and rest.is_rfc3339(delete["deleted_at"]), delete
            for f in frames:
                assert f["conversation_id"] == GROUP and f["message_id"] == mid, f
            sock.quiet(0.5)
    finally:
        sa.close()
        sc.close()


def test_offline_devices_catch_up_in_order_on_every_transport():
    before = head(B)
    m = expect(post(A, DM, "catch me"), 201)
    mid = m["message_id"]
    path = "/conversations/%d/messages/%d" % (DM, mid)
    expect(A.call("PATCH", path, {"body": "caught"}), 200)
    expect(react(A, DM, mid, "👀"), 204)
    expect(A.call("DELETE", path), 204)
    want = ["message", "edit", "reaction", "delete"]
    events = sync(B, before)
    assert [e["type"] for e in events] == want, events
    assert [e["seq"] for e in events] == list(range(before + 1, before + 5)), events
    # The message itself, read now, is as it stands: deleted; nor does its
    # edit, replayed after the delete, give its text away.
    assert events[0]["body"] == "" and events[0]["deleted_at"] is not None, events[0]
    assert events[1]["body"] == "" and rest.is_rfc3339(events[1]["edited_at"]), events[1]
    assert events[2]["count"] == 1 and events[2]["op"] == "add", events[2]
    sock = ws.connect(B, cursor=before)
    try:
        replay = [sock.recv() for _ in range(4)]
        assert [f["type"] for f in replay] == want, replay
        assert [f["seq"] for f in replay] == [e["seq"] for e in events], replay
    finally:
        sock.close()
    relay = urllib.parse.urlsplit(parley_test.RELAY_URL)
    conn = http.client.HTTPConnection(relay.hostname, relay.port, timeout=10)
    conn.request("GET", "/poll?after=%d&timeout=1" % before, headers={"Authorization": "Bearer " + B.token})
    polled = json.loads(conn.getresponse().read())
    conn.close()
    assert [e["type"] for e in polled["events"]] == want, polled
    # SSE: every inbox event is "event: message", its kind in the data.
    conn = http.client.HTTPConnection(relay.hostname, relay.port, timeout=10)
    conn.request("GET", "/events?after=%d" % before, headers={"Authorization": "Bearer " + B.token})
    resp = conn.getresponse()
    streamed = []
    while len(streamed) < 4:
        line = resp.fp.readline().decode().rstrip("\n")
        if line.startswith("data: "):
            streamed.append(json.loads(line[len("data: "):]))
        else:
            assert line == "" or line.startswith((":", "id: ", "event: message")), line
    conn.close()
    assert [e["type"] for e in streamed] == want, streamed
    assert [e["seq"] for e in streamed] == [e["seq"] for e in events], streamed


parley_test.run()

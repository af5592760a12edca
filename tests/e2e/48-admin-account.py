"""48 admin account: "parley-admin user export USER" writes a person's data
as one JSON document (profile, devices without their tokens, sessions,
friends, blocks, conversations, reactions and every message they sent), and
"user delete USER" ends the account: sessions revoked, sockets closed,
friendships, blocks and memberships gone, the name free again, and the
messages they sent kept in the other members' history from "Deleted
account" (or, with --erase-messages, deleted, as the members' devices are
told live)."""

import json
import os
import subprocess

import parley_test
import rest
import ws
from parley_test import assert_error
from rest import PASSWORD, expect

BUILD = os.environ.get("PARLEY_BUILDDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ADMIN = os.path.join(BUILD, "admin", "parley-admin")
CONF = os.path.join(rest.RUNDIR, "etc", "parley.conf")


def admin(*args):
    p = subprocess.run([ADMIN, "-c", CONF, *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def befriend(a, b):
    expect(a.call("POST", "/friends", {"user_id": b.id}), 201)
    expect(b.call("POST", "/friends", {"user_id": a.id}), 200)


def test_export_holds_the_persons_data_and_no_secrets():
    token = rest.uniq("tok")
    a = rest.new_user("xa", display_name="Export Me",
                      device={"platform": "fcm", "push_token": token})
    b, c = rest.new_user("xb"), rest.new_user("xc")
    befriend(a, b)
    expect(a.call("POST", "/blocks", {"user_id": c.id}), 204)
    dm = rest.direct(a, b)
    g = rest.group(b, [a], "exported")
    sent = [rest.send(a, dm, "first"), rest.send(a, g, "second"), rest.send(a, dm, "third")]
    rest.send(b, dm, "not a's")
    expect(a.call("PUT", "/conversations/%d/messages/%d/reactions/%%E2%%9C%%85"
                  % (dm, sent[0]["message_id"])), 204)
    rc, out, err = admin("user", "export", a.username)
    assert rc == 0, (rc, err)
    doc = json.loads(out)
    assert doc["user"]["id"] == a.id and doc["user"]["display_name"] == "Export Me", doc["user"]
    assert [(d["platform"], d["push_token_set"]) for d in doc["devices"]] == [("fcm", True)], doc["devices"]
    assert token not in out and "password" not in out and "$argon2" not in out
    assert [f["user_id"] for f in doc["friends"]] == [b.id], doc["friends"]
    assert [x["user_id"] for x in doc["blocks"]] == [c.id], doc["blocks"]
    assert sorted(x["id"] for x in doc["conversations"]) == sorted([dm, g]), doc["conversations"]
    assert [r["emoji"] for r in doc["reactions"]] == ["✅"], doc["reactions"]
    bodies = sorted(m["body"] for m in doc["messages"])
    assert bodies == ["first", "second", "third"], doc["messages"]
    assert all(m["sender_id"] == a.id for m in doc["messages"])
    assert len(doc["sessions"]) == 1, doc["sessions"]


def test_delete_ends_the_account_and_keeps_the_others_history():
    a, b = rest.new_user("da"), rest.new_user("db")
    befriend(a, b)
    dm = rest.direct(a, b)
    g = rest.group(a, [b], "a's group")     # a is its only admin
    kept = rest.send(a, dm, "I was here")
    sock = ws.connect(a)
    rc, out, err = admin("user", "delete", a.username)
    assert rc == 0, (rc, err)
    assert "1 sessions revoked, 2 conversations left, 0 messages erased" in out, out
    assert sock.expect_close(timeout=5) == 4003
    assert_error(rest.call("GET", "/me", token=a.token), 401, "unauthorized")
    assert_error(rest.call("POST", "/sessions", {"username": a.username, "password": PASSWORD}),
                 401, "unauthorized")
    # The history stays with the other member, from a deleted account.
    [m] = [x for x in b.get("/conversations/%d/messages" % dm)["messages"]
           if x["message_id"] == kept["message_id"]]
    assert m["body"] == "I was here" and m["sender_id"] == a.id, m
    who = b.get("/users/%d" % a.id)
    assert who["display_name"] == "Deleted account" and who["username"] != a.username, who
    # Friends, memberships gone; the group got an admin.
    assert [f for f in b.get("/friends")["friends"] if f["id"] == a.id] == []
    group = b.get("/conversations/%d" % g)
    assert group["member_ids"] == [b.id] and group["admin_ids"] == [b.id], group
    # The name is free again, for someone new.
    again = rest.signup(a.username)
    assert again["id"] != a.id


def test_delete_with_erase_messages_deletes_them_live():
    a, b = rest.new_user("ea"), rest.new_user("eb")
    dm = rest.direct(a, b)
    m1, m2 = rest.send(a, dm, "erase me"), rest.send(a, dm, "and me")
    theirs = rest.send(b, dm, "mine stays")
    sock = ws.connect(b)
    try:
        rc, out, err = admin("user", "delete", a.username, "--erase-messages")
        assert rc == 0 and "2 messages erased" in out, (rc, out, err)
        deletes = [sock.expect("delete") for _ in range(2)]
        assert sorted(d["message_id"] for d in deletes) == [m1["message_id"], m2["message_id"]], deletes
    finally:
        sock.close()
    history = {x["message_id"]: x for x in b.get("/conversations/%d/messages" % dm)["messages"]}
    for m in (m1, m2):
        assert history[m["message_id"]]["body"] == "" and history[m["message_id"]]["deleted_at"], history
    assert history[theirs["message_id"]]["body"] == "mine stays"


def test_bad_usage_and_unknown_users():
    rc, _, err = admin("user", "export", "no-such-user-here")
    assert rc == 1 and "no user" in err, (rc, err)
    rc, _, err = admin("user", "delete", "no-such-user-here")
    assert rc == 1 and "no user" in err, (rc, err)
    for args in (("user", "export"), ("user", "delete", "x", "--everything"),
                 ("user", "export", "x", "y")):
        rc, _, err = admin(*args)
        assert rc == 2 and "usage" in err, (args, rc, err)


parley_test.run()

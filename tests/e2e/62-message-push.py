"""62 pushes for what happens to messages (doc/protocol.md "Pushes"): an
edit or a reaction wakes no phone, a message deleted before its push went
out is not pushed, a blocked user's group messages never push to the
blocker, and a message of attachments alone reads "Photo" or "File: name".
Each case ends with a positive control (30-push.py's)."""

import secrets

import attach
import parley_test
import push
import rest
from rest import expect

A = rest.new_user("qa", display_name="Alice Edits")


def control_pushed():
    """A later message to another offline user is pushed, and every push job
    is acknowledged: the job of the case under test was decided before."""
    c = rest.new_user("qctl")
    tok = push.register(c, "apns")
    rest.send(A, rest.direct(A, c), "control")
    push.wait_requests(tok, 1, timeout=20, status=200)
    parley_test.wait_for(lambda: push.pending() == 0, 15, "every push job to be acknowledged")


def test_edits_and_reactions_do_not_push():
    b = rest.new_user("qb")
    tok = push.register(b, "apns")
    conv = rest.direct(A, b)
    msg = rest.send(A, conv, "first version")
    [first] = push.wait_requests(tok, 1, status=200)
    assert first["body"]["aps"]["alert"]["body"] == "first version", first["body"]
    path = "/conversations/%d/messages/%d" % (conv, msg["message_id"])
    expect(A.call("PATCH", path, {"body": "second version"}), 200)
    expect(A.call("PUT", path + "/reactions/%E2%9D%A4"), 204)
    control_pushed()
    assert len(push.requests(token=tok)) == 1, push.requests(token=tok)


def test_deleted_before_its_push_is_not_pushed():
    b = rest.new_user("qd")
    tok = push.register(b, "apns")
    conv = rest.direct(A, b)
    # The notifier is held while the message is sent and deleted: its push
    # job is queued, and decided only after the delete.
    with parley_test.frozen([parley_test.service_pid("notify")]):
        msg = rest.send(A, conv, "oops, wrong chat")
        expect(A.call("DELETE", "/conversations/%d/messages/%d" % (conv, msg["message_id"])), 204)
    control_pushed()
    assert push.requests(token=tok) == [], "a deleted message was pushed"


def test_blocked_users_group_messages_never_push_to_the_blocker():
    b, c = rest.new_user("qb"), rest.new_user("qc")
    tok = push.register(b, "apns")
    g = rest.group(A, [b, c], "pushy")
    expect(b.call("POST", "/blocks", {"user_id": c.id}), 204)
    rest.send(c, g, "from the blocked " + secrets.token_hex(3))
    control_pushed()
    assert push.requests(token=tok) == [], "the blocker was pushed the blocked user's message"
    rest.send(A, g, "from a friend")
    [req] = push.wait_requests(tok, 1, status=200)
    assert req["body"]["aps"]["alert"]["body"] == "from a friend", req["body"]
    assert req["body"]["aps"]["badge"] == 1, req["body"]


def test_attachments_alone_push_photo_or_the_file_name():
    photo = attach.uploaded(A, attach.png(64, 48), "image/png", "cat.png")
    notes = attach.uploaded(A, b"minutes of the meeting\n", "text/plain", "notes.txt")
    # One recipient each: pushes of one conversation may be collapsed.
    for att, want in ((photo, "Photo"), (notes, "File: notes.txt")):
        b = rest.new_user("qf")
        tok = push.register(b, "apns")
        expect(A.call("POST", "/conversations/%d/messages" % rest.direct(A, b), {
            "client_msg_id": secrets.token_hex(8), "body": "", "attachment_ids": [att["id"]]}), 201)
        [req] = push.wait_requests(tok, 1, status=200)
        alert = req["body"]["aps"]["alert"]
        assert alert["body"] == want and alert["title"] == "Alice Edits", alert

parley_test.run()

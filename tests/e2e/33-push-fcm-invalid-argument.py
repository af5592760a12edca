"""33 push FCM INVALID_ARGUMENT: FCM answers 400 INVALID_ARGUMENT both for a
malformed registration token and for a malformed message. Only the answer
whose field violation names message.token removes the token; one about the
message (or one that names no field) keeps it, and the next message is
pushed to it (doc/architecture.md "Push notifications")."""

import parley_test
import push
import rest
from parley_test import wait_for

A = rest.new_user("fa", display_name="Alice Fcm")


def test_invalid_argument_removes_only_a_blamed_token():
    b = rest.new_user("finv")
    payload_phone, payload_tok = push.phone(b, "fcm")
    bare_phone, bare_tok = push.phone(b, "fcm")
    token_phone, bad_tok = push.phone(b, "fcm")
    push.script({"kind": "fcm", "token": payload_tok, "status": 400, "field": "message.data[0].value"},
                {"kind": "fcm", "token": bare_tok, "status": 400},
                {"kind": "fcm", "token": bad_tok, "status": 400, "field": "message.token"})
    conv = rest.direct(A, b)
    rest.send(A, conv, "one of these tokens is bad")
    for tok in (payload_tok, bare_tok, bad_tok):
        push.wait_requests(tok, 1, timeout=15, status=400)
    wait_for(lambda: not push.has_token(token_phone.device_id), 10, "the blamed token to be removed")
    wait_for(lambda: push.pending() == 0, 15, "the job to be acknowledged")
    assert push.has_token(payload_phone.device_id), "a payload INVALID_ARGUMENT removed a good token"
    assert push.has_token(bare_phone.device_id), "an INVALID_ARGUMENT naming no field removed the token"
    # The kept tokens still work: the next message reaches them, not the removed one.
    rest.send(A, conv, "again")
    push.wait_requests(payload_tok, 1, timeout=15, status=200)
    push.wait_requests(bare_tok, 1, timeout=15, status=200)
    wait_for(lambda: push.pending() == 0, 15, "the second job to be acknowledged")
    assert len(push.requests(token=bad_tok)) == 1, "a removed token was pushed again"


if __name__ == "__main__":
    parley_test.run()

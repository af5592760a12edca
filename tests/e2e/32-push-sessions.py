"""32 push sessions: a phone gets pushes only while it has a live session
(doc/architecture.md "Push notifications"). Logging out (DELETE
/sessions/current) clears the device's push token; removing a device
(DELETE /devices/{id}) takes its token with it; and the notifier skips a
device whose sessions are all revoked or expired, whatever token it still
holds. Each test has a positive control: another phone of the same user,
pushed for the same message, so a slow notifier cannot make a missing push
look right."""

import parley_test
import push
import rest
from parley_test import wait_for
from rest import expect

A = rest.new_user("sa", display_name="Alice Sessions")


def sent_and_settled(user, control_token, text):
    """Sends text from A to user, waits for the control phone's push and for
    the job to be acknowledged (every push of it done); returns nothing."""
    rest.send(A, rest.direct(A, user), text)
    push.wait_requests(control_token, 1, timeout=15, status=200)
    wait_for(lambda: push.pending() == 0, 15, "the push job to be acknowledged")


def test_no_push_after_logout():
    b = rest.new_user("slo")
    apns_phone, apns_tok = push.phone(b, "apns")
    fcm_phone, fcm_tok = push.phone(b, "fcm")
    _, control = push.phone(b, "apns")
    for phone in (apns_phone, fcm_phone):
        expect(phone.call("DELETE", "/sessions/current"), 204, "logout")
    sent_and_settled(b, control, "after you logged out")
    assert push.requests(token=apns_tok) == [], "an apns phone got a push after it logged out"
    assert push.requests(token=fcm_tok) == [], "an fcm phone got a push after it logged out"
    # The token itself is gone from the logged-out devices, which stay listed.
    devices = {d["id"]: d for d in b.get("/devices")["devices"]}
    for phone in (apns_phone, fcm_phone):
        assert devices[phone.device_id]["has_push_token"] is False, devices[phone.device_id]


def test_no_push_to_a_removed_device():
    b = rest.new_user("srm")
    phone, tok = push.phone(b, "apns")
    _, control = push.phone(b, "fcm")
    expect(b.call("DELETE", "/devices/%d" % phone.device_id), 204, "remove the phone")
    sent_and_settled(b, control, "after your phone was removed")
    assert push.requests(token=tok) == [], "a removed device got a push"


def test_no_push_without_a_live_session_even_with_a_token():
    b = rest.new_user("srv")
    revoked, revoked_tok = push.phone(b, "apns")
    expired, expired_tok = push.phone(b, "fcm")
    _, control = push.phone(b, "apns")
    # Ended behind the API's back, as an operator would: the token stays.
    push.sql("UPDATE sessions SET revoked_at = now() WHERE device_id = %d" % revoked.device_id)
    push.sql("UPDATE sessions SET expires_at = now() - interval '1 second' WHERE device_id = %d"
             % expired.device_id)
    assert push.has_token(revoked.device_id) and push.has_token(expired.device_id)
    sent_and_settled(b, control, "to sessions that ended")
    assert push.requests(token=revoked_tok) == [], "a device with a revoked session got a push"
    assert push.requests(token=expired_tok) == [], "a device with an expired session got a push"


if __name__ == "__main__":
    parley_test.run()

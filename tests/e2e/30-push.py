"""30 push: parley-notify against the fake APNs/FCM of the test stack
(doc/architecture.md "Push notifications"; issue "Notifier"). A message to an
offline user wakes each of their phones exactly once, with a correctly
signed request; an online user gets no push; dead tokens are removed;
429/503 are retried; the APNs provider JWT is shared and refreshed after
its configured lifetime (4 s in the test stack)."""

import os
import signal
import time

import parley_test
import push
import rest
import ws
from parley_test import wait_for

A = rest.new_user("pa", display_name="Alice Push")


def test_offline_user_gets_one_apns_and_one_fcm_push():
    b = rest.new_user("pb")
    apns_tok = push.register(b, "apns")
    _, fcm_tok = push.phone(b, "fcm")
    conv = rest.direct(A, b)
    msg = rest.send(A, conv, "hello there, this is a push preview")
    [a] = push.wait_requests(apns_tok, 1, status=200)
    [f] = push.wait_requests(fcm_tok, 1, status=200)
    # APNs: path, headers, a verified ES256 provider token (the fake checks
    # the signature against the test key and answers 403 otherwise).
    assert a["path"] == "/3/device/" + apns_tok, a["path"]
    h = a["headers"]
    assert h["apns-topic"] == "org.parley.test" and h["apns-push-type"] == "alert", h
    assert h["apns-priority"] == "10" and h["apns-collapse-id"] == str(conv), h
    assert int(h["apns-expiration"]) > time.time(), h
    assert a["jwt"]["header"]["alg"] == "ES256" and a["jwt"]["header"]["kid"] == "TESTKEY123", a["jwt"]
    assert a["jwt"]["claims"]["iss"] == "TESTTEAM12", a["jwt"]
    assert a["http"] == "2.0", a["http"]
    alert = a["body"]["aps"]["alert"]
    assert alert["title"] == "Alice Push" and alert["body"].startswith("hello there"), alert
    assert a["body"]["conversation_id"] == conv and a["body"]["message_id"] == msg["message_id"], a["body"]
    assert a["body"]["aps"]["badge"] == 1, a["body"]  # one message from others, unread
    # FCM: an access token from the RS256 service-account grant, collapse key.
    m = f["body"]["message"]
    assert m["token"] == fcm_tok and m["android"]["collapse_key"] == str(conv), m
    assert m["data"]["conversation_id"] == str(conv), m
    assert m["notification"]["title"] == "Alice Push", m
    assert push.requests(kind="token"), "no OAuth2 token request"
    assert all(t["status"] == 200 for t in push.requests(kind="token"))
    # Exactly one each, and the job is acknowledged.
    control_pushed()
    assert len(push.requests(token=apns_tok)) == 1 and len(push.requests(token=fcm_tok)) == 1


def control_pushed():
    """A positive control: a message to an offline user, sent after the case
    under test, is pushed, and every job is acknowledged. The job of the case
    under test was queued first, so by then the notifier has decided it: a
    slow notifier cannot make a missing push look right."""
    c = rest.new_user("pctl")
    tok = push.register(c, "apns")
    rest.send(A, rest.direct(A, c), "control")
    push.wait_requests(tok, 1, timeout=20, status=200)
    wait_for(lambda: push.pending() == 0, 15, "every push job to be acknowledged")


def test_online_user_gets_no_push():
    b = rest.new_user("pon")
    apns_tok = push.register(b, "apns")
    sock = ws.connect(b)
    conv = rest.direct(A, b)
    rest.send(A, conv, "you are online")
    sock.expect("message", timeout=5)
    control_pushed()
    assert push.requests(token=apns_tok) == [], "an online user got a push"
    sock.close()


def test_read_within_grace_is_not_pushed():
    b = rest.new_user("prd")
    apns_tok = push.register(b, "apns")
    conv = rest.direct(A, b)
    # The message is read before grace ends: /sync?after=SEQ stores SEQ as
    # the device's cursor.
    rest.send(A, conv, "read me quickly")
    head = b.get("/sync?after=0")["cursor"]
    b.get("/sync?after=%d" % head)
    control_pushed()
    assert push.requests(token=apns_tok) == [], "a message read within grace was pushed"


def test_unregistered_tokens_are_removed():
    b = rest.new_user("pgone")
    apns_tok = push.register(b, "apns")
    dev2, fcm_tok = push.phone(b, "fcm")
    push.script({"kind": "apns", "token": apns_tok, "status": 410},
                {"kind": "fcm", "token": fcm_tok, "status": 404})
    conv = rest.direct(A, b)
    rest.send(A, conv, "to a dead phone")
    push.wait_requests(apns_tok, 1, status=410)
    push.wait_requests(fcm_tok, 1, status=404)

    def tokens_gone():
        devs = b.get("/devices")["devices"]
        return all(not d["has_push_token"] for d in devs)
    wait_for(tokens_gone, 10, "both dead tokens to be removed")
    outcomes = ("jobs_dropped_total", "jobs_collapsed_total", "pushes_sent_total", "pushes_failed_total")

    def handled():
        m = push.metrics()
        return sum(m["parley_notify_" + k] for k in outcomes)
    before = handled()
    rest.send(A, conv, "again")
    # The notifier has decided what to do with the second job ...
    wait_for(lambda: handled() > before, 10, "the notifier to handle the second message's job")
    # ... and sent nothing for it.
    assert len(push.requests(token=apns_tok)) == 1 and len(push.requests(token=fcm_tok)) == 1


def test_retries_429_and_503_then_succeed():
    b = rest.new_user("pretry")
    apns_tok = push.register(b, "apns")
    _, fcm_tok = push.phone(b, "fcm")
    push.script({"kind": "apns", "token": apns_tok, "status": 429, "retry_after": 1},
                {"kind": "apns", "token": apns_tok, "status": 503},
                {"kind": "fcm", "token": fcm_tok, "status": 503},
                {"kind": "fcm", "token": fcm_tok, "status": 429})
    conv = rest.direct(A, b)
    rest.send(A, conv, "retry me")
    rs = push.wait_requests(apns_tok, 1, timeout=15, status=200)
    assert [r["status"] for r in rs] == [429, 503, 200], [r["status"] for r in rs]
    # Retry-After: 1 was honoured.
    assert rs[1]["time"] - rs[0]["time"] >= 950, (rs[0]["time"], rs[1]["time"])
    fs = push.wait_requests(fcm_tok, 1, timeout=15, status=200)
    assert [r["status"] for r in fs] == [503, 429, 200], [r["status"] for r in fs]
    wait_for(lambda: push.pending() == 0, 10, "the retried jobs to be acknowledged")


def test_provider_jwt_reused_then_refreshed():
    users = [rest.new_user("pjwt") for _ in range(4)]
    toks = [push.register(u, "apns") for u in users]
    for u in users:
        rest.send(A, rest.direct(A, u), "jwt reuse")
    rs = [push.wait_requests(t, 1, status=200)[0] for t in toks]
    jwts = {r["auth"] for r in rs}
    # Four pushes within a second share the provider token (at most one
    # refresh can fall between them).
    assert len(jwts) <= 2, "%d provider tokens for 4 pushes" % len(jwts)
    newest = max(r["jwt"]["claims"]["iat"] for r in rs)
    wait_for(lambda: time.time() > newest + push.JWT_LIFETIME_S + 0.5, 10, "the JWT lifetime")
    later = rest.new_user("pjwt")
    tok = push.register(later, "apns")
    rest.send(A, rest.direct(A, later), "after the lifetime")
    [r] = push.wait_requests(tok, 1, status=200)
    assert r["auth"] not in jwts, "the provider token was not refreshed"
    assert r["jwt"]["claims"]["iat"] >= newest + push.JWT_LIFETIME_S, r["jwt"]
    # Never refreshed early: distinct tokens are a lifetime apart.
    iats = sorted({q["jwt"]["claims"]["iat"] for q in push.requests(kind="apns") if q.get("jwt")})
    assert all(b - a >= push.JWT_LIFETIME_S for a, b in zip(iats, iats[1:])), iats


def test_burst_in_one_conversation_collapses():
    b = rest.new_user("pburst")
    apns_tok = push.register(b, "apns")
    conv = rest.direct(A, b)
    # The notifier is held while the burst is queued, so all five jobs are
    # waiting together when it looks, whatever the machine's speed.
    pid = push.notifier_pid()
    assert pid, "no notifier running"
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(5):
            rest.send(A, conv, "burst %d" % i)
    finally:
        os.kill(pid, signal.SIGCONT)
    push.wait_requests(apns_tok, 1, status=200)
    control_pushed()
    rs = push.requests(token=apns_tok)
    assert len(rs) == 1, "%d pushes for a burst of 5" % len(rs)
    assert rs[0]["body"]["aps"]["alert"]["body"] == "burst 4", rs[0]["body"]
    assert rs[0]["body"]["aps"]["badge"] == 5, rs[0]["body"]
    assert rs[0]["headers"]["apns-collapse-id"] == str(conv), rs[0]["headers"]


def test_muted_conversation_is_not_pushed():
    b = rest.new_user("pmute")
    apns_tok = push.register(b, "apns")
    conv = rest.direct(A, b)
    rest.expect(b.call("PATCH", "/conversations/%d" % conv, {"muted": True}), 200, "mute")
    rest.send(A, conv, "muted")
    control_pushed()
    assert push.requests(token=apns_tok) == [], "a muted conversation was pushed"


def test_metrics_count_pushes():
    m = push.metrics()
    assert m["parley_notify_pushes_sent_total"] >= 4, m
    assert m["parley_notify_pushes_retried_total"] >= 4, m
    assert m["parley_notify_tokens_removed_total"] >= 2, m
    assert m["parley_notify_apns_jwts_total"] >= 2, m


if __name__ == "__main__":
    parley_test.run()

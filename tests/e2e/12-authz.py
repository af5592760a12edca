"""12 tokens and authorization: forged tokens (another algorithm signed with
the stack's own secret, RS256 "key confusion", keys named in the header,
tampered or wrong-typed claims, a device of another session), expired and
revoked tokens (logout, device removal) on REST, the relay's hello and
long-poll; another user's conversation, member, message, friend and device
by id on every route that takes an id, over REST and WebSocket frames; SQL
meta-characters in the string fields 10-bad-input.py does not reach (doc/protocol.md
"Errors", SECURITY.md "Authentication", "Authorization", "Injection")."""

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse

import parley_test
import rest
import ws
from parley_test import assert_error, request
from rest import b64url, call, direct, expect, group, new_user, send, stack_secret, token_claims

SECRET = stack_secret()
A = B = C = M = None  # A, B, C share conversations; M is an outsider
AB = G = None
BAD = 1  # a message id of AB
STRANGER = None  # M's own conversation with someone else


def forge(header, claims, key, digest=hashlib.sha256):
    """A JWT with any header, signed with HMAC(digest) under key."""
    signing = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    return signing + "." + b64url(hmac.new(key, signing.encode(), digest).digest())


def later():
    return int(time.time()) + 600


def refused_everywhere(token, what):
    """The token gets 401 on REST and on long-poll, and the relay's hello
    closes the socket with 4001 or 4003."""
    assert_error(call("GET", "/me", token=token), 401, "unauthorized")
    assert_error(call("GET", "/conversations", token=token), 401, "unauthorized")
    relay = urllib.parse.urlsplit(parley_test.RELAY_URL)
    import http.client
    conn = http.client.HTTPConnection(relay.hostname, relay.port, timeout=10)
    try:
        conn.request("GET", "/poll?after=0&timeout=1", headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 401, "%s: long-poll answered %d" % (what, resp.status)
    finally:
        conn.close()
    s = ws.Socket()
    try:
        s.send({"type": "hello", "token": token})
        code = s.expect_close()
        assert code in (4001, 4003), "%s: hello closed with %r" % (what, code)
    finally:
        s.close()


def need_secret(name):
    if SECRET is None:
        print("# skip %s: the stack's secret is not readable" % name)
        return False
    return True


def test_setup_users():
    global A, B, C, M, AB, G, BAD, STRANGER
    A, B, C, M = new_user("za"), new_user("zb"), new_user("zc"), new_user("zm")
    AB = direct(A, B)
    G = group(A, [B, C], title="authz")
    BAD = send(A, AB, "private")["message_id"]
    STRANGER = direct(M, C)
    expect(A.call("POST", "/friends", {"user_id": B.id}), 201)
    expect(B.call("POST", "/friends", {"user_id": A.id}), 200)


def test_a_valid_token_passes_everywhere():
    # The checks below would pass trivially if the helper refused everything.
    assert expect(A.call("GET", "/me"), 200)["id"] == A.id
    s = ws.connect(A)
    assert s.welcome["user_id"] == A.id
    s.close()


def test_other_algorithms_signed_with_the_stacks_secret_are_refused():
    if not need_secret("test_other_algorithms_signed_with_the_stacks_secret_are_refused"):
        return
    claims = dict(token_claims(A.token), exp=later())
    good = forge({"alg": "HS256", "typ": "JWT"}, claims, SECRET)
    assert expect(call("GET", "/me", token=good), 200)["id"] == A.id, "HS256 with the stack's secret refused"
    for alg, digest in (("HS384", hashlib.sha384), ("HS512", hashlib.sha512),
                        ("RS256", hashlib.sha256), ("ES256", hashlib.sha256), ("PS256", hashlib.sha256),
                        ("HS256 ", hashlib.sha256), ("", hashlib.sha256)):
        refused_everywhere(forge({"alg": alg, "typ": "JWT"}, claims, SECRET, digest), "alg %r" % alg)
    refused_everywhere(forge({"typ": "JWT"}, claims, SECRET), "no alg")


def test_keys_named_in_the_header_are_ignored():
    mine = b"an attacker's own key, at least 32 bytes long"
    claims = dict(token_claims(A.token), exp=later())
    for extra in ({"kid": "../../etc/parley/secret"}, {"kid": "' OR 1=1 --"},
                  {"jku": "http://127.0.0.1:1/jwks.json"},
                  {"jwk": {"kty": "oct", "k": b64url(mine)}},
                  {"x5u": "http://127.0.0.1:1/cert.pem"}):
        refused_everywhere(forge(dict({"alg": "HS256", "typ": "JWT"}, **extra), claims, mine),
                           "header %r" % extra)
    refused_everywhere(forge({"alg": "none"}, claims, b"")[:-43], "alg none over the relay")


def test_tampered_and_wrong_typed_claims_are_refused():
    if not need_secret("test_tampered_and_wrong_typed_claims_are_refused"):
        return
    base = dict(token_claims(A.token), exp=later())
    head = {"alg": "HS256", "typ": "JWT"}
    variants = [dict(base, sub=str(base["sub"])), dict(base, sub=-base["sub"]), dict(base, sub=0),
                dict(base, sid=None), dict(base, exp=str(later())), dict(base, exp=int(time.time()) - 5),
                dict(base, did=B.device_id), dict(base, sub=B.id), dict(base, sub=base["sub"] + 0.5)]
    for name in ("sub", "sid", "did", "exp"):
        v = dict(base)
        del v[name]
        variants.append(v)
    for claims in variants:
        refused_everywhere(forge(head, claims, SECRET), "claims %r" % claims)
    # Nothing changed for the real owner of those ids.
    assert expect(B.call("GET", "/me"), 200)["id"] == B.id


def test_expired_token_on_the_relay():
    if not need_secret("test_expired_token_on_the_relay"):
        return
    claims = token_claims(A.token)
    refused_everywhere(rest.forge_token(dict(claims, exp=int(time.time()) - 1), SECRET), "expired")


def test_logout_revokes_rest_relay_and_poll():
    d = ws.device(A)
    expect(d.call("DELETE", "/sessions/current"), 204)
    refused_everywhere(d.token, "logged-out token")
    # Refreshing a revoked session gives nothing either.
    assert_error(call("POST", "/sessions/refresh", token=d.token), 401, "unauthorized")
    assert expect(A.call("GET", "/me"), 200)["id"] == A.id, "logout ended another session"


def test_device_removal_revokes_its_token_and_sockets():
    d = ws.device(B)
    s = ws.connect(d)
    expect(B.call("DELETE", "/devices/%d" % d.device_id), 204)
    assert s.expect_close(timeout=5) == 4003
    refused_everywhere(d.token, "token of a removed device")
    assert expect(B.call("GET", "/me"), 200)["id"] == B.id


def test_conversation_routes_refuse_outsiders_by_id():
    for conv in (AB, G):
        p = "/conversations/%d" % conv
        for method, path, body in [
                ("GET", p, None), ("PATCH", p, {"title": "mine"}), ("PATCH", p, {"muted": True}),
                ("GET", p + "/messages", None), ("GET", p + "/messages?after=0", None),
                ("GET", p + "/messages?before=%d" % (BAD + 1), None),
                ("POST", p + "/messages", {"client_msg_id": "m1", "body": "let me in"}),
                ("POST", p + "/read", {"message_id": BAD}),
                ("POST", p + "/members", {"user_id": M.id}),
                ("DELETE", p + "/members/%d" % B.id, None), ("DELETE", p + "/members/%d" % M.id, None)]:
            assert_error(M.call(method, path, body), 404, "not_found")
    # Nothing changed: same members, no new message, title kept.
    assert sorted(A.get("/conversations/%d" % G)["member_ids"]) == sorted([A.id, B.id, C.id])
    assert [m["message_id"] for m in A.get("/conversations/%d/messages" % AB)["messages"]] == [BAD]
    assert A.get("/conversations/%d" % G)["title"] == "authz"
    # Search with another's conversation id finds nothing of it.
    status, _, body = M.call("GET", "/search?q=private&conversation_id=%d" % AB)
    assert status in (200, 404), (status, body)
    if status == 200:
        assert body["messages"] == [], body
    assert M.get("/search?q=private")["messages"] == []
    # The outsider's inbox never carried it.
    assert all(e["conversation_id"] != AB for e in M.get("/sync?after=0&limit=1000")["events"])


def test_members_cannot_act_as_admins():
    # B is a member of G, not its admin: cannot remove the admin or C, nor add M.
    assert_error(B.call("DELETE", "/conversations/%d/members/%d" % (G, A.id)), 403, "forbidden")
    assert_error(B.call("DELETE", "/conversations/%d/members/%d" % (G, C.id)), 403, "forbidden")
    assert_error(B.call("POST", "/conversations/%d/members" % G, {"user_id": M.id}), 403, "forbidden")
    # A direct conversation takes no members, whoever asks.
    status, _, body = A.call("POST", "/conversations/%d/members" % AB, {"user_id": M.id})
    assert status in (400, 403), (status, body)
    assert sorted(A.get("/conversations/%d" % AB)["member_ids"]) == sorted([A.id, B.id])


def test_friend_and_device_ids_of_others():
    # M is nobody's friend: removing A or B as a friend finds nothing and
    # leaves A and B friends.
    for uid in (A.id, B.id):
        assert_error(M.call("DELETE", "/friends/%d" % uid), 404, "not_found")
    assert [f["state"] for f in A.get("/friends")["friends"] if f["id"] == B.id] == ["accepted"]
    # Another user's devices are neither listed nor removable.
    assert_error(M.call("DELETE", "/devices/%d" % A.device_id), 404, "not_found")
    assert M.device_id not in [d["id"] for d in A.get("/devices")["devices"]]
    assert expect(A.call("GET", "/me"), 200)["id"] == A.id


def test_websocket_frames_to_a_conversation_you_are_not_in():
    m, a, b = ws.connect(M), ws.connect(A), ws.connect(B)
    try:
        for conv in (AB, G):
            m.send({"type": "send", "conversation_id": conv, "client_msg_id": "ws-in", "body": "let me in"})
            f = m.expect("sent", skip=("presence", "typing", "read", "conversation", "message", "error"))
            assert f["type"] == "error" and f["error"]["code"] == "not_found" and f.get("ref") == "ws-in", f
            # A socket types at most once a second: each conversation's on
            # a socket of its own.
            t = ws.connect(M)
            t.send({"type": "typing", "conversation_id": conv})
            f = t.expect("error")
            t.close()
            assert f["error"]["code"] == "not_found", f
            m.send({"type": "read", "conversation_id": conv, "message_id": BAD})
            f = m.expect("error")
            assert f["error"]["code"] == "not_found", f
        # The members saw none of it, and the socket still works for M's own.
        for sock in (a, b):
            deadline = time.monotonic() + 0.7
            while time.monotonic() < deadline:
                try:
                    f = sock.recv(max(0.05, deadline - time.monotonic()))
                except AssertionError:
                    break
                assert f.get("type") in ("presence",), "member got %r" % (f,)
        m.send({"type": "send", "conversation_id": STRANGER, "client_msg_id": "own", "body": "mine"})
        assert m.expect("sent")["conversation_id"] == STRANGER
    finally:
        for sock in (m, a, b):
            sock.close()
    assert [x["message_id"] for x in A.get("/conversations/%d/messages" % AB)["messages"]] == [BAD]


def test_meta_characters_in_the_remaining_string_fields():
    nasty = ["'; DROP TABLE users; --", "%_\\", "\" OR \"1\"=\"1", "$1::text", "/* c */ --"]
    for i, text in enumerate(nasty):
        # PATCH /me display_name, PATCH title, login device name and push token.
        me = expect(A.call("PATCH", "/me", {"display_name": text}), 200)
        assert me["display_name"] == text and B.get("/users/%d" % A.id)["display_name"] == text
        conv = expect(A.call("PATCH", "/conversations/%d" % G, {"title": text}), 200)
        assert conv["title"] == text and C.get("/conversations/%d" % G)["title"] == text
        token = "tok%s%d%s" % (secrets.token_hex(3), i, text)
        session = expect(call("POST", "/sessions", {"username": M.username, "password": M.password,
                                                     "device": {"platform": "web", "push_token": token,
                                                                "name": text}}), 201)
        names = [d["name"] for d in expect(call("GET", "/devices", token=session["token"]), 200)["devices"]
                 if d["id"] == session["device_id"]]
        assert names == [text], names
        expect(call("DELETE", "/sessions/current", token=session["token"]), 204)
        # A WebSocket send's body and client_msg_id.
        s = ws.connect(B)
        cmid = "w%d%s" % (i, text)
        s.send({"type": "send", "conversation_id": AB, "client_msg_id": cmid, "body": text})
        sent = s.expect("sent")
        s.close()
        got = A.get("/conversations/%d/messages?limit=1" % AB)["messages"][0]
        assert (got["body"], got["client_msg_id"], got["message_id"]) == (text, cmid, sent["message_id"]), got
        # Fields with a fixed vocabulary or a number refuse them with a 4xx.
        assert_error(A.call("POST", "/devices", {"platform": text, "push_token": "t%d" % i}), 400, "bad_request")
        for path in ("/conversations/%d/messages?before=" % AB, "/conversations/%d/messages?after=" % AB,
                     "/sync?after=", "/presence?user_ids=", "/users?limit="):
            status, _, body = A.call("GET", path + urllib.parse.quote(text))
            assert status in (400, 404), "%s%s: %d %r" % (path, text, status, body)
        status, _, body = A.call("GET", "/discover?region=" + urllib.parse.quote(text))
        assert status in (200, 503), (status, body)
    status, _, body = request("GET", "/api/v1/health")
    assert status == 200 and body["status"] == "ok", (status, body)


if __name__ == "__main__":
    parley_test.run()

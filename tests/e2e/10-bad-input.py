"""10 bad input: malformed and wrong-shaped JSON, wrong types, missing
fields, oversized bodies (the API's 64 KiB and nginx's limit), invalid
UTF-8, absurdly nested JSON, unknown routes and methods, bad path ids, and
SQL meta-characters in every string field, which must round-trip literally.
Every refusal is the contract's JSON error, never a 5xx, and the service
and its users are fine afterwards (doc/protocol.md "Errors", "Limits")."""

# also through apache

import secrets
import urllib.parse

import parley_test
from parley_test import assert_error, request
from rest import API, call, direct, expect, new_user, send, uniq

NASTY = ["'; DROP TABLE users; --", "%", "_", "\\", "Robert'); DROP TABLE students;--",
         "100% _sure_ \\o/", "\" OR \"1\"=\"1", "$1::text", "--", "/* c */", "'", "%%%"]

USERS = []
A = B = None
AB = None


def raw_post(path, data, token=None, ctype="application/json"):
    return request("POST", API + path, body=data, token=token, headers={"Content-Type": ctype})


def test_setup_users():
    global A, B, AB
    A, B = new_user("ba"), new_user("bb")
    USERS.extend([A, B])
    AB = direct(A, B)


def test_malformed_json_is_400():
    for data in [b"{", b"{\"username\": }", b"{'username': 'x'}", b"{\"a\":1} trailing", b"nul",
                 b"{\"username\":\"x\",}", b"\xef\xbb\xbf{}", b"{\"a\":1}{\"b\":2}", b" ", b"{\"a\":NaN}"]:
        assert_error(raw_post("/users", data), 400, "bad_request")
        assert_error(raw_post("/conversations/%d/messages" % AB, data, token=A.token), 400, "bad_request")


def test_empty_body_is_400():
    assert_error(raw_post("/users", b""), 400, "bad_request")
    assert_error(raw_post("/conversations", b"", token=A.token), 400, "bad_request")


def test_json_that_is_not_an_object_is_400():
    for data in [b"[]", b"[{\"username\":\"x\",\"password\":\"12345678\"}]", b"\"a string\"", b"42",
                 b"null", b"true"]:
        assert_error(raw_post("/users", data), 400, "bad_request")
        assert_error(raw_post("/conversations", data, token=A.token), 400, "bad_request")
        assert_error(raw_post("/friends", data, token=A.token), 400, "bad_request")


def test_wrong_types_are_400():
    cases = [
        ("POST", "/users", None, {"username": 12345, "password": "password1"}),
        ("POST", "/users", None, {"username": uniq("bt"), "password": 12345678}),
        ("POST", "/users", None, {"username": uniq("bt"), "password": "password1", "display_name": ["x"]}),
        ("POST", "/sessions", None, {"username": ["a"], "password": "password1"}),
        ("POST", "/sessions", None, {"username": A.username, "password": {"p": 1}}),
        ("POST", "/conversations", A, {"kind": "group", "title": "t", "member_ids": "%d,%d" % (A.id, B.id)}),
        ("POST", "/conversations", A, {"kind": "group", "title": "t", "member_ids": [str(B.id)]}),
        ("POST", "/conversations", A, {"kind": "group", "title": 7, "member_ids": [B.id]}),
        ("POST", "/conversations", A, {"kind": "direct", "user_id": str(B.id)}),
        ("POST", "/conversations", A, {"kind": "direct", "user_id": 1.5}),
        ("POST", "/conversations", A, {"kind": ["direct"], "user_id": B.id}),
        ("POST", "/conversations", A, {"kind": "channel", "user_id": B.id}),
        ("POST", "/friends", A, {"user_id": True}),
        ("POST", "/friends", A, {"user_id": "%d" % B.id}),
        ("POST", "/conversations/%d/messages" % AB, A, {"client_msg_id": 5, "body": "x"}),
        ("POST", "/conversations/%d/messages" % AB, A, {"client_msg_id": "x5", "body": ["x"]}),
        ("POST", "/conversations/%d/messages" % AB, A, {"client_msg_id": "x6", "body": 5}),
        ("POST", "/conversations/%d/read" % AB, A, {"message_id": "1"}),
        ("PATCH", "/conversations/%d" % AB, A, {"muted": "yes"}),
        ("PATCH", "/me", A, {"display_name": 5}),
        ("PATCH", "/me", A, {"settings": [1, 2]}),
        ("POST", "/devices", A, {"platform": "fcm", "push_token": 1234}),
        ("POST", "/devices", A, {"platform": "fcm", "push_token": "tok", "name": 1}),
    ]
    for method, path, user, body in cases:
        token = user.token if user else None
        response = call(method, path, body, token=token)
        assert response[0] == 400, "%s %s %r: %d %r" % (method, path, body, response[0], response[2])
        assert_error(response, 400, "bad_request")


def test_missing_fields_are_400():
    cases = [
        ("POST", "/users", None, {"password": "password1"}),
        ("POST", "/users", None, {"username": uniq("bm")}),
        ("POST", "/users", None, {}),
        ("POST", "/sessions", None, {}),
        ("POST", "/sessions", None, {"username": A.username}),
        ("POST", "/conversations", A, {}),
        ("POST", "/conversations", A, {"kind": "direct"}),
        ("POST", "/conversations", A, {"kind": "group", "member_ids": [B.id]}),
        ("POST", "/conversations", A, {"kind": "group", "title": "no members"}),
        ("POST", "/conversations", A, {"user_id": B.id}),
        ("POST", "/friends", A, {}),
        ("POST", "/conversations/%d/messages" % AB, A, {"body": "no id"}),
        ("POST", "/conversations/%d/messages" % AB, A, {"client_msg_id": "no-body"}),
        ("POST", "/conversations/%d/messages" % AB, A, {"client_msg_id": None, "body": "null id"}),
        ("POST", "/conversations/%d/read" % AB, A, {}),
        ("POST", "/conversations/%d/members" % AB, A, {}),
        ("POST", "/devices", A, {"platform": "fcm"}),
        ("POST", "/devices", A, {"push_token": "tok"}),
    ]
    for method, path, user, body in cases:
        response = call(method, path, body, token=user.token if user else None)
        assert response[0] == 400, "%s %s %r: %d %r" % (method, path, body, response[0], response[2])
        assert_error(response, 400, "bad_request")
    assert_error(A.call("GET", "/users"), 400, "bad_request")  # q is required
    assert_error(A.call("GET", "/search"), 400, "bad_request")
    assert_error(A.call("GET", "/presence"), 400, "bad_request")


def test_apns_token_that_is_not_hex_is_400():
    # APNs tokens go into the request path (/3/device/<token>): a '/', '?',
    # '#' or any other non-hex character must never get that far.
    hex64 = secrets.token_hex(32)
    for bad in [hex64[:-2] + "/x", hex64[:-2] + "?x", hex64[:-2] + "#x", "../../" + hex64,
                hex64[:-2] + "%2F", hex64[:-1] + "z", "tok" + hex64, hex64 + "\u00e9", hex64[:32]]:
        assert_error(A.call("POST", "/devices", {"platform": "apns", "push_token": bad}), 400, "bad_request")
        assert_error(call("POST", "/sessions", {"username": A.username, "password": A.password,
                                                "device": {"platform": "apns", "push_token": bad}}),
                     400, "bad_request")
    expect(A.call("POST", "/devices", {"platform": "apns", "push_token": hex64}), 201)


def test_body_over_the_api_limit_is_413():
    pad = "x" * (70 * 1024)
    assert_error(call("POST", "/users", {"username": uniq("bl"), "password": "password1", "pad": pad}),
                 413, "too_large")
    assert_error(A.call("POST", "/conversations/%d/messages" % AB, {"client_msg_id": "big", "body": pad}),
                 413, "too_large")
    assert_error(A.call("PATCH", "/me", {"settings": {"pad": pad}}), 413, "too_large")
    # Just under 64 KiB is within the request limit (then refused as a too
    # long message body by the field limit: still 413, never a 5xx).
    status, _, body = A.call("POST", "/conversations/%d/messages" % AB,
                             {"client_msg_id": "under", "body": "y" * 60000})
    assert_error((status, _, body), 413, "too_large")


def test_request_body_limit_is_64_kib():
    def body_of(size):
        data = b"{\"user_id\": 9007199254740991, \"pad\": \""
        data += b"p" * (size - len(data) - 2) + b"\"}"
        assert len(data) == size
        return data
    # 64 KiB exactly reaches the handler (which finds no such user) ...
    assert_error(raw_post("/friends", body_of(65536), token=A.token), 404, "not_found")
    # ... one byte more is refused as too large.
    assert_error(raw_post("/friends", body_of(65537), token=A.token), 413, "too_large")


def test_body_over_the_web_servers_limit_is_413_json():
    big = b"{\"pad\":\"" + b"x" * (2 * 1024 * 1024) + b"\"}"
    assert_error(raw_post("/users", big), 413, "too_large")
    assert_error(raw_post("/conversations/%d/messages" % AB, big, token=A.token), 413, "too_large")


def test_invalid_utf8_in_a_json_string_is_400():
    samples = [b"\xff\xfe", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"ab\x80"]
    for bad in samples:
        assert_error(raw_post("/users", b"{\"username\":\"" + uniq("bu").encode() + b"\",\"password\":\"pass"
                              + bad + b"word\"}"), 400, "bad_request")
        assert_error(raw_post("/conversations/%d/messages" % AB, b"{\"client_msg_id\":\"u8\",\"body\":\"x"
                              + bad + b"\"}", token=A.token), 400, "bad_request")
        assert_error(raw_post("/conversations", b"{\"kind\":\"group\",\"title\":\"" + bad
                              + b"\",\"member_ids\":[%d]}" % B.id, token=A.token), 400, "bad_request")
    # Escapes that decode to no valid character: a lone surrogate, NUL.
    for escape in (b"\\ud800", b"\\udfff", b"\\u0000"):
        assert_error(raw_post("/conversations/%d/messages" % AB, b"{\"client_msg_id\":\"esc\",\"body\":\"a"
                              + escape + b"b\"}", token=A.token), 400, "bad_request")
    assert "esc" not in [m["client_msg_id"] for m in A.get("/conversations/%d/messages" % AB)["messages"]]


def test_deeply_nested_json_is_refused_without_a_5xx():
    for data in [b"[" * 10000 + b"]" * 10000, b"{\"a\":" * 10000 + b"1" + b"}" * 10000,
                 b"{\"username\":" + b"[" * 10000 + b"]" * 10000 + b"}", b"[" * 30000]:
        for path, token in (("/users", None), ("/conversations/%d/messages" % AB, A.token),
                            ("/conversations", A.token)):
            status, headers, body = raw_post(path, data, token=token)
            assert status in (400, 413), "%s with %d bytes of nesting: %d %r" % (path, len(data), status, body)
            assert_error((status, headers, body), status, "bad_request" if status == 400 else "too_large")


def test_unknown_routes_are_404():
    for path in ["/api/v1/nope", "/api/v1/users/1/nope", "/api/v1/conversations/1/messages/1/nope",
                 "/api/v2/health", "/api/v1/", "/api/v1", "/api/v1/me/", "/api/v1//me", "/api/v1/ME"]:
        assert_error(request("GET", path, token=A.token), 404, "not_found")
    assert_error(request("POST", "/api/v1/nope", body={"a": 1}), 404, "not_found")


def test_wrong_method_is_405():
    for method, path in [("PUT", "/me"), ("DELETE", "/users"), ("GET", "/sessions"), ("PUT", "/sessions/current"),
                         ("PATCH", "/conversations/%d/messages" % AB), ("GET", "/sessions/refresh"),
                         ("DELETE", "/conversations"), ("POST", "/sync"), ("PUT", "/devices"),
                         ("POST", "/discover"), ("DELETE", "/health"),
                         ("GET", "/conversations/%d/messages/1" % AB),
                         ("POST", "/conversations/%d/messages/1/reactions/x" % AB), ("PUT", "/blocks")]:
        assert_error(call(method, path, token=A.token), 405, "method_not_allowed")


def test_bad_path_ids_are_404():
    for bad in ["0", "-1", "99999999999999999999999", "9223372036854775808", "abc", "1x", "1.5", "0x10",
                "+1", "1e3", ""]:
        for path in ["/users/%s", "/conversations/%s", "/conversations/%s/messages", "/friends/%s",
                     "/devices/%s"]:
            method = "DELETE" if path.startswith(("/friends", "/devices")) else "GET"
            if bad == "" and path in ("/conversations/%s", "/users/%s"):
                continue  # "/users/" and "/conversations/" are other paths
            response = call(method, path % bad, token=A.token)
            assert response[0] == 404, "%s %s: %d %r" % (method, path % bad, response[0], response[2])
            assert_error(response, 404, "not_found")
    # In range but nobody's.
    assert_error(A.call("GET", "/users/9223372036854775807"), 404, "not_found")
    assert_error(A.call("GET", "/conversations/9223372036854775807"), 404, "not_found")
    assert_error(A.call("POST", "/conversations/9223372036854775807/messages",
                        {"client_msg_id": "x", "body": "x"}), 404, "not_found")


def test_sql_meta_characters_round_trip():
    for i, text in enumerate(NASTY):
        password = "password " + text
        display = text if text.strip() else "x" + text
        u = new_user("bq", password=password, display_name=display)
        USERS.append(u)
        assert u.display_name == display
        me = expect(u.call("PATCH", "/me", {"settings": {text: text, "k": [text]}}), 200)
        assert me["settings"].get(text) == text and me["settings"].get("k") == [text], me
        assert u.get("/me")["display_name"] == display
        assert A.get("/users/%d" % u.id)["display_name"] == display
        expect(u.call("POST", "/devices", {"platform": "web", "push_token": "tok%s%s" % (secrets.token_hex(4), text),
                                           "name": text}), 201)
        assert [d["name"] for d in u.get("/devices")["devices"]] == [text]
        title = "t " + text
        conv = expect(u.call("POST", "/conversations", {"kind": "group", "title": title,
                                                         "member_ids": [A.id]}), 201)
        assert conv["title"] == title and A.get("/conversations/%d" % conv["id"])["title"] == title
        cmid = ("c%d" % i) + text
        sent = send(u, conv["id"], text, cmid)
        assert (sent["body"], sent["client_msg_id"]) == (text, cmid), sent
        again = expect(u.call("POST", "/conversations/%d/messages" % conv["id"],
                              {"client_msg_id": cmid, "body": text}), 200)
        assert again["message_id"] == sent["message_id"], again
        stored = A.get("/conversations/%d/messages" % conv["id"])["messages"]
        assert [(m["body"], m["client_msg_id"]) for m in stored] == [(text, cmid)], stored


def test_search_treats_meta_characters_literally():
    u, v = new_user("bs"), new_user("bt")
    USERS.extend([u, v])
    conv = direct(u, v)
    tag = "zq" + secrets.token_hex(4)
    plain = send(u, conv, "plain words only %s" % tag)
    percent = send(u, conv, "a 100%% %s result" % tag)
    under = send(u, conv, "snake_case %s here" % tag)
    slash = send(u, conv, "back\\slash %s here" % tag)
    quote = send(u, conv, "it's %s here" % tag)
    # One or two characters match whole words only, and these are no words:
    # nothing, rather than everything as a wildcard would.
    for q, want in [("%", []), ("_", []), ("\\", []), ("'", []), ("%%", []),
                    ("100%", [percent]), ("e_c", [under]), ("k\\s", [slash]), ("ain wor", [plain]),
                    ("00% ", [percent]), ("'s " + tag[:4], [quote]),
                    ("'; DROP TABLE users; --", []), (tag, [plain, percent, under, slash, quote])]:
        found = u.get("/search?q=" + urllib.parse.quote(q) + "&conversation_id=%d" % conv)["messages"]
        assert sorted(m["message_id"] for m in found) == sorted(m["message_id"] for m in want), (q, found)
    # User search by prefix: meta-characters match themselves (no username holds them).
    for q in ("%", "_", "\\", "'", "' OR '1'='1", "%25"):
        found = u.get("/users?q=" + urllib.parse.quote(q))["users"]
        assert all(x["username"].startswith(q) for x in found), (q, found)


def test_invalid_usernames_with_meta_characters_are_400():
    for name in ["'; DROP TABLE users; --", "a%b", "a\\b", "a'b", "a\"b"]:
        assert_error(call("POST", "/users", {"username": name, "password": "password1"}), 400, "bad_request")


def test_service_and_users_are_fine_afterwards():
    status, _, body = request("GET", "/api/v1/health")
    assert status == 200 and body.get("status") == "ok", (status, body)
    for u in USERS:
        session = u.login()
        assert expect(call("GET", "/me", token=session["token"]), 200)["username"] == u.username
    # The data is intact: the first users' conversation still works.
    sent = send(B, AB, "still here")
    assert A.get("/conversations/%d/messages?limit=1" % AB)["messages"] == [sent]


if __name__ == "__main__":
    parley_test.run()

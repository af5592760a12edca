"""11 rate limits: logins per username, signups and logins per client
address, sends per user and REST requests per user, each answered 429
rate_limited with a Retry-After header, and each hitting only the one it
counts (doc/protocol.md "Errors", "Limits": rate limits).

The per-address test sends from another loopback address (127.0.0.99), so
the address every other test uses keeps its budget. IPv6 clients count by
their /64: that test talks FastCGI to parley-api's socket directly, so that
REMOTE_ADDR can be any address of a documentation prefix."""

import json
import os
import secrets
import socket
import struct
import threading

import parley_test
from parley_test import assert_error
from rest import PASSWORD, Client, call, direct, expect, new_user, signup, uniq

OTHER_ADDRESS = "127.0.0.99"
API_SOCKET = os.path.join(parley_test.RUNDIR, "run", "api.sock")


def assert_rate_limited(response):
    assert_error(response, 429, "rate_limited")
    retry = response[1].get("Retry-After")
    assert retry is not None, "429 without a Retry-After header"
    assert retry.strip().isdigit() and int(retry) >= 1, "Retry-After %r is not whole seconds >= 1" % retry


def flat_out(make_request, threads, cap, fine=(200, 201), source_ip=None):
    """Runs make_request(client) from several threads, each on its own kept
    connection (from source_ip, if given), until one answers 429, another
    status than those in fine, or cap requests were made. Returns (answers
    in fine before the first 429, the first 429 response or None, the other
    answers)."""
    state = {"ok": 0, "sent": 0, "limited": None, "other": []}
    lock = threading.Lock()

    def run():
        client = Client(source_ip=source_ip)
        try:
            while True:
                with lock:
                    if state["limited"] or state["sent"] >= cap or state["other"]:
                        return
                    state["sent"] += 1
                response = make_request(client)
                with lock:
                    if response[0] == 429:
                        state["limited"] = state["limited"] or response
                    elif response[0] in fine:
                        if not state["limited"]:
                            state["ok"] += 1
                    else:
                        state["other"].append(response[:1] + response[2:])
        finally:
            client.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    return state["ok"], state["limited"], state["other"]


def test_logins_per_username_are_limited():
    u = new_user("la")
    other = new_user("lb")
    # u signed up and logged in once: 2 of the 10 a minute. Wrong passwords
    # count too (that is what the limit is for).
    answers = []
    for _ in range(15):
        response = call("POST", "/sessions", {"username": u.username, "password": "guess-%d" % len(answers)})
        answers.append(response[0])
        if response[0] == 429:
            break
    assert answers[-1] == 429, "no 429 after %d logins to one username: %r" % (len(answers), answers)
    assert set(answers[:-1]) == {401}, answers
    assert 6 <= len(answers) - 1 <= 10, "429 after %d wrong passwords (signup + login + these; limit 10): %r" % (
        len(answers) - 1, answers)
    assert_rate_limited(response)
    # The right password is refused too while limited ...
    assert_rate_limited(call("POST", "/sessions", {"username": u.username, "password": PASSWORD}))
    # ... but the user's sessions keep working, and other users log in.
    assert expect(u.call("GET", "/me"), 200)["id"] == u.id
    assert other.login()["user"]["id"] == other.id
    # Signing up again under the name is limited the same way.
    assert_rate_limited(call("POST", "/users", {"username": u.username, "password": PASSWORD}))


def test_signups_and_logins_per_address_are_limited():
    # Logins to names nobody has: 401, each counted against the address and
    # never more than once against a username (so the 429 is the address's).
    prefix = uniq("lip")
    counter = iter(range(10 ** 6))

    def attempt(client):
        name = "%s%d" % (prefix, next(counter))
        return client.request("POST", "/sessions", {"username": name, "password": PASSWORD})

    _, limited, other = flat_out(attempt, threads=4, cap=5000, fine=(401,), source_ip=OTHER_ADDRESS)
    assert not other, "unexpected answers: %r" % other[:3]
    assert limited is not None, "no 429 after 5000 logins from %s" % OTHER_ADDRESS
    assert_rate_limited(limited)
    # Signups from that address are refused too: they take from the same
    # bucket, which refills at 10 a second, so a slow request may find one
    # token back, but never twenty (its burst is 600) ...
    client = Client(source_ip=OTHER_ADDRESS)
    try:
        for _ in range(20):
            response = client.request("POST", "/users", {"username": uniq("lic"), "password": PASSWORD})
            if response[0] != 201:
                break
        assert_rate_limited(response)
    finally:
        client.close()
    # ... while other addresses are not affected.
    name = uniq("lid")
    signup(name)
    assert expect(call("POST", "/sessions", {"username": name, "password": PASSWORD}), 201)["user"]["username"] == name


def test_sends_per_user_are_limited():
    fast, calm = new_user("lc"), new_user("ld")
    conv = direct(fast, calm)
    counter = iter(range(10 ** 6))

    def send(client):
        n = next(counter)
        return client.request("POST", "/conversations/%d/messages" % conv,
                              {"client_msg_id": "f%d" % n, "body": "flat out %d" % n}, token=fast.token)

    ok, limited, other = flat_out(send, threads=4, cap=1000)
    assert not other, "unexpected answers: %r" % other[:3]
    assert limited is not None, "no 429 after 1000 sends"
    assert ok >= 200, "only %d sends before the first 429 (the burst is 200)" % ok
    assert ok <= 600, "%d sends before the first 429" % ok
    assert_rate_limited(limited)
    # The other member still sends, and the limited user still reads.
    expect(calm.call("POST", "/conversations/%d/messages" % conv, {"client_msg_id": "calm", "body": "hi"}), 201)
    newest = expect(fast.call("GET", "/conversations/%d/messages?limit=1" % conv), 200)["messages"]
    assert newest[0]["client_msg_id"] == "calm", newest


def test_rest_requests_per_user_are_limited():
    busy, quiet = new_user("le"), new_user("lf")

    def me(client):
        return client.request("GET", "/me", token=busy.token)

    ok, limited, other = flat_out(me, threads=4, cap=3000)
    assert not other, "unexpected answers: %r" % other[:3]
    assert limited is not None, "no 429 after 3000 requests"
    # The bucket holds 600; with four threads a 429 can be seen a few
    # answers before the last of the 600 successes is counted.
    assert ok >= 590, "only %d requests before the first 429 (600 a minute)" % ok
    assert_rate_limited(limited)
    # Every endpoint counts for the user ...
    assert_rate_limited(busy.call("GET", "/conversations"))
    # ... and nobody else is affected.
    assert expect(quiet.call("GET", "/me"), 200)["id"] == quiet.id
    assert expect(quiet.call("GET", "/conversations"), 200)["conversations"] == []


def fastcgi(params, body=b""):
    """One request straight to parley-api's FastCGI socket, with the
    FastCGI params given (so REMOTE_ADDR can be any address, IPv6 too).
    Returns (status, body as parsed JSON)."""
    def record(kind, content):
        return struct.pack("!BBHHBx", 1, kind, 1, len(content), 0) + content

    def pair(name, value):
        name, value = name.encode(), value.encode()
        return bytes([len(name)]) + (struct.pack("!I", len(value) | 0x80000000) if len(value) > 127
                                     else bytes([len(value)])) + name + value

    encoded = b"".join(pair(k, v) for k, v in params.items())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    try:
        sock.connect(API_SOCKET)
        sock.sendall(record(1, struct.pack("!HB5x", 1, 0)) + record(4, encoded) + record(4, b"")
                     + (record(5, body) if body else b"") + record(5, b""))
        out, data = b"", b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        while len(data) >= 8:
            _, kind, _, length, padding = struct.unpack("!BBHHB", data[:7])
            if kind == 6:
                out += data[8:8 + length]
            data = data[8 + length + padding:]
    finally:
        sock.close()
    head, _, text = out.partition(b"\r\n\r\n")
    status = int(head.split(b"Status: ")[1][:3])
    return status, json.loads(text) if text.strip() else None


def login_from(address, username):
    body = json.dumps({"username": username, "password": PASSWORD}).encode()
    return fastcgi({"REQUEST_METHOD": "POST", "REQUEST_URI": "/api/v1/sessions", "REMOTE_ADDR": address,
                    "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}, body)


def test_ipv6_addresses_are_limited_by_their_64():
    # One host holds a whole /64: its addresses share one bucket (the test
    # stack allows 600 a minute). A parley-api reached through the web
    # server gets the client's address as REMOTE_ADDR; here it is set.
    net = "2001:db8:%x:%x" % (secrets.randbelow(0xffff), secrets.randbelow(0xffff))
    prefix = uniq("l6")
    answers = []
    for i in range(700):
        status, body = login_from("%s:0:0:%x:%x" % (net, i >> 16, i & 0xffff or 1), "%s%d" % (prefix, i))
        answers.append(status)
        if status == 429:
            break
    assert answers[-1] == 429, "no 429 after %d logins from one /64: %r" % (len(answers), sorted(set(answers)))
    assert set(answers[:-1]) == {401}, sorted(set(answers))
    # Another address of the /64, written differently, is limited too ...
    assert login_from(net.upper() + "::ffff:1", prefix + "x")[0] == 429
    # ... while the next /64 and an IPv4 address are not.
    other = net.rsplit(":", 1)[0] + ":%x" % ((int(net.rsplit(":", 1)[1], 16) + 1) & 0xffff)
    assert login_from(other + "::1", prefix + "y")[0] == 401
    assert login_from("192.0.2.%d" % secrets.randbelow(250), prefix + "z")[0] == 401

if __name__ == "__main__":
    parley_test.run()

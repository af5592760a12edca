"""Helpers shared by the REST suites of tests/e2e (02-auth.py and on).

They build on parley_test.request() and add what those suites all need:
unique users with live sessions, checking a status and taking the body,
RFC 3339 checks, a keep-alive client for the tests that send hundreds of
requests (and may send them from another loopback address), and HS256 tokens
built by hand for the token tests.

Every suite creates its own users with unique names, so suites never depend
on each other or on the state a previous run left behind.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import urllib.parse

import parley_test
from parley_test import BASE_URL, request

API = "/api/v1"
PASSWORD = "correct horse battery staple"
RUNDIR = parley_test.RUNDIR

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")


def uniq(prefix):
    """A username no other test or run uses: prefix + 10 hex digits."""
    name = prefix + secrets.token_hex(5)
    assert 3 <= len(name) <= 32, name
    return name


def call(method, path, body=None, token=None, headers=None):
    """request() under /api/v1."""
    return request(method, API + path, body=body, token=token, headers=headers)


def expect(response, status, what=""):
    """Asserts the response's status and returns its body."""
    got, _, body = response
    assert got == status, "%sstatus %d, want %d: %r" % (what + ": " if what else "", got, status, body)
    return body


def parse_time(text):
    """Parses an RFC 3339 UTC timestamp of the API (asserting its form)."""
    assert isinstance(text, str) and _RFC3339.match(text), "not an RFC 3339 UTC time: %r" % (text,)
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def is_rfc3339(text):
    try:
        parse_time(text)
        return True
    except AssertionError:
        return False


class User:
    """A signed-up user with one session (login). token/device_id are the
    session's; password is kept so tests can log in again."""

    def __init__(self, profile, password, session):
        self.id = profile["id"]
        self.username = profile["username"]
        self.display_name = profile["display_name"]
        self.password = password
        self.session = session
        self.token = session["token"]
        self.device_id = session["device_id"]

    def call(self, method, path, body=None, headers=None):
        return call(method, path, body=body, token=self.token, headers=headers)

    def get(self, path, status=200):
        return expect(self.call("GET", path), status, "GET " + path)

    def login(self, device=None, status=201):
        """A new session (and device) of this user; returns the login body."""
        body = {"username": self.username, "password": self.password}
        if device is not None:
            body["device"] = device
        return expect(call("POST", "/sessions", body), status, "login " + self.username)

    def __repr__(self):
        return "User(%d, %s)" % (self.id, self.username)


def signup(username, password=PASSWORD, display_name=None):
    body = {"username": username, "password": password}
    if display_name is not None:
        body["display_name"] = display_name
    return expect(call("POST", "/users", body), 201, "signup " + username)


def new_user(prefix, password=PASSWORD, display_name=None, device=None):
    """Signs up a user named prefix + hex and logs in once."""
    username = uniq(prefix)
    profile = signup(username, password, display_name)
    body = {"username": username, "password": password}
    if device is not None:
        body["device"] = device
    session = expect(call("POST", "/sessions", body), 201, "login " + username)
    return User(profile, password, session)


def direct(a, b):
    """The direct conversation of users a and b (created by a); returns its id."""
    status, _, body = a.call("POST", "/conversations", {"kind": "direct", "user_id": b.id})
    assert status in (200, 201), "direct %r-%r: %d %r" % (a, b, status, body)
    return body["id"]


def group(admin, members, title="group"):
    body = expect(admin.call("POST", "/conversations", {
        "kind": "group", "title": title, "member_ids": [m.id for m in members]}), 201, "create group")
    return body["id"]


def send(user, conversation_id, body, client_msg_id=None, status=201):
    """Sends one message over REST and returns the message object."""
    cmid = client_msg_id or secrets.token_hex(8)
    return expect(user.call("POST", "/conversations/%d/messages" % conversation_id,
                            {"client_msg_id": cmid, "body": body}), status, "send")


class Client:
    """One kept-alive HTTP connection to the stack (or a new one after the
    server closed it), optionally from another local source address. Same
    return value as parley_test.request()."""

    def __init__(self, source_ip=None, timeout=10):
        self.url = urllib.parse.urlsplit(BASE_URL)
        self.source = (source_ip, 0) if source_ip else None
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = http.client.HTTPConnection(self.url.hostname, self.url.port or 80,
                                               timeout=self.timeout, source_address=self.source)

    def request(self, method, path, body=None, token=None, headers=None):
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        if token:
            hdrs["Authorization"] = "Bearer " + token
        for attempt in (1, 2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, self.url.path + API + path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest):
                # The server closed a kept connection between requests.
                self.close()
                if attempt == 2:
                    raise
        if resp.will_close:
            self.close()
        text = raw.decode("utf-8", "replace")
        if (resp.headers.get("Content-Type") or "").startswith("application/json"):
            try:
                return resp.status, resp.headers, json.loads(text)
            except ValueError:
                pass
        return resp.status, resp.headers, text

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# Tokens built by hand: JWT HS256 with Parley's claims (sub = user id,
# sid = session id, did = device id, exp = epoch seconds).

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_claims(token):
    """The claims of a JWT, read without checking it (as any client can)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def forge_token(claims, secret, alg="HS256"):
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = (header + "." + payload).encode()
    if alg == "none":
        return header + "." + payload + "."
    assert alg == "HS256", alg
    return header + "." + payload + "." + b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())


def stack_secret():
    """The test stack's token secret (bytes, whitespace stripped), or None
    when this process cannot read it."""
    try:
        with open(os.path.join(RUNDIR, "etc", "secret"), "rb") as f:
            secret = f.read().strip()
    except OSError:
        return None
    return secret or None

"""WebSocket helpers for the relay suites (tests/e2e/2N-*.py).

A Socket speaks doc/protocol.md's frames over the real WebSocket protocol
(python3-websocket) to the relay at PARLEY_TEST_RELAY, or through nginx's
/ws. Reads wait with a deadline; a test never sleeps to synchronize.

The raw_* helpers at the end are for what a Socket cannot do (the slow
clients of e2e 14, the fault suite): dribble a handshake, stop half-way
through a frame, open sockets by the hundred without a thread each.
"""

import base64
import json
import os
import socket
import struct
import time
import urllib.parse

import websocket

from parley_test import BASE_URL, RELAY_URL

NGINX_WS = BASE_URL.replace("http://", "ws://") + "/ws"

# python3-websocket (1.2) calls the registered close codes 1012-1014 invalid
# and drops the socket without telling the code; the relay closes with 1013
# "try again later" (database down at hello, relay full), which browsers
# report as such. Accept them too.
websocket._abnf.VALID_CLOSE_STATUS += tuple(
    c for c in (1012, 1013, 1014) if c not in websocket._abnf.VALID_CLOSE_STATUS)


class Closed(Exception):
    """The server closed the socket: .code and .reason of its close frame."""

    def __init__(self, code, reason):
        super().__init__("closed with %s %r" % (code, reason))
        self.code = code
        self.reason = reason


class Socket:
    def __init__(self, url=None, subprotocol="parley.v1", timeout=10):
        protocols = [subprotocol] if subprotocol else None
        self.ws = websocket.create_connection(url or RELAY_URL, subprotocols=protocols,
                                              timeout=timeout)
        self.welcome = None

    def send(self, frame):
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def recv(self, timeout=5):
        """The next frame as a dict; raises Closed on a close frame and
        AssertionError when nothing arrives within timeout seconds."""
        self.ws.settimeout(timeout)
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            raise AssertionError("no frame within %gs" % timeout)
        except websocket.WebSocketConnectionClosedException:
            raise Closed(None, "")
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            raise Closed(code, data[2:].decode("utf-8", "replace"))
        if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return self.recv(timeout)
        return json.loads(data)

    def expect(self, type_, timeout=5, skip=None):
        """The next frame of type_, skipping live-only frames of other types
        (and, unless type_ is "message", the socket's message frames)."""
        if skip is None:
            skip = ("presence", "typing", "read", "conversation", "friend")
            if type_ != "message":
                skip += ("message",)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no %r frame within %gs" % (type_, timeout)
            f = self.recv(left)
            if f.get("type") == type_:
                return f
            if type_ == "sent" and f.get("type") == "error" and "error" in skip:
                return f  # the caller asked to see refusals in place of sent
            assert f.get("type") in skip, "expected %r, got %r" % (type_, f)

    def expect_close(self, timeout=15):
        """Reads until the close frame and returns its code."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "socket not closed within %gs" % timeout
            try:
                self.recv(left)
            except Closed as c:
                return c.code

    def quiet(self, seconds=0.5):
        """Asserts that no message frame arrives for a short while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                f = self.recv(max(0.05, deadline - time.monotonic()))
            except AssertionError:
                return
            assert f.get("type") != "message", "unexpected message %r" % (f,)

    def close(self):
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already gone
            pass


HEAD = object()
STORED = None


def connect(user, cursor=HEAD, url=None):
    """A socket that said hello as user (a rest.User) and got welcome.

    cursor: HEAD (default) asks for a cursor beyond the newest seq, which the
    relay clamps: the socket starts with no backlog. STORED sends no cursor
    (the device's stored one applies); an integer is sent as it is."""
    s = Socket(url)
    hello = {"type": "hello", "token": user.token}
    if cursor is HEAD:
        hello["cursor"] = 2 ** 53
    elif cursor is not None:
        hello["cursor"] = cursor
    s.send(hello)
    s.welcome = s.expect("welcome")
    return s


def device(user):
    """Another device of user: a new login, as a rest.User."""
    import rest
    session = user.login()
    return rest.User({"id": user.id, "username": user.username,
                      "display_name": user.display_name}, user.password, session)


def messages(sock, n, timeout=5):
    """The next n message frames."""
    return [sock.expect("message", timeout) for _ in range(n)]


# Raw WebSocket: a plain TCP socket. Only the handshake request is written
# here; frames are made and parsed by python3-websocket's ABNF.

def upgrade_request(host, path="/ws", padding=0):
    """The bytes of an upgrade request to path for parley.v1; padding adds
    a header of that many bytes (a longer request to dribble)."""
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "X-Padding: %s\r\n" % ("p" * padding) if padding else ""
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: parley.v1\r\n"
            "%s\r\n" % (path, host, key, extra)).encode()


def raw_open(url, timeout=10):
    """A TCP socket that completed the WebSocket handshake at url (ws://)."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    s.sendall(upgrade_request("%s:%d" % (u.hostname, u.port), u.path))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("handshake answered %r" % head.split(b"\r\n")[0])
    return s


def raw_frame(text, cut=None):
    """A masked text frame of text (the bytes up to `cut` only, if given)."""
    frame = websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT).format()
    return frame if cut is None else frame[:cut]


def raw_read(s, timeout=10):
    """The next frame from the server on raw socket s: (opcode, payload)."""
    s.settimeout(timeout)

    def recv(n):
        chunk = s.recv(n)
        if not chunk:
            raise ConnectionError("closed mid-frame")
        return chunk
    frame = websocket._abnf.frame_buffer(recv, True).recv_frame()
    return frame.opcode, frame.data

"""14 slow clients (slowloris): connections that dribble an HTTP request or
a WebSocket hello a byte at a time, on the relay directly and through
nginx. Each is cut after its timeout (the relay's 10 s for a handshake and
for hello, with 4001; nginx's client_header_timeout and client_body_timeout
of 10 s) while other users keep being served at once, even with more slow
bodies open than parley-api has threads (doc/protocol.md "WebSocket";
SECURITY.md "Abuse"; deploy/nginx)."""

import json
import socket
import threading
import time
import urllib.parse

import parley_test
import rest
import ws
from rest import direct, expect, new_user

RELAY = urllib.parse.urlsplit(parley_test.RELAY_URL)
NGINX = urllib.parse.urlsplit(parley_test.BASE_URL)
SLOW = 12  # slow connections of each kind (parley-api has 16 threads)
CUT_WITHIN = 25  # seconds: a 10 s timeout, on a loaded machine
A = B = None
AB = None


class Dribbler(threading.Thread):
    """Connects to (host, port), sends prefix at once, then data one byte
    every interval seconds, reading whatever comes back. Records when the
    server closed the connection (.cut, seconds after connecting), what it
    answered (.answer) and whether all of data went out (.finished)."""

    def __init__(self, addr, data, prefix=b"", interval=0.5):
        super().__init__(daemon=True)
        self.addr, self.data, self.prefix, self.interval = addr, data, prefix, interval
        self.cut = None
        self.answer = b""
        self.finished = False
        self.stop = threading.Event()

    def run(self):
        sock = socket.create_connection(self.addr, timeout=10)
        t0 = time.monotonic()
        sock.settimeout(self.interval)
        try:
            if self.prefix:
                sock.sendall(self.prefix)
            for i in range(len(self.data)):
                if self.stop.is_set():
                    return
                try:
                    sock.send(self.data[i:i + 1])
                except OSError:
                    self.cut = time.monotonic() - t0
                    return
                try:
                    chunk = sock.recv(4096)
                    if not chunk:
                        self.cut = time.monotonic() - t0
                        return
                    self.answer += chunk
                except socket.timeout:
                    pass
                except OSError:
                    self.cut = time.monotonic() - t0
                    return
            self.finished = True
        finally:
            sock.close()


def start(dribblers):
    for d in dribblers:
        d.start()
    return dribblers


def wait_cut(dribblers, what):
    deadline = time.monotonic() + CUT_WITHIN + 5
    for d in dribblers:
        d.join(max(0.1, deadline - time.monotonic()))
    for d in dribblers:
        d.stop.set()
    alive = [d for d in dribblers if d.cut is None]
    assert not alive, "%d of %d %s not cut (finished: %r)" % (
        len(alive), len(dribblers), what, [d.finished for d in alive])
    cuts = sorted(d.cut for d in dribblers)
    assert cuts[0] >= 5 and cuts[-1] <= CUT_WITHIN, "%s cut after %r s" % (what, cuts)
    return cuts


def until(sock, body):
    """Reads sock's frames until a message with this body (skipping the
    sender's own sent frames and copies)."""
    deadline = time.monotonic() + 5
    while True:
        f = sock.expect("message", timeout=max(0.1, deadline - time.monotonic()),
                        skip=("presence", "typing", "read", "conversation", "sent"))
        if f["body"] == body:
            return f


def served_meanwhile(seconds):
    """For about `seconds`, A sends to B over the relay and over REST through
    nginx, a round every half second; each round must complete within 2 s."""
    a, b = ws.connect(A), ws.connect(B)
    worst = 0.0
    try:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            a.send({"type": "send", "conversation_id": AB, "client_msg_id": "s%d-%f" % (i, t0), "body": "ws"})
            until(b, "ws")
            rest.send(B, AB, "rest")
            until(a, "rest")
            expect(A.call("GET", "/conversations"), 200)
            took = time.monotonic() - t0
            worst = max(worst, took)
            assert took < 2, "a round took %.2f s while slow clients were connected" % took
            i += 1
            time.sleep(0.5)  # pacing the rounds, not synchronizing
    finally:
        a.close()
        b.close()
    return worst


def test_setup_users():
    global A, B, AB
    A, B = new_user("sa"), new_user("sb")
    AB = direct(A, B)


def test_slow_clients_are_cut_and_others_are_served():
    relay = (RELAY.hostname, RELAY.port)
    nginx = (NGINX.hostname, NGINX.port)
    hello = ws.raw_frame(json.dumps({"type": "hello", "token": A.token}))
    api_body = json.dumps({"client_msg_id": "slow", "body": "x" * 300}).encode()
    api_head = ("POST /api/v1/conversations/%d/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (AB, A.token, len(api_body))).encode()
    groups = {
        # The relay: a dribbled upgrade, and a hello dribbled after one.
        "relay handshakes": start([Dribbler(relay, ws.upgrade_request("r", padding=400)) for _ in range(SLOW)]),
        "relay hellos": start([Dribbler(relay, hello, prefix=ws.upgrade_request("r", padding=400)) for _ in range(SLOW)]),
        # nginx: dribbled request headers, to the API and to the relay's /ws.
        "nginx headers": start([Dribbler(nginx, api_head) for _ in range(SLOW // 2)]
                               + [Dribbler(nginx, ws.upgrade_request("n", padding=400)) for _ in range(SLOW // 2)]),
        # nginx: a body that stalls after its first bytes (interval > 10 s).
        "nginx stalled bodies": start([Dribbler(nginx, api_body, prefix=api_head + api_body[:10], interval=30)
                                       for _ in range(SLOW)]),
    }
    # More slow bodies than parley-api has threads, dribbling steadily:
    # nginx holds them, not the API.
    steady = start([Dribbler(nginx, api_body, prefix=api_head, interval=0.5) for _ in range(20)])
    try:
        worst = served_meanwhile(12)
        cuts = {what: wait_cut(ds, what) for what, ds in groups.items()}
    finally:
        for d in steady:
            d.stop.set()
        for ds in groups.values():
            for d in ds:
                d.stop.set()
    print("# other users' worst round %.3f s; cut after (min, max) s: %s" % (
        worst, ", ".join("%s %.1f-%.1f" % (w, c[0], c[-1]) for w, c in cuts.items())))
    # The dribbled hellos were closed with 4001 (a close frame: 0x88, 4001).
    for d in groups["relay hellos"]:
        assert b"\x0f\xa1" in d.answer, d.answer[-40:]
    # Nothing the slow clients sent was stored.
    bodies = [m["body"] for m in A.get("/conversations/%d/messages?limit=100" % AB)["messages"]]
    assert "x" * 300 not in bodies


if __name__ == "__main__":
    parley_test.run()

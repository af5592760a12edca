"""The load of the fault suite: users chatting across both relays, and the
book of what was sent, acknowledged and delivered.

Every user has two devices, one on each relay (relay and relay2; with more
relays, as tests/cluster gives, users' devices spread over all of them). A device
is one thread that keeps one WebSocket as an app does: it says hello with
the cursor it keeps (the last seq it was given), records every message
frame, acks now and then, and after any disconnection reconnects (to the
other relay first when its own refuses, or first to the relay GET
/discover hands out when the load is given a discover function) with that
cursor, so the relay's replay must fill whatever it missed. Its own sends wait in an outbox until
"sent" answers them, and go again with the same client_msg_id after a
reconnect or an "unavailable", as doc/protocol.md tells apps to retry. Some
users send over REST instead (201, or 200 for a retry the server had
already stored).

Load.verify() then holds the streams against doc/protocol.md: each socket is
sent seq = last + 1 from its welcome cursor on (no gap, no repeat, in
order); each device's stream, socket after socket, holds every acknowledged
message of its conversations exactly once; every acknowledged message is in
the conversation's history (nothing was acked that is not stored), once;
and a conversation's history is message_ids 1, 2, 3, ... without a gap.
"""

import json
import socket
import threading
import time

import rest
import ws
from parley_test import wait_for

WS_ERRORS = (OSError, ws.Closed, ws.websocket.WebSocketException, AssertionError, ValueError)
# Refusals an app retries with the same client_msg_id; any other (an
# "internal" included: a store outage is "unavailable") is a problem.
RETRY_CODES = ("unavailable", "rate_limited")
# The same over REST; 502 and 504 are nginx's while parley-api restarts.
RETRY_STATUSES = (429, 502, 503, 504)


class Book:
    """What the load sent and what the server acknowledged, thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = {}  # client_msg_id -> (sender id, conversation_id, body)
        self.acked = {}  # client_msg_id -> message_id
        self.anomalies = []

    def new(self, sender_id, conv, body, cmid):
        with self.lock:
            self.sent[cmid] = (sender_id, conv, body)

    def ack(self, cmid, conv, mid):
        with self.lock:
            want = self.sent.get(cmid)
            if want is None or want[1] != conv:
                self.anomalies.append("ack for %r in conversation %s that was not sent there" % (cmid, conv))
            elif self.acked.setdefault(cmid, mid) != mid:
                self.anomalies.append("%r acked as message %s and again as %s" % (cmid, self.acked[cmid], mid))

    def anomaly(self, text):
        with self.lock:
            if len(self.anomalies) < 200:
                self.anomalies.append(text)


class Device(threading.Thread):
    """One device of a user, holding one WebSocket at a time."""

    def __init__(self, load, user, user_id, name, urls, send_conv=None, discover=None):
        super().__init__(name=name, daemon=True)
        self.load, self.user, self.user_id = load, user, user_id
        self.urls, self.send_conv = list(urls), send_conv
        self.discover = discover  # None, or a function: a relay URL or None
        self.discover_only = False  # on a reconnect, no relay but discover's
        self.discovered = []  # (time.monotonic(), URL) per discover answer
        self.url = None  # the URL of the current socket
        self.welcomed_at = None  # time.monotonic() of its welcome
        self.closes = []  # per lost socket: (time.monotonic(), close code or None)
        self.cursor = None  # the last seq this device was given
        self.sockets = []  # per socket: the (conversation_id, message_id) it got
        self.got = {}  # (conversation_id, message_id) -> (client_msg_id, body, sender_id)
        self.last_mid = {}  # conversation_id -> the highest message_id got
        self.duplicated = 0
        self.outbox = {}  # client_msg_id -> frame, until "sent"
        self.retry_at = 0.0
        self.sock = None
        self.live = False  # welcomed and not known to be closed
        self.kick = False  # close the socket from this side (a client giving up)
        self.nsent = 0
        self.retries = 0
        self.next_send = 0.0
        self.next_beat = 0.0

    # The socket

    def connect(self):
        """Says hello on the first relay that takes it (on a reconnect, the
        one discover hands out first, when there is a discover); False if
        none did."""
        urls = list(self.urls)
        if self.discover is not None and self.sockets:
            try:
                found = self.discover()
            except Exception:  # noqa: BLE001 - discover down: the known relays
                found = None
            if found:
                self.discovered.append((time.monotonic(), found))
                urls = [found] + [u for u in urls if u != found]
            if self.discover_only:
                urls = [found] if found else []
        for url in urls:
            s = None
            try:
                s = ws.Socket(url, timeout=10)
                hello = {"type": "hello", "token": self.user.token}
                if self.cursor is not None:
                    hello["cursor"] = self.cursor
                s.send(hello)
                welcome = s.expect("welcome", timeout=15)
            except WS_ERRORS:
                if s is not None:
                    s.close()
                continue
            if self.cursor is not None and welcome["cursor"] != self.cursor:
                self.load.book.anomaly("%s: hello with cursor %d was welcomed at %d"
                                       % (self.name, self.cursor, welcome["cursor"]))
            self.cursor = welcome["cursor"]
            self.sock, self.live = s, True
            self.url, self.welcomed_at = url, time.monotonic()
            self.sockets.append(set())
            if url in self.urls:  # this relay first next time, if it lives
                self.urls.remove(url)
            self.urls.insert(0, url)
            self.resend()
            return True
        return False

    def drop(self):
        if self.sock is not None:
            self.sock.close()
        self.sock, self.live, self.url = None, False, None

    def run(self):
        load = self.load
        backoff = 0.2
        while not load.done.is_set():
            if self.sock is None:
                if self.connect():
                    backoff = 0.2
                else:
                    # Next time the other relay first, as discover would.
                    self.urls.append(self.urls.pop(0))
                    load.done.wait(backoff)
                    backoff = min(backoff * 2, 1.0)
                continue
            try:
                self.step()
            except WS_ERRORS as e:
                self.closes.append((time.monotonic(), getattr(e, "code", None)))
                self.drop()
        self.drop()

    def step(self):
        now = time.monotonic()
        if self.kick:
            self.kick = False
            raise ws.Closed(None, "closed by the client")
        if self.send_conv and self.load.sending and now >= self.next_send:
            self.next_send = now + self.load.interval_s
            self.send_new()
        if self.outbox and now >= self.retry_at:
            self.resend()
        if now >= self.next_beat:
            self.next_beat = now + 1.0
            self.sock.send({"type": "heartbeat"})
        try:
            f = self.sock.recv(timeout=0.05)
        except AssertionError:  # nothing within the timeout
            return
        kind = f.get("type")
        if kind == "message":
            self.on_message(f)
        elif kind == "sent":
            self.outbox.pop(f["client_msg_id"], None)
            self.load.book.ack(f["client_msg_id"], f["conversation_id"], f["message_id"])
        elif kind == "error":
            code = f["error"]["code"]
            if f.get("ref") in self.outbox:
                self.retry_at = time.monotonic() + 0.5
            if code not in RETRY_CODES:
                self.load.book.anomaly("%s: error frame %r" % (self.name, f))

    def resend(self):
        """Sends the outbox again (the same client_msg_ids): after a
        reconnect, an "unavailable", or 10 s without an answer."""
        self.retry_at = time.monotonic() + 10
        for frame in list(self.outbox.values()):
            self.retries += 1
            self.sock.send(frame)

    def send_new(self):
        self.nsent += 1
        cmid = "%s-%d" % (self.name, self.nsent)
        body = "%s says %d" % (self.name, self.nsent)
        frame = json.dumps({"type": "send", "conversation_id": self.send_conv,
                            "client_msg_id": cmid, "body": body})
        self.load.book.new(self.user_id, self.send_conv, body, cmid)
        if not self.outbox:
            self.retry_at = time.monotonic() + 10
        self.outbox[cmid] = frame
        self.sock.send(frame)

    def on_message(self, f):
        key = (f["conversation_id"], f["message_id"])
        seq, stream = f["seq"], self.sockets[-1]
        if seq != self.cursor + 1:
            self.load.book.anomaly("%s: seq %d after %d on one socket" % (self.name, seq, self.cursor))
        if key in stream:
            self.duplicated += 1  # twice on one socket
        elif key in self.got:
            # A reconnect says hello with the last seq received: a replay
            # that repeats what the device had is a duplicate too.
            self.duplicated += 1
            self.load.book.anomaly("%s: message %r again on a new socket" % (self.name, key))
        stream.add(key)
        # A conversation's message_ids are taken in the order its members'
        # seqs are (one lock order, doc/architecture.md step 2): each device
        # sees a conversation in message_id order.
        if key[1] <= self.last_mid.get(key[0], 0):
            self.load.book.anomaly("%s: message %d of %d after message %d"
                                   % (self.name, key[1], key[0], self.last_mid[key[0]]))
        self.last_mid[key[0]] = max(key[1], self.last_mid.get(key[0], 0))
        self.got[key] = (f.get("client_msg_id"), f.get("body"), f.get("sender_id"))
        self.cursor = max(self.cursor, seq)
        if seq % 10 == 0:
            self.sock.send({"type": "ack", "seq": seq})


class RestSender(threading.Thread):
    """A user who sends over REST (keep-alive HTTP), retrying unanswered sends."""

    def __init__(self, load, user, conv, name):
        super().__init__(name=name, daemon=True)
        self.load, self.user, self.conv = load, user, conv
        self.client = rest.Client(timeout=15)
        self.n = 0
        self.pending = []  # (client_msg_id, body) not yet answered 200/201
        self.retries = 0

    def post(self, cmid, body):
        """True once the server answered 201 or 200 (stored)."""
        try:
            status, _, reply = self.client.request(
                "POST", "/conversations/%d/messages" % self.conv,
                {"client_msg_id": cmid, "body": body}, token=self.user.token)
        except OSError:
            self.client.close()
            return False
        if status in (200, 201):
            self.load.book.ack(cmid, reply["conversation_id"], reply["message_id"])
            return True
        if status not in RETRY_STATUSES:
            self.load.book.anomaly("%s: POST answered %d %r" % (self.name, status, reply))
        return False

    def run(self):
        while not self.load.done.is_set():
            if self.load.sending:
                self.n += 1
                cmid, body = "%s-%d" % (self.name, self.n), "%s posts %d" % (self.name, self.n)
                self.load.book.new(self.user.id, self.conv, body, cmid)
                self.pending.append((cmid, body))
            self.pending = [p for p in self.pending if not self.post(*p)]
            self.retries += len(self.pending)
            self.load.done.wait(self.load.interval_s if self.load.sending or not self.pending else 0.5)
        self.client.close()


class Proxy(threading.Thread):
    """A TCP proxy to a relay, standing for a client's network: cut() breaks
    every connection through it in the middle of a frame from the relay
    (half of the next chunk goes through, then both sides are reset)."""

    def __init__(self, target_port):
        super().__init__(daemon=True)
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = "ws://127.0.0.1:%d/ws" % self.port
        self.pairs = []
        self.lock = threading.Lock()
        self.cutting = threading.Event()
        self.cuts = 0
        self.stopped = False

    def run(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                reset(client)
                continue
            server.settimeout(None)  # a quiet connection is not a cut one
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self.pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, True), daemon=True).start()

    def pump(self, src, dst, from_relay):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_relay and self.cutting.is_set() and len(data) >= 2:
                    dst.sendall(data[:len(data) // 2])
                    self.cuts += 1
                    break
                dst.sendall(data)
        except OSError:
            pass
        reset(src)
        reset(dst)

    def cut(self, timeout_s=10):
        """Cuts the live connections mid-frame; returns how many were cut."""
        self.cuts = 0
        self.cutting.set()
        try:
            wait_for(lambda: self.cuts > 0, timeout_s, "a frame through the proxy to cut")
        finally:
            self.cutting.clear()
        return self.cuts

    def stop(self):
        self.stopped = True
        reset(self.listener)


def reset(sock):
    """Closes a TCP socket with a reset (SO_LINGER 0), as a lost network does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # Wakes a thread blocked reading it (the proxy's other direction),
        # so the reset goes out now, not when that thread next wakes.
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Load:
    """Users in direct pairs and one group, two devices each (on two
    different relays).

    relays: two relay URLs or more; user j's devices go to relays 2j and
    2j + 1 (mod their number), so with two relays every user has one on
    each. pairs: how many direct conversations; interval_s: each sender's
    pause between sends. proxies: devices of the first pair go through these
    (one per relay) so their network can be cut. discover: a function
    returning the relay URL GET /discover hands out (or None), which devices
    try first when they reconnect; with discover_only, the only relay they
    try (none when discover fails: they ask again after a pause)."""

    def __init__(self, tag, relays, pairs=2, interval_s=0.2, proxies=(), discover=None,
                 discover_only=False):
        self.book = Book()
        self.done = threading.Event()
        self.sending = False
        self.interval_s = interval_s
        self.devices = []
        self.rest_senders = []
        self.members = {}  # conversation_id -> [user]
        self.relays, self.discover, self.nusers = list(relays), discover, 0
        self.discover_only = discover_only
        assert len(self.relays) >= 2, "the load needs two relays or more"
        proxied = list(proxies)
        for i in range(pairs):
            a, b = rest.new_user("f%sa" % tag), rest.new_user("f%sb" % tag)
            conv = rest.direct(a, b)
            self.members[conv] = [a, b]
            self.add_devices(a, "%s-p%da" % (tag, i), conv, proxied)
            self.add_devices(b, "%s-p%db" % (tag, i), None, proxied)
            self.rest_senders.append(RestSender(self, b, conv, "%s-p%db-rest" % (tag, i)))
            proxied = []
        g = [rest.new_user("f%sg" % tag) for _ in range(3)]
        conv = rest.group(g[0], g[1:], title="fault load")
        self.members[conv] = g
        for i, u in enumerate(g):
            self.add_devices(u, "%s-g%d" % (tag, i), conv if i < 2 else None, [])
        self.rest_senders.append(RestSender(self, g[2], conv, "%s-g2-rest" % tag))

    def add_devices(self, user, name, conv, proxied):
        """Two devices of user, on two different relays (through the proxies
        when given); the first sends to conv. Each falls back on the other
        relays in turn."""
        second = ws.device(user)
        k, n_relays = 2 * self.nusers, len(self.relays)
        self.nusers += 1
        for n, u in enumerate((user, second)):
            own = (k + n) % n_relays
            others = [self.relays[(own + i) % n_relays] for i in range(1, n_relays)]
            urls = [proxied[n].url] + others if proxied else [self.relays[own]] + others
            d = Device(self, u, user.id, "%s%d" % (name, n), urls, conv if n == 0 else None, self.discover)
            d.discover_only = self.discover_only
            self.devices.append(d)

    def start(self, timeout_s=60):
        for d in self.devices:
            d.start()
        wait_for(lambda: all(d.live for d in self.devices), timeout_s, "every device to be welcomed")
        self.sending = True
        for s in self.rest_senders:
            s.start()

    def stop_sending(self):
        self.sending = False

    def recipients(self, conv):
        ids = {u.id for u in self.members[conv]}
        return [d for d in self.devices if d.user_id in ids]

    def missing(self):
        """Acked messages not yet in every recipient device's stream."""
        with self.book.lock:
            acked = [(self.book.sent[c][1], m) for c, m in self.book.acked.items()]
        by_conv = {}
        for conv, _ in acked:
            by_conv.setdefault(conv, self.recipients(conv))
        return [(conv, mid) for conv, mid in acked
                if any((conv, mid) not in d.got for d in by_conv[conv])]

    def retries(self):
        """How many sends went again with the same client_msg_id."""
        return sum(t.retries for t in self.devices + self.rest_senders)

    def settled(self):
        """True once no send is waiting for its answer and every acked
        message reached every recipient device."""
        if any(d.outbox for d in self.devices) or any(s.pending for s in self.rest_senders):
            return False
        return not self.missing()

    def settle(self, timeout_s):
        """Waits (ending early) until settled(); returns whether it did."""
        try:
            wait_for(self.settled, timeout_s, "the load to settle", interval_s=0.25)
            return True
        except AssertionError:
            return False

    def finish(self):
        self.done.set()
        for t in self.devices + self.rest_senders:
            t.join(20)

    def history(self, user, conv):
        """Every stored message of conv, by message_id (REST, paged)."""
        out, after = {}, 0
        while True:
            body = rest.expect(user.call("GET", "/conversations/%d/messages?after=%d&limit=100"
                                         % (conv, after)), 200, "history")
            for m in body["messages"]:
                out[m["message_id"]] = m
            if len(body["messages"]) < 100:
                return out
            after = body["messages"][-1]["message_id"]

    def verify(self):
        """Counts for the report: {sent, acked, delivered, lost, duplicated}.
        Streams out of order, deliveries that differ from what was acked,
        and acked messages missing from history go to book.anomalies."""
        book = self.book
        lost = self.missing()
        stored = {conv: self.history(users[0], conv) for conv, users in self.members.items()}
        for cmid, mid in book.acked.items():
            sender, conv, body = book.sent[cmid]
            m = stored[conv].get(mid)
            if m is None or m["client_msg_id"] != cmid or m["body"] != body or m["sender_id"] != sender:
                book.anomaly("acked %r (message %d of %d) is not stored as sent: %r" % (cmid, mid, conv, m))
            for d in self.recipients(conv):
                got = d.got.get((conv, mid))
                if got is not None and got != (cmid, body, sender):
                    book.anomaly("%s got message %d of %d as %r, acked as %r" % (d.name, mid, conv, got, cmid))
        # A message the server stored under a client_msg_id the load sent is
        # fine unacked (the answer was lost); one it never sent is not, nor
        # one stored twice. message_ids run 1, 2, 3, ... (doc/protocol.md).
        for conv, msgs in stored.items():
            cmids = {}
            for m in msgs.values():
                if m["client_msg_id"] not in book.sent:
                    book.anomaly("message %d of %d has a client_msg_id the load never sent: %r"
                                 % (m["message_id"], conv, m["client_msg_id"]))
                elif cmids.setdefault(m["client_msg_id"], m["message_id"]) != m["message_id"]:
                    book.anomaly("%r is stored twice in %d: messages %d and %d"
                                 % (m["client_msg_id"], conv, cmids[m["client_msg_id"]], m["message_id"]))
            if msgs and sorted(msgs) != list(range(1, max(msgs) + 1)):
                book.anomaly("the message_ids of %d have gaps: %d stored, the highest %d"
                             % (conv, len(msgs), max(msgs)))
        return {"sent": len(book.sent), "acked": len(book.acked),
                "delivered": len(book.acked) - len(lost), "lost": len(lost),
                "duplicated": sum(d.duplicated for d in self.devices)}

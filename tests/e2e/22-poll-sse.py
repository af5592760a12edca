"""22 long-poll and SSE: the relay's HTTP transports on the same cursor as
the WebSocket (doc/protocol.md "Long-poll" and "Server-Sent Events")."""

import http.client
import json
import re
import threading
import time
import urllib.parse

import parley_test
import rest
from parley_test import wait_for
from rest import expect

A = rest.new_user("pa")
B = rest.new_user("pb")
CONV = rest.direct(A, B)
RELAY = urllib.parse.urlsplit(parley_test.RELAY_URL)
NGINX = urllib.parse.urlsplit(parley_test.BASE_URL)


def get(path, token=None, via=RELAY, headers=None, timeout=70):
    conn = http.client.HTTPConnection(via.hostname, via.port, timeout=timeout)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = "Bearer " + token
    conn.request("GET", path, headers=hdrs)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), json.loads(body) if body else None


def relay_sockets():
    """The relay's open WebSocket, long-poll and SSE connections (/metrics)."""
    conn = http.client.HTTPConnection(RELAY.hostname, RELAY.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(re.search(r"(?m)^parley_relay_sockets (\d+)$", text).group(1))


def head_seq():
    return expect(B.call("GET", "/sync?after=0&limit=1000"), 200)["cursor"]


def test_poll_answers_at_once_when_events_wait():
    after = head_seq()
    sent = [rest.send(A, CONV, "p%d" % i)["message_id"] for i in range(3)]
    status, ctype, body = get("/poll?after=%d" % after, B.token)
    assert status == 200 and ctype.startswith("application/json"), (status, body)
    assert [e["message_id"] for e in body["events"]] == sent, body
    assert [e["seq"] for e in body["events"]] == [after + 1, after + 2, after + 3], body
    assert body["cursor"] == after + 3, body


def test_poll_holds_until_a_message_arrives():
    after = head_seq()
    out = {}

    def waiter():
        out["answer"] = get("/poll?after=%d&timeout=20" % after, B.token)
        out["at"] = time.monotonic()

    before = relay_sockets()
    t = threading.Thread(target=waiter)
    t.start()
    # The poll is parked once the relay counts its connection.
    wait_for(lambda: relay_sockets() > before, 10, "the relay to hold the poll")
    sent_at = time.monotonic()
    m = rest.send(A, CONV, "wake up")
    t.join(25)
    status, _, body = out["answer"]
    assert status == 200 and [e["message_id"] for e in body["events"]] == [m["message_id"]], body
    assert out["at"] - sent_at < 2, "the held poll answered %.2fs after the send" % (out["at"] - sent_at)


def test_poll_times_out_empty_with_cursor():
    after = head_seq()
    t0 = time.monotonic()
    status, _, body = get("/poll?after=%d&timeout=1" % after, B.token)
    assert status == 200 and body == {"events": [], "cursor": after}, body
    took = time.monotonic() - t0
    assert 0.8 <= took < 10, "a 1 s poll took %.2fs" % took


def test_poll_held_longer_than_idle_http_answers_at_its_timeout():
    # Held past the 5 s a web server library gives an idle request: still
    # answered, empty, when its own timeout is up.
    after = head_seq()
    t0 = time.monotonic()
    status, _, body = get("/poll?after=%d&timeout=8" % after, B.token)
    took = time.monotonic() - t0
    assert status == 200 and body == {"events": [], "cursor": after}, (status, body)
    assert 7.5 <= took < 12, "an 8 s poll took %.2fs" % took
    status, _, body = get("/poll?after=%d&timeout=8" % after, B.token, via=NGINX)
    assert status == 200 and body == {"events": [], "cursor": after}, (status, body)


def test_sse_quiet_past_idle_http_still_delivers():
    after = head_seq()
    s = Stream("after=%d" % after, headers={"Authorization": "Bearer " + B.token})
    assert s.resp.status == 200
    time.sleep(7)
    m = rest.send(A, CONV, "after a quiet while")
    eid, kind, data = s.event(timeout=10)
    assert (eid, kind) == (str(after + 1), "message") and data["message_id"] == m["message_id"], data
    s.close()


def test_poll_limit_and_through_nginx():
    after = head_seq()
    for i in range(4):
        rest.send(A, CONV, "l%d" % i)
    _, _, body = get("/poll?after=%d&limit=2" % after, B.token, via=NGINX)
    assert len(body["events"]) == 2 and body["cursor"] == after + 2, body


def test_poll_stores_the_cursor():
    d = rest.User({"id": B.id, "username": B.username, "display_name": B.display_name},
                  B.password, B.login())
    after = head_seq()
    rest.send(A, CONV, "for the cursor")
    get("/poll?after=%d&timeout=1" % (after + 1), d.token)
    # A sync without "after" starts from the stored cursor: nothing new.
    body = expect(d.call("GET", "/sync"), 200)
    assert body["events"] == [] and body["cursor"] == after + 1, body


def test_poll_errors():
    assert get("/poll?after=0", "not-a-token")[0] == 401
    assert get("/poll?after=0")[0] == 401
    assert get("/poll?after=-1", B.token)[0] == 400
    assert get("/poll?after=0&timeout=61", B.token)[0] == 400
    assert get("/poll?after=0&limit=1001", B.token)[0] == 400
    status, _, body = get("/nowhere", B.token)
    assert status == 404 and body["error"]["code"] == "not_found", body


class Stream:
    """A /events stream read line by line."""

    def __init__(self, query, headers=None, via=RELAY):
        self.conn = http.client.HTTPConnection(via.hostname, via.port, timeout=10)
        self.conn.request("GET", "/events?" + query, headers=headers or {})
        self.resp = self.conn.getresponse()

    def event(self, timeout=5):
        """The next event as (id, event, data dict); skips comment lines."""
        deadline = time.monotonic() + timeout
        fields = {}
        while time.monotonic() < deadline:
            line = self.resp.fp.readline().decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if not line:
                if "data" in fields:
                    return fields.get("id"), fields.get("event"), json.loads(fields["data"])
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        raise AssertionError("no event within %gs" % timeout)

    def close(self):
        self.conn.close()


def test_sse_streams_backlog_then_live():
    after = head_seq()
    m1 = rest.send(A, CONV, "sse backlog")
    s = Stream("after=%d&token=%s" % (after, B.token), via=NGINX)
    assert s.resp.status == 200, s.resp.status
    assert s.resp.getheader("Content-Type").startswith("text/event-stream")
    eid, kind, data = s.event()
    assert (eid, kind) == (str(after + 1), "message") and data["message_id"] == m1["message_id"], data
    m2 = rest.send(A, CONV, "sse live")
    eid, kind, data = s.event()
    assert eid == str(after + 2) and data["body"] == "sse live" and data["message_id"] == m2["message_id"]
    s.close()


def test_sse_resumes_after_last_event_id():
    after = head_seq()
    sent = [rest.send(A, CONV, "r%d" % i)["message_id"] for i in range(3)]
    s = Stream("after=0", headers={"Authorization": "Bearer " + B.token,
                                   "Last-Event-ID": str(after + 1)})
    got = [s.event()[2]["message_id"] for _ in range(2)]
    assert got == sent[1:], (got, sent)
    s.close()


def test_sse_needs_a_token():
    s = Stream("after=0")
    assert s.resp.status == 401, s.resp.status
    s.close()


if __name__ == "__main__":
    parley_test.run()

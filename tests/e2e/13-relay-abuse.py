"""13 abuse of the relay and floods: deeply nested and oversized WebSocket
frames (one frame, or fragments adding up over 64 KiB), sockets per user
capped at 32 (the 33rd gets rate_limited and 4008; others are not
affected), and floods of sends from one user over WebSocket and REST: the
flooder is rate limited with the contract's error while another pair of
users keeps its latency (doc/protocol.md "Limits", close codes; SECURITY.md
"Abuse")."""

import os
import subprocess
import threading
import time
import urllib.request

import websocket

import parley_test
import rest
import ws
from rest import Client, direct, expect, new_user

BUILD = os.environ.get("PARLEY_BUILDDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ADMIN = os.path.join(BUILD, "admin", "parley-admin")
A = B = C = D = None
AB = CD = None
CAP = 32


def test_setup_users():
    global A, B, C, D, AB, CD
    A, B, C, D = new_user("ya"), new_user("yb"), new_user("yc"), new_user("yd")
    AB, CD = direct(A, B), direct(C, D)


def still_works(user=None, peer=None, conv=None):
    """A send of user over a fresh socket is stored and reaches peer."""
    user, peer, conv = user or C, peer or D, conv or CD
    s, p = ws.connect(user), ws.connect(peer)
    try:
        s.send({"type": "send", "conversation_id": conv, "client_msg_id": "ok-%f" % time.time(), "body": "fine"})
        s.expect("sent")
        assert p.expect("message")["body"] == "fine"
    finally:
        s.close()
        p.close()


def test_deeply_nested_frames_are_refused():
    s = ws.connect(A)
    for frame in ['{"type":"send","conversation_id":%d,"client_msg_id":"n","body":%s}'
                  % (AB, "[" * 20000 + "]" * 20000),
                  '{"type":"typing","conversation_id":' + '{"a":' * 9000 + "1" + "}" * 9000 + "}",
                  "[" * 60000, '{"type":' * 7000]:
        assert len(frame.encode()) <= 65536, len(frame)
        s.send(frame)
        try:
            f = s.expect("error")
            assert f["error"]["code"] == "bad_request", f
        except ws.Closed as c:
            assert c.code == 4008, "nested frame closed the socket with %r" % c.code
            s = ws.connect(A)
    # Still usable after the refusals, and nothing was stored.
    s.send({"type": "send", "conversation_id": AB, "client_msg_id": "after-nest", "body": "ok"})
    assert s.expect("sent")["client_msg_id"] == "after-nest"
    s.close()
    assert [m["client_msg_id"] for m in expect(A.call("GET", "/conversations/%d/messages" % AB), 200)["messages"]] \
        == ["after-nest"]
    # Nested as the first frame: not a hello, so 4001.
    s = ws.Socket()
    s.send("[" * 50000)
    assert s.expect_close() == 4001


def test_fragments_adding_up_over_the_frame_limit_close_4008():
    s = ws.connect(A)
    chunk = "x" * 40000
    s.ws.send_frame(websocket.ABNF.create_frame('{"type":"send","body":"' + chunk, websocket.ABNF.OPCODE_TEXT, 0))
    s.ws.send_frame(websocket.ABNF.create_frame(chunk, websocket.ABNF.OPCODE_CONT, 0))
    s.ws.send_frame(websocket.ABNF.create_frame(chunk + '"}', websocket.ABNF.OPCODE_CONT, 1))
    assert s.expect_close() == 4008
    # A frame just under the limit is read (and refused for its content).
    s = ws.connect(A)
    s.send('{"type":"send","conversation_id":%d,"client_msg_id":"big","body":"%s"}' % (AB, "y" * 60000))
    f = s.expect("error")
    assert f["error"]["code"] in ("too_large", "bad_request") and f.get("ref") == "big", f
    # Binary frames are not part of the protocol.
    s.ws.send_binary(b"\x00" * 100)
    try:
        f = s.expect("error", timeout=5)
        assert f["error"]["code"] == "bad_request", f
    except ws.Closed as c:
        assert c.code in (4008, 1003), c.code
    s.close()
    still_works()


def test_sockets_per_user_are_capped():
    socks = []
    try:
        for _ in range(CAP):
            socks.append(ws.connect(A))
        extra = ws.Socket()
        extra.send({"type": "hello", "token": A.token})
        f = extra.recv()
        assert f["type"] == "error" and f["error"]["code"] == "rate_limited", f
        assert extra.expect_close() == 4008
        # Another user is not affected, nor are the user's open sockets.
        still_works()
        socks[0].send({"type": "send", "conversation_id": AB, "client_msg_id": "cap-ok", "body": "x"})
        assert socks[0].expect("sent")["client_msg_id"] == "cap-ok"
        # Once one closes, a new one gets in.
        socks.pop().close()
        parley_test.wait_for(lambda: ws.connect(A), 5, "a socket after one of 32 closed").close()
    finally:
        for s in socks:
            s.close()


def latencies(sender, receiver, conv, n, prefix):
    """Sends n messages one after another over sender's socket and returns
    the seconds each took until receiver's socket got it."""
    out = []
    for i in range(n):
        t0 = time.monotonic()
        sender.send({"type": "send", "conversation_id": conv, "client_msg_id": "%s%d" % (prefix, i), "body": "p"})
        m = receiver.expect("message", timeout=10)
        assert m["client_msg_id"] == "%s%d" % (prefix, i), m
        out.append(time.monotonic() - t0)
    return out


def test_websocket_flood_is_limited_and_others_keep_their_latency():
    c, d = ws.connect(C), ws.connect(D)
    baseline = latencies(c, d, CD, 5, "base")
    flooder = [ws.connect(A), ws.connect(A)]
    stop = threading.Event()
    result = {"sent": 0, "codes": {}, "closes": [], "odd": []}

    def flood(s, tag):
        i = 0
        try:
            while not stop.is_set() and i < 3000:
                s.send({"type": "send", "conversation_id": AB, "client_msg_id": "%s%d" % (tag, i), "body": "f"})
                i += 1
                result["sent"] += 1
        except Exception:  # noqa: BLE001 - the relay may close a flooder
            pass

    def count(s):
        # Records what arrives; the main thread asserts on it.
        while True:
            try:
                f = s.recv(3)
            except ws.Closed as e:
                result["closes"].append(e.code)
                return
            except AssertionError:
                return  # quiet for 3 s: the flood is over
            if f.get("type") == "error":
                code = f["error"]["code"]
                result["codes"][code] = result["codes"].get(code, 0) + 1
                if not f.get("ref"):
                    result["odd"].append(f)
            elif f.get("type") not in ("sent", "message", "presence"):
                result["odd"].append(f)

    threads = [threading.Thread(target=flood, args=(s, "fl%d-" % i)) for i, s in enumerate(flooder)]
    counters = [threading.Thread(target=count, args=(s,)) for s in flooder]
    for t in threads + counters:
        t.start()
    try:
        during = latencies(c, d, CD, 10, "during")
    finally:
        stop.set()
        for t in threads + counters:
            t.join(60)
    for s in flooder + [c, d]:
        s.close()
    print("# websocket flood: %d sends, refused %r, closes %r; other pair's latency %.3f s before, %.3f s during"
          " (max)" % (result["sent"], result["codes"], result["closes"], max(baseline), max(during)))
    # Refused with the send's own error (over the user's send budget) or
    # as busy (past the socket's queued jobs), each naming its send; a
    # socket over its frame budget is closed with 4008.
    # (A socket closed while still writing may lose the close frame: None.)
    assert sum(result["codes"].values()) > 0 or 4008 in result["closes"], result
    assert set(result["codes"]) <= {"rate_limited", "unavailable"}, result["codes"]
    assert not result["odd"], result["odd"][:3]
    assert all(code in (4008, None) for code in result["closes"]), result["closes"]
    assert max(during) < max(0.5, 5 * max(baseline)) + 1.5, "latency %r while flooded, %r before" % (
        during, baseline)
    # The flood stored no more than the burst and the sustained rate allow.
    stored = expect(B.call("GET", "/sync?after=0&limit=1000"), 200)["events"]
    assert len(stored) <= 200 + 50 * 60, len(stored)


def sends_stored(user, conv, prefix):
    """How many of user's messages in conv have a client_msg_id starting with prefix."""
    n, before = 0, None
    while True:
        q = "/conversations/%d/messages?limit=100" % conv + ("&before=%d" % before if before else "")
        page = expect(user.call("GET", q), 200)["messages"]
        n += sum(1 for m in page if m["client_msg_id"].startswith(prefix))
        if len(page) < 100:
            return n
        before = page[-1]["message_id"]


def test_websocket_and_rest_share_one_send_budget():
    """Reconnecting, or sending over REST, gives no fresh budget: the relay
    takes sends from the user's bucket in Redis, as REST does."""
    e, f = new_user("ye"), new_user("yf")
    conv = direct(e, f)
    t0 = time.monotonic()
    answers = {"sent": 0, "rate_limited": 0}
    for round_ in range(3):
        s = ws.connect(e)
        for i in range(150):
            s.send({"type": "send", "conversation_id": conv, "client_msg_id": "sb%d-%d" % (round_, i),
                    "body": "x"})
        for _ in range(150):
            a = s.expect("sent", skip=("presence", "message", "error"))
            if a["type"] == "error":
                assert a["error"]["code"] == "rate_limited" and a.get("ref"), a
                answers["rate_limited"] += 1
            else:
                answers["sent"] += 1
        s.close()
    # REST right after: the same budget, nearly spent.
    rest_answers = []
    for i in range(40):
        status, headers, body = e.call("POST", "/conversations/%d/messages" % conv,
                                       {"client_msg_id": "sb-rest%d" % i, "body": "x"})
        rest_answers.append(status)
        if status == 429:
            assert body["error"]["code"] == "rate_limited" and headers.get("Retry-After"), (headers, body)
    took = time.monotonic() - t0
    stored = sends_stored(e, conv, "sb")
    print("# send budget: %r over 3 sockets, REST %r, in %.1f s; %d stored"
          % (answers, {st: rest_answers.count(st) for st in set(rest_answers)}, took, stored))
    assert 429 in rest_answers, rest_answers
    # 200 at once and 50 a second after: 490 sends in a few seconds cannot
    # all pass, however many sockets they came over.
    assert answers["sent"] + rest_answers.count(201) == stored, (answers, rest_answers, stored)
    assert stored <= 200 + 50 * took + 5, (stored, took)
    assert answers["rate_limited"] > 0, answers


def relay_rss_kib():
    with open(os.path.join(rest.RUNDIR, "run", "relay.child.pid")) as fh:
        pid = int(fh.read())
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for the relay")


def redis_calls(command):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", parley_test.REDIS_PORT,
                          "INFO", "commandstats"], capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        if line.startswith("cmdstat_%s:" % command):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def paced(sock, frames, per_second, seconds):
    """Sends frames (a list, cycled) at per_second for seconds, below the
    frame budget: what each frame costs is then the relay's choice."""
    n = int(per_second * seconds)
    t0 = time.monotonic()
    for i in range(n):
        sock.send(frames[i % len(frames)])
        ahead = t0 + (i + 1) / per_second - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # pacing the load, not synchronizing
    return n


def count_frames(sock, type_, seconds):
    """Frames of type_ arriving on sock within seconds."""
    n, deadline = 0, time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return n
        try:
            f = sock.recv(left)
        except AssertionError:
            return n
        n += f.get("type") == type_


def group_of(admin_user, size, prefix):
    """A group of admin_user and size - 1 accounts made by parley-admin."""
    tag = rest.uniq(prefix) + "m"
    out = subprocess.run([ADMIN, "-c", os.path.join(rest.RUNDIR, "etc", "parley.conf"), "users", "add",
                          "--count", str(size - 1), "--prefix", tag, "--password", rest.PASSWORD],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = [u["id"] for u in expect(admin_user.call("GET", "/users?q=%s&limit=100" % tag), 200)["users"]]
    assert len(ids) == size - 1, len(ids)
    return rest.group(admin_user, [type("U", (), {"id": i})() for i in ids], title="big")


def test_cheap_frames_cost_little_below_the_budget():
    """Typing alternating between conversations, a read that moves nothing
    and heartbeats, each at 100 frames a second from one socket of a member
    of a 100-member group: one typing event a second reaches the others,
    the repeated read is answered but fans out once, heartbeats make one
    presence write an interval; another pair keeps its latency and the
    relay its memory."""
    g, h = new_user("yg"), new_user("yh")
    big = group_of(g, 98, "yb")
    both = rest.group(g, [h], title="small")
    big2 = rest.group(g, [h], title="small2")
    rest.send(g, both, "to read")
    c, d = ws.connect(C), ws.connect(D)
    baseline = latencies(c, d, CD, 5, "cb")
    rss0 = relay_rss_kib()
    sg, sh = ws.connect(g), ws.connect(h)
    # Typing, alternating conversations.
    paced(sg, [{"type": "typing", "conversation_id": cid} for cid in (big, both, big2)], 100, 3)
    typing_seen = count_frames(sh, "typing", 1.5)
    # The same read over and over.
    mid = expect(g.call("GET", "/conversations/%d/messages?limit=1" % both), 200)["messages"][0]["message_id"]
    read = {"type": "read", "conversation_id": both, "message_id": mid}
    paced(sg, [read], 100, 3)
    reads_seen = count_frames(sh, "read", 1.5)
    answered = count_frames(sg, "read", 0.5)
    # Heartbeats.
    before = redis_calls("evalsha")
    paced(sg, [{"type": "heartbeat"}], 100, 3)
    presence_writes = redis_calls("evalsha") - before
    during = latencies(c, d, CD, 10, "cd")
    rss1 = relay_rss_kib()
    print("# cheap frames: %d typing, %d reads reached the peer (%d answers); %d Redis scripts for 300 heartbeats;"
          " latency %.3f s before, %.3f s after; relay RSS %d -> %d KiB"
          % (typing_seen, reads_seen, answered, presence_writes, max(baseline), max(during), rss0, rss1))
    assert 1 <= typing_seen <= 5, typing_seen
    assert reads_seen <= 1, reads_seen
    assert answered >= 1, answered
    # Heartbeats every 10 ms, interval 1 s on the test stack: about 3, plus
    # the relays' own sweeps and registrations meanwhile.
    assert presence_writes < 40, presence_writes
    assert max(during) < max(0.5, 5 * max(baseline)) + 1.5, (baseline, during)
    assert rss1 - rss0 < 64 * 1024, (rss0, rss1)
    for s in (sg, sh, c, d):
        s.close()


def relay_metric(name):
    with urllib.request.urlopen(parley_test.RELAY_URL.replace("ws://", "http://").replace("/ws", "/metrics"),
                                timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError("no metric %s" % name)


def test_frames_over_the_budget_close_4008():
    before = relay_metric("parley_relay_abuse_closes_total")
    s = ws.connect(A)
    # 1,100 acks (valid: seq 0) in one write: past the burst of 1,000.
    ack = websocket.ABNF.create_frame('{"type":"ack","seq":0}', websocket.ABNF.OPCODE_TEXT).format()
    s.ws.sock.sendall(ack * 1100)
    assert s.expect_close() == 4008
    assert relay_metric("parley_relay_abuse_closes_total") == before + 1
    # Below the budget nothing happens: 500 more on a fresh socket.
    s = ws.connect(C)
    s.ws.sock.sendall(ack * 500)
    s.quiet(1)
    s.send({"type": "send", "conversation_id": CD, "client_msg_id": "after-acks", "body": "ok"})
    assert s.expect("sent")["client_msg_id"] == "after-acks"
    s.close()
    still_works()


def test_queued_jobs_are_bounded_and_refused_visibly():
    """With PostgreSQL frozen, a socket's sends queue; past the bound of 256
    each is refused at once with an error naming it, and once PostgreSQL is
    back every send has exactly one answer."""
    q, r = new_user("yq"), new_user("yr")
    conv = direct(q, r)
    s = ws.connect(q)
    frames = b"".join(websocket.ABNF.create_frame(
        '{"type":"send","conversation_id":%d,"client_msg_id":"q%d","body":"q"}' % (conv, i),
        websocket.ABNF.OPCODE_TEXT).format() for i in range(400))
    answers = {}
    with parley_test.frozen(parley_test.postgres_pids()):
        s.ws.sock.sendall(frames)
        while True:
            try:
                f = s.recv(2)
            except AssertionError:
                break  # 2 s without a frame: every refusal is in
            if f["type"] == "error":
                assert f["error"]["code"] == "unavailable" and f.get("ref"), f
                assert f["ref"] not in answers, f
                answers[f["ref"]] = "busy"
    busy = len(answers)
    while len(answers) < 400:
        f = s.expect("sent", timeout=30, skip=("presence", "message", "error"))
        ref = f.get("client_msg_id") or f.get("ref")
        assert ref not in answers, (ref, f)
        answers[ref] = f["type"] if f["type"] == "sent" else f["error"]["code"]
    print("# queued jobs: %d refused as busy while PostgreSQL was frozen; then %r"
          % (busy, {v: list(answers.values()).count(v) for v in set(answers.values())}))
    assert busy >= 400 - 256 - 256 and busy > 0, busy
    assert set(answers) == {"q%d" % i for i in range(400)}, len(answers)
    assert set(answers.values()) <= {"busy", "sent", "rate_limited"}, set(answers.values())
    s.close()


def test_rest_flood_is_limited_and_others_keep_their_latency():
    stop = threading.Event()
    seen = {"429": 0, "other": []}

    def flood(n):
        client = Client()
        i = 0
        try:
            while not stop.is_set() and i < 3000:
                st, _, body = client.request("POST", "/conversations/%d/messages" % AB,
                                             {"client_msg_id": "r%d-%d" % (n, i), "body": "f"}, token=B.token)
                i += 1
                if st == 429:
                    seen["429"] += 1
                elif st not in (200, 201):
                    seen["other"].append((st, body))
        finally:
            client.close()

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    took = []
    try:
        # Measure once the flooder is past its burst and being refused.
        parley_test.wait_for(lambda: seen["429"] > 0 or seen["other"], 60, "the REST flood to be limited")
        for i in range(10):
            t0 = time.monotonic()
            rest.send(C, CD, "calm %d" % i)
            took.append(time.monotonic() - t0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert seen["429"] > 0, "no 429 for the flooder"
    print("# rest flood: %d refused; other user's sends took %.3f s at most" % (seen["429"], max(took)))
    assert not seen["other"], seen["other"][:3]
    assert max(took) < 2.5, "REST sends took %r while another user flooded" % took


if __name__ == "__main__":
    parley_test.run()

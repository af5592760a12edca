"""21 resume: what a device missed arrives when it reconnects, in order,
once (doc/architecture.md "How a message flows", steps 5-6)."""

import parley_test
import rest
import ws

A = rest.new_user("ra")
B = rest.new_user("rb")
C = rest.new_user("rc")
CONV = rest.direct(A, B)
GROUP = rest.group(A, [B, C], title="resume")


def test_offline_messages_arrive_in_order_once():
    b = ws.connect(B)
    start = b.welcome["cursor"]
    b.close()
    sent = [rest.send(A, CONV, "missed %d" % i)["message_id"] for i in range(25)]
    b = ws.connect(B, cursor=start)
    got = ws.messages(b, 25)
    assert [m["message_id"] for m in got] == sent, [m["message_id"] for m in got]
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(start + 1, start + 26)), seqs
    b.quiet(0.5)
    b.close()


def test_backlog_then_live_without_gap_or_repeat():
    b = ws.connect(B)
    cur = b.welcome["cursor"]
    b.close()
    # More than one replay page, from two senders (each within its burst).
    for i in range(150):
        rest.send(A, GROUP, "bulk a %d" % i)
        rest.send(C, GROUP, "bulk c %d" % i)
    b = ws.connect(B, cursor=cur)
    live = [rest.send(A, CONV, "live %d" % i)["message_id"] for i in range(5)]
    got = ws.messages(b, 305, timeout=10)
    seqs = [m["seq"] for m in got]
    assert seqs == list(range(cur + 1, cur + 306)), "gap or repeat in %r" % seqs[:10]
    assert [m["message_id"] for m in got[-5:]] == live
    b.quiet(0.5)
    b.close()


def test_new_device_starts_at_the_head():
    rest.send(A, CONV, "before the new device")
    d = ws.device(B)
    s = ws.connect(d, cursor=ws.STORED)
    s.quiet(0.5)  # older history comes through the REST API, not the inbox
    rest.send(A, CONV, "after the new device")
    assert s.expect("message")["body"] == "after the new device"
    s.close()


if __name__ == "__main__":
    parley_test.run()

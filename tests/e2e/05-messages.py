"""05 messages over REST: send and its dedupe by client_msg_id, the size
limits of body and client_msg_id, history pages (before/after), search
(words, substrings of 3 characters or more, CJK, only the caller's
conversations, a statement timeout answered 503), and 8 members
sending 4000 messages at once into one group: gapless ids, each exactly
once (doc/protocol.md "REST": messages, /search; doc/architecture.md "How a
message flows")."""

# also through apache

import os
import secrets
import subprocess
import threading
import time
import urllib.parse

import parley_test
from parley_test import assert_error
from rest import Client, direct, expect, new_user, parse_time, send

PG = parley_test.PG
MESSAGE_FIELDS = {"conversation_id", "message_id", "sender_id", "body", "created_at", "client_msg_id"}

A = B = C = D = None
AB = CD = None


def post(user, conversation_id, client_msg_id, body):
    return user.call("POST", "/conversations/%d/messages" % conversation_id,
                     {"client_msg_id": client_msg_id, "body": body})


def history(user, conversation_id, query=""):
    return user.get("/conversations/%d/messages%s" % (conversation_id, query))["messages"]


def search(user, q, extra=""):
    return user.get("/search?q=%s%s" % (urllib.parse.quote(q), extra))["messages"]


def test_setup_users():
    global A, B, C, D, AB, CD
    A, B, C, D = (new_user(p) for p in ("ma", "mb", "mc", "md"))
    AB = direct(A, B)
    CD = direct(C, D)


def test_send_is_201_with_the_message():
    before = time.time()
    status, _, body = post(A, AB, "first-1", "hello B")
    assert status == 201, "status %d: %r" % (status, body)
    assert set(body) >= MESSAGE_FIELDS, body
    assert body["conversation_id"] == AB and body["sender_id"] == A.id, body
    assert body["body"] == "hello B" and body["client_msg_id"] == "first-1", body
    assert isinstance(body["message_id"], int) and body["message_id"] >= 1, body
    assert abs(parse_time(body["created_at"]).timestamp() - before) < 60, body
    stored = history(B, AB, "?limit=1")
    assert stored == [{k: body[k] for k in stored[0]}] and set(stored[0]) >= MESSAGE_FIELDS, (stored, body)


def test_same_client_msg_id_and_body_is_200_with_the_original():
    first = expect(post(A, AB, "retry-1", "sent twice"), 201)
    again = expect(post(A, AB, "retry-1", "sent twice"), 200)
    assert again == first, "retry answered %r, first %r" % (again, first)
    bodies = [m["client_msg_id"] for m in history(A, AB)]
    assert bodies.count("retry-1") == 1, bodies


def test_same_client_msg_id_with_another_body_is_409():
    first = expect(post(A, AB, "retry-2", "the original"), 201)
    assert_error(post(A, AB, "retry-2", "something else"), 409, "conflict")
    stored = [m for m in history(A, AB) if m["client_msg_id"] == "retry-2"]
    assert [m["body"] for m in stored] == ["the original"], stored
    assert stored[0]["message_id"] == first["message_id"]


def test_simultaneous_retries_store_one_message():
    u, v = new_user("mj"), new_user("ml")
    conv = direct(u, v)
    for round_ in range(3):
        answers = []
        start = threading.Barrier(6)

        def retry():
            start.wait()
            answers.append(post(u, conv, "race-%d" % round_, "sent from a flaky network"))

        threads = [threading.Thread(target=retry) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        statuses = sorted(r[0] for r in answers)
        assert statuses == [200] * 5 + [201], "answers %r" % [(r[0], r[2]) for r in answers]
        assert len({r[2]["message_id"] for r in answers}) == 1, answers
    stored = [m["client_msg_id"] for m in history(v, conv)]
    assert sorted(stored) == ["race-0", "race-1", "race-2"], stored


def test_client_msg_ids_of_different_senders_do_not_collide():
    mine = expect(post(A, AB, "shared-id", "from A"), 201)
    theirs = expect(post(B, AB, "shared-id", "from B"), 201)
    assert mine["message_id"] != theirs["message_id"], (mine, theirs)


def test_body_limits():
    assert_error(post(A, AB, "empty", ""), 400, "bad_request")
    assert_error(post(A, AB, "big", "x" * 4097), 413, "too_large")
    # Bytes, not characters: 2048 two-byte characters are 4096 bytes.
    assert_error(post(A, AB, "big-utf8", "\u00e9" * 2048 + "x"), 413, "too_large")
    mixed = "na\u00efve caf\u00e9 \u2014 \u4f60\u597d \U0001f44d\U0001f3fd \u0627\u0644\u0633\u0644\u0627\u0645"
    for cmid, body in [("max", "y" * 4096), ("max-utf8", "\u00e9" * 2048), ("utf8", mixed),
                       ("max-4byte", "\U0001f600" * 1024),
                       ("spaces", "  leading and trailing  \n second line\ttab ")]:
        sent = expect(post(A, AB, cmid, body), 201, cmid)
        assert sent["body"] == body, cmid
        stored = [m for m in history(B, AB, "?limit=5") if m["client_msg_id"] == cmid]
        assert [m["body"] for m in stored] == [body], cmid


def test_client_msg_id_limits():
    assert_error(post(A, AB, "c" * 65, "too long an id"), 413, "too_large")
    assert_error(post(A, AB, "", "empty id"), 400, "bad_request")
    for bad in ("caf\u00e9", "new\nline", "tab\there"):
        assert_error(post(A, AB, bad, "not printable ascii"), 400, "bad_request")
    longest = "c" * 64
    assert expect(post(A, AB, longest, "64-character id"), 201)["client_msg_id"] == longest
    printable = "".join(chr(c) for c in range(0x20, 0x7f))[:64]
    assert expect(post(A, AB, printable, "every printable"), 201)["client_msg_id"] == printable


def test_history_pages():
    u, v = new_user("mh"), new_user("mi")
    conv = direct(u, v)
    sent = [send(u if i % 2 else v, conv, "message %d" % i, "h%d" % i) for i in range(1, 26)]
    assert [m["message_id"] for m in sent] == list(range(1, 26)), "ids are not 1..25: %r" % sent
    newest = history(u, conv, "?limit=10")
    assert [m["message_id"] for m in newest] == list(range(25, 15, -1)), newest
    for m in newest:
        assert set(m) >= MESSAGE_FIELDS and m["conversation_id"] == conv, m
        assert m == {k: sent[m["message_id"] - 1][k] for k in m}, "history differs from the send: %r" % m
    page = history(u, conv, "?before=16&limit=10")
    assert [m["message_id"] for m in page] == list(range(15, 5, -1)), page
    page = history(u, conv, "?before=6&limit=10")
    assert [m["message_id"] for m in page] == [5, 4, 3, 2, 1], page
    assert history(u, conv, "?before=1&limit=10") == []
    page = history(v, conv, "?after=0&limit=10")
    assert [m["message_id"] for m in page] == list(range(1, 11)), page
    page = history(v, conv, "?after=20&limit=10")
    assert [m["message_id"] for m in page] == list(range(21, 26)), page
    assert history(v, conv, "?after=25") == []
    assert [m["body"] for m in history(v, conv, "?after=11&limit=2")] == ["message 12", "message 13"]


def test_history_limit_is_at_most_100():
    assert_error(A.call("GET", "/conversations/%d/messages?limit=101" % AB), 400, "bad_request")
    assert_error(A.call("GET", "/conversations/%d/messages?after=0&limit=1000" % AB), 400, "bad_request")
    assert len(history(A, AB, "?limit=100")) <= 100


def test_search_whole_words_substrings_and_cjk():
    tag = "zq" + secrets.token_hex(4)
    word = send(A, AB, "lunch with %s tomorrow" % tag)
    inside = send(B, AB, "the %sberries are ripe" % tag)
    cjk = send(A, AB, "\u660e\u5929\u7684\u4f1a\u8bae\u6539\u5230\u4e09\u70b9 %s" % tag)
    found = search(A, tag)
    ids = [m["message_id"] for m in found]
    assert {word["message_id"], inside["message_id"], cjk["message_id"]} <= set(ids), found
    # The whole-word match ranks above the substring one.
    assert ids.index(word["message_id"]) < ids.index(inside["message_id"]), found
    for m in found:
        assert set(m) >= MESSAGE_FIELDS, m
    # A substring inside a word, including its middle.
    assert [m["message_id"] for m in search(B, tag[1:] + "berr")] == [inside["message_id"]]
    # A CJK substring: "'s meeting" inside "tomorrow's meeting moved to
    # three" (substrings take three characters or more).
    assert cjk["message_id"] in [m["message_id"] for m in search(B, "\u7684\u4f1a\u8bae")]
    assert cjk["message_id"] in [m["message_id"] for m in search(B, "\u4f1a\u8bae\u6539\u5230")]
    # Case does not matter for words.
    assert word["message_id"] in [m["message_id"] for m in search(A, "LUNCH " + tag.upper())]
    assert search(A, tag + "nothing") == []


def test_search_words_in_other_scripts():
    tag = "zq" + secrets.token_hex(4)
    ru = send(A, AB, "Привет, мир! %s" % tag)
    de = send(B, AB, "Schöne Grüße aus München %s" % tag)
    el = send(A, AB, "Καλημέρα %s" % tag)
    for q, want in [("привет " + tag, ru), ("МИР " + tag, ru),
                    ("grüße " + tag, de), ("münchen " + tag, de),
                    ("καλημέρα " + tag, el)]:
        found = [m["message_id"] for m in search(B, q)]
        assert found and found[0] == want["message_id"], (q, found)


def test_search_sees_only_the_callers_conversations():
    tag = "zq" + secrets.token_hex(4)
    mine = send(A, AB, "secret plan %s" % tag)
    theirs = send(C, CD, "their secret plan %s" % tag)
    assert [m["message_id"] for m in search(A, tag)] == [mine["message_id"]]
    assert [(m["conversation_id"], m["message_id"]) for m in search(C, tag)] == [(CD, theirs["message_id"])]
    assert [m["conversation_id"] for m in search(D, tag)] == [CD]
    # Naming another user's conversation does not open it.
    assert search(A, tag, "&conversation_id=%d" % CD) == []


def test_search_conversation_filter():
    tag = "zq" + secrets.token_hex(4)
    group = expect(A.call("POST", "/conversations", {"kind": "group", "title": "search",
                                                      "member_ids": [B.id, C.id]}), 201)["id"]
    in_direct = send(A, AB, "notes %s one" % tag)
    in_group = send(B, group, "notes %s two" % tag)
    assert {(m["conversation_id"], m["message_id"]) for m in search(A, tag)} == {
        (AB, in_direct["message_id"]), (group, in_group["message_id"])}
    only = search(A, tag, "&conversation_id=%d" % group)
    assert [(m["conversation_id"], m["message_id"]) for m in only] == [(group, in_group["message_id"])], only
    # limit is honoured.
    assert len(search(A, tag, "&limit=1")) == 1


def test_message_is_searchable_as_soon_as_its_send_returns():
    for _ in range(5):
        tag = "zq" + secrets.token_hex(6)
        sent = send(B, AB, "just now %s" % tag)
        assert [m["message_id"] for m in search(A, tag)] == [sent["message_id"]], tag


def test_short_queries_match_whole_words_only():
    # One or two characters cannot use the trigram index: they match whole
    # words, never the inside of one. Three or more match substrings too.
    group = expect(A.call("POST", "/conversations", {"kind": "group", "title": "short",
                                                      "member_ids": [B.id]}), 201)["id"]
    word = send(A, group, "ok then")
    inside = send(B, group, "look here")
    cjk = send(A, group, "\u660e\u5929\u7684\u4f1a\u8bae\u6539\u5230\u4e09\u70b9")
    scope = "&conversation_id=%d&limit=100" % group
    assert [m["message_id"] for m in search(A, "ok", scope)] == [word["message_id"]]
    assert [m["message_id"] for m in search(A, "OK", scope)] == [word["message_id"]]
    assert search(A, "oo", scope) == [] and search(A, "o", scope) == []
    assert search(A, "\u4f1a\u8bae", scope) == []
    assert [m["message_id"] for m in search(A, "loo", scope)] == [inside["message_id"]]
    assert [m["message_id"] for m in search(A, "\u4f1a\u8bae\u6539", scope)] == [cjk["message_id"]]
    # Spaces around a short word do not make it long.
    assert [m["message_id"] for m in search(A, " ok ", scope)] == [word["message_id"]]


def psql_holding(statement):
    """Starts psql (PARLEY_TEST_PG) in a transaction that ran statement,
    and returns it once statement has finished; close with release()."""
    proc = subprocess.Popen(["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                             os.environ.get("PARLEY_TEST_PG", PG)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc.stdin.write("BEGIN;\n%s;\nSELECT 'holding';\n" % statement)
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert line.strip() == "holding", "psql: %r" % line
    return proc


def release(proc):
    try:
        proc.stdin.write("ROLLBACK;\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass
    proc.wait(30)


def test_search_past_the_statement_timeout_is_503():
    # A search that cannot finish within [database] statement_timeout_ms
    # (5000 by default) is cancelled and answered 503: here it waits on a
    # lock held by another session.
    tag = "zq" + secrets.token_hex(4)
    sent = send(A, AB, "slow %s" % tag)
    holder = psql_holding("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
    timer = threading.Timer(30, release, (holder,))
    timer.start()
    try:
        started = time.monotonic()
        response = A.call("GET", "/search?q=" + tag)
        elapsed = time.monotonic() - started
        assert timer.is_alive(), "the search waited for the lock to be released (%.1f s)" % elapsed
        assert_error(response, 503, "unavailable")
        assert "statement_timeout" in response[2]["error"]["message"], response
    finally:
        timer.cancel()
        release(holder)
    # The connection serves again at once.
    assert [m["message_id"] for m in search(A, tag)] == [sent["message_id"]]


def test_concurrent_senders_get_gapless_ids_exactly_once():
    senders = [new_user("mk%d" % i) for i in range(8)]
    reader = new_user("mr")
    conv = expect(reader.call("POST", "/conversations", {
        "kind": "group", "title": "load", "member_ids": [s.id for s in senders]}), 201)["id"]
    per_sender = 500
    results = {}
    errors = []
    retried = {429: 0, 503: 0}
    lock = threading.Lock()
    start = threading.Barrier(len(senders))

    def run(index, user):
        client = Client()
        ids = []
        try:
            start.wait()
            t0 = time.monotonic()
            for n in range(per_sender):
                # Stay inside the send limit (50 a second after a burst of 200).
                due = t0 + max(0.0, (n - 180) / 45.0)
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the load under the limit, not synchronizing
                cmid = "s%d-%d" % (index, n)
                for attempt in range(20):
                    status, headers, body = client.request(
                        "POST", "/conversations/%d/messages" % conv,
                        {"client_msg_id": cmid, "body": "load %d from %d" % (n, index)}, token=user.token)
                    if status in (429, 503) and attempt < 19:
                        # Retry with the same client_msg_id, as the contract says,
                        # after the Retry-After it names: the wait is the behaviour.
                        with lock:
                            retried[status] += 1
                        time.sleep(float(headers.get("Retry-After") or 1) if status == 429 else 0.2)
                        continue
                    break
                assert status in (200, 201), "%s: %d %r" % (cmid, status, body)
                assert body["client_msg_id"] == cmid and body["sender_id"] == user.id, body
                ids.append(body["message_id"])
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            with lock:
                errors.append("sender %d: %s" % (index, e))
        finally:
            client.close()
            results[index] = ids

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "senders still running after 120 s"
    assert not errors, "; ".join(errors[:5])
    for index, ids in results.items():
        # One sender's messages get ids in the order it sent them.
        assert ids == sorted(ids) and len(set(ids)) == per_sender, "sender %d ids out of order" % index
    acked = sorted(i for ids in results.values() for i in ids)
    assert acked == list(range(1, 8 * per_sender + 1)), "acknowledged ids are not 1..4000"

    seen = []
    before = ""
    while True:
        page = history(reader, conv, "?limit=100" + before)
        if not page:
            break
        seen.extend(page)
        before = "&before=%d" % page[-1]["message_id"]
    ids = [m["message_id"] for m in seen]
    assert ids == list(range(8 * per_sender, 0, -1)), "history ids are not 4000..1 (%d messages)" % len(ids)
    cmids = [m["client_msg_id"] for m in seen]
    assert len(set(cmids)) == len(cmids) == 8 * per_sender, "a client_msg_id is stored twice"
    assert set(cmids) == {"s%d-%d" % (i, n) for i in range(8) for n in range(per_sender)}
    for m in seen:
        index, n = m["client_msg_id"][1:].split("-")
        assert m["sender_id"] == senders[int(index)].id and m["body"] == "load %s from %s" % (n, index), m
    if retried[429] or retried[503]:
        print("# note: sends retried after 429: %d, after 503: %d" % (retried[429], retried[503]))


if __name__ == "__main__":
    parley_test.run()

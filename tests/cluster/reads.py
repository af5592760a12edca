#!/usr/bin/python3
"""Reads from standbys miss no acknowledged write (scripts/cluster reads).

On the bed, each parley-api reads history, search and /sync from a standby
([database] read_conninfo, its own host's first) once the standby has
replayed up to the primary's WAL position at the request's session check
(lib/replica.h). These tests hold it to that as users would notice:

- a sender's history right after each acknowledged send has the message,
  newest first, and its search finds it;
- the recipient's /sync right after the send has it, too;
- all that while other pairs of users send as fast as they can, so the
  standbys are always replaying;
- and the standbys did serve: most of those reads ran there (their own
  pg_stat_user_tables scans of messages and inbox), not on the primary.

Environment as for the cluster e2e suites (scripts/cluster env):
PARLEY_TEST_URL, PARLEY_TEST_PG (the multi-host conninfo of the nodes).
"""

import os
import re
import secrets
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

import parley_test  # noqa: E402
from rest import direct, new_user, send  # noqa: E402

PAIRS = 6          # pairs of users checking their reads, in parallel
ROUNDS = 40        # sends (and the reads after each) per pair
SEARCH_EVERY = 5   # a search after every 5th send
STANDBY_SHARE = 0.5  # of the checked reads, at least this share on standbys

NODES = re.search(r"host=([^ ]+)", os.environ.get("PARLEY_TEST_PG", "")).group(1).split(",")


def node_sql(host, sql):
    out = subprocess.run(["psql", "-X", "-At", "-c", sql,
                          "host=%s port=5432 dbname=parley user=parley connect_timeout=5" % host],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else None


def scans():
    """{host: (in recovery, index and sequential scans of messages and inbox)}."""
    found = {}
    for host in NODES:
        row = node_sql(host, "SELECT pg_is_in_recovery(), coalesce(sum(idx_scan + seq_scan), 0) "
                             "FROM pg_stat_user_tables WHERE relname ~ '^(messages|inbox)'")
        if row:
            standby, n = row.split("|")
            found[host] = (standby == "t", int(n))
    return found


class Pair:
    def __init__(self, n):
        self.a, self.b = new_user("ra%d" % n), new_user("rb%d" % n)
        self.conv = direct(self.a, self.b)
        self.cursor = self.b.get("/sync?after=0")["cursor"]
        self.problems, self.reads = [], 0

    def round(self, i):
        tag = "rr%s" % secrets.token_hex(5)
        sent = send(self.a, self.conv, "read %d %s" % (i, tag))
        newest = self.a.get("/conversations/%d/messages?limit=1" % self.conv)["messages"]
        if not newest or newest[0]["message_id"] != sent["message_id"]:
            self.problems.append("history after send %d: newest %r, sent %d"
                                 % (i, newest[:1], sent["message_id"]))
        body = self.b.get("/sync?after=%d" % self.cursor)
        got = [e["message_id"] for e in body["events"]]
        if sent["message_id"] not in got:
            self.problems.append("recipient's sync after send %d misses message %d (got %r)"
                                 % (i, sent["message_id"], got))
        self.cursor = body["cursor"]
        self.reads += 2
        if i % SEARCH_EVERY == 0:
            found = self.a.get("/search?q=%s" % tag)["messages"]
            if [m["message_id"] for m in found] != [sent["message_id"]]:
                self.problems.append("search after send %d: %r" % (i, found))
            self.reads += 1

    def run(self):
        try:
            for i in range(1, ROUNDS + 1):
                self.round(i)
        except Exception as e:  # reported with the pair's other problems
            self.problems.append("round failed: %r" % e)


def flood(stop, sent):
    """Sends as fast as one client can, so that WAL keeps flowing."""
    a, b = new_user("rfa"), new_user("rfb")
    conv = direct(a, b)
    while not stop.is_set():
        status, _, _ = a.call("POST", "/conversations/%d/messages" % conv,
                              {"client_msg_id": secrets.token_hex(8), "body": "flood"})
        if status == 429:
            time.sleep(0.05)  # paces the flood under the send limit
        sent[0] += status == 201


def test_reads_after_acknowledged_sends_miss_nothing():
    before = scans()
    standbys = [h for h, (standby, _) in before.items() if standby]
    assert len(standbys) == 2, "want two standbys, found %r" % before
    pairs = [Pair(n) for n in range(PAIRS)]
    stop, flooded = threading.Event(), [0]
    floods = [threading.Thread(target=flood, args=(stop, flooded)) for _ in range(2)]
    for t in floods:
        t.start()
    threads = [threading.Thread(target=p.run) for p in pairs]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    stop.set()
    for t in floods:
        t.join(30)
    elapsed = time.monotonic() - started
    problems = [p for pair in pairs for p in pair.problems]
    reads = sum(p.reads for p in pairs)
    assert not problems, "%d reads missed an acknowledged write: %s" % (len(problems), problems[:5])
    # Statistics reach the shared counters within a second (PGSTAT_MIN_INTERVAL).
    parley_test.wait_for(lambda: scans_moved(before, standbys, reads), 10,
                         "most reads to show in the standbys' statistics")
    after = scans()
    on_standbys = sum(after[h][1] - before[h][1] for h in standbys)
    print("# %d checked reads in %.1f s beside %d flood sends: %d scans on the standbys (%s)"
          % (reads, elapsed, flooded[0], on_standbys,
             ", ".join("%s +%d" % (h, after[h][1] - before[h][1]) for h in NODES if h in after)))


def scans_moved(before, standbys, reads):
    after = scans()
    return sum(after[h][1] - before[h][1] for h in standbys if h in after) >= STANDBY_SHARE * reads


if __name__ == "__main__":
    parley_test.run()

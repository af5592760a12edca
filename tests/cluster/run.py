#!/usr/bin/python3
"""The cluster faults: while a load of sends runs across the bed's three
hosts (scripts/cluster), each fault in turn, then the books are checked.

  run.py [FAULT...]      (through: scripts/cluster faults [FAULT...])

The load is tests/faults/load.py's, on the three relays' public URLs
through nginx: every user has two devices on two different hosts, senders
resend with the same client_msg_id, and a device that loses its socket
reconnects with its cursor to the relay GET /discover hands out (else to
the other relays in turn). Faults:

  host-kill     SIGKILL every process of h2 (its ZooKeeper node, its two
                Redis nodes, parley-api and parley-relay, and their
                supervisors); h2 stays down until discovery must have
                dropped its relay, then starts again; h3:6380 must take over
                h2's Redis master meanwhile
  redis-master-kill
                SIGKILL a Redis master (and its supervisor): the one holding
                the presence keys of most of the load's users; its replica
                must take over. Then presence and a rate limit whose keys lie
                on its slots must still work; 10 s after the kill it starts
                again and must rejoin as the replica, in sync
  zk-node-kill  SIGKILL the ZooKeeper leader (and its supervisor) for 10 s;
                the other two must elect a leader and take writes meanwhile
  partition     iptables in h3 drops everything between h3 and h1, h2, db
                (not nginx on lb, nor the clients on the host) for 20 s; with
                Patroni, h3 is made the PostgreSQL leader first (planned
                switchovers under the load), must lose that role and rejoin
                as a standby
  slow-network  on h3's link for 20 s: 3 % of packets dropped each way
                (iptables statistic) and a 256 kbit/s cap (tc tbf, which queues
                up to 1 s of packets, then drops)
  pg-primary-kill
                SIGKILL the Patroni leader's PostgreSQL and Patroni (and its
                supervisor): the synchronous standby must take over, a commit
                must go through within 30 s; 10 s after the kill the node
                starts again and must rejoin as a streaming standby
  pg-host-kill  host-kill on the host of the PostgreSQL leader (whichever it
                is): host-kill's checks, and pg-primary-kill's

With Patroni (PARLEY_CLUSTER_PG=patroni, the default), host-kill also takes
h2's PostgreSQL node, a standby or the leader, as it happens to be.

One line per fault, as tests/faults/run.py prints, with the time to recover:

  fault=NAME sent=N acked=N delivered=N lost=N duplicated=N recovered=yes|no recover_s=S

recover_s: from the fault's start until every load device has a socket
again, a message sent over REST reaches a fresh socket on every running
relay, and (zk-node-kill) the ensemble takes a write, (host-kill,
redis-master-kill) every Redis slot has a live master again, (host-kill,
pg-*) PostgreSQL has a leader with a synchronous standby again. recovered:
after the load settled, every service of the bed runs, the ensemble has all
three nodes, every Redis slot a live master, every relay takes a hello and
delivers, within 60 s. Problems found follow as "#" lines. Checked besides
load.verify() (every acknowledged message in every member device's stream
and in history exactly once, seqs and message_ids in order without gaps,
nothing stored that was not sent): GET /discover never hands out a relay
that is dead or cut off once its registration must have expired (the Redis
registry's 15 s, or the ZooKeeper session timeout); a killed host's sockets
are welcomed again elsewhere within 15 s; no service exits unless the fault
killed it. Exits 1 if any fault failed.

After each fault, a Redis master that was failed over (by a kill, a
partition or a slow link) takes its role back (scripts/cluster
redis-roles), so every fault starts from the same layout; the notes say
which roles were restored.

After redis-master-kill's failover, and again after the roles were
restored: a user whose presence hash (parley:presence:{pB}:U, B = U mod 16)
lies on the killed master's slots opens a socket and sends a heartbeat, and
a friend's GET /presence shows them online; logins to a username whose
auth-user bucket (parley:rl:{auth-user:NAME}) lies there are answered 429
once over [limits] auth_per_user_per_minute. Slots come from the cluster
(CLUSTER KEYSLOT).

The partition also checks that the cut-off relay fences itself (closes its
sockets with 1001 after 10 s without Redis or ZooKeeper, and deregisters;
PARLEY_CLUSTER_EXPECT_FENCING=0 leaves that out). The partition's notes say
what the relay did.

Environment (set by scripts/cluster env): PARLEY_TEST_URL,
PARLEY_CLUSTER_RUNDIR, PARLEY_CLUSTER, PARLEY_CLUSTER_DISCOVERY; and
PARLEY_CLUSTER_ZK_SESSION_S (the relays' ZooKeeper session timeout, 6),
PARLEY_CLUSTER_EXPECT_FENCING, PARLEY_CLUSTER_DISCOVER_ONLY (=0: devices
also reconnect to relays they know, not only to the one discover hands out).
"""

import argparse
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "faults"))

import load as loadmod  # noqa: E402
import parley_test  # noqa: E402
import pgnodes  # noqa: E402
import rest  # noqa: E402
import ws  # noqa: E402
from parley_test import wait_for  # noqa: E402

BASE = parley_test.BASE_URL  # nginx on lb
RUNDIR = os.environ.get("PARLEY_CLUSTER_RUNDIR", "/var/tmp/parley-cluster")
CLUSTER = os.environ.get("PARLEY_CLUSTER", os.path.join(HERE, "..", "..", "scripts", "cluster"))
DISCOVERY = os.environ.get("PARLEY_CLUSTER_DISCOVERY", "redis")
NET = "10.77.0"
HOSTS = ("h1", "h2", "h3")
ADDR = {"h1": NET + ".11", "h2": NET + ".12", "h3": NET + ".13", "db": NET + ".20", "lb": NET + ".2"}
WS_BASE = BASE.replace("http://", "ws://", 1)
RELAYS = {h: "%s/r/%s/ws" % (WS_BASE, h[1:]) for h in HOSTS}
HOST_OF = {url: h for h, url in RELAYS.items()}
# PostgreSQL (PARLEY_CLUSTER_PG): "patroni", a node under Patroni on each of
# h1..h3, or "single", one PostgreSQL on db.
PG_MODE = os.environ.get("PARLEY_CLUSTER_PG", "patroni")
if PG_MODE == "patroni":
    SERVICES = {h: ("zk", "redis", "redis2", "patroni", "api", "relay") for h in HOSTS}
else:
    SERVICES = {"db": ("postgres",)}
    SERVICES.update({h: ("zk", "redis", "redis2", "api", "relay") for h in HOSTS})
SERVICES["lb"] = ("nginx", "notify")
# The Redis Cluster (scripts/cluster): on each host "redis" (6379), a master,
# and "redis2" (6380), the replica of the previous host's master.
REDIS_PORT, REDIS2_PORT = 6379, 6380
REDIS_SVC = {REDIS_PORT: "redis", REDIS2_PORT: "redis2"}
REDIS_NODES = [(h, p) for p in (REDIS_PORT, REDIS2_PORT) for h in HOSTS]
HOST_AT = {a: h for h, a in ADDR.items()}
SLOTS = 16384
# The keys the checks after a Redis failover use (lib/keys.h): a user's
# presence hash, in one of PRESENCE_BUCKETS hash slots, and a rate limit's
# token bucket.
PRESENCE_BUCKETS = 16
# How long after a relay stops refreshing its registration discover may
# still hand it out: the Redis registry's time to live (lib/keys.h
# PL_RELAY_TTL_MS), or the ZooKeeper session timeout the relays ask for.
EXPIRY_S = 15.0 if DISCOVERY == "redis" else float(os.environ.get("PARLEY_CLUSTER_ZK_SESSION_S", "6"))
EXPIRY_SLACK_S = 2.0
REWELCOME_S = 15.0
# A relay cut off from Redis or ZooKeeper for FENCE_S closes its sockets with
# 1001 and deregisters (doc/scale-out.md "Self-fencing"); the partition
# checks it, and that discover dropped the relay by then too
# (PARLEY_CLUSTER_EXPECT_FENCING=0 leaves that out).
FENCE_S = 10.0
EXPECT_FENCING = os.environ.get("PARLEY_CLUSTER_EXPECT_FENCING", "1") == "1"
# Devices reconnect only to the relay discover hands out, as an app does;
# PARLEY_CLUSTER_DISCOVER_ONLY=0: else to the relays they know too.
DISCOVER_ONLY = os.environ.get("PARLEY_CLUSTER_DISCOVER_ONLY", "1") == "1"
FAULT_CHAIN = "PARLEY_FAULT"
# kazoo logs every refused connection while a node is down: expected here.
logging.getLogger("kazoo").addHandler(logging.NullHandler())
logging.getLogger("kazoo").propagate = False


def sh(*args, check=True, timeout=60):
    """Runs a command; returns its stdout (raises on failure with check)."""
    p = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(args), p.returncode, p.stdout.strip()[-500:]))
    return p.stdout


def in_ns(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def ns_pids(ns):
    return [int(p) for p in sh("ip", "netns", "pids", ns, check=False).split()]


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def cluster(*args, timeout=180):
    return sh(CLUSTER, *args, timeout=timeout)


def discover():
    """The relay URL GET /discover hands out, or None."""
    status, _, body = parley_test.request("GET", "/api/v1/discover", timeout=5)
    if status == 200 and isinstance(body, dict):
        return body["relay"]["url"]
    return None


# ZooKeeper

def zk4(host, word, timeout=2):
    """A four-letter word's answer from host's node ('' if it does not answer)."""
    try:
        with socket.create_connection((ADDR[host], 2181), timeout=timeout) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return out.decode()
                out += chunk
    except OSError:
        return ""


def zk_modes():
    out = {}
    for h in HOSTS:
        m = re.search(r"^Mode: (\S+)", zk4(h, "srvr"), re.M)
        out[h] = m.group(1) if m else "down"
    return out


def zk_write(hosts):
    """True if the ensemble, reached through hosts, takes a write that a
    second client (on the last of hosts) reads back."""
    from kazoo.client import KazooClient
    from kazoo.handlers.threading import KazooTimeoutError
    servers = ",".join("%s:2181" % ADDR[h] for h in hosts)
    a = KazooClient(hosts=servers, timeout=4, connection_retry={"max_tries": 1})
    b = KazooClient(hosts="%s:2181" % ADDR[hosts[-1]], timeout=4, connection_retry={"max_tries": 1})
    try:
        a.start(timeout=4)
        b.start(timeout=4)
        a.ensure_path("/parley-bed")
        path = a.create("/parley-bed/probe-", b"x", ephemeral=True, sequence=True)
        b.sync("/parley-bed")
        return b.exists(path) is not None
    except (KazooTimeoutError, Exception):  # noqa: BLE001 - "no" is the answer
        return False
    finally:
        for c in (a, b):
            try:
                c.stop()
                c.close()
            except Exception:  # noqa: BLE001
                pass


def zk_relays():
    """The relay ids registered under /parley/relays (the ZooKeeper
    discovery backend: ephemeral znodes holding {id, url, ...})."""
    import json
    from kazoo.client import KazooClient
    zk = KazooClient(hosts=",".join("%s:2181" % ADDR[h] for h in HOSTS), timeout=4)
    zk.start(timeout=6)
    try:
        ids = set()
        for child in (zk.get_children("/parley/relays") if zk.exists("/parley/relays") else []):
            try:
                data, _ = zk.get("/parley/relays/" + child)
                ids.add(json.loads(data)["id"])
            except Exception:  # noqa: BLE001 - gone meanwhile, or not ours
                pass
        return ids
    finally:
        zk.stop()
        zk.close()


# Redis Cluster

class RedisError(Exception):
    """An error reply."""


def redis_cmd(host, port, *args, timeout=2):
    """One command's reply from a Redis node (str, int, list or None);
    raises OSError if the node does not answer, RedisError on an error."""
    with socket.create_connection((ADDR[host], port), timeout=timeout) as s:
        parts = [str(a).encode() for a in args]
        s.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in parts))
        return _reply(s.makefile("rb"))


def _reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_reply(f) for _ in range(n)]
    raise OSError("not a Redis reply: %r" % line[:40])


def redis_info(host, port, *what):
    """INFO what (or CLUSTER INFO with what = ("cluster",)) as a dict."""
    text = redis_cmd(host, port, *(("CLUSTER", "INFO") if what == ("cluster",) else ("INFO",) + what))
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))


def cluster_nodes(ask=None):
    """CLUSTER NODES of the first node of ask (default: every node) that
    answers: a list of {id, host, port, flags, master_id, slots: [(first,
    last)]}; [] if none answers."""
    for h, p in ask or REDIS_NODES:
        try:
            text = redis_cmd(h, p, "CLUSTER", "NODES")
        except (OSError, RedisError):
            continue
        out = []
        for line in text.splitlines():
            f = line.split()
            if len(f) < 8:
                continue
            ip, port = f[1].split("@")[0].rsplit(":", 1)
            slots = []
            for r in f[8:]:
                if not r.startswith("["):  # not a slot being moved
                    a, _, b = r.partition("-")
                    slots.append((int(a), int(b or a)))
            out.append({"id": f[0], "host": HOST_AT.get(ip, ip), "port": int(port), "flags": set(f[2].split(",")),
                        "master_id": None if f[3] == "-" else f[3], "slots": slots})
        return out
    return []


def in_slots(slot, ranges):
    return any(a <= slot <= b for a, b in ranges)


def slot_list(ranges):
    return ",".join("%d-%d" % r if r[0] != r[1] else "%d" % r[0] for r in ranges)


def keyslot(key):
    """The hash slot of key, as the cluster computes it (CLUSTER KEYSLOT)."""
    for h, p in REDIS_NODES:
        try:
            return redis_cmd(h, p, "CLUSTER", "KEYSLOT", key)
        except (OSError, RedisError):
            continue
    raise OSError("no Redis node answers")


def presence_key(user_id):
    return "parley:presence:{p%d}:%d" % (user_id % PRESENCE_BUCKETS, user_id)


def ratelimit_key(scope, key):
    return "parley:rl:{%s:%s}" % (scope, key)


def redis_serving():
    """Every slot is served by a live master: every node that answers has
    cluster_state ok (it is on the majority side and sees every slot
    assigned), and the masters that answer hold all 16384 slots between
    them."""
    live = []
    for h, p in REDIS_NODES:
        try:
            if redis_info(h, p, "cluster").get("cluster_state") != "ok":
                return False
        except (OSError, RedisError):
            continue
        live.append((h, p))
    served = sum(b - a + 1 for n in cluster_nodes(live) if "master" in n["flags"]
                 and not n["flags"] & {"fail", "fail?"} and (n["host"], n["port"]) in live
                 for a, b in n["slots"])
    return bool(live) and served == SLOTS


def redis_role(host, port):
    """"master", "replica of HOST:PORT" (with " (link down)" until the
    replica is in sync) or "down", from the node's INFO replication."""
    try:
        info = redis_info(host, port, "replication")
    except (OSError, RedisError):
        return "down"
    if info.get("role") != "slave":
        return info.get("role", "down")
    return "replica of %s:%s%s" % (HOST_AT.get(info.get("master_host"), info.get("master_host")),
                                   info.get("master_port"),
                                   "" if info.get("master_link_status") == "up" else " (link down)")


def replica_host(host):
    """The host whose redis2 replicates host's redis in the layout scripts/cluster up makes."""
    return HOSTS[(HOSTS.index(host) + 1) % len(HOSTS)]


def redis_off_layout():
    """What differs from the layout scripts/cluster up makes (every hN:6379
    a master, the next host's 6380 its replica, in sync): a list of
    "node is role" (empty when it is that layout)."""
    out = []
    for h in HOSTS:
        r = redis_role(h, REDIS_PORT)
        if r != "master":
            out.append("%s:%d is %s" % (h, REDIS_PORT, r))
        r = redis_role(replica_host(h), REDIS2_PORT)
        if r != "replica of %s:%d" % (h, REDIS_PORT):
            out.append("%s:%d is %s" % (replica_host(h), REDIS2_PORT, r))
    return out


def restore_roles(st):
    """After a failover: scripts/cluster redis-roles puts every master back
    on hN:6379 (CLUSTER FAILOVER on each one that came back as a replica),
    so the next fault starts from the same layout. Returns problems."""
    off = redis_off_layout()
    if not off:
        return []
    t0 = time.monotonic()
    try:
        cluster("redis-roles", timeout=180)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        # Once more, from where the first round left the nodes (a node
        # still loading its data after a restart can refuse a round).
        st["notes"].append("redis-roles failed once (%s); trying again" % str(e)[-200:])
        try:
            cluster("redis-roles", timeout=180)
        except (RuntimeError, subprocess.TimeoutExpired) as e2:
            return ["the Redis roles were not restored (%s): %s" % ("; ".join(off), e2)]
    st["notes"].append("Redis roles restored in %.1fs (were: %s)" % (time.monotonic() - t0, "; ".join(off)))
    return []


def wait_promoted(node, dead, timeout_s=30):
    """Waits until the replica node (host, port) is a master holding slots,
    in the view of a node other than dead; returns when (monotonic)."""
    ask = [n for n in REDIS_NODES if n != dead]

    def promoted():
        for n in cluster_nodes(ask):
            if (n["host"], n["port"]) == node:
                return "master" in n["flags"] and n["slots"] and time.monotonic()
        return False
    return wait_for(promoted, timeout_s, "%s:%d to take over %s:%d's slots" % (node + dead), interval_s=0.1)


def wait_rejoined(node, master, timeout_s=30):
    """Waits until node (restarted) is the replica of master, in sync."""
    want = "replica of %s:%d" % master
    wait_for(lambda: redis_role(*node) == want, timeout_s, "%s:%d to come back as the replica of %s:%d"
             % (node + master), interval_s=0.2)


def auth_user_limit():
    """[limits] auth_per_user_per_minute of the bed's parley.conf (lib/config.c's default: 10)."""
    import configparser
    cp = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
    cp.read(os.path.join(RUNDIR, "h1", "etc", "parley.conf"))
    return cp.getint("limits", "auth_per_user_per_minute", fallback=10)


def slot_checks(ranges, when, st):
    """Presence and rate limits on the given slots (a killed master's) still
    work: a user whose presence hash lies there opens a socket and sends a
    heartbeat, and a friend's GET /presence shows them online; logins to a
    username whose auth-user bucket lies there are answered 429 once over
    the limit. Returns problems."""
    problems = []
    relay = next((RELAYS[h] for h in HOSTS if alive_relay(h)), RELAYS["h1"])
    try:
        buckets = {b for b in range(PRESENCE_BUCKETS) if in_slots(keyslot(presence_key(b)), ranges)}
        if not buckets:
            st["notes"].append("%s: no presence bucket lies on slots %s" % (when, slot_list(ranges)))
        else:
            viewer, user = rest.new_user("rkv"), None
            for _ in range(2 * PRESENCE_BUCKETS):  # user ids are consecutive: every bucket comes round
                u = rest.new_user("rku")
                if u.id % PRESENCE_BUCKETS in buckets and in_slots(keyslot(presence_key(u.id)), ranges):
                    user = u
                    break
            if user is None:
                raise AssertionError("no user of %d signed up has a presence key on slots %s"
                                     % (2 * PRESENCE_BUCKETS, slot_list(ranges)))
            rest.expect(viewer.call("POST", "/friends", {"user_id": user.id}), 201, "friend request")
            rest.expect(user.call("POST", "/friends", {"user_id": viewer.id}), 200, "friend accept")
            sock = ws.connect(user, url=relay)
            try:
                sock.send({"type": "heartbeat"})
                t0 = time.monotonic()

                def online():
                    body = rest.expect(viewer.call("GET", "/presence?user_ids=%d" % user.id), 200, "GET /presence")
                    return any(p["user_id"] == user.id and p["status"] == "online" for p in body["presence"])
                wait_for(online, 15, "GET /presence to show user %d online" % user.id, interval_s=0.3)
                st["notes"].append("%s: user %d (presence key %s, slot %d) online %.1fs after a heartbeat"
                                   % (when, user.id, presence_key(user.id), keyslot(presence_key(user.id)),
                                      time.monotonic() - t0))
            finally:
                sock.close()
    except Exception as e:  # noqa: BLE001 - reported as the check's failure
        problems.append("presence %s: %s: %s" % (when, type(e).__name__, e))
    try:
        name = next((n for n in (rest.uniq("rl") for _ in range(500))
                     if in_slots(keyslot(ratelimit_key("auth-user", n)), ranges)), None)
        if name is None:
            raise AssertionError("no username of 500 has its auth-user bucket on slots %s" % slot_list(ranges))
        limit, answers = auth_user_limit(), []
        for i in range(limit + 5):
            answers.append(rest.call("POST", "/sessions", {"username": name, "password": "guess-%d" % i})[0])
            if answers[-1] == 429:
                break
        if answers[-1] != 429:
            raise AssertionError("no 429 after %d logins to %s (limit %d a minute; key %s, slot %d): %s"
                                 % (len(answers), name, limit, ratelimit_key("auth-user", name),
                                    keyslot(ratelimit_key("auth-user", name)), " ".join(map(str, answers))))
        st["notes"].append("%s: logins to %s (rate-limit key on slot %d) answered 429 after %d"
                           % (when, name, keyslot(ratelimit_key("auth-user", name)), len(answers) - 1))
    except Exception as e:  # noqa: BLE001
        problems.append("rate limit %s: %s: %s" % (when, type(e).__name__, e))
    return problems


# Watching the bed while a fault runs

class DiscoverWatch(threading.Thread):
    """Asks GET /discover every 0.25 s and keeps (time, url) of each answer."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen = []
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(0.25):
            try:
                url = discover()
            except OSError:
                continue
            if url:
                self.seen.append((time.monotonic(), url))

    def handed_out(self, host, start, end):
        """Times (seconds after start) discover handed out host's relay in [start, end)."""
        return [t - start for t, url in self.seen if HOST_OF.get(url) == host and start <= t < end]


class Probe:
    """A user pair outside the load: a send over REST must reach a fresh
    socket on each given relay."""

    def __init__(self):
        self.a, self.b = rest.new_user("cpa"), rest.new_user("cpb")
        self.conv = rest.direct(self.a, self.b)
        self.n = 0
        self.failure = None  # why the last delivers() failed

    def delivers(self, hosts, timeout_s=5):
        socks = []
        try:
            for h in hosts:
                socks.append(ws.connect(self.b, url=RELAYS[h]))
            self.n += 1
            sent = rest.send(self.a, self.conv, "probe %d" % self.n)
            for h, s in zip(hosts, socks):
                got = s.expect("message", timeout=timeout_s)["message_id"]
                if got != sent["message_id"]:
                    self.failure = "%s's socket got message %r, not %r" % (h, got, sent["message_id"])
                    return False
            return True
        except Exception as e:  # noqa: BLE001 - not serving yet
            self.failure = "%s (%d of %d sockets open)" % (("%s: %s" % (type(e).__name__, e))[:160], len(socks),
                                                           len(hosts))
            return False
        finally:
            for s in socks:
                s.close()


def services_running():
    return subprocess.run([CLUSTER, "status"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def whole(load, probe):
    """The bed serves every client again (see recover_s)."""
    return (all(d.live for d in load.devices) and
            probe.delivers([h for h in HOSTS if ns_pids(h) and alive_relay(h)]))


def alive_relay(host):
    pid = read_pid(os.path.join(RUNDIR, host, "run", "relay.child.pid"))
    return pid is not None and os.path.exists("/proc/%d" % pid)


class Logs:
    """The bed's service logs from a point on: what exited meanwhile."""

    CRASH = re.compile(r"^supervise: (\S+) exited with status (\d+)|ERROR: (AddressSanitizer|LeakSanitizer)"
                       r"|runtime error: ", re.M)

    def __init__(self):
        self.offsets = {}
        for ns, svcs in SERVICES.items():
            for s in svcs:
                try:
                    self.offsets[(ns, s)] = os.path.getsize(self.path(ns, s))
                except OSError:
                    self.offsets[(ns, s)] = 0

    @staticmethod
    def path(ns, svc):
        return os.path.join(RUNDIR, ns, "log", svc + ".log")

    def crashes(self, killed):
        out = []
        for (ns, svc), offset in self.offsets.items():
            try:
                with open(self.path(ns, svc), "rb") as f:
                    f.seek(offset)
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for m in self.CRASH.finditer(text):
                if (ns, svc) in killed:
                    continue
                line = text[m.start():text.find("\n", m.start())]
                out.append("%s/%s.log: %s" % (ns, svc, line[:200]))
        return out


# The faults. Each gets the load, the run's state (a dict: it sets "start",
# the moment the disruption began, "end", when it was undone, and "ready",
# a function that is true once the fault's own recovery condition holds, for
# recover_s) and returns a list of problems of its own.

def fault_host_kill(load, st, host="h2"):
    """SIGKILL every process of host (h2 unless told), which stays down
    until discovery must have dropped its relay, then starts again."""
    victims = [d for d in load.devices if d.url == RELAYS[host] and d.live]
    pids = ns_pids(host)
    st["killed"] = {(host, s) for s in SERVICES[host]}
    # host's Redis master: its replica (on the next host) must take over.
    master, nodes = (host, REDIS_PORT), cluster_nodes()
    mid = next((n["id"] for n in nodes if (n["host"], n["port"]) == master), None)
    replica = next(((n["host"], n["port"]) for n in nodes if mid and n["master_id"] == mid), None)
    # Recovered once the killed host's sockets were all welcomed again and
    # every Redis slot has a live master again.
    st["ready"] = lambda: (all(d.live and d.welcomed_at > st["start"] for d in victims) and redis_serving()
                           and pg_writable())
    st["start"] = time.monotonic()
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if st.get("on_kill"):
        st["on_kill"]()
    problems = []
    wait_for(lambda: not ns_pids(host), 10, "every process of %s to die" % host)
    if replica is None:
        problems.append("%s:%d had no replica before the kill" % master)
    else:
        try:
            t = wait_promoted(replica, master)
            st["notes"].append("%s:%d took over %s:%d's slots %.1fs after the kill"
                               % (replica + master + (t - st["start"],)))
        except AssertionError as e:
            problems.append(str(e))
    try:
        wait_for(lambda: all(d.live and d.welcomed_at > st["start"] for d in victims), 30,
                 "the killed host's sockets to be welcomed again")
    except AssertionError:
        pass
    late = [d.name for d in victims if not (d.live and d.welcomed_at and d.welcomed_at > st["start"])]
    slow = max([d.welcomed_at - st["start"] for d in victims if d.name not in late] or [0])
    landed = {}
    for d in victims:
        landed[HOST_OF.get(d.url, "-")] = landed.get(HOST_OF.get(d.url, "-"), 0) + 1
    st["notes"].append("%d sockets were on %s; welcomed again elsewhere after at most %.1fs (%s)"
                       % (len(victims), host, slow, ", ".join("on %s: %d" % kv for kv in sorted(landed.items()))))
    sent_dead = [t - st["start"] for d in victims for t, url in d.discovered
                 if url == RELAYS[host] and t > st["start"]]
    if sent_dead:
        st["notes"].append("discover sent them to the dead %s %d times (the last %.1fs after the kill)%s"
                           % (host, len(sent_dead), max(sent_dead),
                              "" if DISCOVER_ONLY else "; they went on to relays they knew"))
    if late or slow > REWELCOME_S:
        problems.append("%s's sockets not all welcomed again within %ds: %.1fs, still without: %s"
                        % (host, REWELCOME_S, slow, " ".join(late) or "-"))
    if not victims:
        problems.append("no load device was on %s when it was killed" % host)
    if DISCOVERY == "zookeeper":
        # The relay's ephemeral znode goes with its session.
        try:
            wait_for(lambda: host + "-relay" not in zk_relays(), EXPIRY_S + EXPIRY_SLACK_S,
                     "%s's relay znode to vanish with its session" % host, interval_s=0.5)
        except AssertionError as e:
            problems.append(str(e))
    # host stays down until discovery must have forgotten its relay, and a
    # little longer, so the watch sees what discover hands out then.
    time.sleep(max(0.0, st["start"] + EXPIRY_S + EXPIRY_SLACK_S + 3 - time.monotonic()))
    st["dead"] = (host, st["start"], time.monotonic())
    cluster("start", host)
    st["end"] = time.monotonic()
    # host's Redis nodes rejoin as replicas; its master takes its role back.
    if replica is not None:
        try:
            wait_rejoined(master, replica)
        except AssertionError as e:
            problems.append(str(e))
    return problems + restore_roles(st)


def fault_redis_master_kill(load, st):
    """SIGKILL a Redis master (and its supervisor): the one holding the
    presence keys of most of the load's users (h1's on a tie). Its replica
    must take over; then presence and rate limits on its slots must work
    (slot_checks); 10 s after the kill it starts again, must rejoin as the
    replica, in sync, and takes its role back (restore_roles), after which
    the slot checks run again."""
    nodes = cluster_nodes()
    at = {(n["host"], n["port"]): n for n in nodes}
    users = sorted({u.id for members in load.members.values() for u in members})
    held = {h: 0 for h in HOSTS}
    for uid in users:
        slot = keyslot(presence_key(uid))
        for h in HOSTS:
            if (h, REDIS_PORT) in at and in_slots(slot, at[(h, REDIS_PORT)]["slots"]):
                held[h] += 1
    victim = max(HOSTS, key=lambda h: held[h])
    master = (victim, REDIS_PORT)
    if master not in at or "master" not in at[master]["flags"] or not at[master]["slots"]:
        return ["%s:%d is not a master with slots before the fault" % master]
    ranges = at[master]["slots"]
    replica = next(((n["host"], n["port"]) for n in nodes if n["master_id"] == at[master]["id"]), None)
    if replica is None:
        return ["%s:%d has no replica before the fault" % master]
    sup = read_pid(os.path.join(RUNDIR, victim, "run", "redis.pid"))
    child = read_pid(os.path.join(RUNDIR, victim, "run", "redis.child.pid"))
    st["killed"] = {(victim, "redis")}
    st["ready"] = redis_serving
    st["start"] = time.monotonic()
    for p in (sup, child):
        if p:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    problems = []
    try:
        t = wait_promoted(replica, master)
        st["notes"].append("killed the master %s:%d (slots %s; the presence keys of %d of the load's %d users); "
                           "its replica %s:%d took over after %.1fs"
                           % (master + (slot_list(ranges), held[victim], len(users)) + replica
                              + (t - st["start"],)))
    except AssertionError as e:
        problems.append(str(e))
    problems += slot_checks(ranges, "after the failover", st)
    time.sleep(max(0.0, st["start"] + 10 - time.monotonic()))
    cluster("start", victim)
    st["end"] = time.monotonic()
    try:
        wait_rejoined(master, replica)
        st["notes"].append("%s:%d back as the replica of %s:%d, in sync, %.1fs after its start"
                           % (master + replica + (time.monotonic() - st["end"],)))
    except AssertionError as e:
        problems.append(str(e))
    problems += restore_roles(st)
    return problems + slot_checks(ranges, "after the roles were restored", st)


def fault_zk_node_kill(load, st):
    modes = zk_modes()
    leader = next((h for h, m in modes.items() if m == "leader"), None)
    if leader is None:
        return ["no ZooKeeper leader before the fault: %r" % modes]
    sup = read_pid(os.path.join(RUNDIR, leader, "run", "zk.pid"))
    child = read_pid(os.path.join(RUNDIR, leader, "run", "zk.child.pid"))
    st["killed"] = {(leader, "zk")}
    st["ready"] = lambda: st.get("zk_ok")
    st["start"] = time.monotonic()
    for p in (sup, child):
        if p:
            os.kill(p, signal.SIGKILL)
    others = [h for h in HOSTS if h != leader]
    problems = []
    try:
        t = wait_for(lambda: zk_write(others) and time.monotonic(), 20,
                     "the two other ZooKeeper nodes to take a write", interval_s=0.5)
        st["notes"].append("killed the leader on %s; %s elected %s and took a write after %.1fs"
                           % (leader, "+".join(others),
                              next((h for h, m in zk_modes().items() if m == "leader"), "?"),
                              t - st["start"]))
        st["zk_ok"] = True
    except AssertionError as e:
        problems.append("quorum lost with one node down: %s" % e)
    time.sleep(max(0.0, st["start"] + 10 - time.monotonic()))
    cluster("start", leader)
    st["end"] = time.monotonic()
    try:
        wait_for(lambda: all(m in ("leader", "follower") for m in zk_modes().values()), 30,
                 "the killed node to rejoin the ensemble", interval_s=0.5)
    except AssertionError as e:
        problems.append(str(e))
    return problems


def fault_rules(ns, rules):
    """Jumps from INPUT and OUTPUT of ns to a chain of its own holding rules."""
    in_ns(ns, "iptables", "-w", "-N", FAULT_CHAIN)
    for r in rules:
        in_ns(ns, "iptables", "-w", "-A", FAULT_CHAIN, *r)
    for chain in ("INPUT", "OUTPUT"):
        in_ns(ns, "iptables", "-w", "-I", chain, "1", "-j", FAULT_CHAIN)


def dropped(ns):
    """Packets the fault chain of ns dropped so far."""
    out = in_ns(ns, "iptables", "-w", "-L", FAULT_CHAIN, "-v", "-x", "-n", check=False)
    return sum(int(line.split()[0]) for line in out.splitlines() if line.strip()[:1].isdigit())


def tbf_stats(dev, ns=None):
    """(packets sent, dropped, overlimits) of dev's root tbf."""
    cmd = ("tc", "-s", "qdisc", "show", "dev", dev)
    out = in_ns(ns, *cmd, check=False) if ns else sh(*cmd, check=False)
    m = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def clear_rules(ns):
    for chain in ("INPUT", "OUTPUT"):
        while in_ns(ns, "iptables", "-w", "-D", chain, "-j", FAULT_CHAIN, check=False) == "":
            pass
    in_ns(ns, "iptables", "-w", "-F", FAULT_CHAIN, check=False)
    in_ns(ns, "iptables", "-w", "-X", FAULT_CHAIN, check=False)


def fault_partition(load, st):
    """Cuts h3 off from h1, h2 (and db) for 20 s. With Patroni, h3 leads
    PostgreSQL first (planned switchovers under the load): the cut-off
    primary must demote itself, the synchronous standby take over, and h3
    rejoin as a standby afterwards (pg_rewind)."""
    if PG_MODE == "patroni":
        try:
            moves = pgnodes.lead_on(PG_ADDR, "h3")
            st["notes"].append("PostgreSQL leader moved to h3 first (%s)" % (" ".join(moves) or "it was there"))
        except AssertionError as e:
            return [str(e)]
        sync = pgnodes.sync_standby(PG_ADDR)
    victims = [d for d in load.devices if d.url == RELAYS["h3"] and d.live]
    cut = ",".join(ADDR[h] for h in ("h1", "h2", "db"))
    fault_rules("h3", [("-s", cut, "-j", "DROP"), ("-d", cut, "-j", "DROP")])
    st["ready"] = lambda: st["end"] is not None  # sockets stay open meanwhile
    st["start"] = time.monotonic()
    st["cleanup"] = lambda: clear_rules("h3")
    try:
        time.sleep(20)
        st["notes"].append("h3 cut off for 20 s: %d packets dropped" % dropped("h3"))
    finally:
        clear_rules("h3")
        st["end"] = time.monotonic()
    # h3's relay cannot refresh its registration while cut off: discover
    # must stop handing it out once that expired.
    st["dead"] = ("h3", st["start"], st["end"])
    problems = fencing(victims, st)
    if PG_MODE == "patroni":
        lead = pgnodes.leader(PG_ADDR)
        st["notes"].append("PostgreSQL leader after the partition: %s (the synchronous standby before it: %s)"
                           % (lead, sync))
        if lead == "h3":
            problems.append("h3 still leads PostgreSQL after being cut off for 20 s")
        problems += pg_rejoined(st, "h3")
    return problems


def fencing(victims, st):
    """Notes what became of the cut-off relay's sockets. With
    PARLEY_CLUSTER_EXPECT_FENCING=1, a problem unless the relay closed every
    one with 1001 within FENCE_S (+ slack) and each was welcomed again on
    another relay before the partition ended (SCALE-OUT.md "Self-fencing")."""
    start, end = st["start"], st["end"]
    fenced = {d.name: t - start for d in victims for t, code in d.closes if code == 1001 and start <= t < end}
    moved = [d.name for d in victims if d.welcomed_at and start < d.welcomed_at < end and d.url != RELAYS["h3"]]
    st["notes"].append("%d sockets were on h3: %d closed by it with 1001 during the partition%s, %d welcomed "
                       "elsewhere before it ended"
                       % (len(victims), len(fenced),
                          " (after %.1f-%.1fs)" % (min(fenced.values()), max(fenced.values())) if fenced else "",
                          len(moved)))
    if not EXPECT_FENCING:
        return []
    problems = []
    late = [d.name for d in victims if fenced.get(d.name, 1e9) > FENCE_S + EXPIRY_SLACK_S]
    if late:
        problems.append("h3's relay did not fence itself: sockets not closed with 1001 within %.0fs: %s"
                        % (FENCE_S + EXPIRY_SLACK_S, " ".join(
                            "%s (closes: %s)" % (d.name, ", ".join("%d at %.1fs" % (c, t - start) for t, c in d.closes
                                                                  if t >= start - 5) or "none")
                            for d in victims if d.name in late)))
    stuck = [d.name for d in victims if d.name not in moved]
    if stuck:
        problems.append("sockets of the cut-off relay not welcomed elsewhere during the partition: %s"
                        % " ".join(stuck))
    return problems


def fault_slow_network(load, st):
    fault_rules("h3", [("-m", "statistic", "--mode", "random", "--probability", "0.03", "-j", "DROP")])
    tbf = ("tbf", "rate", "256kbit", "burst", "8kb", "latency", "1s")

    def undo():
        in_ns("h3", "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
        sh("tc", "qdisc", "del", "dev", "plc-h3", "root", check=False)
        clear_rules("h3")
    st["cleanup"] = undo
    try:
        in_ns("h3", "tc", "qdisc", "add", "dev", "eth0", "root", *tbf)  # from h3
        sh("tc", "qdisc", "add", "dev", "plc-h3", "root", *tbf)  # to h3
        st["ready"] = lambda: st["end"] is not None
        st["start"] = time.monotonic()
        time.sleep(20)
        out_, in_ = tbf_stats("eth0", "h3"), tbf_stats("plc-h3")
        st["notes"].append("h3's link for 20 s: %d packets lost at random; tbf from h3 sent %d pkt, "
                           "%d dropped, %d over the limit; to h3 sent %d pkt, %d dropped, %d over the limit"
                           % ((dropped("h3"),) + out_ + in_))
    finally:
        undo()
        st["end"] = time.monotonic()
    return []


# name, function
# PostgreSQL under Patroni (PG_MODE "patroni")

PG_ADDR = {h: ADDR[h] for h in HOSTS}
PG_CONNINFO = os.environ.get("PARLEY_TEST_PG", "")
# After a PostgreSQL node is lost, writes must be back within this.
PG_WRITES_BACK_S = 30.0


def pg_writable():
    """The database takes writes: with Patroni, a leader with a synchronous
    standby (synchronous_mode_strict: a commit waits for one)."""
    return PG_MODE != "patroni" or pgnodes.writable(PG_ADDR)


def pg_whole():
    """Every PostgreSQL node runs: a writable leader, the others streaming."""
    if PG_MODE != "patroni":
        return True
    lead = pgnodes.leader(PG_ADDR)
    return (lead is not None and pgnodes.writable(PG_ADDR)
            and all(pgnodes.streaming(PG_ADDR, h) for h in HOSTS if h != lead))


def pg_failover(st, old, sync):
    """Waits for a new leader after old was lost; notes how long the
    failover and the return of writes took. Returns problems."""
    try:
        wait_for(lambda: pgnodes.leader(PG_ADDR) not in (None, old), 40,
                 "a PostgreSQL leader other than %s" % old, interval_s=0.2)
        led = time.monotonic() - st["start"]
        new = pgnodes.leader(PG_ADDR)
        wait_for(lambda: pgnodes.commits(PG_CONNINFO), 40, "a commit on the new leader", interval_s=0.2)
        writes = time.monotonic() - st["start"]
    except AssertionError as e:
        return [str(e)]
    st["notes"].append("%s (the synchronous standby: %s) led %.1fs after the kill; the first commit "
                       "(confirmed by a synchronous standby of its own) after %.1fs"
                       % (new, "yes" if new == sync else "no, %s was" % sync, led, writes))
    problems = []
    if new != sync:
        problems.append("%s was promoted, not the synchronous standby %s" % (new, sync))
    if writes > PG_WRITES_BACK_S:
        problems.append("writes back after %.1fs, more than %.0fs" % (writes, PG_WRITES_BACK_S))
    return problems


def pg_rejoined(st, old):
    try:
        wait_for(lambda: pgnodes.streaming(PG_ADDR, old), 60, "%s to rejoin as a standby" % old,
                 interval_s=0.5)
        st["notes"].append("%s back as a streaming standby %.1fs after its start"
                           % (old, time.monotonic() - st["end"]))
        return []
    except AssertionError as e:
        return [str(e) + " (%s)" % pgnodes.roles(PG_ADDR)]


def pg_before(fault):
    """The PostgreSQL leader and its synchronous standby before FAULT, once
    the standby is steady (strict mode cannot replace a leader without
    one): (old, sync, []), or (None, None, [why the fault cannot run])."""
    if PG_MODE != "patroni":
        return None, None, ["%s needs the Patroni bed (PARLEY_CLUSTER_PG=patroni)" % fault]
    try:
        pgnodes.settled(PG_ADDR)
    except AssertionError as e:
        return None, None, [str(e)]
    old, sync = pgnodes.leader(PG_ADDR), pgnodes.sync_standby(PG_ADDR)
    if old is None or sync is None:
        return None, None, ["no leader with a synchronous standby before the fault: %r"
                            % pgnodes.roles(PG_ADDR)]
    return old, sync, []


def fault_pg_primary_kill(load, st):
    """SIGKILL the Patroni leader's PostgreSQL and Patroni (and its
    supervisor): the synchronous standby must take over and writes must be
    back within PG_WRITES_BACK_S; 10 s after the kill the node starts again
    and must rejoin as a standby (pg_rewind when it must)."""
    old, sync, problems = pg_before("pg-primary-kill")
    if problems:
        return problems
    pids = pgnodes.node_pids(ns_pids(old), RUNDIR, old)
    st["killed"] = {(old, "patroni")}
    st["ready"] = pg_writable
    st["start"] = time.monotonic()
    pgnodes.kill(pids)
    st["notes"].append("killed the leader %s's Patroni and PostgreSQL (%d processes)" % (old, len(pids)))
    problems = pg_failover(st, old, sync)
    time.sleep(max(0.0, st["start"] + 10 - time.monotonic()))
    cluster("start", old)
    st["end"] = time.monotonic()
    return problems + pg_rejoined(st, old)


def fault_pg_host_kill(load, st):
    """host-kill on the host of the PostgreSQL leader: every process of
    that host, its PostgreSQL primary among them. Besides host-kill's
    checks, the synchronous standby must take over, writes must be back
    within PG_WRITES_BACK_S, and the node must rejoin as a standby."""
    old, sync, problems = pg_before("pg-host-kill")
    if problems:
        return problems
    st["notes"].append("the PostgreSQL leader was on %s: that host is killed" % old)
    watch = threading.Thread(target=lambda: st.setdefault("pg", pg_failover(st, old, sync)), daemon=True)
    st["on_kill"] = watch.start
    problems = fault_host_kill(load, st, host=old)
    watch.join(60)
    return problems + st.get("pg", ["the failover watch did not finish"]) + pg_rejoined(st, old)


FAULTS = [
    ("host-kill", fault_host_kill),
    ("redis-master-kill", fault_redis_master_kill),
    ("zk-node-kill", fault_zk_node_kill),
    ("partition", fault_partition),
    ("slow-network", fault_slow_network),
    ("pg-primary-kill", fault_pg_primary_kill),
    ("pg-host-kill", fault_pg_host_kill),
]


def bed_recovered(probe):
    """Every service runs, the ensemble is whole, every Redis slot has a
    live master, every PostgreSQL node runs (a leader, the others
    streaming), every relay delivers."""
    modes = zk_modes()
    return (services_running() and list(modes.values()).count("leader") == 1
            and all(m in ("leader", "follower") for m in modes.values())
            and redis_serving() and pg_whole() and probe.delivers(HOSTS))


class RecoveryWatch(threading.Thread):
    """From the fault's start on, notes when the bed first serves every
    client again (whole()), after every disruption of the fault began."""

    def __init__(self, load, probe, st):
        super().__init__(daemon=True)
        self.load, self.probe, self.st = load, probe, st
        self.at = None
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(0.5):
            if self.st.get("start") is None or not self.st["ready"]():
                continue
            t = time.monotonic()
            if whole(self.load, self.probe):
                self.at = t
                return


def run_fault(name, fn, cfg, probe):
    st = {"notes": [], "killed": set(), "start": None, "end": None, "ready": lambda: True}
    problems = []
    recovered = False
    t0 = time.monotonic()
    logs = Logs()
    load = loadmod.Load(name.replace("-", "")[:6], [RELAYS[h] for h in HOSTS], pairs=cfg["pairs"],
                        interval_s=cfg["interval_s"], discover=discover, discover_only=DISCOVER_ONLY)
    watch = DiscoverWatch()
    recovery = RecoveryWatch(load, Probe(), st)
    try:
        load.start()
        watch.start()
        time.sleep(cfg["before_s"])  # the load runs before the fault
        recovery.start()
        try:
            problems += fn(load, st) or []
        except Exception as e:  # noqa: BLE001 - reported as the fault's failure
            problems.append("the fault failed: %s: %s" % (type(e).__name__, e))
            if st.get("cleanup"):
                st["cleanup"]()
        # A fault that failed a Redis master over (a partition, a slow link)
        # leaves it a replica: the next fault starts from the same layout.
        problems += restore_roles(st)
        time.sleep(cfg["after_s"])  # and goes on after it
        load.stop_sending()
        settled = load.settle(cfg["settle_s"])
        recovery.join(max(0.0, 60 - (time.monotonic() - (st["end"] or t0))))
        recovery.stopped.set()
        watch.stopped.set()
        try:
            wait_for(lambda: bed_recovered(probe), 60, "the bed to serve again", interval_s=1)
            recovered = True
        except AssertionError as e:
            problems.append(str(e))
        if not all(d.live for d in load.devices):
            recovered = False
            problems.append("load devices without a socket: %s"
                            % " ".join(d.name for d in load.devices if not d.live))
        if not settled:
            problems.append("not settled within %ds: %d acked messages missing somewhere, %d sends unanswered"
                            % (cfg["settle_s"], len(load.missing()),
                               sum(len(d.outbox) for d in load.devices)
                               + sum(len(s.pending) for s in load.rest_senders)))
        if st.get("dead"):
            host, start, end = st["dead"]
            gone_s = (FENCE_S if EXPECT_FENCING and name == "partition" else EXPIRY_S) + EXPIRY_SLACK_S
            late = watch.handed_out(host, start + gone_s, end)
            if late:
                problems.append("discover handed out %s's relay %d times after its registration expired "
                                "(first %.1fs after the fault began)" % (host, len(late), late[0] + gone_s))
            by = {}
            for _, u in watch.seen:
                by[HOST_OF.get(u, u)] = by.get(HOST_OF.get(u, u), 0) + 1
            st["notes"].append("discover: %d answers (%s), %s's relay last handed out %.1fs after the fault began"
                               % (len(watch.seen), ", ".join("%s %d" % kv for kv in sorted(by.items())), host,
                                  max([t - start for t, u in watch.seen
                                       if HOST_OF.get(u) == host and start <= t < end] or [0])))
    except Exception as e:  # noqa: BLE001 - the load itself could not run
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        watch.stopped.set()
        recovery.stopped.set()
        load.finish()
    counts = load.verify()
    problems += load.book.anomalies
    killed = set(st["killed"])
    problems += logs.crashes(killed)
    rec_s = (recovery.at - st["start"]) if recovery.at and st["start"] else None
    if (rec_s is None or st["end"] is None or rec_s > st["end"] - st["start"] + 15) and recovery.probe.failure:
        st["notes"].append("late to serve again; the probe's last failure: %s; load devices without a socket: %s"
                           % (recovery.probe.failure, " ".join(d.name for d in load.devices if not d.live) or "none"))
    if rec_s is None:
        problems.append("the bed did not serve every client again within 60 s of the fault")
    print("fault=%s sent=%d acked=%d delivered=%d lost=%d duplicated=%d recovered=%s recover_s=%s"
          % (name, counts["sent"], counts["acked"], counts["delivered"], counts["lost"],
             counts["duplicated"], "yes" if recovered and rec_s is not None else "no",
             "%.1f" % rec_s if rec_s is not None else "-"), flush=True)
    for n in st["notes"]:
        print("#   %s: %s" % (name, n), flush=True)
    for p in problems[:20]:
        print("#   %s: PROBLEM %s" % (name, p), flush=True)
    if st["start"] and st["end"] and rec_s is not None:
        print("#   %s: the fault lasted %.1fs; every client served again %.1fs after it began, %.1fs after it ended"
              % (name, st["end"] - st["start"], rec_s, max(0.0, recovery.at - st["end"])), flush=True)
    print("#   %s took %.1fs; %d reconnects, %d sends retried" % (
        name, time.monotonic() - t0, sum(len(d.sockets) - 1 for d in load.devices),
        load.retries()), flush=True)
    return (counts["lost"] == 0 and counts["duplicated"] == 0 and recovered and rec_s is not None
            and not problems and counts["acked"] > 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("faults", nargs="*", help="run only these (default: all, in this order: %s)"
                    % " ".join(f[0] for f in FAULTS))
    args = ap.parse_args()
    known = [f[0] for f in FAULTS]
    for f in args.faults:
        if f not in known:
            ap.error("unknown fault %r (known: %s)" % (f, " ".join(known)))
    cfg = {"pairs": 3, "interval_s": 0.2, "before_s": 3, "after_s": 8, "settle_s": 90}
    probe = Probe()
    if not bed_recovered(probe):
        print("# faults: the bed does not serve before any fault (scripts/cluster status)", flush=True)
        sys.exit(1)
    ok = True
    t0 = time.monotonic()
    for name, fn in FAULTS:
        if args.faults and name not in args.faults:
            continue
        ok = run_fault(name, fn, cfg, probe) and ok
    print("# faults: %s in %.0fs" % ("all passed" if ok else "FAILED", time.monotonic() - t0), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The fault suite: while a load of sends runs across both relays, each
fault in turn, then the books are checked (tests/faults/load.py).

  run.py [--reduced] [FAULT...]

Faults: relay-kill (SIGKILL the first relay), api-kill (SIGKILL
parley-api), redis-restart, redis-kill (SIGKILL redis-server, which comes
back from its append-only file), postgres-restart (fast shutdown),
postgres-kill (SIGKILL the postmaster and every backend: crash recovery from
the WAL), postgres-pause (SIGSTOP PostgreSQL for 5 s), relay-full (fill the
first relay's sockets up to its capacity), network-cut (clients'
connections cut in the middle of a frame, both ways). The services run
under scripts/supervise, which restarts a dead one as systemd would: nothing
here restarts anything by hand, except what a fault itself is (a restart).

After each fault the load stops sending and settles (ending early once
every acknowledged message reached every recipient device), and one line is
printed:

  fault=NAME sent=N acked=N delivered=N lost=N duplicated=N recovered=yes|no

sent: messages the load sent (each client_msg_id once, retries included);
acked: those answered "sent" or 201/200; delivered: acked messages in the
stream of every device of every member; lost: acked ones that are not;
duplicated: deliveries of a message a device already had, on one socket or
after a reconnect with its cursor. recovered: every service runs, /health
is ok and both relays take a hello and deliver within 60 s after the
fault, with every load device connected again. Exits 1 if anything was
lost or duplicated, or a socket's seqs or a conversation's message_ids came
out of order, an acked message is not stored as sent, a killed or
restarted service was not replaced, another one crashed (its supervisor
logged an exit, or a sanitizer a report), or the stack did not recover.
--reduced is the short form "make check" runs.

Environment (defaults match the test stack, as for tests/e2e):
PARLEY_TEST_URL, PARLEY_TEST_RELAY, PARLEY_TEST_RELAY2, PARLEY_RUNDIR,
PARLEY_DEV.
"""

import argparse
import http.client
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))

import load as loadmod  # noqa: E402
import parley_test  # noqa: E402
import rest  # noqa: E402
import ws  # noqa: E402
from parley_test import dev, wait_for  # noqa: E402

RELAY1 = parley_test.RELAY_URL
RELAY2 = os.environ.get("PARLEY_TEST_RELAY2", "ws://127.0.0.1:%d/ws" % (int(parley_test.STACK["relay"]) + 1))
RUNDIR = parley_test.RUNDIR


def port_of(url):
    return urllib.parse.urlsplit(url).port


def child_pid(service):
    """The pid of a service's process, from scripts/supervise's pid file."""
    with open(os.path.join(RUNDIR, "run", service + ".child.pid")) as f:
        return int(f.read())


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def relay_conf(key, path="parley.conf"):
    with open(os.path.join(RUNDIR, "etc", path)) as f:
        m = re.search(r"^%s\s*=\s*(\S+)" % key, f.read(), re.M)
    return m.group(1) if m else None


def store_port(service):
    """The port of the stack's PostgreSQL or Redis, from parley.conf."""
    with open(os.path.join(RUNDIR, "etc", "parley.conf")) as f:
        text = f.read()
    if service == "postgres":
        m = re.search(r"^conninfo\s*=.*\bport=(\d+)", text, re.M)
    else:
        m = re.search(r"^\[redis\][^[]*?^port\s*=\s*(\d+)", text, re.M | re.S)
    return int(m.group(1))


def serving(service):
    """True once PostgreSQL takes a query, or Redis answers PING, anew."""
    port = store_port(service)
    if service == "postgres":
        return subprocess.run(["psql", "-X", "-Atq", "-h", "127.0.0.1", "-p", str(port), "-U", "parley",
                               "-d", "parley", "-c", "SELECT 1"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=10,
                              env=dict(os.environ, PGCONNECT_TIMEOUT="5")).stdout.strip() == "1"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


def log_since(service, offset):
    """What the service's log got from byte offset on."""
    with open(Logs.path(service), "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def replaced(service, old_pid, timeout_s=60):
    """Waits until scripts/supervise runs a new process for service (it
    starts one a second after the old one died) and that one serves."""
    wait_for(lambda: child_pid(service) != old_pid and serving(service), timeout_s,
             "%s to be restarted by its supervisor and serve again" % service, interval_s=0.2)


# The faults. Each runs while the load sends, and may return a list of
# problems of its own (a refusal that was not clean, a stored half-frame).

def fault_relay_kill(load, cfg):
    os.kill(child_pid("relay"), signal.SIGKILL)


def fault_api_kill(load, cfg):
    os.kill(child_pid("api"), signal.SIGKILL)


def fault_redis_restart(load, cfg):
    dev("restart", "redis")


def fault_postgres_restart(load, cfg):
    # scripts/supervise stops PostgreSQL with SIGINT: its fast shutdown.
    dev("restart", "postgres")


def fault_redis_kill(load, cfg):
    """SIGKILLs redis-server: no shutdown, no final write of its append-only
    file, whose last second may be lost (appendfsync everysec). Parley keeps
    no message only in Redis, so nothing acked may be lost or duplicated."""
    pid = child_pid("redis")
    offset = os.path.getsize(Logs.path("redis"))
    os.kill(pid, signal.SIGKILL)
    replaced("redis", pid)
    if "DB loaded from append only file" not in log_since("redis", offset):
        return ["the restarted redis-server did not load its append-only file (see log/redis.log)"]
    return []


def fault_postgres_kill(load, cfg):
    """SIGKILLs the postmaster and all of its backends at once, mid-commit,
    as a crash would: no shutdown checkpoint. The supervisor starts it again
    and it recovers from its WAL; every message acked before the kill must
    still be stored (Load.verify() reads each one back)."""
    postmaster = child_pid("postgres")
    offset = os.path.getsize(Logs.path("postgres"))
    # Stopped, the postmaster forks no new backend between the listing of
    # its children and their end.
    os.kill(postmaster, signal.SIGSTOP)
    for p in [int(p) for p in os.listdir("/proc") if p.isdigit() and parley_test.ppid(int(p)) == postmaster]:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.kill(postmaster, signal.SIGKILL)
    replaced("postgres", postmaster)
    if "automatic recovery in progress" not in log_since("postgres", offset):
        return ["the restarted PostgreSQL did not recover from a crash (see log/postgres.log)"]
    return []


def fault_postgres_pause(load, cfg):
    with parley_test.frozen(parley_test.postgres_pids()):
        time.sleep(5)  # the fault itself: PostgreSQL frozen for 5 s


def relay_sockets(url):
    """The relay's parley_relay_sockets gauge (its /metrics)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(re.search(r"^parley_relay_sockets (\d+)", text, re.M).group(1))


def close_code(s):
    """The code of the close frame the server sent on raw socket s."""
    try:
        op, payload = ws.raw_read(s, 2)
    except OSError as e:
        return type(e).__name__
    return struct.unpack("!H", payload[:2])[0] if op == 8 and len(payload) >= 2 else "opcode %d" % op


def fault_relay_full(load, cfg):
    """Fills the first relay to its capacity with sockets that never say
    hello, then five more: those must be refused at once with 1013 "try
    again later", not left hanging, and so must an app's hello, which then
    gets in on the other relay. Meanwhile the load's sockets keep working."""
    problems = []
    capacity = int(relay_conf("capacity") or 10000)
    assert capacity <= 1000, "relay capacity %d is too large to fill in a test" % capacity
    fillers = [ws.raw_open(RELAY1) for _ in range(capacity - relay_sockets(RELAY1) + 5)]
    try:
        refused = {}
        deadline = time.monotonic() + 10
        while len(refused) < 5 and time.monotonic() < deadline:
            readable, _, _ = select.select([s for s in fillers if s not in refused], [], [], 0.5)
            for s in readable:
                refused[s] = close_code(s)
        codes = list(refused.values())
        if len(codes) < 5 or any(c != 1013 for c in codes):
            problems.append("over the capacity of %d, %d of 5 sockets were refused, with %r (want 1013 each)"
                            % (capacity, len(codes), codes))
        held = relay_sockets(RELAY1)
        if held > capacity:
            problems.append("the full relay holds %d sockets, over its capacity %d" % (held, capacity))
        # An app that finds it full (1013) gets in on the other relay.
        user = load.members[next(iter(load.members))][0]
        # The relay closes at once, before the app's hello.
        s = ws.Socket(RELAY1)
        try:
            code = s.expect_close(timeout=10)
        finally:
            s.close()
        if code != 1013:
            problems.append("a socket on the full relay was closed with %r, want 1013" % code)
        ws.connect(user, url=RELAY2).close()
        time.sleep(2)  # the relay stays full while the load goes on
    finally:
        for s in fillers:
            loadmod.reset(s)
    return problems


def fault_network_cut(load, cfg):
    """Cuts the proxied devices' connections mid-frame (from the relay), and
    a client that sends half of a "send" frame, then loses its network: that
    message must be neither stored nor acked nor delivered."""
    problems = []
    for p in cfg["proxies"]:
        p.cut()
    conv, users = next(iter(load.members.items()))
    half = ws.device(users[0])
    s = ws.raw_open(RELAY1)
    s.sendall(ws.raw_frame('{"type":"hello","token":"%s"}' % half.token))
    op, payload = ws.raw_read(s, 15)
    if op != 1 or b'"welcome"' not in payload:
        problems.append("half-frame client: no welcome: %r" % payload[:200])
    frame = '{"type":"send","conversation_id":%d,"client_msg_id":"half-frame","body":"%s"}' % (conv, "x" * 200)
    s.sendall(ws.raw_frame(frame, cut=len(frame) // 2))
    time.sleep(0.2)  # let the half reach the relay before the reset
    loadmod.reset(s)
    return problems


# name, function, the services whose process the fault replaces (killed or
# restarted: afterwards another process must serve; any other service that
# exits meanwhile crashed).
FAULTS = [
    ("relay-kill", fault_relay_kill, ("relay",)),
    ("api-kill", fault_api_kill, ("api",)),
    ("redis-restart", fault_redis_restart, ("redis",)),
    ("redis-kill", fault_redis_kill, ("redis",)),
    ("postgres-restart", fault_postgres_restart, ("postgres",)),
    ("postgres-kill", fault_postgres_kill, ("postgres",)),
    ("postgres-pause", fault_postgres_pause, ()),
    ("relay-full", fault_relay_full, ()),
    ("network-cut", fault_network_cut, ()),
]
SERVICES = ("postgres", "redis", "api", "relay", "relay2", "notify", "nginx")
CRASH = re.compile(r"^supervise: (\S+) exited with status (\d+)|ERROR: (AddressSanitizer|LeakSanitizer)"
                   r"|runtime error: ", re.M)


class Logs:
    """The services' logs from a point on: what crashed meanwhile."""

    def __init__(self):
        self.offsets = {s: self.size(s) for s in SERVICES}

    @staticmethod
    def path(service):
        return os.path.join(RUNDIR, "log", service + ".log")

    def size(self, service):
        try:
            return os.path.getsize(self.path(service))
        except OSError:
            return 0

    def crashes(self, killed):
        """One line per unexpected exit or sanitizer report since then."""
        out = []
        for service, offset in self.offsets.items():
            try:
                with open(self.path(service), "rb") as f:
                    f.seek(offset)
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for m in CRASH.finditer(text):
                if m.group(1) in killed:
                    continue
                line = text[m.start():text.find("\n", m.start())]
                out.append("%s.log: %s" % (service, line[:200]))
        return out


class Probe:
    """Users outside the load that check the stack serves again: REST
    health, a send over REST, and delivery on a fresh socket on each relay."""

    def __init__(self):
        self.a, self.b = rest.new_user("fpa"), rest.new_user("fpb")
        self.conv = rest.direct(self.a, self.b)
        self.n = 0

    def ok(self):
        if dev("status", check=False).returncode != 0:
            return False  # a service is not running (scripts/supervise restarts it)
        status, _, body = parley_test.request("GET", "/api/v1/health")
        if status != 200 or body.get("status") != "ok":
            return False
        socks = []
        try:
            for url in (RELAY1, RELAY2):
                socks.append(ws.connect(self.b, url=url))
            self.n += 1
            sent = rest.send(self.a, self.conv, "probe %d" % self.n)
            for s in socks:
                m = s.expect("message", timeout=10)
                if m["message_id"] != sent["message_id"]:
                    return False
            return True
        finally:
            for s in socks:
                s.close()

    def wait(self, timeout_s):
        try:
            wait_for(self.ok, timeout_s, "the stack to serve again", interval_s=0.5)
            return True
        except AssertionError:
            return False


def run_fault(name, fn, replaced, cfg, probe):
    """Runs one fault under a fresh load, prints its report line (and the
    problems found as comments), and returns whether it passed."""
    proxies = [loadmod.Proxy(port_of(RELAY1)), loadmod.Proxy(port_of(RELAY2))]
    for p in proxies:
        p.start()
    cfg = dict(cfg, proxies=proxies)
    problems = []
    recovered = False
    t0 = time.monotonic()
    logs = Logs()
    before = {s: child_pid(s) for s in replaced}
    load = loadmod.Load(name.replace("-", "")[:6], (RELAY1, RELAY2), pairs=cfg["pairs"],
                        interval_s=cfg["interval_s"], proxies=proxies)
    try:
        load.start()
        time.sleep(cfg["before_s"])  # the load runs before the fault
        try:
            problems += fn(load, cfg) or []
        except Exception as e:  # noqa: BLE001 - reported as the fault's failure
            problems.append("the fault failed: %s: %s" % (type(e).__name__, e))
        time.sleep(cfg["after_s"])  # and goes on after it
        load.stop_sending()
        settled = load.settle(cfg["settle_s"])
        recovered = probe.wait(60)
        if not all(d.live for d in load.devices):
            recovered = False
            problems.append("load devices without a socket: %s"
                            % " ".join(d.name for d in load.devices if not d.live))
        for service, pid in before.items():
            if child_pid(service) == pid:
                problems.append("%s is still pid %d: the fault did not happen" % (service, pid))
        if not settled:
            problems.append("not settled within %ds: %d acked messages missing somewhere, %d sends unanswered"
                            % (cfg["settle_s"], len(load.missing()),
                               sum(len(d.outbox) for d in load.devices)
                               + sum(len(s.pending) for s in load.rest_senders)))
    except Exception as e:  # noqa: BLE001 - the load itself could not run
        problems.append("%s: %s" % (type(e).__name__, e))
    finally:
        load.finish()
        for p in proxies:
            p.stop()
    counts = load.verify()
    problems += load.book.anomalies
    problems += logs.crashes(replaced)
    print("fault=%s sent=%d acked=%d delivered=%d lost=%d duplicated=%d recovered=%s"
          % (name, counts["sent"], counts["acked"], counts["delivered"], counts["lost"],
             counts["duplicated"], "yes" if recovered else "no"), flush=True)
    for p in problems[:20]:
        print("#   %s: %s" % (name, p), flush=True)
    print("#   %s took %.1fs; %d reconnects, %d sends retried" % (
        name, time.monotonic() - t0, sum(len(d.sockets) - 1 for d in load.devices),
        load.retries()), flush=True)
    return counts["lost"] == 0 and counts["duplicated"] == 0 and recovered and not problems \
        and counts["acked"] > 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reduced", action="store_true", help="the short form for make check")
    ap.add_argument("faults", nargs="*", help="run only these (default: all)")
    args = ap.parse_args()
    known = {f[0] for f in FAULTS}
    for f in args.faults:
        if f not in known:
            ap.error("unknown fault %r (known: %s)" % (f, " ".join(known)))
    if args.reduced:
        cfg = {"pairs": 1, "interval_s": 0.25, "before_s": 1, "after_s": 2, "settle_s": 45}
    else:
        cfg = {"pairs": 3, "interval_s": 0.15, "before_s": 3, "after_s": 8, "settle_s": 90}
    probe = Probe()
    ok = True
    t0 = time.monotonic()
    for name, fn, replaced in FAULTS:
        if args.faults and name not in args.faults:
            continue
        ok = run_fault(name, fn, replaced, cfg, probe) and ok
    print("# faults: %s in %.0fs" % ("all passed" if ok else "FAILED", time.monotonic() - t0), flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

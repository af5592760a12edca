"""The bed's Patroni cluster as the cluster faults see it (tests/cluster/run.py).

Each node's Patroni REST API (port 8008 on h1..h3) says what the node is:
GET /primary answers 200 on the leader, GET /sync on the synchronous
standby, GET /patroni the node's role, state, timeline and WAL position.
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

PORT = 8008


def _get(addr, path, timeout=2):
    """(status, JSON body or None) of GET path on the node at addr; 0 when it does not answer."""
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (addr, PORT, path), timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None
    except (OSError, ValueError):
        return 0, None


def leader(addrs):
    """The host whose node is the running primary, or None (addrs: host -> address)."""
    for host, addr in addrs.items():
        if _get(addr, "/primary")[0] == 200:
            return host
    return None


def sync_standby(addrs):
    for host, addr in addrs.items():
        if _get(addr, "/sync")[0] == 200:
            return host
    return None


def roles(addrs):
    """{host: "role/state"} ("down" for a node whose Patroni does not answer)."""
    out = {}
    for host, addr in addrs.items():
        status, body = _get(addr, "/patroni")
        out[host] = "%s/%s" % (body.get("role"), body.get("state")) if status and body else "down"
    return out


def writable(addrs):
    """A leader that takes writes: a running primary with a synchronous
    standby (in synchronous_mode_strict a commit waits for one)."""
    return leader(addrs) is not None and sync_standby(addrs) is not None


def streaming(addrs, host):
    """host's node runs as a standby that streams from the leader."""
    status, body = _get(addrs[host], "/patroni")
    if not status or not body or body.get("role") not in ("replica", "sync_standby"):
        return False
    return body.get("state") in ("running", "streaming") and _get(addrs[host], "/replica")[0] == 200


def commits(conninfo, timeout_s=2):
    """A transaction that writes commits through conninfo (a multi-host
    conninfo with target_session_attrs=read-write) within timeout_s: the
    primary takes writes and a synchronous standby confirms them."""
    try:
        out = subprocess.run(["psql", "-X", "-At", "-c", "SELECT txid_current()",
                              conninfo + " connect_timeout=2"],
                             capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0


def switchover(addrs, leader_host, candidate, timeout_s=40):
    """Patroni's planned switchover from leader_host to candidate (which must
    be the synchronous standby, in synchronous_mode): True once candidate
    leads and takes writes."""
    body = json.dumps({"leader": leader_host, "candidate": candidate}).encode()
    req = urllib.request.Request("http://%s:%d/switchover" % (addrs[leader_host], PORT), data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            r.read()
    except (OSError, urllib.error.HTTPError):
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if leader(addrs) == candidate and writable(addrs):
            return True
        time.sleep(0.5)
    return False


def lead_on(addrs, host):
    """Moves the leader to host by planned switchovers, each to the
    synchronous standby of the moment (at most three). Returns the
    switchovers made, or raises AssertionError."""
    moves = []
    for _ in range(3):
        lead, sync = leader(addrs), sync_standby(addrs)
        if lead == host:
            settled(addrs)
            return moves
        if lead is None or sync is None or not switchover(addrs, lead, sync):
            raise AssertionError("switchover %s -> %s failed (%r)" % (lead, sync, roles(addrs)))
        moves.append("%s->%s" % (lead, sync))
    if leader(addrs) != host:
        raise AssertionError("the leader is not on %s after %s" % (host, " ".join(moves)))
    settled(addrs)
    return moves


def settled(addrs, timeout_s=40):
    """Waits until the leader has a synchronous standby that streams, the
    same one three looks in a row, a second apart: right after a switchover
    Patroni may not have named one yet, and in synchronous_mode_strict a
    leader lost before it has cannot be replaced (no node may be promoted)."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        sync = sync_standby(addrs)
        ok = leader(addrs) is not None and sync is not None and streaming(addrs, sync)
        seen = seen + [sync] if ok and (not seen or seen[-1] == sync) else ([sync] if ok else [])
        if len(seen) >= 3:
            return sync
        time.sleep(1)
    raise AssertionError("no steady synchronous standby within %ds (%r)" % (timeout_s, roles(addrs)))


def node_pids(ns_pids, rundir, host):
    """The pids of host's Patroni (supervisor and child) and PostgreSQL."""
    pids = []
    for name in ("patroni.pid", "patroni.child.pid"):
        try:
            with open(os.path.join(rundir, host, "run", name)) as f:
                pids.append(int(f.read()))
        except (OSError, ValueError):
            pass
    for p in ns_pids:
        try:
            with open("/proc/%d/comm" % p) as f:
                if f.read().strip().startswith("postgres"):
                    pids.append(p)
        except OSError:
            pass
    return pids


def kill(pids):
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass

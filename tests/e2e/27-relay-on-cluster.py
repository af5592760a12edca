"""27 a relay on a Redis Cluster: a throwaway cluster of 3 masters and 3
replicas on loopback, and a third relay of the test stack's (its PostgreSQL,
its secret) whose [redis] cluster names it. Users on that relay chat live
through sharded pub/sub; a user who reconnects again and again misses
nothing; a user's channel keeps delivering live when its slot moves to
another master behind the relay's back, and when the master holding it is
killed and its replica takes over (doc/scale-out.md "Redis Cluster")."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import parley_test
import rest
import ws
from parley_test import wait_for

BUILDDIR = os.environ.get("PARLEY_BUILDDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BASE = int(os.environ.get("PARLEY_TEST_REDIS_CLUSTER_PORT", "21301"))  # below the ephemeral ports
PORTS = [BASE + i for i in range(6)]  # masters first; cluster bus on +100
RELAY_PORT = int(parley_test.STACK["relay"]) + 8
URL = "ws://127.0.0.1:%d/ws" % RELAY_PORT
DIR = tempfile.mkdtemp(prefix="parley-e2e-cluster.")
procs = {}


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port)] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30, check=True).stdout.decode()


def start_cluster():
    for p in PORTS:
        d = os.path.join(DIR, str(p))
        os.makedirs(d)
        procs[p] = subprocess.Popen(["redis-server", "--port", str(p), "--cluster-port", str(p + 100),
                                     "--bind", "127.0.0.1", "--dir", d, "--save", "", "--appendonly", "no",
                                     "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                                     "--logfile", os.path.join(d, "redis.log")])
    for p in PORTS:
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(p), "ping"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL).stdout.strip() == b"PONG",
                 10, "redis node %d to start" % p)
    nodes = ["127.0.0.1:%d" % p for p in PORTS]
    subprocess.run(["redis-cli", "--cluster", "create"] + nodes[:3] + ["--cluster-replicas", "0", "--cluster-yes"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60, check=True)
    for i in range(3):
        master = cli(PORTS[i], "cluster", "myid").strip()
        subprocess.run(["redis-cli", "--cluster", "add-node", nodes[i + 3], nodes[0], "--cluster-slave",
                        "--cluster-master-id", master], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                       timeout=60, check=True)

    def formed():
        return (all("cluster_state:ok" in cli(p, "cluster", "info") for p in PORTS) and
                all("master_link_status:up" in cli(p, "info", "replication") for p in PORTS[3:]))
    wait_for(formed, 30, "the cluster to form", interval_s=0.2)


def start_relay():
    with open(os.path.join(parley_test.RUNDIR, "etc", "parley.conf")) as f:
        conf = f.read()
    section = None
    out = []
    for line in conf.splitlines():
        if line.startswith("["):
            section = line
        if section == "[relay]" and line.startswith("port ="):
            line = "port = %d" % RELAY_PORT
        elif section == "[relay]" and line.startswith("id ="):
            line = "id = e2e-cluster-relay"
        out.append(line)
        if line == "[redis]":
            out.append("cluster = " + ",".join("127.0.0.1:%d" % p for p in PORTS))
    path = os.path.join(DIR, "parley.conf")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    log = open(os.path.join(DIR, "relay.log"), "w")
    procs["relay"] = subprocess.Popen([os.path.join(BUILDDIR, "relay", "parley-relay"), "-c", path],
                                      stdout=log, stderr=subprocess.STDOUT, cwd=DIR,
                                      env={"PATH": "/usr/bin:/bin"})

    def listening():
        try:
            socket.create_connection(("127.0.0.1", RELAY_PORT), timeout=1).close()
            return True
        except OSError:
            return False
    wait_for(listening, 20, "the cluster relay to listen")


def relay_log():
    with open(os.path.join(DIR, "relay.log")) as f:
        return f.read()


def stop_all():
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(DIR, ignore_errors=True)


def pair(prefix):
    a, b = rest.new_user(prefix + "a"), rest.new_user(prefix + "b")
    return a, b, rest.direct(a, b)


def send(sock, conv, body):
    sock.send({"type": "send", "conversation_id": conv, "client_msg_id": body, "body": body})
    return sock.expect("sent")


def expect_body(sock, body, timeout=5):
    """The next message frame on sock other than the sender's own echoes."""
    got = sock.expect("message", timeout)
    assert got["body"] == body, (got, body)
    return got


def live_port():
    """A node of the cluster that answers (the test kills one)."""
    return next(p for p in PORTS if procs[p].poll() is None)


def master_of(channel):
    """(port, node id) of the master that serves channel's slot, and the slot."""
    port = live_port()
    slot = int(cli(port, "cluster", "keyslot", channel))
    for line in cli(port, "cluster", "nodes").splitlines():
        f = line.split()
        if "master" not in f[2] or "fail" in f[2]:
            continue
        for r in f[8:]:
            lo, _, hi = r.partition("-")
            if r[0] != "[" and int(lo) <= slot <= int(hi or lo):
                return int(f[1].split(":")[1].split("@")[0]), f[0], slot
    raise AssertionError("no master serves slot %d" % slot)


def test_users_on_a_cluster_relay_chat_live():
    a_user, b_user, conv = pair("kc")
    a, b = ws.connect(a_user, url=URL), ws.connect(b_user, url=URL)
    send(a, conv, "through the cluster")
    expect_body(b, "through the cluster")
    b.send({"type": "send", "conversation_id": conv, "client_msg_id": "back", "body": "and back"})
    b.expect("sent")
    expect_body(a, "through the cluster")  # a's own copy first
    expect_body(a, "and back")
    a.close()
    b.close()


def test_a_user_reconnecting_again_and_again_misses_nothing():
    a_user, b_user, conv = pair("kr")
    a, b = ws.connect(a_user, url=URL), ws.connect(b_user, url=URL)
    send(a, conv, "r0")
    last = expect_body(b, "r0")["seq"]
    for i in range(1, 21):
        b.close()
        send(a, conv, "r%d" % i)
        b = ws.connect(b_user, cursor=last, url=URL)
        last = expect_body(b, "r%d" % i)["seq"]
    # Giving a channel up and taking it again is no lost subscription.
    assert "dropped user %d's channel" % b_user.id not in relay_log()
    a.close()
    b.close()


def test_a_channel_whose_slot_moves_keeps_delivering():
    a_user, b_user, conv = pair("km")
    a, b = ws.connect(a_user, url=URL), ws.connect(b_user, url=URL)
    send(a, conv, "before the move")
    expect_body(b, "before the move")
    src_port, src_id, slot = master_of("parley:u:%d" % b_user.id)
    dst_port = next(p for p in PORTS[:3] if p != src_port)
    dst_id = cli(dst_port, "cluster", "myid").strip()
    cli(dst_port, "cluster", "setslot", slot, "importing", src_id)
    cli(src_port, "cluster", "setslot", slot, "migrating", dst_id)
    for p in PORTS[:3]:
        cli(p, "cluster", "setslot", slot, "node", dst_id)
    wait_for(lambda: "dropped user %d's channel" % b_user.id in relay_log(), 10,
             "the relay to see the channel dropped by its old master")
    # Live again on the new master, on the same socket.
    deadline = time.monotonic() + 10
    n = 0
    while True:
        n += 1
        send(a, conv, "after the move %d" % n)
        try:
            got = b.expect("message", timeout=1)
            break
        except Exception:  # noqa: BLE001 - not re-subscribed yet
            assert time.monotonic() < deadline, "no live message after the slot moved"
    assert got["body"].startswith("after the move"), got
    a.close()
    b.close()


def test_a_channel_keeps_delivering_across_its_masters_failover():
    a_user, b_user, conv = pair("kf")
    a, b = ws.connect(a_user, url=URL), ws.connect(b_user, url=URL)
    send(a, conv, "before the failover")
    expect_body(b, "before the failover")
    port, _, _ = master_of("parley:u:%d" % b_user.id)
    procs[port].send_signal(signal.SIGKILL)
    procs[port].wait()
    wait_for(lambda: master_of("parley:u:%d" % b_user.id)[0] not in (port, None), 20,
             "a replica to take over the killed master's slots", interval_s=0.2)
    # Sends commit whatever Redis does; once the relay holds the channel on
    # the new master, the socket gets every message, none twice.
    bodies = ["during %d" % i for i in range(5)]
    for body in bodies:
        send(a, conv, body)
    seen = []
    deadline = time.monotonic() + 20
    while len(seen) < len(bodies) and time.monotonic() < deadline:
        try:
            seen.append(b.expect("message", timeout=1)["body"])
        except Exception:  # noqa: BLE001 - still failing over
            pass
    assert seen == bodies, (seen, relay_log()[-2500:])
    a.close()
    b.close()


if __name__ == "__main__":
    try:
        start_cluster()
        start_relay()
        parley_test.run()
    finally:
        stop_all()

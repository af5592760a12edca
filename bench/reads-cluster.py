#!/usr/bin/python3
"""bench/reads-cluster.py: history reads per second on the cluster bed, every
read on the PostgreSQL primary against reads on the standbys ([database]
read_conninfo, doc/scale-out.md "Reads from standbys").

  scripts/cluster bench-reads        (sets the environment below)

Sets up USERS users in pairs, each pair a direct conversation of MESSAGES
messages, through the bed's REST API. Then, for each mode in turn (primary,
standbys, primary, standbys), writes read_conninfo into every host's
parley.conf (empty: every read on the primary; else the host's own,
its standby first), restarts the three
parley-api (their supervisors start them again), and runs wrk for 3 s (not
measured: warming connections and caches), then for SECONDS
against GET /conversations/{id}/messages?limit=20 through nginx, every
request with the next user's token and conversation. Reports per run: the
requests per second, the latency percentiles, non-2xx answers, and the
transactions each PostgreSQL node ran per request (pg_stat_database) and
the CPU time its PostgreSQL processes used per request, which
shows where the reads went. Restores read_conninfo at the end.

Environment: PARLEY_TEST_URL, PARLEY_TEST_PG, PARLEY_CLUSTER_RUNDIR (from
scripts/cluster), READS_USERS (200; each may make 600 requests a minute), READS_MESSAGES (20), READS_SECONDS
(10), READS_CONNECTIONS (32).
"""

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))

import rest  # noqa: E402

URL = os.environ["PARLEY_TEST_URL"]
RUNDIR = os.environ["PARLEY_CLUSTER_RUNDIR"]
NODES = re.search(r"host=([^ ]+)", os.environ["PARLEY_TEST_PG"]).group(1).split(",")
HOSTS = ("h1", "h2", "h3")
USERS = int(os.environ.get("READS_USERS", "200"))
MESSAGES = int(os.environ.get("READS_MESSAGES", "20"))
SECONDS = int(os.environ.get("READS_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("READS_CONNECTIONS", "32"))

LUA = """
local i = 0
local reqs = {}
for line in io.lines("%s") do
  local token, conv = line:match("(%%S+) (%%S+)")
  reqs[#reqs + 1] = wrk.format("GET", "/api/v1/conversations/" .. conv .. "/messages?limit=20",
                               {["Host"] = "%s", ["Authorization"] = "Bearer " .. token})
end
request = function()
  i = i %% #reqs + 1
  return reqs[i]
end
"""


def setup(path):
    with open(path, "w") as f:
        for _ in range(USERS // 2):
            a, b = rest.new_user("hra"), rest.new_user("hrb")
            conv = rest.direct(a, b)
            for n in range(MESSAGES):
                rest.send(a if n % 2 else b, conv, "history %d %s" % (n, secrets.token_hex(6)))
            f.write("%s %d\n%s %d\n" % (a.token, conv, b.token, conv))


def set_reads(conninfo):
    """Writes read_conninfo into every host's parley.conf ("": none; None:
    each host's own, as scripts/cluster made it) and restarts the APIs."""
    for h in HOSTS:
        conf = os.path.join(RUNDIR, h, "etc", "parley.conf")
        keep = conf + ".reads"
        if not os.path.exists(keep):
            shutil.copy2(conf, keep)
        with open(keep) as f:
            text = f.read()
        if conninfo is not None:
            text = re.sub(r"(?m)^read_conninfo = .*$", "read_conninfo = " + conninfo, text)
        with open(conf, "w") as f:
            f.write(text)
        restart_api(h)
    # nginx keeps a failed upstream out for fail_timeout (10 s): wait that out.
    time.sleep(11)
    if rest.call("GET", "/health")[0] != 200:
        raise SystemExit("the APIs did not come back")


def restart_api(host):
    """SIGTERM host's parley-api; its supervisor starts it again: waits for
    the new process to listen."""
    path = os.path.join(RUNDIR, host, "run", "api.child.pid")
    with open(path) as f:
        old = int(f.read())
    os.kill(old, signal.SIGTERM)
    addr = NODES[HOSTS.index(host)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            with open(path) as f:
                if int(f.read()) == old:
                    continue
            socket.create_connection((addr, 9000), timeout=1).close()
            return
        except (OSError, ValueError):
            pass
    raise SystemExit("%s's parley-api did not come back" % host)


def xacts():
    out = {}
    for host in NODES:
        p = subprocess.run(["psql", "-X", "-At", "-c",
                            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'parley'",
                            "host=%s port=5432 dbname=parley user=parley connect_timeout=5" % host],
                           capture_output=True, text=True, timeout=30)
        out[host] = int(p.stdout.strip() or 0)
    return out


def pg_cpu():
    """{host: CPU seconds used so far by the PostgreSQL processes of its namespace}."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for h in HOSTS:
        pids = subprocess.run(["ip", "netns", "pids", h], capture_output=True, text=True).stdout.split()
        total = 0
        for pid in pids:
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)
                if "(postgres" in fields[0]:
                    parts = fields[1].split()
                    total += int(parts[11]) + int(parts[12])
            except (OSError, IndexError, ValueError):
                pass
        out[h] = total / tick
    return out


def run(mode, lua):
    # Warm-up, not measured: the restarted APIs' connections and the
    # servers' caches.
    subprocess.run(["wrk", "-t2", "-c%d" % CONNECTIONS, "-d3s", "-s", lua, URL + "/api/v1/health"],
                   capture_output=True, timeout=60)
    before, cpu0 = xacts(), pg_cpu()
    p = subprocess.run(["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % SECONDS, "--latency", "-s", lua,
                        URL + "/api/v1/health"], capture_output=True, text=True, timeout=SECONDS + 60)
    time.sleep(1.5)  # statistics reach pg_stat_database within a second
    after, cpu1 = xacts(), pg_cpu()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", p.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", p.stdout).group(1))
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", p.stdout, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    per = ", ".join("%s %.2f" % (h, (after[a] - before[a]) / max(total, 1)) for h, a in zip(HOSTS, NODES))
    cpu = ", ".join("%s %.3f" % (h, 1000 * (cpu1[h] - cpu0[h]) / max(total, 1)) for h in HOSTS)
    print("| %s | %.0f | %s | %s | %s | %s | %s | %s |"
          % (mode, rps, lat.get("50"), lat.get("90"), lat.get("99"), bad.group(1) if bad else 0, per, cpu),
          flush=True)


def primary():
    for h, a in zip(HOSTS, NODES):
        p = subprocess.run(["psql", "-X", "-At", "-c", "SELECT pg_is_in_recovery()",
                            "host=%s port=5432 dbname=parley user=parley connect_timeout=5" % a],
                           capture_output=True, text=True, timeout=30)
        if p.stdout.strip() == "f":
            return h
    return "none"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        data, lua = os.path.join(tmp, "reqs"), os.path.join(tmp, "reads.lua")
        t0 = time.monotonic()
        setup(data)
        print("# %d users, %d conversations of %d messages, set up in %.0f s; wrk -t2 -c%d, %d s per run"
              % (USERS, USERS // 2, MESSAGES, time.monotonic() - t0, CONNECTIONS, SECONDS), flush=True)
        with open(lua, "w") as f:
            f.write(LUA % (data, URL.split("//", 1)[1].split("/", 1)[0]))
        print("# the PostgreSQL primary: %s" % primary())
        print("| reads on | req/s | p50 | p90 | p99 | non-2xx | transactions per request | "
              "PostgreSQL CPU ms per request |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |", flush=True)
        try:
            for mode in ("primary", "standbys", "primary", "standbys"):
                set_reads("" if mode == "primary" else None)
                run(mode, lua)
        finally:
            set_reads(None)
            for h in HOSTS:
                os.unlink(os.path.join(RUNDIR, h, "etc", "parley.conf.reads"))


if __name__ == "__main__":
    main()

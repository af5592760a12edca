#!/usr/bin/python3
"""bench/reads-cluster.py: history reads per second on the cluster bed, every
read on the PostgreSQL primary against reads on the standbys ([database]
read_conninfo, doc/scale-out.md "Reads from standbys").

  scripts/cluster bench-reads        (sets the environment below)

Sets up USERS users in pairs, each pair a direct conversation of MESSAGES
messages, through the bed's REST API. Then, for each mode in turn (primary,
standbys, primary, standbys), writes read_conninfo into every host's
parley.conf (empty: every read on the primary), restarts the three
parley-api (their supervisors start them again), and runs wrk for SECONDS
against GET /conversations/{id}/messages?limit=50 through nginx, every
request with the next user's token and conversation. Reports per run: the
requests per second, the latency percentiles, non-2xx answers, and the
transactions each PostgreSQL node ran per request (pg_stat_database), which
shows where the reads went. Restores read_conninfo at the end.

Environment: PARLEY_TEST_URL, PARLEY_TEST_PG, PARLEY_CLUSTER_RUNDIR (from
scripts/cluster), READS_USERS (200), READS_MESSAGES (50), READS_SECONDS
(10), READS_CONNECTIONS (32).
"""

import os
import re
import secrets
import shutil
import signal
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
MESSAGES = int(os.environ.get("READS_MESSAGES", "50"))
SECONDS = int(os.environ.get("READS_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("READS_CONNECTIONS", "32"))

LUA = """
local i = 0
local reqs = {}
for line in io.lines("%s") do
  local token, conv = line:match("(%%S+) (%%S+)")
  reqs[#reqs + 1] = wrk.format("GET", "/api/v1/conversations/" .. conv .. "/messages?limit=50",
                               {["Authorization"] = "Bearer " .. token})
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
    """Writes read_conninfo (None: as scripts/cluster made it) and restarts the APIs."""
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
        if conninfo is None:
            os.unlink(keep)
        with open(os.path.join(RUNDIR, h, "run", "api.child.pid")) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, _, _ = rest.call("GET", "/health")
        if status == 200:
            time.sleep(2)  # every API up, not only the first
            return
        time.sleep(0.2)
    raise SystemExit("the APIs did not come back")


def xacts():
    out = {}
    for host in NODES:
        p = subprocess.run(["psql", "-X", "-At", "-c",
                            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'parley'",
                            "host=%s port=5432 dbname=parley user=parley connect_timeout=5" % host],
                           capture_output=True, text=True, timeout=30)
        out[host] = int(p.stdout.strip() or 0)
    return out


def run(mode, lua):
    before = xacts()
    p = subprocess.run(["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % SECONDS, "--latency", "-s", lua,
                        URL + "/api/v1/health"], capture_output=True, text=True, timeout=SECONDS + 60)
    time.sleep(1.5)  # statistics reach pg_stat_database within a second
    after = xacts()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", p.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", p.stdout).group(1))
    lat = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", p.stdout, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    per = ", ".join("%s %.2f" % (h, (after[a] - before[a]) / max(total, 1)) for h, a in zip(HOSTS, NODES))
    print("| %s | %.0f | %s | %s | %s | %s | %s |" % (mode, rps, lat.get("50"), lat.get("90"), lat.get("99"),
                                                   bad.group(1) if bad else 0, per), flush=True)


def main():
    reads = None
    with open(os.path.join(RUNDIR, "h1", "etc", "parley.conf")) as f:
        reads = re.search(r"(?m)^read_conninfo = (.*)$", f.read()).group(1)
    with tempfile.TemporaryDirectory() as tmp:
        data, lua = os.path.join(tmp, "reqs"), os.path.join(tmp, "reads.lua")
        t0 = time.monotonic()
        setup(data)
        print("# %d users, %d conversations of %d messages, set up in %.0f s; wrk -t2 -c%d, %d s per run"
              % (USERS, USERS // 2, MESSAGES, time.monotonic() - t0, CONNECTIONS, SECONDS), flush=True)
        with open(lua, "w") as f:
            f.write(LUA % data)
        print("| reads on | req/s | p50 | p90 | p99 | non-2xx | transactions per request (h1, h2, h3) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | --- |", flush=True)
        try:
            for mode in ("primary", "standbys", "primary", "standbys"):
                set_reads("" if mode == "primary" else reads)
                run(mode, lua)
        finally:
            set_reads(None)


if __name__ == "__main__":
    main()

"""16 the password-hash pool under a login storm: while every hashing slot
is taken, a login or signup waits a bounded time ([auth] hash_wait_ms) in a
bounded queue ([auth] hash_queue), and past either bound is answered 503
unavailable with Retry-After, so the storm never holds every parley-api
thread and other requests are served meanwhile (doc/architecture.md
"Threads"; SECURITY.md "Passwords").

The test stack hashes cheaply, so for this test parley-api is restarted with
production-like hashing (64 MiB, 3 passes, one slot) by adding an [auth]
section to the stack's parley.conf, and restarted with the file as it was at
the end."""

import os
import threading
import time

import parley_test
from parley_test import assert_error, request, wait_for
from rest import PASSWORD, Client, expect, new_user, uniq

RUNDIR = parley_test.RUNDIR
CONF = os.path.join(RUNDIR, "etc", "parley.conf")
HEAVY = "\n[auth]\nhash_concurrency = 1\nhash_ops = 3\nhash_memory_kib = 65536\n"
# Addresses of their own, so the storm does not use up the per-address
# budget of the address the other suites use.
ADDRESSES = ["127.0.1.%d" % i for i in range(1, 25)]


def restart_api():
    parley_test.dev("restart", "api")
    parley_test.wait_for(lambda: request("GET", "/health")[0] == 200, 30, "parley-api to serve again")


def test_busy_hash_pool_answers_503_with_retry_after():
    user = new_user("hp")
    with open(CONF) as f:
        original = f.read()
    try:
        with open(CONF, "a") as f:
            f.write(HEAVY)
        restart_api()
        answers = []
        lock = threading.Lock()
        go = threading.Event()

        def storm(address):
            client = Client(source_ip=address, timeout=60)
            go.wait()
            try:
                for _ in range(3):
                    started = time.monotonic()
                    response = client.request("POST", "/sessions", {"username": uniq("hq"), "password": PASSWORD})
                    with lock:
                        answers.append((response, time.monotonic() - started))
            finally:
                client.close()

        threads = [threading.Thread(target=storm, args=(a,)) for a in ADDRESSES]
        for t in threads:
            t.start()
        go.set()

        def slots_taken():
            with lock:
                return any(r[0][0] == 503 for r in answers)
        # Once every hashing slot is taken (a login was refused busy), other
        # requests still find a free thread.
        wait_for(slots_taken, 30, "a login refused with every hashing slot taken")
        health = []
        for _ in range(5):
            started = time.monotonic()
            status, _, _ = request("GET", "/health")
            health.append((status, time.monotonic() - started))
        for t in threads:
            t.join(120)
        statuses = sorted(set(r[0][0] for r in answers))
        assert set(statuses) <= {401, 503}, statuses
        busy = [r for r, _ in answers if r[0] == 503]
        assert busy, "no 503 among %d logins with every hashing slot taken: %r" % (len(answers), statuses)
        for response in busy[:5]:
            assert_error(response, 503, "unavailable")
            retry = response[1].get("Retry-After")
            assert retry and retry.strip().isdigit() and int(retry) >= 1, retry
        assert all(status == 200 for status, _ in health), health
        # A refused login waited at most hash_wait_ms (1 s by default) for a
        # slot: generous room here for a loaded machine, yet far below the
        # queue of 72 hashes a login would otherwise wait behind.
        slowest = max(elapsed for r, elapsed in answers if r[0] == 503)
        assert slowest < 8, "a refused login took %.1f s" % slowest
        # Once the storm has passed, logins work again.
        expect(user.call("POST", "/sessions", {"username": user.username, "password": PASSWORD}), 201)
    finally:
        with open(CONF, "w") as f:
            f.write(original)
        restart_api()


if __name__ == "__main__":
    parley_test.run()

"""07 presence and discovery: GET /presence answers about accepted friends
only (not conversation peers), from the presence hashes the relays keep in Redis;
GET /discover picks a live relay from the registry in Redis (same region
first, then the lowest load) and never an expired one (doc/protocol.md "REST":
/presence, /discover; doc/architecture.md "Redis keys", "Presence", "Service
discovery and scale-out").

The relay state is faked with redis-cli: presence hashes
parley:presence:{pB}:{user_id} {d:{device}: deadline ms, last_seen: ms} and relay
registrations as the relays write them (lib/keys.h): a hash
parley:{relays}:{id} {url, region, connections, capacity} with a TTL, and the
id in the sorted set parley:{relays} scored by the registration's expiry (ms,
Redis's clock). Fake relays are named e2e-* with regions unique to the run,
so a real relay that registers itself does not disturb the assertions; every
fake key is deleted again. To see discovery with no relay alive, the stack's
relay is stopped for a moment (scripts/dev stop relay) and started again.
Discovery reads only those keys, never the keyspace: with 50,000 unrelated
keys in Redis it issues no SCAN (INFO commandstats) and answers at once."""

import secrets
import subprocess
import time

import parley_test
from parley_test import assert_error
from rest import call, direct, expect, new_user, parse_time

REDIS_PORT = parley_test.REDIS_PORT
RUN = secrets.token_hex(4)

A = B = C = D = None
FAKE_KEYS = set()


def redis(*args):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--raw", *map(str, args)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    assert out.returncode == 0, "redis-cli %s: %s" % (" ".join(map(str, args)), out.stdout)
    return out.stdout.strip()


def now_ms():
    return int(time.time() * 1000)


def presence(user, ids):
    body = user.get("/presence?user_ids=" + ",".join(str(i) for i in ids))
    entries = body["presence"]
    by_id = {p["user_id"]: p for p in entries}
    assert len(by_id) == len(entries), entries
    return by_id


def presence_key(user_id):
    """A user's presence hash (lib/keys.h): tagged by the user's bucket."""
    return "parley:presence:{p%d}:%d" % (user_id % 16, user_id)


def fake_presence(user_id, deadline_ms, last_seen_ms):
    key = presence_key(user_id)
    FAKE_KEYS.add(key)
    redis("HSET", key, "d:1", deadline_ms, "last_seen", last_seen_ms)


RELAYS = "parley:{relays}"
RELAY_KEY = "parley:{relays}:"


def redis_now_ms():
    seconds, micros = redis("TIME").split()
    return int(seconds) * 1000 + int(micros) // 1000


def register(relay_id, region, connections, capacity, ttl_ms=60000):
    """Registers a fake relay as a relay does: its hash with a TTL, and its
    id in parley:{relays} scored by the same expiry."""
    key = RELAY_KEY + relay_id
    FAKE_KEYS.add(key)
    redis("HSET", key, "url", "ws://127.0.0.1:1/%s/ws" % relay_id, "region", region,
          "connections", connections, "capacity", capacity)
    redis("PEXPIRE", key, ttl_ms)
    redis("ZADD", RELAYS, redis_now_ms() + ttl_ms, relay_id)


def unregister(*relay_ids):
    redis("DEL", *(RELAY_KEY + r for r in relay_ids))
    redis("ZREM", RELAYS, *relay_ids)


def registrations():
    """Every live registration in Redis: {id: hash}, read as discovery reads
    them (ids in parley:{relays} whose expiry is ahead, and their hashes)."""
    out = {}
    for relay_id in filter(None, redis("ZRANGE", RELAYS, redis_now_ms(), "+inf", "BYSCORE").splitlines()):
        fields = redis("HGETALL", RELAY_KEY + relay_id).splitlines()
        if fields:
            out[relay_id] = dict(zip(fields[0::2], fields[1::2]))
    return out


def commandstat(name):
    """How many times Redis ran command name since its start (INFO commandstats)."""
    for line in redis("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_%s:" % name):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def load(reg):
    capacity = float(reg.get("capacity") or 0)
    return float(reg.get("connections") or 0) / (capacity if capacity > 0 else 1)


def discover(query=""):
    body = expect(call("GET", "/discover" + query), 200, "discover" + query)
    relay = body["relay"]
    assert set(relay) >= {"id", "url", "region"}, body
    assert relay["url"].startswith(("ws://", "wss://")) and relay["url"].endswith("/ws"), body
    return relay


def test_setup_users():
    global A, B, C, D
    A, B, C, D = (new_user(p) for p in ("pa", "pb", "pc", "pd"))
    # B is A's friend, C shares a conversation with A, D is a stranger.
    expect(A.call("POST", "/friends", {"user_id": B.id}), 201)
    expect(B.call("POST", "/friends", {"user_id": A.id}), 200)
    direct(A, C)
    # Leftovers of an interrupted earlier run of this file.
    for relay_id in redis("ZRANGE", RELAYS, 0, -1).splitlines():
        if relay_id.startswith("e2e-"):
            unregister(relay_id)


def test_presence_of_friends_is_offline_and_peers_and_strangers_are_left_out():
    got = presence(A, [B.id, C.id, D.id])
    assert set(got) == {B.id}, "presence of %r, want accepted friends only: %r" % (sorted(got), got)
    for p in got.values():
        assert set(p) >= {"user_id", "status", "last_seen"}, p
        assert p["status"] == "offline", p
        assert p["last_seen"] is None or parse_time(p["last_seen"]), p
    # The stranger sees none of them either.
    assert set(presence(D, [A.id, B.id, C.id])) == set()


def test_pending_request_does_not_open_presence():
    e = new_user("pe")
    expect(A.call("POST", "/friends", {"user_id": e.id}), 201)
    assert e.id not in presence(A, [e.id])


def test_heartbeat_deadline_ahead_is_online():
    try:
        stamp = now_ms()
        fake_presence(B.id, stamp + 30000, stamp)
        fake_presence(D.id, stamp + 30000, stamp)  # online, but a stranger
        got = presence(A, [B.id, C.id, D.id])
        assert got[B.id]["status"] == "online", got
        assert C.id not in got, "a conversation peer's presence leaked: %r" % got
        assert D.id not in got, "a stranger's presence leaked: %r" % got
        friend = [f for f in A.get("/friends")["friends"] if f["id"] == B.id][0]
        assert friend["presence"]["status"] == "online", friend
        # The deadline passed (no heartbeat since): offline, last seen then.
        seen = now_ms() - 5000
        fake_presence(B.id, seen + 1000, seen)
        got = presence(A, [B.id])[B.id]
        assert got["status"] == "offline", got
        assert abs(parse_time(got["last_seen"]).timestamp() * 1000 - seen) < 2000, (got, seen)
    finally:
        redis("DEL", presence_key(B.id))
        redis("DEL", presence_key(D.id))


def test_discover_without_relays_is_503():
    real = [r for r in registrations() if not r.startswith("e2e-")]
    if real:
        # The stack's relays are registered: stop them (they deregister, or
        # their registrations expire), and start them again afterwards.
        parley_test.dev("stop", "relay")
        parley_test.dev("stop", "relay2")
    try:
        parley_test.wait_for(lambda: not registrations(), 30, "no relay registered")
        assert_error(call("GET", "/discover"), 503, "unavailable")
        assert_error(call("GET", "/discover?region=eu"), 503, "unavailable")
    finally:
        if real:
            parley_test.dev("start", "relay")
            parley_test.dev("start", "relay2")
    if real:
        relay = parley_test.wait_for(lambda: call("GET", "/discover")[0] == 200 and discover(), 30,
                                     "the relay to register again")
        assert relay["id"] in real, relay
        # Both relays are back before the next tests compare loads.
        parley_test.wait_for(lambda: set(real) <= set(registrations()), 30,
                             "every relay to register again")


def test_discover_prefers_the_callers_region():
    eu, us = "eu-" + RUN, "us-" + RUN
    try:
        register("e2e-%s-eu" % RUN, eu, 90, 100)
        register("e2e-%s-us" % RUN, us, 10, 100)
        relay = discover("?region=" + eu)
        assert (relay["id"], relay["region"]) == ("e2e-%s-eu" % RUN, eu), relay
        assert relay["url"] == "ws://127.0.0.1:1/e2e-%s-eu/ws" % RUN, relay
        relay = discover("?region=" + us)
        assert (relay["id"], relay["region"]) == ("e2e-%s-us" % RUN, us), relay
    finally:
        unregister("e2e-%s-eu" % RUN, "e2e-%s-us" % RUN)


def test_discover_without_region_picks_the_least_loaded():
    try:
        register("e2e-%s-busy" % RUN, "eu-" + RUN, 95, 100)
        register("e2e-%s-idle" % RUN, "us-" + RUN, 0, 1000)
        register("e2e-%s-half" % RUN, "ap-" + RUN, 500, 1000)
        for query in ("", "?region=nowhere-" + RUN):
            live = registrations()
            relay = discover(query)
            assert relay["id"] in live, relay
            best = min(load(r) for r in live.values())
            assert load(live[relay["id"]]) == best, "picked %s (load %.2f), least loaded is %.2f: %r" % (
                relay["id"], load(live[relay["id"]]), best, live)
            assert relay["id"] not in ("e2e-%s-busy" % RUN, "e2e-%s-half" % RUN), relay
    finally:
        unregister(*("e2e-%s-%s" % (RUN, n) for n in ("busy", "idle", "half")))


def test_expired_registration_is_never_returned():
    region = "gone-" + RUN
    key = RELAY_KEY + "e2e-%s-gone" % RUN
    try:
        register("e2e-%s-gone" % RUN, region, 0, 100, ttl_ms=1500)
        assert discover("?region=" + region)["id"] == "e2e-%s-gone" % RUN
        parley_test.wait_for(lambda: redis("EXISTS", key) == "0", 10, "the registration to expire")
        status, _, body = call("GET", "/discover?region=" + region)
        if status == 200:
            assert body["relay"]["id"] != "e2e-%s-gone" % RUN, body
            assert body["relay"]["region"] != region, body
        else:
            assert_error((status, _, body), 503, "unavailable")
    finally:
        unregister("e2e-%s-gone" % RUN)


def test_discover_reads_no_keyspace():
    # 50,000 keys that are not relays, written in one pipe.
    junk = "e2e-junk:%s:" % RUN
    n = 50000

    def pipe(command):
        lines = "".join(command % (junk + str(i)) + "\n" for i in range(n))
        out = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--pipe"], input=lines, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=60)
        assert out.returncode == 0 and "errors: 0" in out.stdout, out.stdout

    region = "far-" + RUN
    try:
        pipe("SET %s x")
        register("e2e-%s-far" % RUN, region, 1, 100)
        scans = commandstat("scan")
        started = time.monotonic()
        for _ in range(20):
            relay = discover("?region=" + region)
            assert (relay["id"], relay["region"]) == ("e2e-%s-far" % RUN, region), relay
        elapsed = time.monotonic() - started
        assert commandstat("scan") == scans, "discovery ran SCAN over the keyspace (%d times for 20 calls)" % (
            commandstat("scan") - scans)
        # Not a benchmark: only a guard against walking the keyspace again
        # (which took about 0.2 s a call here with these keys).
        assert elapsed < 20, "20 discoveries took %.1f s" % elapsed
    finally:
        pipe("UNLINK %s")
        unregister("e2e-%s-far" % RUN)


def test_fake_keys_are_gone():
    left = [k for k in FAKE_KEYS if redis("EXISTS", k) != "0"]
    left += ["%s member %s" % (RELAYS, r) for r in redis("ZRANGE", RELAYS, 0, -1).splitlines()
             if r.startswith("e2e-%s-" % RUN)]
    assert not left, "fake keys left in Redis: %r" % left


if __name__ == "__main__":
    parley_test.run()

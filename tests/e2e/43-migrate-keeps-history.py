"""43 migrate: the migrations from 012 on (012 hash-partitions messages and
inbox, copying both), applied to a database that migrations 001..011 made
and users filled through the API, keep what those users see, and their
sends go on where they left off.

The test stack's parley-api is pointed at a database of its own for the
length of this file (parley_upgrade on the stack's PostgreSQL, made here
with parley-admin migrate and the migrations up to 011): users sign up,
open a direct and a group conversation and send messages, all over REST.
(Their tokens come from parley-admin session: a login reads what later
migrations add to users, and parley-api is meant to run on the schema its
own release migrates to.) Then parley-admin migrate applies the rest while
the API runs. Every user's conversation list, every history page (both
directions), /sync and search answer exactly as before, every row of
messages and inbox is still there, a retry of a send made before the
migration is still answered as a duplicate, and new sends get the next
message_id of their conversation and the next seq of each member's inbox.
Last, the API is pointed back at the stack's database and parley_upgrade is
dropped."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import parley_test
import rest
from rest import direct, expect, group, new_user, send

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BUILD = os.environ.get("PARLEY_BUILDDIR") or TOP
ADMIN = os.path.join(BUILD, "admin", "parley-admin")
CONF = os.path.join(parley_test.RUNDIR, "etc", "parley.conf")
MIGRATIONS = sorted(glob.glob(os.path.join(TOP, "sql", "[0-9][0-9][0-9]_*.sql")))
# The last migration before the partitioning; the rest are applied live.
BASE = 11
OLD = [m for m in MIGRATIONS if int(os.path.basename(m)[:3]) <= BASE]
NEW = [os.path.basename(m) for m in MIGRATIONS if int(os.path.basename(m)[:3]) > BASE]
DB = "parley_upgrade"
CONNINFO = re.sub(r"\bdbname=\S+", "dbname=" + DB, parley_test.PG)
WORD = "lighthouse"

USERS = {}
CONVERSATIONS = {}
BEFORE = {}
SENT = []
STACK_CONF = None


def psql(statement, db=DB):
    """Runs one SQL statement with psql on db; returns its output (-At)."""
    conninfo = re.sub(r"\bdbname=\S+", "dbname=" + db, parley_test.PG)
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", statement, conninfo],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, "psql %r: %s" % (statement, out.stderr)
    return out.stdout.strip()


def migrate(migrations):
    """parley-admin migrate on parley_upgrade, with a sql dir holding
    exactly migrations; returns its log."""
    sql_dir = tempfile.mkdtemp(prefix="parley-migrate-")
    try:
        for path in migrations:
            shutil.copy(path, sql_dir)
        env = dict(os.environ, PARLEY_DATABASE_CONNINFO=CONNINFO)
        p = subprocess.run([ADMIN, "-c", CONF, "migrate", "--sql-dir", sql_dir], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, "migrate exited %d: %s" % (p.returncode, p.stderr)
        return p.stderr
    finally:
        shutil.rmtree(sql_dir)


def with_dbname(conf_text, dbname):
    """conf_text (a parley.conf) with [database] conninfo naming dbname."""
    return re.sub(r"(?m)^(conninfo = .*)\bdbname=\S+", r"\1dbname=" + dbname, conf_text)


def point_api_at(conf_text):
    """Restarts the stack's parley-api with conf_text as its parley.conf."""
    with open(CONF, "w") as f:
        f.write(conf_text)
    parley_test.dev("restart", "api")
    parley_test.wait_for(lambda: parley_test.request("GET", "/api/v1/health")[0] == 200, 30, "the API's health")


def seen_by(user):
    """Everything user reads of their messages: the conversation list, each
    conversation's history paged both ways, the inbox (/sync) and a search."""
    seen = {"conversations": user.get("/conversations")["conversations"]}
    for c in seen["conversations"]:
        cid, pages, before = c["id"], [], ""
        while True:
            page = user.get("/conversations/%d/messages?limit=4%s" % (cid, before))["messages"]
            if not page:
                break
            pages.append(page)
            before = "&before=%d" % page[-1]["message_id"]
        seen["newest first %d" % cid] = pages
        seen["oldest first %d" % cid] = user.get("/conversations/%d/messages?after=0&limit=100" % cid)["messages"]
    seen["sync"] = user.get("/sync?after=0&limit=1000")
    seen["search"] = user.get("/search?q=%s" % urllib.parse.quote(WORD))["messages"]
    return seen


def rows():
    """Count and digest of every row of messages and inbox."""
    return (psql("SELECT count(*), md5(string_agg(m::text, ',' ORDER BY conversation_id, message_id)) "
                 "FROM messages m"),
            psql("SELECT count(*), md5(string_agg(i::text, ',' ORDER BY user_id, seq)) FROM inbox i"))


def old_user(prefix):
    """A user signed up over REST, with a token from parley-admin session."""
    profile = rest.signup(rest.uniq(prefix))
    p = subprocess.run([ADMIN, "-c", CONF, "session", profile["username"]],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "parley-admin session: %s" % p.stderr
    token = p.stdout.strip()
    return rest.User(profile, rest.PASSWORD, {"token": token, "device_id": rest.token_claims(token)["did"]})


def test_users_fill_a_database_at_migration_011():
    global STACK_CONF
    assert len(OLD) == BASE and NEW and NEW[0].startswith("012_"), (OLD, NEW)
    psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, db="parley")
    psql("CREATE DATABASE %s" % DB, db="parley")
    migrate(OLD)
    # Ids far from the stack's own, which share its Redis (channels,
    # presence, rate limits).
    psql("SELECT setval(s, 1000000000) FROM unnest(ARRAY['users_id_seq', 'devices_id_seq', "
         "'sessions_id_seq', 'conversations_id_seq']) AS s")
    with open(CONF) as f:
        conf = f.read()
    assert re.search(r"(?m)^conninfo = .*\bdbname=\S+", conf), conf
    # The stack's own database even if an interrupted run left another.
    STACK_CONF = with_dbname(conf, re.search(r"\bdbname=(\S+)", parley_test.PG).group(1))
    point_api_at(with_dbname(conf, DB))

    a, b, c = (old_user(p) for p in ("upa", "upb", "upc"))
    USERS.update(a=a, b=b, c=c)
    CONVERSATIONS.update(ab=direct(a, b), g=group(a, [b, c], title="before and after"))
    for k in range(9):
        sender = (a, b)[k % 2]
        SENT.append(send(sender, CONVERSATIONS["ab"], "direct %d %s" % (k, WORD if k % 3 == 0 else "plain")))
    for k in range(10):
        sender = (a, b, c)[k % 3]
        SENT.append(send(sender, CONVERSATIONS["g"], "group %d %s ✓ 会议" % (k, WORD if k % 4 == 0 else "")))
    assert psql("SELECT max(version) FROM schema_migrations") == str(BASE)
    for name, user in USERS.items():
        BEFORE[name] = seen_by(user)
    BEFORE["rows"] = rows()
    assert BEFORE["rows"][0].startswith("19|"), BEFORE["rows"]


def test_the_later_migrations_keep_what_users_see():
    log = migrate(MIGRATIONS)
    for name in NEW:
        assert "applied %s" % name in log, log
    for name, user in USERS.items():
        after = seen_by(user)
        for key in BEFORE[name]:
            assert after[key] == BEFORE[name][key], "%s's %s changed:\nbefore %r\nafter  %r" % (
                name, key, BEFORE[name][key], after[key])
    assert rows() == BEFORE["rows"], (rows(), BEFORE["rows"])


def test_a_send_retried_across_the_migration_is_a_duplicate():
    first = SENT[0]
    again = expect(USERS["a"].call("POST", "/conversations/%d/messages" % CONVERSATIONS["ab"],
                                   {"client_msg_id": first["client_msg_id"], "body": first["body"]}), 200, "retry")
    assert again["message_id"] == first["message_id"] and again["created_at"] == first["created_at"], (again, first)


def test_sends_go_on_with_the_next_ids():
    a, b, c = USERS["a"], USERS["b"], USERS["c"]
    heads = {name: BEFORE[name]["sync"]["cursor"] for name in USERS}
    last = {cid: max(m["message_id"] for m in SENT if m["conversation_id"] == cid)
            for cid in CONVERSATIONS.values()}
    m1 = send(a, CONVERSATIONS["ab"], "after the migration, " + WORD)
    assert m1["message_id"] == last[CONVERSATIONS["ab"]] + 1, (m1, last)
    m2 = send(c, CONVERSATIONS["g"], "the group goes on")
    assert m2["message_id"] == last[CONVERSATIONS["g"]] + 1, (m2, last)
    for name, user, want in (("a", a, [m1, m2]), ("b", b, [m1, m2]), ("c", c, [m2])):
        events = user.get("/sync?after=%d" % heads[name])["events"]
        assert [e["seq"] for e in events] == list(range(heads[name] + 1, heads[name] + 1 + len(want))), (name, events)
        assert [(e["conversation_id"], e["message_id"]) for e in events] == \
            [(m["conversation_id"], m["message_id"]) for m in want], (name, events)
    newest = b.get("/conversations/%d/messages?limit=1" % CONVERSATIONS["ab"])["messages"]
    assert newest == [{k: m1[k] for k in newest[0]}], (newest, m1)
    found = b.get("/search?q=%s" % urllib.parse.quote(WORD))["messages"]
    assert found and found[0]["message_id"] == m1["message_id"], found


def test_the_api_is_back_on_the_stack_database():
    assert STACK_CONF, "the stack's parley.conf was never read"
    point_api_at(STACK_CONF)
    user = new_user("upz")
    assert psql("SELECT count(*) FROM users WHERE id = %d" % user.id, db="parley") == "1"
    psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % DB, db="parley")


if __name__ == "__main__":
    parley_test.run()

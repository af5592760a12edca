"""43 migrate: the migrations from 012 on (012 hash-partitions messages and
inbox, copying both; 014 adds replies, edits, reactions and their inbox
events), applied to a database that migrations 001..011 made and filled,
keep what its users see, and their sends go on where they left off.

The database (parley_upgrade on the stack's PostgreSQL) is made with
parley-admin migrate and the migrations up to 011, then filled as the API of
that release filled it: users, a direct and a group conversation, and
messages stored by that release's own post_messages(), one call per send,
in the database. (Not through today's parley-api: it is meant to run on the
schema its own release migrates to, and reads what later migrations add.)
What each user would see is read there: their conversations and members,
each conversation's messages, their inbox, and a digest of every row.
Then parley-admin migrate applies the rest, and today's parley-api,
pointed at the database, must show each user exactly that: the
conversation list, every history page (both directions), /sync and search
hold the same messages with the same ids, bodies, senders, times and seqs
(with the fields later migrations add at their defaults), every row of
messages and inbox is still there, a retry of a send made before the
migration is answered as a duplicate, and new sends get the next
message_id of their conversation and the next seq of each member's inbox.
Last, the API is pointed back at the stack's database and parley_upgrade is
dropped."""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse

import parley_test
import rest
from rest import expect, new_user, send

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


# The fields of a message and of an inbox event as release 011 had them.
MESSAGE_KEYS = ("conversation_id", "message_id", "sender_id", "body", "created_at", "client_msg_id")
# What later migrations add to a message, at its defaults.
ADDED = {"reply_to": None, "attachments": [], "edited_at": None, "deleted_at": None, "reactions": []}


def old_fields(m):
    """m with only release 011's fields, after checking the added ones."""
    for k, v in ADDED.items():
        assert m.get(k, v) == v, "%s is %r in %r" % (k, m.get(k), m)
    return {k: m[k] for k in MESSAGE_KEYS + (("seq",) if "seq" in m else ())}


def stored(user_id):
    """What user_id sees, read from the database: {"conversations": [(id,
    kind, title, member ids)], "messages": {conversation: [message, oldest
    first]}, "inbox": [event], "head": last seq}."""
    convs = psql("SELECT c.id || '|' || c.kind || '|' || coalesce(c.title, '') || '|' || "
                 "(SELECT string_agg(x.user_id::text, ',' ORDER BY x.user_id) FROM members x "
                 " WHERE x.conversation_id = c.id) FROM conversations c JOIN members m ON "
                 "m.conversation_id = c.id AND m.user_id = %d ORDER BY c.id" % user_id)
    seen = {"conversations": [], "messages": {}}
    for line in convs.splitlines():
        cid, kind, title, members = line.split("|")
        seen["conversations"].append((int(cid), kind, title or None, [int(x) for x in members.split(",")]))
        seen["messages"][int(cid)] = [json_row(r) for r in psql(
            "SELECT json_build_object('conversation_id', conversation_id, 'message_id', message_id, "
            "'sender_id', sender_id, 'body', body, 'created_at', rfc3339(created_at), 'client_msg_id', "
            "client_msg_id) FROM messages WHERE conversation_id = %s ORDER BY message_id" % cid).splitlines()]
    by_key = {(m["conversation_id"], m["message_id"]): m for ms in seen["messages"].values() for m in ms}
    seen["inbox"] = []
    for line in psql("SELECT seq || '|' || conversation_id || '|' || message_id FROM inbox "
                     "WHERE user_id = %d ORDER BY seq" % user_id).splitlines():
        seq, cid, mid = (int(x) for x in line.split("|"))
        seen["inbox"].append(dict(by_key[(cid, mid)], seq=seq))
    seen["head"] = int(psql("SELECT last_seq FROM user_heads WHERE user_id = %d" % user_id))
    return seen


def json_row(text):
    return json.loads(text)


def shown(user):
    """What today's API shows user, in stored()'s terms, every history page
    read both ways and each message checked for the added fields."""
    listed = user.get("/conversations")["conversations"]
    seen = {"conversations": sorted((c["id"], c["kind"], c["title"], c["member_ids"]) for c in listed),
            "messages": {}}
    for c in listed:
        cid, newest_first, before = c["id"], [], ""
        while True:
            page = user.get("/conversations/%d/messages?limit=4%s" % (cid, before))["messages"]
            if not page:
                break
            newest_first += page
            before = "&before=%d" % page[-1]["message_id"]
        oldest_first = user.get("/conversations/%d/messages?after=0&limit=100" % cid)["messages"]
        assert oldest_first == newest_first[::-1], (cid, oldest_first, newest_first)
        seen["messages"][cid] = [old_fields(m) for m in oldest_first]
        last = c["last_message"]
        assert last and old_fields(last) == seen["messages"][cid][-1], (c, seen["messages"][cid][-1])
    sync = user.get("/sync?after=0&limit=1000")
    assert all(e["type"] == "message" for e in sync["events"]), sync
    seen["inbox"] = [old_fields(e) for e in sync["events"]]
    seen["head"] = sync["cursor"]
    seen["search"] = sorted((m["conversation_id"], m["message_id"]) for m in
                            user.get("/search?q=%s" % urllib.parse.quote(WORD))["messages"])
    return seen


def rows():
    """Count and digest of every row of messages and inbox, in the columns
    release 011 had."""
    return (psql("SELECT count(*), md5(string_agg(concat_ws('|', conversation_id, message_id, sender_id, "
                 "client_msg_id, body, created_at), ',' ORDER BY conversation_id, message_id)) FROM messages"),
            psql("SELECT count(*), md5(string_agg(concat_ws('|', user_id, seq, conversation_id, message_id), "
                 "',' ORDER BY user_id, seq)) FROM inbox"))


def old_send(sender, conversation, body):
    """One send as release 011's API stored it: its post_messages(), alone
    in its transaction. Returns the message as the API answered it."""
    cmid = rest.uniq("m")
    item = json.dumps([{"sender_id": sender, "conversation_id": conversation,
                        "client_msg_id": cmid, "body": body}])
    out = psql("SELECT status || '|' || message_id || '|' || created_at FROM post_messages('%s'::jsonb)"
               % item.replace("'", "''"))
    status, mid, created_at = out.split("|")
    assert status == "ok", out
    return {"conversation_id": conversation, "message_id": int(mid), "sender_id": sender,
            "body": body, "created_at": created_at, "client_msg_id": cmid}


def token_for(username):
    p = subprocess.run([ADMIN, "-c", CONF, "session", username], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "parley-admin session: %s" % p.stderr
    return p.stdout.strip()


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

    for name in ("a", "b", "c"):
        username = rest.uniq("up" + name)
        uid = int(psql("INSERT INTO users (username, password_hash, display_name) VALUES "
                       "('%s', 'x', '%s') RETURNING id" % (username, username)))
        USERS[name] = {"id": uid, "username": username}
    a, b, c = (USERS[n]["id"] for n in "abc")
    CONVERSATIONS["ab"] = int(psql("INSERT INTO conversations (kind, direct_key, created_by) VALUES "
                                   "('direct', '%d:%d', %d) RETURNING id" % (a, b, a)))
    CONVERSATIONS["g"] = int(psql("INSERT INTO conversations (kind, title, created_by) VALUES "
                                  "('group', 'before and after', %d) RETURNING id" % a))
    psql("INSERT INTO members (conversation_id, user_id, role) VALUES (%d, %d, 'member'), "
         "(%d, %d, 'member'), (%d, %d, 'admin'), (%d, %d, 'member'), (%d, %d, 'member')"
         % (CONVERSATIONS["ab"], a, CONVERSATIONS["ab"], b, CONVERSATIONS["g"], a,
            CONVERSATIONS["g"], b, CONVERSATIONS["g"], c))
    for k in range(9):
        sender = (a, b)[k % 2]
        SENT.append(old_send(sender, CONVERSATIONS["ab"], "direct %d %s" % (k, WORD if k % 3 == 0 else "plain")))
    for k in range(10):
        sender = (a, b, c)[k % 3]
        SENT.append(old_send(sender, CONVERSATIONS["g"], "group %d %s ✓ 会议" % (k, WORD if k % 4 == 0 else "")))
    assert psql("SELECT max(version) FROM schema_migrations") == str(BASE)
    for name, user in USERS.items():
        BEFORE[name] = stored(user["id"])
        BEFORE[name]["search"] = sorted((m["conversation_id"], m["message_id"]) for m in SENT
                                        if WORD in m["body"] and m["conversation_id"] in BEFORE[name]["messages"])
    BEFORE["rows"] = rows()
    assert BEFORE["rows"][0].startswith("19|"), BEFORE["rows"]
    # Today's API on the database, while the later migrations run.
    point_api_at(with_dbname(conf, DB))


def test_the_later_migrations_keep_what_users_see():
    log = migrate(MIGRATIONS)
    for name in NEW:
        assert "applied %s" % name in log, log
    for name, user in USERS.items():
        profile = {"id": user["id"], "username": user["username"], "display_name": user["username"]}
        token = token_for(user["username"])
        USERS[name] = rest.User(profile, rest.PASSWORD,
                                {"token": token, "device_id": rest.token_claims(token)["did"]})
        after = shown(USERS[name])
        want = dict(BEFORE[name])
        want["conversations"] = sorted(want["conversations"])
        for key in want:
            assert after[key] == want[key], "%s's %s changed:\nbefore %r\nafter  %r" % (
                name, key, want[key], after[key])
    assert rows() == BEFORE["rows"], (rows(), BEFORE["rows"])


def test_a_send_retried_across_the_migration_is_a_duplicate():
    first = SENT[0]
    again = expect(USERS["a"].call("POST", "/conversations/%d/messages" % CONVERSATIONS["ab"],
                                   {"client_msg_id": first["client_msg_id"], "body": first["body"]}), 200, "retry")
    assert again["message_id"] == first["message_id"] and again["created_at"] == first["created_at"], (again, first)


def test_sends_go_on_with_the_next_ids():
    a, b, c = USERS["a"], USERS["b"], USERS["c"]
    heads = {name: BEFORE[name]["head"] for name in USERS}
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

"""50 example client: examples/chat.py run as a user runs it, against the
stack: two users chat through it; a client restarted with its state file gets
what it missed, once (cursor resume); a client whose relay dies reconnects
through discovery and misses nothing; a send left unconfirmed goes again with
its client_msg_id and is stored once; a refused send shows its error and ref;
a client whose session is revoked logs in again; heartbeats keep a quiet
client online; Ctrl-C ends it cleanly. The tests share two users, their
conversation and their clients' state files, and run in order. Needs
Debian's python3-websockets for /usr/bin/python3."""

import atexit
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

import parley_test
import rest
from parley_test import BASE_URL, RELAY_URL, wait_for
from rest import expect

CHAT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "chat.py")
PYTHON = "/usr/bin/python3"  # Debian's, which sees python3-websockets
RELAY2_URL = os.environ.get("PARLEY_TEST_RELAY2", "ws://127.0.0.1:%d/ws" % (int(parley_test.STACK["relay"]) + 1))
STATE_DIR = tempfile.mkdtemp(prefix="parley-chat-")
ALICE, BOB = rest.uniq("alice"), rest.uniq("bob")
MESSAGE = r"^\[(\d+)\] (\S+): (.*)$"
SENT = r"^\* sent (\S+) as message (\d+) in \[(\d+)\]$"
CONNECTED = r"^\* connected to (\S+) \(cursor (\d+)\)$"
CLIENTS = []
CONV = None  # alice and bob's direct conversation, once chat.py opened it


def state_file(user):
    return os.path.join(STATE_DIR, user + ".json")


class Chat:
    """examples/chat.py as a subprocess; a thread gathers its output lines
    (stderr included)."""

    def __init__(self, user, *options):
        self.proc = subprocess.Popen(
            [PYTHON, CHAT, "--url", BASE_URL, "--user", user, "--password", rest.PASSWORD,
             "--state", state_file(user), *options],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            # Ctrl-C works as in a terminal, also when this runs in the
            # background of a shell script, which ignores SIGINT there.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        CLIENTS.append(self)

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self):
        return "\n".join(self.lines)

    def wait(self, pattern, n=1, timeout=20):
        """The matches of the first n output lines that match pattern,
        waiting up to timeout seconds for them (failing at once if the
        client exits first)."""
        regex = re.compile(pattern)

        def found():
            got = [m for m in map(regex.match, list(self.lines)) if m]
            if len(got) >= n:
                return got
            if not self.reader.is_alive():
                return "exited"
        try:
            got = wait_for(found, timeout, "%d line(s) matching %r" % (n, pattern))
        except AssertionError as e:
            raise AssertionError("%s; output:\n%s" % (e, self.output())) from None
        assert got != "exited", "chat.py exited (%s) before %d line(s) matching %r; output:\n%s" % (
            self.proc.poll(), n, pattern, self.output())
        return got[:n]

    def finish(self, timeout=20):
        """Waits for the client to exit; returns its exit status."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("chat.py still running after %gs; output:\n%s" % (timeout, self.output()))
        self.reader.join(5)
        return rc

    def messages(self):
        """The message lines shown, as (conversation_id, sender, body)."""
        return [(int(m.group(1)), m.group(2), m.group(3))
                for m in map(re.compile(MESSAGE).match, self.lines) if m]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def cleanup():
    for c in CLIENTS:
        c.kill()
    shutil.rmtree(STATE_DIR, ignore_errors=True)


atexit.register(cleanup)


SESSIONS = {}


def session(username):
    """A REST session of a user chat.py signed up (another device of theirs)."""
    if username not in SESSIONS:
        body = expect(rest.call("POST", "/sessions", {"username": username, "password": rest.PASSWORD}),
                      201, "login " + username)
        SESSIONS[username] = rest.User(body["user"], rest.PASSWORD, body)
    return SESSIONS[username]


def conv():
    assert CONV, "no conversation: test_two_users_chat failed"
    return CONV


def shown(client, expected):
    """Asserts the message lines a client showed, in order."""
    got = client.messages()
    assert got == expected, "shown %r, want %r; output:\n%s" % (got, expected, client.output())


def add_to_outbox(user, client_msg_id, body):
    """Puts a send into a stopped client's outbox, as if it had stopped
    before that send was confirmed."""
    with open(state_file(user)) as f:
        state = json.load(f)
    state["outbox"].append({"conversation_id": conv(), "client_msg_id": client_msg_id, "body": body})
    with open(state_file(user), "w") as f:
        json.dump(state, f)


def test_client_starts():
    c = Chat(ALICE, "--help")
    rc = c.finish()
    assert rc == 0 and "--count" in c.output(), (
        "chat.py --help exited %d (is python3-websockets installed?):\n%s" % (rc, c.output()))


def test_two_users_chat():
    global CONV
    bob = Chat(BOB, "--signup", "--count", "1")
    bob.wait(CONNECTED)
    alice = Chat(ALICE, "--signup", "--to", BOB, "--send", "hello from chat.py", "--count", "0")
    cmid, mid, conv_id = alice.wait(SENT)[0].groups()
    CONV = int(conv_id)
    assert alice.finish() == 0, alice.output()
    assert "* conversation %d with %s" % (CONV, BOB) in alice.lines, alice.output()
    assert bob.finish() == 0, bob.output()
    shown(bob, [(CONV, ALICE, "hello from chat.py")])
    # Stored once, under the client_msg_id and message id alice's client showed.
    history = session(BOB).get("/conversations/%d/messages" % CONV)["messages"]
    assert [(m["message_id"], m["client_msg_id"], m["body"]) for m in history] == [
        (int(mid), cmid, "hello from chat.py")], history


def test_restart_gets_missed_messages_once():
    conv()
    alice = session(ALICE)
    missed = ["missed %d" % i for i in range(3)]
    for body in missed:  # while bob's client is not running
        rest.send(alice, CONV, body)
    bob = Chat(BOB, "--count", "4")
    cursor = int(bob.wait(CONNECTED)[0].group(2))
    assert cursor > 0, bob.output()  # the cursor saved by the first run
    bob.wait(MESSAGE, n=3)
    rest.send(alice, CONV, "live after the restart")
    assert bob.finish() == 0, bob.output()
    shown(bob, [(CONV, ALICE, b) for b in missed + ["live after the restart"]])


def relay_is_up(url):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=2)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def test_dropped_socket_reconnects_and_misses_nothing():
    conv()
    bob = Chat(BOB, "--count", "3")
    url = bob.wait(CONNECTED)[0].group(1)
    n = re.search(r"/r/(\d+)/ws$", url).group(1)  # discovery's URL: nginx's /r/N/ws
    name, relay_url = ("relay", RELAY_URL) if n == "1" else ("relay" + n, RELAY2_URL)
    with open(os.path.join(rest.RUNDIR, "run", name + ".child.pid")) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    try:
        bob.wait(r"^\* disconnected ")
        alice = session(ALICE)
        bodies = ["while reconnecting %d" % i for i in range(3)]
        for body in bodies:
            rest.send(alice, CONV, body)
        bob.wait(CONNECTED, n=2, timeout=40)
        assert bob.finish() == 0, bob.output()
        shown(bob, [(CONV, ALICE, b) for b in bodies])
    finally:
        # The supervisor brings the killed relay back.
        wait_for(lambda: relay_is_up(relay_url), 30, name + " to come back")


def test_unconfirmed_send_goes_again_once():
    conv()
    alice = session(ALICE)
    cmid = "chat-" + secrets.token_hex(6)
    # The send reached the server, but the client stopped before its "sent".
    first = rest.send(alice, CONV, "sent before the stop", client_msg_id=cmid)
    add_to_outbox(ALICE, cmid, "sent before the stop")
    a = Chat(ALICE, "--count", "0")
    assert a.wait(SENT)[0].groups() == (cmid, str(first["message_id"]), str(CONV)), a.output()
    assert a.finish() == 0, a.output()
    history = session(BOB).get("/conversations/%d/messages?limit=10" % CONV)["messages"]
    stored = [m["message_id"] for m in history if m["client_msg_id"] == cmid]
    assert stored == [first["message_id"]], history
    # Bob's client shows it once.
    bob = Chat(BOB, "--count", "2")
    bob.wait(MESSAGE)
    rest.send(alice, CONV, "after the resend")
    assert bob.finish() == 0, bob.output()
    shown(bob, [(CONV, ALICE, "sent before the stop"), (CONV, ALICE, "after the resend")])


def test_revoked_session_logs_in_again():
    conv()
    bob = Chat(BOB, "--count", "1")
    bob.wait(CONNECTED)
    with open(state_file(BOB)) as f:
        token = json.load(f)["token"]
    expect(rest.call("DELETE", "/sessions/current", token=token), 204, "log bob's client out")
    bob.wait(r"^\* disconnected \(closed with 4003\)")
    bob.wait(r"^\* logged in as ", n=2)
    bob.wait(CONNECTED, n=2)
    rest.send(session(ALICE), CONV, "after the new login")
    assert bob.finish() == 0, bob.output()
    shown(bob, [(CONV, ALICE, "after the new login")])
    with open(state_file(BOB)) as f:
        assert json.load(f)["token"] != token


def test_refused_send_shows_error_with_ref():
    conv()
    cmid = "chat-" + secrets.token_hex(6)
    rest.send(session(ALICE), CONV, "the first body", client_msg_id=cmid)
    add_to_outbox(ALICE, cmid, "another body")  # the same client_msg_id: 409
    # (Bob's client has not shown "the first body": tests after this one do
    # not count his messages.)
    a = Chat(ALICE, "--count", "0")
    a.wait(r"^! error conflict \(ref %s\): " % re.escape(cmid))
    # Refused for good: out of the outbox, so the client is done.
    assert a.finish() == 0, a.output()
    with open(state_file(ALICE)) as f:
        assert json.load(f)["outbox"] == [], a.output()


def test_unknown_user_is_an_error():
    a = Chat(ALICE, "--to", rest.uniq("nobody"), "--send", "anyone?")
    assert a.finish() != 0, a.output()
    assert "no user named" in a.output(), a.output()


def test_heartbeats_keep_a_quiet_client_online():
    alice, bob_rest = session(ALICE), session(BOB)
    expect(alice.call("POST", "/friends", {"user_id": bob_rest.id}), 201)
    expect(bob_rest.call("POST", "/friends", {"user_id": alice.id}), 200)

    def bob_status():
        body = expect(alice.call("GET", "/presence?user_ids=%d" % bob_rest.id), 200)
        return [p["status"] for p in body["presence"] if p["user_id"] == bob_rest.id]
    bob = Chat(BOB)  # no --count: runs until stopped
    bob.wait(CONNECTED)
    wait_for(lambda: bob_status() == ["online"], 10, "bob to be online")
    # Nothing is said: only its heartbeats keep bob online past the test
    # stack's presence timeout (3 s).
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        assert bob_status() == ["online"], "bob went offline; output:\n%s" % bob.output()
        time.sleep(0.2)  # sampling for 7 s: staying online that long is the behaviour
    bob.proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert bob.finish(10) == 0, bob.output()


if __name__ == "__main__":
    parley_test.run()

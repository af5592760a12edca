"""40 admin: parley-admin's account commands against the test stack.
"users add" makes users in bulk that log in with the given password (from
--password, --password-file or --password-stdin);
"session" makes a device and session as a login does, and its token works
on REST and in the relay's hello; a missing user or a bad prefix is a clear
error and a non-zero exit."""

import os
import subprocess
import tempfile

import parley_test
import rest
import ws
from rest import PASSWORD, expect

BUILD = os.environ.get("PARLEY_BUILDDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ADMIN = os.path.join(BUILD, "admin", "parley-admin")
CONF = os.path.join(rest.RUNDIR, "etc", "parley.conf")
PREFIX = rest.uniq("adm") + "x"


def admin(*args, stdin=None):
    """Runs parley-admin -c CONF ARGS (stdin: text for its standard input);
    returns (exit status, stdout, stderr)."""
    p = subprocess.run([ADMIN, "-c", CONF, *args], input=stdin,
                       stdin=subprocess.DEVNULL if stdin is None else None,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def logs_in(username, password):
    return rest.call("POST", "/sessions", {"username": username, "password": password})[0] == 201


class Session:
    """What ws.connect() needs of a user: the token."""

    def __init__(self, token):
        self.token = token


def session(*users, platform=None):
    args = ["session", *users] + (["--platform", platform] if platform else [])
    rc, out, err = admin(*args)
    assert rc == 0, "session exited %d: %s" % (rc, err)
    tokens = out.split()
    assert len(tokens) == len(users), "want %d tokens: %r" % (len(users), out)
    return tokens


def test_users_add_makes_users_that_log_in():
    rc, out, err = admin("users", "add", "--count", "3", "--prefix", PREFIX, "--password", PASSWORD)
    assert rc == 0, "users add exited %d: %s" % (rc, err)
    assert "created 3 users" in out, out
    body = expect(rest.call("POST", "/sessions", {"username": PREFIX + "2", "password": PASSWORD}), 201)
    assert body["user"]["username"] == PREFIX + "2" and body["user"]["display_name"] == PREFIX + "2", body
    assert expect(rest.call("GET", "/me", token=body["token"]), 200)["username"] == PREFIX + "2"
    parley_test.assert_error(rest.call("POST", "/sessions", {"username": PREFIX + "3", "password": "wrong password"}),
                             401, "unauthorized")


def test_users_add_again_skips_existing_names():
    rc, out, err = admin("users", "add", "--count", "4", "--prefix", PREFIX, "--password", PASSWORD)
    assert rc == 0, "users add exited %d: %s" % (rc, err)
    assert "created 1 users" in out and "3 already existed" in out, out
    expect(rest.call("POST", "/sessions", {"username": PREFIX + "4", "password": PASSWORD}), 201)


def test_users_add_takes_the_password_from_a_file():
    prefix = rest.uniq("adf") + "x"
    password = "from a file, with spaces " + rest.uniq("p")
    with tempfile.NamedTemporaryFile("w", suffix=".pw") as f:
        f.write(password + "\n")
        f.flush()
        rc, out, err = admin("users", "add", "--count", "1", "--prefix", prefix, "--password-file", f.name)
    assert rc == 0, "users add exited %d: %s" % (rc, err)
    assert "password:" not in out, "a given password was printed: %r" % out
    assert logs_in(prefix + "1", password), "the file's password (without its newline) does not log in"
    assert not logs_in(prefix + "1", password + "\n")


def test_users_add_takes_the_password_from_stdin():
    prefix = rest.uniq("ads") + "x"
    password = "typed on stdin " + rest.uniq("p")
    rc, out, err = admin("users", "add", "--count", "2", "--prefix", prefix, "--password-stdin",
                         stdin=password + "\r\n")
    assert rc == 0, "users add exited %d: %s" % (rc, err)
    assert "password:" not in out, "a given password was printed: %r" % out
    assert logs_in(prefix + "2", password), "the password from stdin does not log in"


def test_users_add_password_input_errors_are_clear():
    prefix = rest.uniq("ade") + "x"
    rc, _, err = admin("users", "add", "--count", "1", "--prefix", prefix, "--password-file", "/nonexistent/pw")
    assert rc == 2 and "/nonexistent/pw" in err, (rc, err)
    rc, _, err = admin("users", "add", "--count", "1", "--prefix", prefix, "--password-stdin", stdin="")
    assert rc == 2 and "password" in err, (rc, err)
    rc, _, err = admin("users", "add", "--count", "1", "--prefix", prefix, "--password-stdin",
                       stdin="x" * 300 + "\n")
    assert rc == 2 and "256" in err, (rc, err)
    rc, _, err = admin("users", "add", "--count", "1", "--prefix", prefix, "--password", PASSWORD,
                       "--password-stdin", stdin=PASSWORD + "\n")
    assert rc == 2 and "--password-stdin" in err, (rc, err)
    assert not logs_in(prefix + "1", PASSWORD), "a refused users add created the user"


def test_session_token_works_on_rest_and_relay():
    token, = session(PREFIX + "1")
    me = expect(rest.call("GET", "/me", token=token), 200)
    assert me["username"] == PREFIX + "1", me
    claims = rest.token_claims(token)
    assert claims["sub"] == me["id"], claims
    s = ws.connect(Session(token))
    assert s.welcome["user_id"] == me["id"] and s.welcome["device_id"] == claims["did"], s.welcome
    s.close()
    devices = expect(rest.call("GET", "/devices", token=token), 200)
    assert claims["did"] in [d["id"] for d in devices["devices"]], devices


def test_session_makes_one_new_device_each_with_its_platform():
    a, b = session(PREFIX + "1", PREFIX + "1", platform="ios")
    ca, cb = rest.token_claims(a), rest.token_claims(b)
    assert ca["sub"] == cb["sub"] and ca["did"] != cb["did"] and ca["sid"] != cb["sid"], (ca, cb)
    devices = expect(rest.call("GET", "/devices", token=a), 200)
    mine = [d for d in devices["devices"] if d["id"] == ca["did"]]
    assert mine and mine[0]["platform"] == "apns", devices


def test_session_device_starts_at_the_users_head():
    t1, = session(PREFIX + "1")
    peer = expect(rest.call("GET", "/me", token=session(PREFIX + "2")[0]), 200)
    status, _, body = rest.call("POST", "/conversations", {"kind": "direct", "user_id": peer["id"]}, token=t1)
    assert status in (200, 201), (status, body)
    conv = body["id"]
    expect(rest.call("POST", "/conversations/%d/messages" % conv, {"client_msg_id": "before", "body": "before"},
                     token=t1), 201)
    t2, = session(PREFIX + "2")  # its device's cursor covers "before"
    expect(rest.call("POST", "/conversations/%d/messages" % conv, {"client_msg_id": "after", "body": "after"},
                     token=t1), 201)
    s = ws.connect(Session(t2), cursor=ws.STORED)
    assert s.expect("message")["body"] == "after"
    s.close()


def test_session_for_a_missing_user_fails_clearly():
    rc, out, err = admin("session", PREFIX + "1", PREFIX + "nobody")
    assert rc == 1, "exit %d, want 1: %s" % (rc, err)
    assert "no user '%snobody'" % PREFIX in err, err
    assert out == "", "no token may be printed: %r" % out


def test_bad_arguments_fail_clearly():
    rc, _, err = admin("users", "add", "--count", "2", "--prefix", "Bad Prefix!")
    assert rc == 2 and "username" in err, (rc, err)
    rc, _, err = admin("users", "add", "--prefix", PREFIX)
    assert rc == 2 and "--count" in err, (rc, err)
    rc, _, err = admin("session", PREFIX + "1", "--platform", "symbian")
    assert rc == 2 and "--platform" in err, (rc, err)
    rc, out, _ = admin("--help")
    assert rc == 0 and "users add --count N --prefix P" in out and "session USER" in out, out
    assert "--password-file PATH" in out and "--password-stdin" in out, out


if __name__ == "__main__":
    parley_test.run()

"""45 admin user: parley-admin's commands on one account, against the test
stack. "user revoke USER" ends every session of USER at once: every token
is refused on REST (401), every live socket is closed with 4003, the
devices' push tokens are cleared, other users are untouched, and USER can
log in again. "user disable USER" revokes likewise and refuses USER's
logins (403 forbidden, said only to the right password; a wrong one is 401
as ever) until "user enable USER". "user reset-password USER" sets a new password (given, read
from a file or standard input, or made and printed) and revokes likewise:
the old password no longer logs in, the new one does. An unknown user, a
refused password or bad usage is a clear error and a non-zero exit that
changes nothing."""

import os
import subprocess
import tempfile
import threading

import parley_test
import rest
import ws
from rest import PASSWORD, expect

BUILD = os.environ.get("PARLEY_BUILDDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ADMIN = os.path.join(BUILD, "admin", "parley-admin")
CONF = os.path.join(rest.RUNDIR, "etc", "parley.conf")


def admin(*args, stdin=None):
    """parley-admin -c CONF ARGS; (exit status, stdout, stderr)."""
    p = subprocess.run([ADMIN, "-c", CONF, *args], input=stdin,
                       stdin=subprocess.DEVNULL if stdin is None else None,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def login(username, password, device=None):
    body = {"username": username, "password": password}
    if device:
        body["device"] = device
    return rest.call("POST", "/sessions", body)


class Token:
    """What ws.connect() needs of a session: its token."""

    def __init__(self, token):
        self.token = token


def alive(token):
    return rest.call("GET", "/me", token=token)[0] == 200


def test_revoke_ends_every_session_now():
    u = rest.new_user("rv")
    other = rest.new_user("rvo")
    phone = expect(login(u.username, PASSWORD, {"platform": "fcm", "push_token": rest.uniq("tok")}), 201)
    mine = expect(rest.call("GET", "/devices", token=phone["token"]), 200)["devices"]
    assert [d["has_push_token"] for d in mine if d["id"] == phone["device_id"]] == [True], mine
    sockets = [ws.connect(u), ws.connect(Token(phone["token"]))]
    theirs = ws.connect(other)
    rc, out, err = admin("user", "revoke", u.username)
    assert rc == 0, (rc, err)
    assert "user '%s' (id %d), 2 sessions revoked" % (u.username, u.id) in out, out
    for s in sockets:
        assert s.expect_close(timeout=5) == 4003
    for token in (u.token, phone["token"]):
        parley_test.assert_error(rest.call("GET", "/me", token=token), 401, "unauthorized")
    # The other user's socket and token are untouched.
    theirs.quiet(0.5)
    assert alive(other.token)
    theirs.close()
    again = expect(login(u.username, PASSWORD), 201)
    assert alive(again["token"])
    devices = expect(rest.call("GET", "/devices", token=again["token"]), 200)["devices"]
    listed = [d for d in devices if d["id"] == phone["device_id"]]
    assert len(listed) == 1 and listed[0]["has_push_token"] is False, devices


def test_disable_refuses_logins_until_enable():
    u = rest.new_user("ds")
    s = ws.connect(u)
    rc, out, err = admin("user", "disable", u.username)
    assert rc == 0 and "1 sessions revoked" in out, (rc, out, err)
    assert s.expect_close(timeout=5) == 4003
    parley_test.assert_error(rest.call("GET", "/me", token=u.token), 401, "unauthorized")
    status, _, body = login(u.username, PASSWORD)
    assert status == 403 and body["error"]["code"] == "forbidden", (status, body)
    assert "disabled" in body["error"]["message"], body
    parley_test.assert_error(login(u.username, "not the password"), 401, "unauthorized")
    # Disabling again changes nothing and says so.
    rc, out, err = admin("user", "disable", u.username)
    assert rc == 0 and "0 sessions revoked" in out, (rc, out, err)
    rc, out, err = admin("user", "enable", u.username)
    assert rc == 0 and "enable: user '%s'" % u.username in out and "revoked" not in out, (rc, out, err)
    again = expect(login(u.username, PASSWORD), 201)
    assert alive(again["token"])
    s = ws.connect(Token(again["token"]))
    assert s.welcome["user_id"] == u.id
    s.close()


def test_no_session_outlives_a_disable_that_races_logins():
    u = rest.new_user("dr")
    tokens, answers = [], []

    def log_in():
        for _ in range(2):
            status, _, body = login(u.username, PASSWORD)
            answers.append((status, body))
            if status == 201:
                tokens.append(body["token"])

    threads = [threading.Thread(target=log_in) for _ in range(4)]
    for t in threads:
        t.start()
    rc, out, err = admin("user", "disable", u.username)
    assert rc == 0, (rc, err)
    for t in threads:
        t.join(30)
    assert len(answers) == 8 and all(st in (201, 401, 403) for st, _ in answers), answers
    live = subprocess.run(["psql", "-X", "-At", "-c", "SELECT count(*) FROM sessions WHERE user_id = %d "
                           "AND revoked_at IS NULL" % u.id, parley_test.PG],
                          capture_output=True, text=True, timeout=30)
    assert live.returncode == 0 and live.stdout.strip() == "0", (live.stdout, live.stderr)
    for token in tokens + [u.token]:
        assert not alive(token)
    admin("user", "enable", u.username)


def test_reset_password_with_a_given_password():
    u = rest.new_user("rp")
    new = "a new password " + rest.uniq("p")
    rc, out, err = admin("user", "reset-password", u.username, "--password-stdin", stdin=new + "\n")
    assert rc == 0, (rc, err)
    assert "1 sessions revoked" in out and not any(l.startswith("password: ") for l in out.splitlines()), out
    assert not alive(u.token)
    parley_test.assert_error(login(u.username, PASSWORD), 401, "unauthorized")
    assert expect(login(u.username, new), 201)["user"]["id"] == u.id
    with tempfile.NamedTemporaryFile("w", suffix=".pw") as f:
        f.write(PASSWORD + "\n")
        f.flush()
        rc, out, err = admin("user", "reset-password", u.username, "--password-file", f.name)
    assert rc == 0, (rc, err)
    assert login(u.username, PASSWORD)[0] == 201 and login(u.username, new)[0] == 401


def test_reset_password_makes_one_when_none_is_given():
    u = rest.new_user("rm")
    rc, out, err = admin("user", "reset-password", u.username)
    assert rc == 0, (rc, err)
    made = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("password: ")]
    assert len(made) == 1 and len(made[0]) >= 16, out
    assert login(u.username, made[0])[0] == 201
    assert login(u.username, PASSWORD)[0] == 401


def test_errors_change_nothing():
    u = rest.new_user("re")
    rc, _, err = admin("user", "revoke", "nobody_" + rest.uniq("x"))
    assert rc == 1 and "no user 'nobody_" in err, (rc, err)
    rc, _, err = admin("user", "reset-password", u.username, "--password", "short")
    assert rc == 2 and "the password is refused" in err, (rc, err)
    rc, _, err = admin("user", "reset-password", u.username, "--password", PASSWORD + "x",
                       "--password-stdin", stdin="y" * 20 + "\n")
    assert rc == 2 and "give one of" in err, (rc, err)
    rc, _, err = admin("user", "reset-password", u.username, "--bogus")
    assert rc == 2 and "usage" in err, (rc, err)
    rc, _, err = admin("user", "enable", "nobody_" + rest.uniq("x"))
    assert rc == 1 and "no user 'nobody_" in err, (rc, err)
    for args in (("user",), ("user", "revoke"), ("user", "frobnicate", u.username),
                 ("user", "revoke", u.username, "extra"), ("user", "disable", "--now")):
        rc, _, err = admin(*args)
        assert rc == 2 and "usage" in err, (args, rc, err)
    assert alive(u.token) and login(u.username, PASSWORD)[0] == 201


if __name__ == "__main__":
    parley_test.run()

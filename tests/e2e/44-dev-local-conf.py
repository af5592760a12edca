"""44 an operator's own settings for a local stack: the file PARLEY_LOCAL_CONF
names (or RUNDIR/etc/parley.local.conf) is merged last into both relays'
parley.conf, so its keys win over the generated ones and its new sections
are added; comments and spacing are its own business. A line that is not
INI, a file that is not there, or a setting parley.conf does not accept is
refused with the reason, and "up" then stops before it writes or restarts
anything: the running stack keeps serving. scripts/dev never writes the
file."""

import os
import tempfile

import parley_test
import rest

OVERLAY = """; my own settings
[log]
level = warn

# real pushes
[apns]
  url = https://api.sandbox.push.apple.com
key_id=ABC123DEFG
team_id =   TEAMID1234
"""


def overlay(text):
    """A file holding text; its path."""
    fd, path = tempfile.mkstemp(prefix="parley-local-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def dev(*args, conf):
    """scripts/dev ARGS against the test stack with PARLEY_LOCAL_CONF=conf."""
    saved = os.environ.get("PARLEY_LOCAL_CONF")
    os.environ["PARLEY_LOCAL_CONF"] = conf
    try:
        return parley_test.dev(*args, check=False, timeout=300)
    finally:
        if saved is None:
            os.environ.pop("PARLEY_LOCAL_CONF", None)
        else:
            os.environ["PARLEY_LOCAL_CONF"] = saved


def section(text, name):
    """The key = value lines of [name] in INI text, as a dict."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("["):
            cur = line.strip("[]")
        elif cur == name and " = " in line and not line.startswith(";"):
            k, v = line.split(" = ", 1)
            out[k] = v
    return out


def test_settings_win_and_new_sections_are_added():
    path = overlay(OVERLAY)
    plain = parley_test.dev("config", "parley").stdout
    assert section(plain, "log")["level"] == "debug", plain
    for name in ("parley", "relay2"):
        p = dev("config", name, conf=path)
        assert p.returncode == 0, p.stdout
        assert section(p.stdout, "log") == {"level": "warn"}, p.stdout
        assert section(p.stdout, "apns")["url"] == "https://api.sandbox.push.apple.com", p.stdout
        assert section(p.stdout, "apns")["key_id"] == "ABC123DEFG", p.stdout
        assert section(p.stdout, "apns")["team_id"] == "TEAMID1234", p.stdout
        # The rest of [apns] (the test stack's fake push server) stays.
        assert section(p.stdout, "apns")["key_file"] == section(plain, "apns")["key_file"]
        assert section(p.stdout, "database") == section(plain, "database")
        assert p.stdout.count("[log]") == 1 and p.stdout.count("[apns]") == 1, p.stdout
    with open(path) as f:
        assert f.read() == OVERLAY
    os.unlink(path)


def test_a_line_that_is_not_ini_is_refused_by_its_number():
    path = overlay("[log]\nlevel = warn\nlevel warn\n")
    p = dev("config", "parley", conf=path)
    assert p.returncode != 0, p.stdout
    assert "%s:3: not a comment, a [section] or a key = value" % path in p.stdout, p.stdout
    os.unlink(path)
    p = dev("config", "parley", conf=overlay("level = warn\n"))
    assert p.returncode != 0 and ":1: not a comment" in p.stdout, p.stdout


def test_a_missing_file_is_refused():
    p = dev("config", "parley", conf="/nonexistent/parley.local.conf")
    assert p.returncode != 0, p.stdout
    assert "PARLEY_LOCAL_CONF names /nonexistent/parley.local.conf, which is not a file" in p.stdout


def test_up_refuses_a_setting_parley_does_not_take_and_leaves_the_stack():
    conf = os.path.join(parley_test.RUNDIR, "etc", "parley.conf")
    with open(conf) as f:
        before = f.read()
    u = rest.new_user("lc")
    for text, reason in (("[log]\nlevel = loud\n", "[log] level: 'loud' is not one of"),
                         ("[apns]\nkey_idd = X\n", "unknown key 'key_idd' in section [apns]")):
        path = overlay(text)
        p = dev("up", "--no-install", "--no-build", conf=path)
        assert p.returncode != 0, p.stdout
        assert "parley.conf is refused" in p.stdout and reason in p.stdout, p.stdout
        assert "restarting" not in p.stdout, p.stdout
        with open(path) as f:
            assert f.read() == text
        os.unlink(path)
    with open(conf) as f:
        assert f.read() == before
    assert u.get("/me")["id"] == u.id


if __name__ == "__main__":
    parley_test.run()

"""42 secret files: parley-api, parley-relay, parley-admin and parley-notify
refuse to start, rather than warn, when a file holding a key ([auth]
secret_file, [apns] key_file, [fcm] service_account_file) is open to its
group or others (mode & 077), and say which file and how to fix it (chmod
600). With the same files made private, the same programs get past that
point (the positive control).

Each program runs from the build dir with its own configuration in a
temporary directory: copies of the test stack's keys, PostgreSQL and Redis
on ports where nothing listens, its own socket and relay port, so a program
that does start touches nothing of the stack."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

import parley_test
import rest

BUILD = os.environ.get("PARLEY_BUILDDIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
ETC = os.path.join(rest.RUNDIR, "etc")
# Every program gets this long to exit with its error (ASan builds start slowly).
EXIT_S = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Setup:
    """A temporary configuration naming copies of the stack's key files."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="parley-secrets-")
        os.chmod(self.dir, 0o755)
        self.secret = self.copy(os.path.join(ETC, "secret"), "secret")
        self.apns = self.copy(os.path.join(ETC, "push", "apns.p8"), "apns.p8")
        self.fcm = self.copy(os.path.join(ETC, "push", "service-account.json"), "service-account.json")
        self.conf = os.path.join(self.dir, "parley.conf")
        dead = free_port()
        with open(self.conf, "w") as f:
            f.write("""[log]
level = debug
[database]
conninfo = host=127.0.0.1 port=%d dbname=parley user=parley connect_timeout=1
[redis]
host = 127.0.0.1
port = %d
[auth]
secret_file = %s
[api]
listen = %s/api.sock
threads = 1
[relay]
port = %d
[notify]
metrics_port = 0
[apns]
url = https://127.0.0.1:%d
key_file = %s
key_id = TESTKEY123
team_id = TESTTEAM12
topic = org.parley.test
[fcm]
url = https://127.0.0.1:%d
service_account_file = %s
""" % (dead, dead, self.secret, self.dir, free_port(), dead, self.apns, dead, self.fcm))

    def copy(self, src, name):
        dst = os.path.join(self.dir, name)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o600)
        return dst

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def env():
    """The environment without PARLEY_* overrides of the configuration
    (PARLEY_REDIS_PORT, set for the tests, would point at the stack)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}


def refuses(program, setup, path, *args):
    """Runs program; asserts it exits non-zero within EXIT_S seconds and its
    error names path and the chmod fix. A program that runs on is killed
    and the test fails."""
    cmd = [os.path.join(BUILD, program), "-c", setup.conf, *args]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env(), start_new_session=True)
    try:
        out, _ = p.communicate(timeout=EXIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise AssertionError("%s started with '%s' open to others (mode %04o):\n%s"
                             % (program, path, os.stat(path).st_mode & 0o7777, out[-2000:]))
    assert p.returncode != 0, "%s exited 0:\n%s" % (program, out[-2000:])
    assert path in out and "chmod 600" in out, "%s said:\n%s" % (program, out[-2000:])


def gets_past_the_keys(program, setup, sign):
    """Starts program with every key file private; waits until its log line
    sign shows it went past loading the keys, then stops it."""
    cmd = [os.path.join(BUILD, program), "-c", setup.conf]
    log = os.path.join(setup.dir, os.path.basename(program) + ".log")
    with open(log, "w") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             env=env(), start_new_session=True)
    try:
        def seen():
            assert p.poll() is None, "%s exited %s" % (program, p.returncode)
            with open(log) as f:
                return sign in f.read()
        parley_test.wait_for(seen, EXIT_S, "%s to log %r" % (program, sign))
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_a_secret_file_open_to_others_stops_api_relay_and_admin():
    s = Setup()
    try:
        for mode in (0o644, 0o640, 0o604):
            os.chmod(s.secret, mode)
            refuses("fcgi/parley-api", s, s.secret)
            refuses("relay/parley-relay", s, s.secret)
            refuses("admin/parley-admin", s, s.secret, "session", "nobody")
    finally:
        s.remove()


def test_a_push_key_open_to_others_stops_the_notifier():
    s = Setup()
    try:
        os.chmod(s.apns, 0o644)
        refuses("notify/parley-notify", s, s.apns)
        os.chmod(s.apns, 0o600)
        os.chmod(s.fcm, 0o640)
        refuses("notify/parley-notify", s, s.fcm)
    finally:
        s.remove()


def test_private_files_are_taken():
    s = Setup()
    try:
        gets_past_the_keys("notify/parley-notify", s, "fcm: pushes go to")
        gets_past_the_keys("relay/parley-relay", s, "cannot connect to postgresql")
    finally:
        s.remove()


if __name__ == "__main__":
    parley_test.run()

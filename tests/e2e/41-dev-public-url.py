"""41 dev stack from another machine: PARLEY_LISTEN sets nginx's listen
address and PARLEY_PUBLIC_URL the URL that discovery hands out relays under,
so a phone or an emulator on the developer's network can connect
(scripts/dev config prints what "up" would write, without touching the
stack); bad values are refused with a clear message. The running test stack
hands out relay URLs that work."""

import os

import parley_test
import rest
import ws
from parley_test import BASE_URL


def config(name, **env):
    """scripts/dev config NAME with the given PARLEY_* settings."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return parley_test.dev("config", name, check=False)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_listen_address_reaches_nginx():
    p = config("nginx", PARLEY_LISTEN="0.0.0.0")
    assert p.returncode == 0, p.stdout
    port = BASE_URL.rsplit(":", 1)[1]
    assert ("listen 0.0.0.0:%s;" % port) in p.stdout, p.stdout
    p = config("nginx", PARLEY_LISTEN="::")
    assert ("listen [::]:%s;" % port) in p.stdout, p.stdout


def test_public_url_names_every_relay():
    p = config("parley", PARLEY_PUBLIC_URL="http://192.0.2.7:8080/")
    assert p.returncode == 0, p.stdout
    assert "public_url = ws://192.0.2.7:8080/r/1/ws" in p.stdout, p.stdout
    p = config("relay2", PARLEY_PUBLIC_URL="https://chat.example.org")
    assert "public_url = wss://chat.example.org/r/2/ws" in p.stdout, p.stdout


def test_bad_settings_are_refused():
    p = config("nginx", PARLEY_LISTEN="everywhere")
    assert p.returncode != 0 and "PARLEY_LISTEN must be an IP address" in p.stdout, p.stdout
    p = config("parley", PARLEY_PUBLIC_URL="ftp://192.0.2.7")
    assert p.returncode != 0 and "PARLEY_PUBLIC_URL must be" in p.stdout, p.stdout


def test_discovered_url_connects():
    u = rest.new_user("dp")
    relay = u.get("/discover")["relay"]
    assert relay["url"].startswith(BASE_URL.replace("http://", "ws://") + "/r/"), relay
    s = ws.connect(u, url=relay["url"])
    assert s.welcome["user_id"] == u.id, s.welcome
    s.close()


if __name__ == "__main__":
    parley_test.run()

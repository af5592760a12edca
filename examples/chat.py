#!/usr/bin/python3
"""chat.py: a small Parley chat client, using only the public REST and WebSocket API.

  /usr/bin/python3 examples/chat.py --url http://127.0.0.1:8080 --user alice --password PW
      [--signup] [--to bob] [--send TEXT] [--count N] [--state FILE]

The state file (default chat-USER.json) keeps the token (the same device on every run), the
cursor and the outbox of unconfirmed sends. --count N: exit once N messages from others were
shown and every send is confirmed. Output lines: "[CONVERSATION_ID] SENDER: BODY" (newlines
in BODY as \\n), "* status" and "! error CODE (ref REF): MESSAGE". Needs python3-websockets.
"""
import argparse, asyncio, contextlib, json, os, secrets, sys, urllib.error, urllib.parse, urllib.request

import websockets


class Chat:
    def __init__(self, args):
        self.args = args
        self.state = {"token": None, "cursor": None, "outbox": []}
        if os.path.exists(args.state):
            with open(args.state) as f:
                self.state.update(json.load(f))
        self.seen = set()  # (conversation_id, message_id) of the messages shown
        self.names = {}    # user id -> username
        self.received = 0  # messages from others shown

    def save(self):
        with open(self.args.state + ".tmp", "w") as f:  # write, then rename: never half a file
            json.dump(self.state, f)
        os.replace(self.args.state + ".tmp", self.args.state)

    def api(self, method, path, body=None, allow=()):
        """One REST call under /api/v1: its JSON body, or None for an error status in allow.
        Other errors raise OSError, as network errors do: the reconnect loop retries them."""
        req = urllib.request.Request(self.args.url.rstrip("/") + "/api/v1" + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if self.state["token"]:
            req.add_header("Authorization", "Bearer " + self.state["token"])
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read() or "null")
        except urllib.error.HTTPError as e:  # the body is {"error": {code, message}}
            if e.code not in allow:
                raise OSError("%s %s: %d %s" % (method, path, e.code, e.read().decode())) from None

    def login(self):
        a = self.args
        if a.signup:  # 409: the name is taken (by us, on an earlier run)
            self.api("POST", "/users", {"username": a.user, "password": a.password}, allow=(409,))
        # The saved session while it works (401: expired or revoked) keeps the same device.
        me = self.state["token"] and self.api("GET", "/me", allow=(401,))
        if not me:
            self.state["token"] = None  # not sent with the login
            self.state["token"] = self.api("POST", "/sessions", {
                "username": a.user, "password": a.password,
                "device": {"platform": "web", "name": "chat.py"}})["token"]
            self.save()
            me = self.api("GET", "/me")
        self.me = me["id"]
        print("* logged in as %s (user %d)" % (a.user, self.me))

    def drop(self, client_msg_id):
        """Takes a send out of the outbox; returns whether it was there."""
        outbox = self.state["outbox"]
        self.state["outbox"] = [m for m in outbox if m["client_msg_id"] != client_msg_id]
        self.save()
        return len(self.state["outbox"]) < len(outbox)

    async def run(self):
        """Discovers a relay and connects; after a drop, again, with a backoff."""
        delay = 1
        while True:
            try:
                if self.state["token"] is None:
                    self.login()
                url = self.api("GET", "/discover")["relay"]["url"]  # relays come and go
                async with websockets.connect(url, subprotocols=["parley.v1"], open_timeout=10) as ws:
                    hello = {"type": "hello", "token": self.state["token"]}
                    if self.state["cursor"] is not None:  # else the device's stored cursor
                        hello["cursor"] = self.state["cursor"]
                    await ws.send(json.dumps(hello))
                    async for raw in ws:
                        frame = json.loads(raw)
                        if frame["type"] == "welcome":
                            print("* connected to %s (cursor %d)" % (url, frame["cursor"]))
                            delay = 1
                        if await self.handle(ws, frame):
                            return  # --count reached
                why = "closed with %s" % ws.close_code
            except websockets.ConnectionClosed as e:
                why = "closed with %s" % e.code
                if e.code in (4001, 4003):  # the token expired or was revoked: log in again
                    self.state["token"] = None
            except (OSError, ValueError, asyncio.TimeoutError, websockets.WebSocketException) as e:
                why = str(e) or type(e).__name__
            print("* disconnected (%s); reconnecting in %ds" % (why, delay))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)

    async def heartbeat(self, ws, interval):
        with contextlib.suppress(websockets.ConnectionClosed):  # the next socket has its own
            while True:
                await asyncio.sleep(interval)
                await ws.send(json.dumps({"type": "heartbeat"}))

    async def handle(self, ws, f):
        """Acts on one frame; returns True once --count is reached."""
        if f["type"] == "welcome":  # only now is the socket ours: start heartbeats, resend
            self.beat = asyncio.create_task(self.heartbeat(ws, f["heartbeat_interval"]))
            for item in self.state["outbox"]:  # unconfirmed sends go again, unchanged
                await ws.send(json.dumps(dict(item, type="send")))
        elif "seq" in f:  # an inbox event (message, edit, delete, reaction): show, save, ack
            key = (f["conversation_id"], f["message_id"])
            if f["type"] == "message" and key not in self.seen:
                self.seen.add(key)
                body = f["body"].replace("\n", "\\n")
                print("[%d] %s: %s" % (key[0], self.name(f["sender_id"]), body))
                self.received += f["sender_id"] != self.me
            self.state["cursor"] = f["seq"]
            self.save()
            await ws.send(json.dumps({"type": "ack", "seq": f["seq"]}))
        elif f["type"] == "sent" and self.drop(f["client_msg_id"]):
            print("* sent %s as message %d in [%d]"
                  % (f["client_msg_id"], f["message_id"], f["conversation_id"]))
        elif f["type"] == "error":
            code, ref = f["error"]["code"], f.get("ref")
            print("! error %s (ref %s): %s" % (code, ref, f["error"]["message"]))
            if code in ("rate_limited", "unavailable"):
                await ws.close()  # try later: the reconnect sends the outbox again
            elif ref:
                self.drop(ref)  # refused for good: sending it again would not help
        # presence, typing, read, conversation and friend frames are not shown
        n = self.args.count
        return n is not None and self.received >= n and not self.state["outbox"]

    def name(self, user_id):
        if user_id not in self.names:
            self.names[user_id] = self.api("GET", "/users/%d" % user_id)["username"]
        return self.names[user_id]


def main():
    p = argparse.ArgumentParser(description="A small Parley chat client.")
    for flag in ("--url", "--user", "--password"):
        p.add_argument(flag, required=True)
    for flag in ("--to", "--send", "--state"):
        p.add_argument(flag)
    p.add_argument("--signup", action="store_true")
    p.add_argument("--count", type=int)
    a = p.parse_args()
    if a.send is not None and not a.to:
        p.error("--send needs --to")
    a.state = a.state or "chat-%s.json" % a.user
    sys.stdout.reconfigure(line_buffering=True)  # each line at once, also into a pipe
    chat = Chat(a)
    try:
        chat.login()
        if a.to:  # an exact username sorts first among those it prefixes
            users = chat.api("GET", "/users?limit=1&q=" + urllib.parse.quote(a.to))["users"]
            if not users or users[0]["username"] != a.to:
                sys.exit("no user named %s" % a.to)
            conv = chat.api("POST", "/conversations", {"kind": "direct", "user_id": users[0]["id"]})
            print("* conversation %d with %s" % (conv["id"], a.to))
        if a.send is not None:  # kept in the outbox until its "sent" arrives
            chat.state["outbox"].append({"conversation_id": conv["id"],
                                         "client_msg_id": secrets.token_hex(8), "body": a.send})
            chat.save()
    except OSError as e:
        sys.exit("chat.py: %s" % e)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(chat.run())


if __name__ == "__main__":
    main()

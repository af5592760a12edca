// live.js: the live connection to a relay (PROTOCOL.md, "WebSocket" and
// "Long-poll").
//
// Finds a relay with GET /api/v1/discover, opens its WebSocket (subprotocol
// parley.v1), says hello with the device's cursor, acks what it received,
// heartbeats, and reconnects with backoff (asking discover again) when the
// socket drops. When the WebSocket cannot connect twice in a row it falls back
// to long-poll on the same relay (/poll beside /ws), and tries the WebSocket
// again now and then. The cursor (the last seq this device has) is kept in
// localStorage, so a reload resumes where the device left off.
//
// Events (detail is the frame or state):
//   frame   every server frame: the inbox events (message, edit, delete,
//           reaction, and any later kind: whatever carries a seq), sent,
//           presence, typing, read, conversation, friend, error. Inbox
//           events come in seq order, once, and move the cursor (and are
//           acked) whatever their kind. Long-poll brings inbox events only.
//   status  {state: "connecting"|"online"|"offline", mode: "ws"|"poll"|null}
//   ready   the connection (re)started: replay follows; apps refetch lists
//           and resend what is unsent.
//   unauthorized  the token was refused or revoked (close 4001/4003, 401).

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const WS_FAILURES_BEFORE_POLL = 2;
const WS_RETRY_FROM_POLL_MS = 60000;

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

export class Live extends EventTarget {
  constructor(api, deviceId) {
    super();
    this.api = api;
    this.cursorKey = `parley.cursor.${deviceId}`;
    const stored = Number(localStorage.getItem(this.cursorKey));
    this.cursor = Number.isFinite(stored) && stored > 0 ? stored : null;
    this.ws = null;
    this.welcomed = false;
    this.mode = null;
    this.state = 'offline';
    this.stopped = true;
    this.wsFailures = 0;
    this.lastWsTry = 0;
    this.wake = null;       // aborts the current wait or poll (online event)
    this.heartbeatTimer = null;
    this.ackTimer = null;
    this.socketSeq = 0;     // the highest seq received on the current socket
    this.onOnline = () => this.kick();
    this.onOffline = () => this.drop();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.loop();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.drop();
    this.setStatus('offline', null);
  }

  // Ends the current socket or poll; the loop reconnects (after backoff).
  drop() {
    if (this.ws) {
      try { this.ws.close(1000, 'client closing'); } catch { /* closed */ }
    }
    if (this.wake) this.wake.abort();
  }

  // Reconnects now instead of waiting for the backoff.
  kick() {
    this.attempt = 0;
    if (this.wake) this.wake.abort();
  }

  setStatus(state, mode) {
    if (state === this.state && mode === this.mode) return;
    this.state = state;
    this.mode = mode;
    this.dispatchEvent(new CustomEvent('status', { detail: { state, mode } }));
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  saveCursor(seq) {
    if (this.cursor !== null && seq <= this.cursor) return;
    this.cursor = seq;
    localStorage.setItem(this.cursorKey, String(seq));
  }

  // True when frames can go out on a live, authenticated WebSocket.
  get canSend() { return !!(this.ws && this.welcomed && this.ws.readyState === WebSocket.OPEN); }

  send(frame) {
    if (!this.canSend) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  async loop() {
    this.attempt = 0;
    while (!this.stopped) {
      this.setStatus('connecting', this.mode);
      let relay = null;
      try {
        relay = (await this.api.discover()).relay;
      } catch (e) {
        if (e.status === 401) { this.emit('unauthorized', e); return; }
      }
      if (this.stopped) return;
      if (relay) {
        const usePoll = this.wsFailures >= WS_FAILURES_BEFORE_POLL &&
          Date.now() - this.lastWsTry < WS_RETRY_FROM_POLL_MS;
        const outcome = usePoll ? await this.runPoll(relay.url) : await this.runSocket(relay.url);
        if (this.stopped) return;
        if (outcome === 'unauthorized') { this.emit('unauthorized'); return; }
        if (outcome === 'retry-now') continue;
        if (outcome === 'worked') this.attempt = 0;
      }
      this.setStatus('offline', this.mode);
      const wait = BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)];
      this.wake = new AbortController();
      await sleep(wait * (0.75 + Math.random() * 0.5), this.wake.signal);
      this.wake = null;
    }
  }

  // One WebSocket, from connect to close. Resolves with "worked" (it was
  // welcomed), "failed" or "unauthorized".
  runSocket(url) {
    this.lastWsTry = Date.now();
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new WebSocket(url, 'parley.v1');
      } catch {
        this.wsFailures++;
        resolve('failed');
        return;
      }
      this.ws = ws;
      this.welcomed = false;
      this.socketSeq = 0;
      ws.onopen = () => {
        const hello = { type: 'hello', token: this.api.token };
        if (this.cursor !== null) hello.cursor = this.cursor;
        ws.send(JSON.stringify(hello));
      };
      ws.onmessage = (ev) => {
        let f;
        try { f = JSON.parse(ev.data); } catch { return; }
        this.onSocketFrame(f);
      };
      ws.onclose = (ev) => {
        clearInterval(this.heartbeatTimer);
        clearTimeout(this.ackTimer);
        const welcomed = this.welcomed;
        if (this.ws === ws) { this.ws = null; this.welcomed = false; }
        if (ev.code === 4001 || ev.code === 4003) { resolve('unauthorized'); return; }
        if (welcomed) { this.wsFailures = 0; resolve('worked'); return; }
        this.wsFailures++;
        resolve('failed');
      };
    });
  }

  onSocketFrame(f) {
    if (f.type === 'welcome') {
      this.welcomed = true;
      this.wsFailures = 0;
      if (typeof f.cursor === 'number') {
        // The effective cursor (clamped when ours was above the head).
        this.cursor = f.cursor;
        localStorage.setItem(this.cursorKey, String(f.cursor));
      }
      const every = Math.max(1, Number(f.heartbeat_interval) || 5) * 1000;
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = setInterval(() => this.send({ type: 'heartbeat' }), every);
      this.setStatus('online', 'ws');
      this.emit('ready', { mode: 'ws', user_id: f.user_id });
      return;
    }
    // An inbox event, of any kind (PROTOCOL.md: a kind this client does not
    // know still moves the cursor past its seq).
    if (typeof f.seq === 'number') {
      if (this.cursor !== null && f.seq <= this.cursor) return; // never twice
      this.saveCursor(f.seq);
      this.socketSeq = Math.max(this.socketSeq, f.seq);
      this.scheduleAck();
    }
    this.emit('frame', f);
  }

  scheduleAck() {
    if (this.ackTimer) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      if (this.socketSeq > 0) this.send({ type: 'ack', seq: this.socketSeq });
    }, 200);
  }

  // Long-poll until it fails or it is time to try the WebSocket again.
  // Resolves like runSocket, or "retry-now" to go back to the WebSocket.
  async runPoll(wsUrl) {
    const pollUrl = wsUrl.replace(/^ws/, 'http').replace(/\/ws$/, '/poll');
    const started = Date.now();
    let ready = false;
    while (!this.stopped) {
      if (Date.now() - started > WS_RETRY_FROM_POLL_MS) return 'retry-now';
      // The first poll answers at once, so the app knows the relay is there.
      let q = `timeout=${ready ? 25 : 0}&limit=100`;
      if (this.cursor !== null) q = `after=${this.cursor}&` + q;
      this.wake = new AbortController();
      let res;
      try {
        res = await fetch(`${pollUrl}?${q}`, {
          headers: { Authorization: 'Bearer ' + this.api.token },
          signal: this.wake.signal,
        });
      } catch {
        this.wake = null;
        return ready ? 'worked' : 'failed';
      }
      this.wake = null;
      if (res.status === 401) return 'unauthorized';
      if (!res.ok) return ready ? 'worked' : 'failed';
      let data;
      try { data = await res.json(); } catch { return 'failed'; }
      if (!ready) {
        ready = true;
        this.setStatus('online', 'poll');
        this.emit('ready', { mode: 'poll' });
      }
      for (const ev of data.events || []) {
        if (this.cursor !== null && ev.seq <= this.cursor) continue;
        this.saveCursor(ev.seq);
        // Each event names its kind; "message" is for a server that predates kinds.
        this.emit('frame', { type: 'message', ...ev });
      }
      if (typeof data.cursor === 'number') this.saveCursor(data.cursor);
    }
    return 'worked';
  }
}

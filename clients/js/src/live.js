// live.js: the live connection to a relay (PROTOCOL.md, "WebSocket" and
// "Long-poll").
//
// Finds a relay with GET /api/v1/discover, opens its WebSocket (subprotocol
// parley.v1), says hello with the device's cursor, acks what it received,
// heartbeats, and reconnects with exponential backoff and jitter (asking
// discover again) when the socket drops. When the WebSocket cannot connect
// wsFailuresBeforePoll times in a row it falls back to long-poll on the same
// relay (/poll beside /ws), and goes back to try the WebSocket every
// wsRetryFromPollMs. The cursor (the last seq this device has) is kept in the
// storage under "<prefix>cursor.<device_id>", so a reload or a restart
// resumes where the device left off: the relay replays only what is missing.
//
// Events (event.detail is the frame or the state):
//   frame         every server frame: the inbox events (message, edit,
//                 delete, reaction, and any later kind: whatever carries a
//                 seq), sent, presence, typing, read, conversation, friend,
//                 error. Inbox events come in seq order, once, and move the
//                 cursor (and are acked) whatever their kind. Long-poll
//                 brings inbox events only.
//   status        {state: "connecting"|"online"|"offline", mode: "ws"|"poll"|null}
//   ready         {mode, user_id?, cursor}: the connection (re)started and
//                 the replay follows; apps refetch their lists (live-only
//                 events of the gap are lost) and resend what is unsent.
//   unauthorized  the token was refused or revoked (close 4001 or 4003, 401).

import { ParleyEvent } from './events.js';
import { defaultStorage } from './storage.js';

const OPEN = 1; // WebSocket.OPEN, the same in every implementation

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
});

/**
 * The wait before reconnect attempt number `attempt` (0 first): initialMs
 * doubled each time up to maxMs, times a jitter of 0.75..1.25 so that a
 * relay's clients do not all come back at once.
 */
export function backoffDelay(attempt, { initialMs = 500, maxMs = 15000 } = {}, random = Math.random) {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.75 + random() * 0.5));
}

export class Live extends EventTarget {
  /**
   * @param {import('./api.js').Api} api the REST client (discover, the token)
   * @param {number|string} deviceId the session's device_id (names the cursor's key)
   * @param {object} [options] see LiveOptions in index.d.ts
   */
  constructor(api, deviceId, options = {}) {
    super();
    this.api = api;
    this.storage = options.storage || api.storage || defaultStorage();
    this.WebSocketImpl = options.WebSocket !== undefined ? options.WebSocket : (globalThis.WebSocket || null);
    this.fetchFn = options.fetch || api.fetchFn || ((...a) => globalThis.fetch(...a));
    this.region = options.region || null;
    this.backoff = { initialMs: 500, maxMs: 15000, ...(options.backoff || {}) };
    this.wsFailuresBeforePoll = options.wsFailuresBeforePoll ?? 2;
    this.wsRetryFromPollMs = options.wsRetryFromPollMs ?? 60000;
    this.pollTimeoutS = options.pollTimeoutS ?? 25;
    this.ackDelayMs = options.ackDelayMs ?? 200;
    this.onlineTarget = options.onlineTarget !== undefined ? options.onlineTarget
      : (typeof globalThis.addEventListener === 'function' && 'onLine' in (globalThis.navigator || {}) ? globalThis : null);
    this.cursorKey = `${api.prefix ?? 'parley.'}cursor.${deviceId}`;
    let stored = null;
    try { stored = Number(this.storage.getItem(this.cursorKey)); } catch { stored = null; }
    this.cursor = Number.isFinite(stored) && stored > 0 ? stored : null;
    if (typeof options.cursor === 'number' && options.cursor >= 0) this.cursor = options.cursor;
    this.ws = null;
    this.welcomed = false;
    this.mode = null;
    this.state = 'offline';
    this.stopped = true;
    this.attempt = 0;
    this.wsFailures = 0;
    this.lastWsTry = 0;
    this.wake = null;       // aborts the current wait or poll
    this.heartbeatTimer = null;
    this.ackTimer = null;
    this.socketSeq = 0;     // the highest seq received on the current socket
    this.userId = null;
    this.onOnline = () => this.kick();
    this.onOffline = () => this.drop();
  }

  /** Starts connecting (and keeps reconnecting until stop()). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.onlineTarget) {
      this.onlineTarget.addEventListener('online', this.onOnline);
      this.onlineTarget.addEventListener('offline', this.onOffline);
    }
    this.loop();
  }

  /** Closes the connection for good; start() opens it again. */
  stop() {
    if (this.stopped) return;
    this.stopped = true;
    if (this.onlineTarget) {
      this.onlineTarget.removeEventListener('online', this.onOnline);
      this.onlineTarget.removeEventListener('offline', this.onOffline);
    }
    this.drop();
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.setStatus('offline', null);
  }

  /** Ends the current socket or poll; the loop reconnects (after backoff). */
  drop() {
    if (this.ws) {
      try { this.ws.close(1000, 'client closing'); } catch { /* closed */ }
    }
    if (this.wake) this.wake.abort();
  }

  /** Reconnects now instead of waiting for the backoff. */
  kick() {
    this.attempt = 0;
    if (this.wake) this.wake.abort();
  }

  setStatus(state, mode) {
    if (state === this.state && mode === this.mode) return;
    this.state = state;
    this.mode = mode;
    this.emit('status', { state, mode });
  }

  emit(type, detail) { this.dispatchEvent(new ParleyEvent(type, detail)); }

  saveCursor(seq) {
    if (this.cursor !== null && seq <= this.cursor) return;
    this.storeCursor(seq);
  }

  storeCursor(seq) {
    this.cursor = seq;
    try { this.storage.setItem(this.cursorKey, String(seq)); } catch { /* full */ }
  }

  /** True when frames can go out on a live, authenticated WebSocket. */
  get canSend() { return !!(this.ws && this.welcomed && this.ws.readyState === OPEN); }

  /** Sends a frame on the WebSocket; false when there is none (offline, long-poll). */
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
        relay = (await this.api.discover(this.region)).relay;
      } catch (e) {
        if (e.status === 401) { this.unauthorized(); return; }
      }
      if (this.stopped) return;
      if (relay && relay.url) {
        const usePoll = !this.WebSocketImpl || (this.wsFailures >= this.wsFailuresBeforePoll &&
          Date.now() - this.lastWsTry < this.wsRetryFromPollMs);
        const outcome = usePoll ? await this.runPoll(relay.url) : await this.runSocket(relay.url);
        if (this.stopped) return;
        if (outcome === 'unauthorized') { this.unauthorized(); return; }
        if (outcome === 'retry-now') continue;
        if (outcome === 'worked') this.attempt = 0;
      }
      this.setStatus('offline', this.mode);
      const wait = backoffDelay(this.attempt++, this.backoff);
      this.wake = new AbortController();
      await sleep(wait, this.wake.signal);
      this.wake = null;
    }
  }

  unauthorized() {
    this.stop();
    this.emit('unauthorized', null);
  }

  // One WebSocket, from connect to close. Resolves with "worked" (it was
  // welcomed), "failed" or "unauthorized".
  runSocket(url) {
    this.lastWsTry = Date.now();
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new this.WebSocketImpl(url, 'parley.v1');
      } catch {
        this.wsFailures++;
        resolve('failed');
        return;
      }
      this.ws = ws;
      this.welcomed = false;
      this.socketSeq = 0;
      // An implementation that throws on an unheard error (Node's ws) must
      // have a listener: the close that follows tells what happened.
      ws.onerror = () => {};
      ws.onopen = () => {
        const hello = { type: 'hello', token: this.api.token };
        if (this.cursor !== null) hello.cursor = this.cursor;
        ws.send(JSON.stringify(hello));
      };
      ws.onmessage = (ev) => {
        let f;
        try { f = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data)); } catch { return; }
        if (this.ws === ws) this.onSocketFrame(f);
      };
      ws.onclose = (ev) => {
        clearInterval(this.heartbeatTimer);
        clearTimeout(this.ackTimer);
        this.ackTimer = null;
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
      this.userId = f.user_id ?? null;
      // The effective cursor (clamped when ours was above the head).
      if (typeof f.cursor === 'number') this.storeCursor(f.cursor);
      const every = Math.max(1, Number(f.heartbeat_interval) || 5) * 1000;
      clearInterval(this.heartbeatTimer);
      this.heartbeatTimer = setInterval(() => this.send({ type: 'heartbeat' }), every);
      this.setStatus('online', 'ws');
      this.emit('ready', { mode: 'ws', user_id: f.user_id, device_id: f.device_id, cursor: this.cursor });
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
    }, this.ackDelayMs);
  }

  // Long-poll until it fails or it is time to try the WebSocket again.
  // Resolves like runSocket, or "retry-now" to go back to the WebSocket.
  async runPoll(wsUrl) {
    const pollUrl = wsUrl.replace(/^ws/, 'http').replace(/\/ws$/, '/poll');
    const started = Date.now();
    let ready = false;
    while (!this.stopped) {
      if (this.WebSocketImpl && Date.now() - started > this.wsRetryFromPollMs) return 'retry-now';
      // The first poll answers at once, so the app knows the relay is there.
      let q = `timeout=${ready ? this.pollTimeoutS : 0}&limit=100`;
      if (this.cursor !== null) q = `after=${this.cursor}&` + q;
      this.wake = new AbortController();
      let res;
      try {
        res = await this.fetchFn(`${pollUrl}?${q}`, {
          headers: { Authorization: 'Bearer ' + this.api.token },
          signal: this.wake.signal,
        });
      } catch {
        this.wake = null;
        return ready ? 'worked' : 'failed';
      }
      if (res.status === 401) { this.wake = null; return 'unauthorized'; }
      if (!res.ok) { this.wake = null; return ready ? 'worked' : 'failed'; }
      let data;
      try { data = await res.json(); } catch { this.wake = null; return ready ? 'worked' : 'failed'; }
      this.wake = null;
      if (this.stopped) break;
      if (!ready) {
        ready = true;
        this.setStatus('online', 'poll');
        this.emit('ready', { mode: 'poll', cursor: this.cursor });
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

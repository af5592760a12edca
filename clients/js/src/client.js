// client.js: ParleyClient, what an app holds: the REST API, the live
// connection and the outbox, tied together, with one typed event per kind of
// server frame.
//
// The session is kept in the storage: a client made on a page reload (or a
// restarted program) with the same storage is still logged in, resumes from
// the device's cursor and sends again what was left unsent.

import { Api } from './api.js';
import { ApiError } from './errors.js';
import { ParleyEvent } from './events.js';
import { Live } from './live.js';
import { Outbox } from './outbox.js';
import { defaultStorage } from './storage.js';

/** The server frames dispatched under their own type. */
export const FRAME_EVENTS = ['message', 'edit', 'delete', 'reaction', 'sent', 'presence', 'typing',
  'read', 'conversation', 'friend', 'error'];

export class ParleyClient extends EventTarget {
  /** @param {object} [options] see ParleyClientOptions in index.d.ts */
  constructor(options = {}) {
    super();
    this.options = { ...options, storage: options.storage || defaultStorage() };
    this.storage = this.options.storage;
    this.api = new Api(this.options);
    this.api.onUnauthorized = (e) => this.unauthorized(e);
    this.live = null;
    this.pending = null;          // the connect() calls waiting for "ready"
    this.unauthorizedSent = false;
    this.outbox = new Outbox({
      socket: (frame) => !!(this.live && this.live.send(frame)),
      post: (item) => this.api.sendMessage(item.conversation_id, item.client_msg_id, item.body,
        Outbox.extrasOf(item)),
    }, { storage: this.storage, retryMs: options.outboxRetryMs, tickMs: options.outboxTickMs });
    this.outbox.addEventListener('confirmed', (e) => {
      // The WebSocket's own "sent" frame is dispatched as it comes; a REST
      // send's answer is the same news.
      if (e.detail.via !== 'rest') return;
      const m = e.detail.message || {};
      this.emit('sent', { client_msg_id: e.detail.item.client_msg_id, conversation_id: m.conversation_id,
        message_id: m.message_id, created_at: m.created_at });
    });
    this.loadOutbox();
  }

  /** The session {token, expires_at, user, device_id}, or null. */
  get session() { return this.api.session; }
  /** The logged-in user {id, username, display_name}, or null. */
  get user() { return (this.api.session && this.api.session.user) || null; }
  /** The live connection's state and mode. */
  get state() { return this.live ? this.live.state : 'offline'; }
  get mode() { return this.live ? this.live.mode : null; }
  /** The last seq this device has, or null before the first connection. */
  get cursor() { return this.live ? this.live.cursor : null; }

  emit(type, detail) { this.dispatchEvent(new ParleyEvent(type, detail)); }

  loadOutbox() {
    const u = this.user;
    this.outbox.load(u ? `${this.api.prefix}outbox.${u.id}` : null);
  }

  signup(username, password, display_name) { return this.api.signup(username, password, display_name); }

  /** Logs in (a new device each time) and loads that user's outbox. */
  async login(username, password, device) {
    this.close();
    const r = await this.api.login(username, password, device);
    this.unauthorizedSent = false;
    this.loadOutbox();
    return r;
  }

  /**
   * Closes the connection, ends the session on the server and forgets it.
   * The user's unsent messages stay in the storage for their next login.
   */
  async logout() {
    this.close();
    await this.api.logout();
    this.outbox.load(null);
  }

  /**
   * Starts the live connection (discover, hello with the cursor, the replay)
   * and keeps it up, reconnecting, until close(). options.cursor starts from
   * that seq instead of the one stored. Resolves with the first "ready"
   * detail; rejects with an ApiError "unauthorized" when the token is refused
   * (or "not_logged_in" without a session), and with "aborted" when close()
   * came first. The promise never goes unhandled: ignoring it is fine.
   */
  connect(options = {}) {
    const p = new Promise((resolve, reject) => {
      if (!this.api.token || !this.session) {
        reject(new ApiError(0, 'not_logged_in', 'log in first'));
        return;
      }
      if (this.live && !this.live.stopped) {
        if (this.live.state === 'online') resolve({ mode: this.live.mode, cursor: this.live.cursor });
        else this.pending = { resolve, reject, prev: this.pending };
        return;
      }
      this.pending = { resolve, reject };
      this.live = new Live(this.api, this.session.device_id, { ...this.options, ...options });
      const live = this.live;
      live.addEventListener('frame', (e) => this.onFrame(e.detail));
      live.addEventListener('status', (e) => this.emit('status', e.detail));
      live.addEventListener('ready', (e) => this.onReady(e.detail));
      live.addEventListener('unauthorized', () => this.unauthorized(
        new ApiError(401, 'unauthorized', 'the session was refused or revoked')));
      this.api.scheduleRefresh();
      this.outbox.start();
      live.start();
    });
    p.catch(() => {});
    return p;
  }

  settlePending(ok, value) {
    for (let w = this.pending; w; w = w.prev) (ok ? w.resolve : w.reject)(value);
    this.pending = null;
  }

  /** Closes the live connection and stops every timer; the session stays. */
  close() {
    this.outbox.stop();
    this.api.stopRefresh();
    if (this.live) {
      const live = this.live;
      this.live = null;
      live.stop();
    }
    this.settlePending(false, new ApiError(0, 'aborted', 'the connection was closed'));
  }

  onReady(detail) {
    // Replays bring every inbox event of the gap; the live-only ones are
    // lost, which is why apps refetch their lists on "ready".
    this.outbox.flush(true);
    this.emit('ready', detail);
    this.settlePending(true, detail);
  }

  onFrame(f) {
    if (f.type === 'sent') this.outbox.confirm(f.client_msg_id, f, 'ws');
    else if (f.type === 'message' && f.client_msg_id && this.user && f.sender_id === this.user.id) {
      this.outbox.confirm(f.client_msg_id, f, 'inbox');
    } else if (f.type === 'error' && f.ref) this.outbox.refused(f.ref, f.error);
    this.emit('frame', f);
    if (FRAME_EVENTS.includes(f.type)) this.emit(f.type, f);
  }

  unauthorized(error) {
    if (!this.session && this.unauthorizedSent) return;
    this.unauthorizedSent = true;
    this.settlePending(false, error);
    this.close();
    this.api.saveSession(null);
    this.outbox.load(null);
    this.emit('unauthorized', { error });
  }

  /**
   * Sends a message through the outbox: over the WebSocket when it is up,
   * else over REST, again after every reconnection until confirmed.
   * options: {reply_to, attachment_ids, attachments, meta, client_msg_id}.
   * Returns {item, promise}: see Outbox.add. Until close(), the outbox
   * retries on a timer while a send waits.
   */
  send(conversation_id, body, options = {}) {
    this.outbox.start();
    return this.outbox.add({ ...options, conversation_id, body });
  }

  /** Says the user is typing in a conversation (WebSocket only; false without). */
  typing(conversation_id) {
    return !!(this.live && this.live.send({ type: 'typing', conversation_id }));
  }

  /** A read receipt: on the WebSocket, else POST .../read. */
  async markRead(conversation_id, message_id) {
    if (this.live && this.live.send({ type: 'read', conversation_id, message_id })) return null;
    return this.api.markRead(conversation_id, message_id);
  }

  /** Reconnects now rather than after the backoff. */
  reconnect() {
    if (this.live) { this.live.kick(); this.live.drop(); }
  }
}

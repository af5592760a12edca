// outbox.js: own messages waiting for the server to confirm them.
//
// A send gets a client_msg_id when it is queued and keeps it until the
// server confirms it: the WebSocket's "sent" frame, the REST answer, or the
// sender's own copy arriving as an inbox event. Until then it is sent again
// on every (re)connection and every retryMs, always with the same
// client_msg_id, so the server's idempotency (PROTOCOL.md: the same
// client_msg_id and body again answers with the original) makes it land once
// however often it went out. The queue is kept in the storage under
// "<prefix>outbox.<user_id>", so a reload or a restart loses no unsent
// message; it is sent again on the next connection.
//
// A send the server refuses for good (bad_request, forbidden, not_found,
// too_large, conflict...) stays queued with failed set, until retry() or
// discard(). What may work later (the network, unavailable, rate_limited,
// internal) is simply tried again.
//
// Events (event.detail):
//   confirmed  {item, message, via: "ws"|"rest"|"inbox"}: the server stored it;
//              message has at least conversation_id, message_id, created_at
//   failed     {item, error}: refused for good (error is an ApiError)
//   change     {items}: the queue changed (added, confirmed, failed, removed)

import { ApiError, frameError } from './errors.js';
import { ParleyEvent } from './events.js';
import { defaultStorage, newClientMsgId, readJson, writeJson } from './storage.js';

// What an item keeps in the storage; the rest is this process's state.
const KEPT = ['conversation_id', 'client_msg_id', 'body', 'created_at', 'failed', 'error',
  'reply_to', 'attachment_ids', 'attachments', 'meta'];

export class Outbox extends EventTarget {
  /**
   * @param {object} transport how items go out:
   *   socket(frame) -> boolean: sends a WebSocket frame, false when there is no socket;
   *   post(item) -> Promise<message>: the REST send.
   * @param {object} [options] {storage, retryMs (8000), tickMs (4000)}
   */
  constructor(transport, options = {}) {
    super();
    this.transport = transport;
    this.storage = options.storage || defaultStorage();
    this.retryMs = options.retryMs ?? 8000;
    this.tickMs = options.tickMs ?? 4000;
    this.key = null;
    /** @type {Array<object>} the queue, oldest first */
    this.items = [];
    this.waiters = new Map(); // client_msg_id -> [{resolve, reject}]
    this.timer = null;
    this.enabled = false;
  }

  /** Reads the queue kept under key (a user's); null empties it. */
  load(key) {
    this.key = key;
    const stored = key ? readJson(this.storage, key, []) : [];
    this.items = Array.isArray(stored) ? stored.filter((o) => o && o.client_msg_id) : [];
    for (const o of this.items) o.lastTry = 0;
    this.changed(false);
  }

  save() {
    if (!this.key) return;
    writeJson(this.storage, this.key, this.items.map((o) => {
      const kept = {};
      for (const k of KEPT) if (o[k] !== undefined) kept[k] = o[k];
      return kept;
    }));
  }

  changed(save = true) {
    if (save) this.save();
    this.arm();
    this.dispatchEvent(new ParleyEvent('change', { items: this.items }));
  }

  /** The queued item with that client_msg_id, or undefined. */
  get(client_msg_id) { return this.items.find((o) => o.client_msg_id === client_msg_id); }

  /**
   * Queues a send and tries it at once. fields: {conversation_id, body,
   * reply_to?, attachment_ids?, attachments? (objects with an id, kept for
   * display), meta? (anything of the app's, kept), client_msg_id?}. Returns
   * {item, promise}; the promise resolves with the confirmation's message
   * and rejects with an ApiError when the send is refused for good (or
   * discarded). It never goes unhandled: ignoring it is fine.
   */
  add(fields) {
    const item = {
      conversation_id: fields.conversation_id,
      client_msg_id: fields.client_msg_id || newClientMsgId(),
      body: fields.body ?? '',
      created_at: new Date().toISOString(),
      lastTry: 0,
    };
    if (fields.reply_to) item.reply_to = fields.reply_to;
    if (fields.attachment_ids && fields.attachment_ids.length) item.attachment_ids = [...fields.attachment_ids];
    if (fields.attachments && fields.attachments.length) item.attachments = fields.attachments;
    if (fields.meta !== undefined) item.meta = fields.meta;
    this.items.push(item);
    this.changed();
    const promise = this.wait(item.client_msg_id);
    this.trySend(item);
    return { item, promise };
  }

  wait(client_msg_id) {
    const p = new Promise((resolve, reject) => {
      const list = this.waiters.get(client_msg_id) || [];
      list.push({ resolve, reject });
      this.waiters.set(client_msg_id, list);
    });
    p.catch(() => {});
    return p;
  }

  settle(client_msg_id, ok, value) {
    const list = this.waiters.get(client_msg_id);
    if (!list) return;
    this.waiters.delete(client_msg_id);
    for (const w of list) (ok ? w.resolve : w.reject)(value);
  }

  /** What a send carries besides its body: the message it answers, its files. */
  static extrasOf(item) {
    const x = {};
    if (item.reply_to) x.reply_to = item.reply_to;
    const ids = item.attachment_ids || (item.attachments || []).map((f) => f.id);
    if (ids.length) x.attachment_ids = ids;
    return x;
  }

  trySend(item) {
    if (item.failed) return;
    item.lastTry = Date.now();
    const frame = { type: 'send', conversation_id: item.conversation_id,
      client_msg_id: item.client_msg_id, body: item.body, ...Outbox.extrasOf(item) };
    if (this.transport.socket(frame)) return; // "sent" confirms
    // No WebSocket (long-poll, or reconnecting): the REST endpoint has the
    // same semantics. One REST send at a time per item.
    if (item.posting) return;
    item.posting = true;
    this.transport.post(item).then((m) => {
      item.posting = false;
      this.confirm(item.client_msg_id, m, 'rest');
    }, (e) => {
      item.posting = false;
      this.refused(item.client_msg_id, e);
    });
  }

  /** Sends every unsent item again; force: also those tried a moment ago. */
  flush(force = false) {
    const now = Date.now();
    for (const item of [...this.items]) {
      if (!item.failed && (force || now - (item.lastTry || 0) > this.retryMs)) this.trySend(item);
    }
  }

  /**
   * Retries now and then, until stop(). The timer runs only while a send
   * waits (so a Node program whose sends are all confirmed can end).
   */
  start() {
    this.enabled = true;
    this.arm();
  }

  stop() {
    this.enabled = false;
    this.arm();
  }

  arm() {
    const waiting = this.enabled && this.items.some((o) => !o.failed);
    if (waiting && !this.timer) this.timer = setInterval(() => this.flush(false), this.tickMs);
    else if (!waiting && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  /**
   * The server stored the send client_msg_id as message: it leaves the
   * queue. Returns the item, or null when it was not queued here.
   */
  confirm(client_msg_id, message, via) {
    const i = this.items.findIndex((o) => o.client_msg_id === client_msg_id);
    if (i < 0) return null;
    const item = this.items[i];
    this.items.splice(i, 1);
    this.changed();
    this.dispatchEvent(new ParleyEvent('confirmed', { item, message, via }));
    this.settle(client_msg_id, true, message);
    return item;
  }

  /**
   * The server refused the send client_msg_id (an ApiError, or the error
   * object of an "error" frame): retried later when that may work, else
   * marked failed.
   */
  refused(client_msg_id, error) {
    const item = this.get(client_msg_id);
    if (!item) return;
    const e = error instanceof ApiError ? error : frameError(error);
    if (e.retryable) return; // the timer or the next connection sends it again
    item.failed = true;
    item.error = { code: e.code, message: e.message };
    this.changed();
    this.dispatchEvent(new ParleyEvent('failed', { item, error: e }));
    this.settle(client_msg_id, false, e);
  }

  /** Tries a failed item again; returns the promise of its confirmation. */
  retry(client_msg_id) {
    const item = this.get(client_msg_id);
    if (!item) return Promise.reject(new ApiError(0, 'not_found', 'no such unsent message'));
    item.failed = false;
    delete item.error;
    this.changed();
    const p = this.wait(client_msg_id);
    this.trySend(item);
    return p;
  }

  /** Drops an item unsent (its promise rejects with code "discarded"). */
  discard(client_msg_id) {
    const i = this.items.findIndex((o) => o.client_msg_id === client_msg_id);
    if (i < 0) return false;
    this.items.splice(i, 1);
    this.changed();
    this.settle(client_msg_id, false, new ApiError(0, 'discarded', 'the message was discarded unsent'));
    return true;
  }
}

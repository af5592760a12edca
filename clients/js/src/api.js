// api.js: Parley's REST API (PROTOCOL.md, "REST, under /api/v1"), with the
// session's bearer token.
//
// One method per endpoint. Each resolves with the answer's JSON (null for
// 204) or throws an ApiError; see errors.js. The session ({token,
// expires_at, user, device_id}) is kept in the storage under
// "<prefix>session", so a reload or a restart stays logged in, and the
// token is refreshed a minute before it expires (POST /sessions/refresh,
// same session and device).

import { ApiError } from './errors.js';
import { defaultStorage, readJson, writeJson } from './storage.js';

const REFRESH_BEFORE_MS = 60000;

function unrefTimer(t) {
  if (t && typeof t.unref === 'function') t.unref();
  return t;
}

export class Api {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the site's origin ("https://chat.example.org");
   *   "" (the default) for the page's own origin
   * @param {typeof fetch} [options.fetch] default: the global fetch
   * @param {Storage} [options.storage] default: localStorage, else memory
   * @param {string} [options.storagePrefix] default "parley."
   * @param {object} [options.device] what POST /sessions says of this device:
   *   {platform, push_token?, name?}; default {platform: "web", name: the user agent}
   * @param {*} [options.XMLHttpRequest] for upload progress; default the global one
   */
  constructor(options = {}) {
    this.base = String(options.baseUrl || '').replace(/\/+$/, '') + '/api/v1';
    this.fetchFn = options.fetch || ((...a) => globalThis.fetch(...a));
    this.storage = options.storage || defaultStorage();
    this.prefix = options.storagePrefix ?? 'parley.';
    this.device = options.device || null;
    this.XHR = options.XMLHttpRequest || globalThis.XMLHttpRequest || null;
    /** Called with the ApiError of a 401 to an authenticated request. */
    this.onUnauthorized = null;
    this.refreshTimer = null;
    this.session = readJson(this.storage, this.prefix + 'session', null);
  }

  /** The bearer token, or null when logged out. */
  get token() { return (this.session && this.session.token) || null; }

  /** Keeps session (or forgets it, with null) in memory and in the storage. */
  saveSession(session) {
    this.session = session || null;
    if (session) writeJson(this.storage, this.prefix + 'session', session);
    else {
      try { this.storage.removeItem(this.prefix + 'session'); } catch { /* refused */ }
    }
    this.scheduleRefresh();
  }

  /** Refreshes the token a minute before it expires; stopRefresh() stops. */
  scheduleRefresh() {
    this.stopRefresh();
    if (!this.session || !this.session.expires_at) return;
    const ms = Date.parse(this.session.expires_at) - Date.now() - REFRESH_BEFORE_MS;
    if (!(ms > 0)) return;
    this.refreshTimer = unrefTimer(setTimeout(() => {
      this.refreshTimer = null;
      this.refresh().catch(() => { /* a 401 goes to onUnauthorized */ });
    }, Math.min(ms, 0x7fffffff)));
  }

  stopRefresh() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  /**
   * One request. body (JSON) is sent when not undefined. auth: false sends
   * no token (signup, login). signal: an AbortSignal.
   */
  async request(method, path, body, { auth = true, signal } = {}) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && this.token) headers.Authorization = 'Bearer ' + this.token;
    let res;
    try {
      res = await this.fetchFn(this.base + path, {
        method, headers, signal,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (e && e.name === 'AbortError') throw new ApiError(0, 'aborted', 'the request was cancelled');
      throw new ApiError(0, 'network', 'the server cannot be reached');
    }
    if (res.status === 204) return null;
    if (!res.ok) throw await this.errorOf(res, auth);
    try { return await res.json(); } catch { return null; }
  }

  /** The ApiError a failed answer stands for; a 401 calls onUnauthorized. */
  async errorOf(res, auth = true) {
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    const err = (data && data.error) || {};
    const e = new ApiError(res.status, err.code || 'http_' + res.status,
      err.message || res.statusText, Number(res.headers.get('Retry-After')) || 0);
    if (res.status === 401 && auth && this.token && this.onUnauthorized) this.onUnauthorized(e);
    return e;
  }

  /** A file the API serves to the bearer of the token, as a Blob. */
  async blob(path) {
    let res;
    try {
      res = await this.fetchFn(this.base + path,
        { headers: this.token ? { Authorization: 'Bearer ' + this.token } : {} });
    } catch {
      throw new ApiError(0, 'network', 'the server cannot be reached');
    }
    if (!res.ok) throw await this.errorOf(res);
    try {
      return await res.blob();
    } catch {
      throw new ApiError(0, 'network', 'the download was cut off');
    }
  }

  get(path, opts) { return this.request('GET', path, undefined, opts); }
  post(path, body, opts) { return this.request('POST', path, body, opts); }
  patch(path, body) { return this.request('PATCH', path, body); }
  put(path) { return this.request('PUT', path); }
  del(path) { return this.request('DELETE', path); }

  // Accounts and sessions.

  signup(username, password, display_name) {
    const body = { username, password };
    if (display_name) body.display_name = display_name;
    return this.post('/users', body, { auth: false });
  }

  /** POST /sessions, a new device each time; the session is kept. */
  async login(username, password, device) {
    const ua = globalThis.navigator && globalThis.navigator.userAgent;
    const dev = device || this.device || { platform: 'web', ...(ua ? { name: String(ua).slice(0, 60) } : {}) };
    const r = await this.post('/sessions', { username, password, device: dev }, { auth: false });
    this.saveSession({ token: r.token, expires_at: r.expires_at, user: r.user, device_id: r.device_id });
    return r;
  }

  /** POST /sessions/refresh: a new token for the same session and device. */
  async refresh() {
    const r = await this.post('/sessions/refresh');
    if (this.session) this.saveSession({ ...this.session, token: r.token, expires_at: r.expires_at });
    return r;
  }

  /** DELETE /sessions/current, then forgets the session (also when that failed). */
  async logout() {
    try { if (this.token) await this.del('/sessions/current'); } catch { /* gone already */ }
    this.saveSession(null);
  }

  me() { return this.get('/me'); }
  updateMe(fields) { return this.patch('/me', fields); }
  findUsers(q, limit = 10) { return this.get(`/users?q=${encodeURIComponent(q)}&limit=${limit}`); }
  user(id) { return this.get(`/users/${id}`); }

  // Friends, presence, blocks.
  friends() { return this.get('/friends'); }
  addFriend(user_id) { return this.post('/friends', { user_id }); }
  removeFriend(id) { return this.del(`/friends/${id}`); }
  presence(ids) { return this.get(`/presence?user_ids=${ids.join(',')}`); }
  blocks() { return this.get('/blocks'); }
  block(user_id) { return this.post('/blocks', { user_id }); }
  unblock(id) { return this.del(`/blocks/${id}`); }

  // Conversations and messages.
  conversations() { return this.get('/conversations'); }
  conversation(id) { return this.get(`/conversations/${id}`); }
  startDirect(user_id) { return this.post('/conversations', { kind: 'direct', user_id }); }
  startGroup(title, member_ids) { return this.post('/conversations', { kind: 'group', title, member_ids }); }
  updateConversation(id, fields) { return this.patch(`/conversations/${id}`, fields); }
  addMember(id, user_id) { return this.post(`/conversations/${id}/members`, { user_id }); }
  removeMember(id, user_id) { return this.del(`/conversations/${id}/members/${user_id}`); }
  /** extras: what a send may carry besides the body ({reply_to, attachment_ids}). */
  sendMessage(id, client_msg_id, body, extras = {}) {
    return this.post(`/conversations/${id}/messages`, { client_msg_id, body, ...extras });
  }
  editMessage(id, mid, body) { return this.patch(`/conversations/${id}/messages/${mid}`, { body }); }
  deleteMessage(id, mid) { return this.del(`/conversations/${id}/messages/${mid}`); }
  react(id, mid, emoji) { return this.put(`/conversations/${id}/messages/${mid}/reactions/${encodeURIComponent(emoji)}`); }
  unreact(id, mid, emoji) { return this.del(`/conversations/${id}/messages/${mid}/reactions/${encodeURIComponent(emoji)}`); }
  /** {before} or {after} (a message_id): newest first, or oldest first with after. */
  messages(id, { before, after, limit = 30 } = {}) {
    let q = `limit=${limit}`;
    if (before !== undefined) q += `&before=${before}`;
    if (after !== undefined) q += `&after=${after}`;
    return this.get(`/conversations/${id}/messages?${q}`);
  }
  markRead(id, message_id) { return this.post(`/conversations/${id}/read`, { message_id }); }
  search(q, conversation_id, limit = 20) {
    let s = `/search?q=${encodeURIComponent(q)}&limit=${limit}`;
    if (conversation_id) s += `&conversation_id=${conversation_id}`;
    return this.get(s);
  }
  /** GET /sync: the inbox events after seq (and stores seq as this device's cursor). */
  sync(after, limit = 100) {
    return this.get(`/sync?${after !== undefined && after !== null ? `after=${after}&` : ''}limit=${limit}`);
  }

  // Devices and push.
  registerDevice(platform, push_token, name) {
    const body = { platform, push_token };
    if (name) body.name = name;
    return this.post('/devices', body);
  }
  devices() { return this.get('/devices'); }
  removeDevice(id) { return this.del(`/devices/${id}`); }

  // Attachments (PROTOCOL.md, "Additions").

  /**
   * Uploads a file's raw bytes (a Blob or File; in Node also a Buffer or
   * Uint8Array, with options.type and options.name). With XMLHttpRequest
   * (browsers) onProgress(loaded, total) reports the upload as it goes;
   * with fetch it is called once at the end. Returns {promise, abort}: the
   * promise gives the attachment {id, content_type, size, name, ...} or
   * throws an ApiError ("network" when the connection failed, "aborted"
   * after abort()).
   */
  upload(file, onProgress, options = {}) {
    const type = options.type || file.type || 'application/octet-stream';
    const name = options.name || file.name || '';
    const size = file.size ?? file.byteLength ?? 0;
    if (this.XHR && !options.useFetch) return this.uploadXhr(file, type, name, size, onProgress);
    const ctl = new AbortController();
    const headers = { 'Content-Type': type };
    if (this.token) headers.Authorization = 'Bearer ' + this.token;
    if (name) headers['X-Filename'] = encodeURIComponent(name);
    const promise = (async () => {
      let res;
      try {
        res = await this.fetchFn(this.base + '/attachments', { method: 'POST', headers, body: file, signal: ctl.signal });
      } catch (e) {
        if (e && e.name === 'AbortError') throw new ApiError(0, 'aborted', 'the upload was cancelled');
        throw new ApiError(0, 'network', 'the server cannot be reached');
      }
      if (!res.ok) throw await this.errorOf(res);
      const data = await res.json();
      if (onProgress) onProgress(size, size);
      return data;
    })();
    return { promise, abort: () => ctl.abort() };
  }

  uploadXhr(file, type, name, size, onProgress) {
    const xhr = new this.XHR();
    const promise = new Promise((resolve, reject) => {
      xhr.open('POST', this.base + '/attachments');
      if (this.token) xhr.setRequestHeader('Authorization', 'Bearer ' + this.token);
      xhr.setRequestHeader('Content-Type', type);
      if (name) xhr.setRequestHeader('X-Filename', encodeURIComponent(name));
      xhr.responseType = 'text';
      if (onProgress) xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : size));
      xhr.addEventListener('load', () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch { data = null; }
        if (xhr.status >= 200 && xhr.status < 300 && data && data.id) { resolve(data); return; }
        const err = (data && data.error) || {};
        const e = new ApiError(xhr.status, err.code || (xhr.status === 413 ? 'too_large' : 'http_' + xhr.status),
          err.message || xhr.statusText, Number(xhr.getResponseHeader('Retry-After')) || 0);
        if (xhr.status === 401 && this.token && this.onUnauthorized) this.onUnauthorized(e);
        reject(e);
      });
      xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'the server cannot be reached')));
      xhr.addEventListener('timeout', () => reject(new ApiError(0, 'network', 'the upload timed out')));
      xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'the upload was cancelled')));
      xhr.send(file);
    });
    return { promise, abort: () => xhr.abort() };
  }
  attachment(id) { return this.blob(`/attachments/${id}`); }
  thumbnail(id) { return this.blob(`/attachments/${id}/thumbnail`); }

  /** GET /discover: {relay: {id, url, region}}; 503 when no relay is alive. */
  discover(region) {
    return this.get('/discover' + (region ? `?region=${encodeURIComponent(region)}` : ''));
  }
  health() { return this.get('/health', { auth: false }); }
}

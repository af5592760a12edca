// api.js: Parley's REST API (/api/v1), with the session's bearer token.
//
// Every error, from the API or from nginx in front of it, has one shape:
// {"error": {"code", "message"}}; it is thrown as an ApiError. A network
// failure is thrown as an ApiError with code "network" and status 0.

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

const SESSION_KEY = 'parley.session';

export class Api {
  constructor(base = '/api/v1') {
    this.base = base;
    this.session = null;
    this.onUnauthorized = null;
    this.refreshTimer = null;
    try {
      this.session = JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
    } catch {
      this.session = null;
    }
  }

  get token() { return this.session && this.session.token; }

  saveSession(session) {
    this.session = session;
    if (session) localStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else localStorage.removeItem(SESSION_KEY);
    this.scheduleRefresh();
  }

  // Refreshes the token a minute before it expires (same session and device).
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    if (!this.session || !this.session.expires_at) return;
    const ms = Date.parse(this.session.expires_at) - Date.now() - 60000;
    if (!(ms > 0)) return;
    this.refreshTimer = setTimeout(async () => {
      try {
        const r = await this.request('POST', '/sessions/refresh');
        this.saveSession({ ...this.session, token: r.token, expires_at: r.expires_at });
      } catch { /* a 401 logs out through onUnauthorized */ }
    }, Math.min(ms, 0x7fffffff));
  }

  async request(method, path, body, { auth = true, signal } = {}) {
    const headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (auth && this.token) headers.Authorization = 'Bearer ' + this.token;
    let res;
    try {
      res = await fetch(this.base + path, {
        method, headers, signal,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(0, 'network', 'the server cannot be reached');
    }
    if (res.status === 204) return null;
    if (!res.ok) throw await this.errorOf(res, auth);
    try { return await res.json(); } catch { return null; }
  }

  // The error a failed answer (res, not ok) stands for; a 401 logs out.
  async errorOf(res, auth = true) {
    let data = null;
    try { data = await res.json(); } catch { data = null; }
    const err = (data && data.error) || {};
    const e = new ApiError(res.status, err.code || 'http_' + res.status,
      err.message || res.statusText, Number(res.headers.get('Retry-After')) || 0);
    if (res.status === 401 && auth && this.token && this.onUnauthorized) this.onUnauthorized(e);
    return e;
  }

  // A file the API serves to the bearer of the token (an attachment, its
  // thumbnail), as a Blob: a plain <img src> or link cannot send the token.
  async blob(path) {
    let res;
    try {
      res = await fetch(this.base + path, { headers: this.token ? { Authorization: 'Bearer ' + this.token } : {} });
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

  async login(username, password) {
    const r = await this.post('/sessions',
      { username, password, device: { platform: 'web', name: navigator.userAgent.slice(0, 60) } },
      { auth: false });
    this.saveSession({ token: r.token, expires_at: r.expires_at, user: r.user, device_id: r.device_id });
    return r;
  }

  async logout() {
    try { await this.del('/sessions/current'); } catch { /* gone already */ }
    this.saveSession(null);
  }

  me() { return this.get('/me'); }
  updateMe(fields) { return this.patch('/me', fields); }
  findUsers(q, limit = 10) { return this.get(`/users?q=${encodeURIComponent(q)}&limit=${limit}`); }
  user(id) { return this.get(`/users/${id}`); }

  // Friends and presence.
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
  // extras: what a send may carry besides the body ({reply_to, attachment_ids}).
  sendMessage(id, client_msg_id, body, extras = {}) {
    return this.post(`/conversations/${id}/messages`, { client_msg_id, body, ...extras });
  }
  editMessage(id, mid, body) { return this.patch(`/conversations/${id}/messages/${mid}`, { body }); }
  deleteMessage(id, mid) { return this.del(`/conversations/${id}/messages/${mid}`); }
  react(id, mid, emoji) { return this.put(`/conversations/${id}/messages/${mid}/reactions/${encodeURIComponent(emoji)}`); }
  unreact(id, mid, emoji) { return this.del(`/conversations/${id}/messages/${mid}/reactions/${encodeURIComponent(emoji)}`); }
  // Attachments (PROTOCOL.md "Attachments"). upload() sends a file's raw
  // bytes with XMLHttpRequest, whose upload progress fetch() cannot report:
  // onProgress(loaded, total) as they go. Returns {promise, abort}; the
  // promise gives the attachment {id, content_type, size, name, ...} or
  // throws an ApiError (status 0, code "network", when the connection
  // failed; code "aborted" after abort()).
  upload(file, onProgress) {
    const xhr = new XMLHttpRequest();
    const promise = new Promise((resolve, reject) => {
      xhr.open('POST', this.base + '/attachments');
      if (this.token) xhr.setRequestHeader('Authorization', 'Bearer ' + this.token);
      xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
      if (file.name) xhr.setRequestHeader('X-Filename', encodeURIComponent(file.name));
      xhr.responseType = 'text';
      if (onProgress) xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
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
  // {before} or {after} (a message_id); newest first, or oldest first with after.
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
  discover() { return this.get('/discover'); }
}

// app.js: Parley's web client UI. Plain DOM, no framework.
//
// State lives in the object S; render functions redraw one area from it.
// Messages are keyed by conversation_id:message_id so a message shown once is
// never shown twice, whether it came from history, the live connection or a
// replay after a reconnect. The REST API, the live connection and the outbox
// of own messages waiting for the server (localStorage; resent with the same
// client_msg_id after a reconnect) are the client library's (ParleyClient,
// clients/js/, served as js/parley-client/). Edits, deletions and
// reactions arrive as inbox events of their own and change the message
// shown in place (message-events.js). Files are uploaded as soon as they are
// picked or dropped, shown as chips above the composer, and sent by id with
// the next message (attachments.js fetches them back with the token).

import { ParleyClient, newClientMsgId as newId } from './parley-client/index.js';
import { applyEvent, applyReaction, reactedWith } from './message-events.js';
import { openMenu, closeMenu, menuOpenFor } from './menu.js';
import { formatSize, isPicture, thumbnailUrl, fileBlob, forget, forgetAll, saveBlob } from './attachments.js';

const $ = (id) => document.getElementById(id);
const client = new ParleyClient();
const api = client.api;

const PAGE = 30;
const S = {
  me: null,
  users: new Map(),      // id -> {id, username, display_name}
  pendingUsers: new Map(),
  friends: [],
  presence: new Map(),   // user id -> "online" | "offline"
  convs: new Map(),      // id -> conversation (+ activity)
  view: null,            // the open conversation
  typing: new Map(),     // conversation id -> Map(user id -> timer)
  reads: new Map(),      // conversation id -> Map(user id -> message_id)
  tab: 'chats',
  search: null,
  found: null,           // the people search: {q, users}
  blocked: new Map(),    // user id -> {id, username, display_name}: the users this user blocked
  compose: null,         // what the composer does besides sending: {kind: "reply"|"edit", cid, mid, draft}
  quotes: new Map(),     // "cid:mid" -> a replied-to message not in the view: the message, "loading" or null
  uploads: [],           // files for the next message, by conversation: {key, cid, file, state, loaded, att, ...}
  downloading: new Set(), // attachment ids being fetched for a download
};

// The quick reactions, with the names screen readers and tooltips give them.
const REACTIONS = [['👍', 'thumbs up'], ['❤️', 'heart'], ['😂', 'laughing'], ['😮', 'surprised'],
  ['😢', 'sad'], ['🙏', 'thank you']];
// How long a message can be edited: the server's default [messages]
// edit_window. The server has the last word (403 after its window).
const EDIT_WINDOW_MS = 48 * 3600 * 1000;

// ---------------------------------------------------------------------------
// Small helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const keyOf = (m) => `${m.conversation_id}:${m.message_id}`;

// Times and days, in the browser's time zone and locale. A message shows
// its time of day (HH:MM); the day is said once, by the separator above the
// day's first message.
const CLOCK = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
const dateOf = (iso) => { const d = new Date(iso); return isNaN(d) ? null : d; };
const clockOf = (iso) => { const d = dateOf(iso); return d ? d.toLocaleTimeString([], CLOCK) : ''; };
const fullTimeOf = (iso) => { const d = dateOf(iso); return d ? d.toLocaleString([], { dateStyle: 'full', timeStyle: 'short' }) : ''; };
const dayKey = (d) => `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;

// How many calendar days d is before today (0 today, 1 yesterday).
function daysAgo(d) {
  const start = (x) => new Date(x.getFullYear(), x.getMonth(), x.getDate());
  return Math.round((start(new Date()) - start(d)) / 86400000);
}

// "Today", "Yesterday", else the full date ("Thursday, 3 December 2026").
function dayLabel(d) {
  const ago = daysAgo(d);
  if (ago === 0) return 'Today';
  if (ago === 1) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
}

// The short time of the conversation list and search results.
const timeOf = (iso) => {
  const d = dateOf(iso);
  if (!d) return '';
  const ago = daysAgo(d);
  return ago === 0 ? d.toLocaleTimeString([], CLOCK) : ago === 1 ? 'Yesterday'
    : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
};

// A message body as text nodes and links. Bodies are user text: they are
// never parsed as HTML, and only what the URL parser reads as an http: or
// https: URL becomes a link (so never javascript: or data:). Links open in
// a new tab without giving it this window (noopener) or the chat's address
// (noreferrer).
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
function linkify(text) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    const raw = trimUrl(match[0]);
    let url = null;
    try { url = new URL(raw); } catch { url = null; }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    if (match.index > last) out.push(text.slice(last, match.index));
    out.push(h('a', { href: url.href, target: '_blank', rel: 'noopener noreferrer', text: raw }));
    last = match.index + raw.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

// Drops what ends a sentence rather than the URL: "see https://x.org/a."
// links https://x.org/a. A closing bracket stays when the URL opened it
// (https://en.wikipedia.org/wiki/Parley_(film)).
const CLOSERS = { ')': '(', ']': '[', '}': '{' };
function trimUrl(url) {
  for (;;) {
    const c = url.slice(-1);
    const opener = CLOSERS[c];
    const count = (ch) => url.split(ch).length - 1;
    if (c && ('.,;:!?\'"*_~'.includes(c) || (opener && count(opener) < count(c)))) url = url.slice(0, -1);
    else return url;
  }
}
const initials = (name) => (name || '?').trim().slice(0, 1).toUpperCase();
const hue = (id) => (Number(id) * 67) % 360;

function avatar(el, name, id) {
  el.textContent = initials(name);
  el.style.setProperty('--hue', hue(id || 0));
}

function nameOf(id) {
  if (S.me && id === S.me.id) return S.me.display_name || S.me.username;
  const u = S.users.get(id);
  if (u) return u.display_name || u.username;
  loadUser(id);
  return `user ${id}`;
}

function rememberUser(u) {
  if (u && u.id) S.users.set(u.id, { id: u.id, username: u.username, display_name: u.display_name });
}

// Fetches an unknown user once, then redraws what shows names.
function loadUser(id) {
  if (S.users.has(id) || S.pendingUsers.has(id)) return;
  S.pendingUsers.set(id, api.user(id).then((u) => {
    rememberUser(u);
    scheduleRender();
  }).catch(() => {}).finally(() => S.pendingUsers.delete(id)));
}

// Replaces a list's items. Lists are redrawn whole, so a button in one that
// had the focus (one with a data-fkey: a reaction, a quote, a "⋯") gets it
// back in the new drawing.
function redraw(list, items) {
  const active = document.activeElement;
  const fkey = active && list.contains(active) ? active.dataset.fkey : null;
  list.replaceChildren(...items);
  if (fkey) {
    const again = list.querySelector(`[data-fkey="${CSS.escape(fkey)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderConversations();
    renderFriends();
    if (S.view) { renderChatHead(); renderMessages(); renderComposer(); }
  });
}

// What to tell the user about a failed request. Failures of the server or
// of the way to it get the app's own words: the API's messages are written
// for developers (lowercase, terse), and a proxy's may be an HTML page.
function errorText(e) {
  if (!e) return 'Something went wrong. Try again.';
  if (e.code === 'network' || e.status === 0) return "Can't reach the server. Check your connection and try again.";
  if (e.code === 'rate_limited') return `Too many attempts; try again in ${e.retryAfter || 60} s.`;
  if (e.code === 'unavailable' || [502, 503, 504].includes(e.status)) {
    return 'The server is not available right now. Try again in a moment.';
  }
  if (e.code === 'internal' || e.status >= 500) return 'Something went wrong on the server. Try again in a moment.';
  return sentence(e.message || e.code);
}

// "display name too long" -> "Display name too long."
function sentence(text) {
  const t = String(text || 'Something went wrong').trim();
  return t.charAt(0).toUpperCase() + t.slice(1) + (/[.!?]$/.test(t) ? '' : '.');
}

// ---------------------------------------------------------------------------
// Sign up, log in, log out

let signupMode = false;
function setAuthMode(signup) {
  signupMode = signup;
  $('tab-login').setAttribute('aria-selected', String(!signup));
  $('tab-signup').setAttribute('aria-selected', String(signup));
  $('auth-form').setAttribute('aria-labelledby', signup ? 'tab-signup' : 'tab-login');
  $('auth-display-row').hidden = !signup;
  $('auth-submit').textContent = signup ? 'Create account' : 'Log in';
  $('auth-password').autocomplete = signup ? 'new-password' : 'current-password';
  $('auth-error').textContent = '';
}

async function onAuthSubmit(ev) {
  ev.preventDefault();
  const username = $('auth-username').value.trim().toLowerCase();
  const password = $('auth-password').value;
  const err = $('auth-error');
  err.textContent = '';
  if (!/^[a-z0-9_.-]{3,32}$/.test(username)) {
    err.textContent = 'A username is 3 to 32 of a-z, 0-9, _ . -';
    return;
  }
  if (password.length < 8) {
    err.textContent = 'A password has at least 8 characters.';
    return;
  }
  $('auth-submit').disabled = true;
  try {
    if (signupMode) await client.signup(username, password, $('auth-display').value.trim());
    await client.login(username, password);
    $('auth-password').value = '';
    await enterApp();
  } catch (e) {
    err.textContent = e.code === 'conflict' ? 'That username is taken.'
      : e.code === 'unauthorized' ? 'Wrong username or password.' : errorText(e);
  } finally {
    $('auth-submit').disabled = false;
  }
}

function showAuth() {
  $('loading').hidden = true;
  $('app').hidden = true;
  $('auth').hidden = false;
  setAuthMode(false);
  document.title = 'Parley';
  $('auth-username').focus();
}

async function logout() {
  await client.logout();
  resetState();
  showAuth();
}

function resetState() {
  S.me = null;
  S.friends = [];
  S.convs.clear();
  S.presence.clear();
  S.view = null;
  S.reads.clear();
  S.typing.clear();
  S.search = null;
  S.found = null;
  S.blocked.clear();
  S.compose = null;
  S.quotes.clear();
  for (const u of S.uploads) dropUpload(u);
  S.uploads = [];
  S.downloading.clear();
  closeMenu(false);
  if ($('dlg-image').open) $('dlg-image').close();
  forgetAll();
  pictures.clear();
  renderUploads();
  $('find-list').replaceChildren();
  $('conv-list').replaceChildren();
  $('messages').replaceChildren();
  $('chat-view').hidden = true;
  $('chat-none').hidden = false;
  document.body.classList.remove('chat-open');
}

// The client has closed the connection and forgotten the session.
function onUnauthorized() {
  resetState();
  showAuth();
  $('auth-error').textContent = 'Your session ended. Please log in again.';
}

// ---------------------------------------------------------------------------
// Entering the app

async function enterApp() {
  try {
    S.me = await api.me();
  } catch (e) {
    if (e.status === 401) return; // onUnauthorized showed the form
    $('loading').textContent = errorText(e) + ' Retrying…';
    setTimeout(enterApp, 3000);
    return;
  }
  rememberUser(S.me);
  $('loading').hidden = true;
  $('auth').hidden = true;
  $('app').hidden = false;
  renderMe();
  renderNotifyBar();
  await Promise.all([refreshConversations(), refreshFriends(), refreshBlocks()]);
  client.connect();
  const wanted = Number(sessionStorage.getItem('parley.open'));
  if (wanted && S.convs.has(wanted)) openConversation(wanted);
}

function renderMe() {
  $('me-name').textContent = S.me.display_name || S.me.username;
  $('me-name').title = S.me.display_name || S.me.username;
  avatar($('me-avatar'), S.me.display_name || S.me.username, S.me.id);
}

function renderConn({ state, mode }) {
  const el = $('conn');
  el.dataset.state = state;
  el.dataset.mode = mode || '';
  el.textContent = state === 'online' ? (mode === 'poll' ? 'Online (long-poll)' : 'Online')
    : state === 'connecting' ? 'Connecting…' : 'Offline, reconnecting…';
}

// After every (re)connection: the live-only events of the gap are lost, so
// refetch the lists (the client resends what is still unsent).
function onReady() {
  refreshConversations();
  refreshFriends();
  refreshBlocks();
  if (S.view && S.view.atEnd) loadNewer(true);
}

// ---------------------------------------------------------------------------
// Conversations

function activityOf(c) {
  return Date.parse((c.last_message && c.last_message.created_at) || c.last_activity_at || c.created_at) || 0;
}

function upsertConversation(c) {
  if (!c || !c.kind) return null;
  const old = S.convs.get(c.id);
  const merged = { ...(old || {}), ...c };
  merged.activity = Math.max(activityOf(c), old ? old.activity : 0);
  S.convs.set(c.id, merged);
  for (const id of merged.member_ids || []) if (id !== S.me.id) loadUser(id);
  return merged;
}

let refreshing = null;
async function refreshConversations() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const { conversations } = await api.conversations();
      const seen = new Set();
      for (const c of conversations) {
        seen.add(c.id);
        const old = S.convs.get(c.id);
        // A live message may be newer than the list: keep the newest.
        if (old && old.last_message && c.last_message &&
            old.last_message.message_id > c.last_message.message_id) {
          c.last_message = old.last_message;
        }
        upsertConversation(c);
      }
      for (const id of [...S.convs.keys()]) if (!seen.has(id)) S.convs.delete(id);
      scheduleRender();
    } catch { /* shown as offline; retried on the next ready */ }
    finally { refreshing = null; }
  })();
  return refreshing;
}

function titleOf(c) {
  if (!c) return '';
  if (c.kind === 'group') return c.title || 'Group';
  const other = (c.member_ids || []).find((id) => id !== S.me.id);
  return other ? nameOf(other) : 'Just you';
}
const peerOf = (c) => c && c.kind === 'direct' ? (c.member_ids || []).find((id) => id !== S.me.id) : null;

function previewOf(c) {
  const m = c.last_message;
  if (!m) return c.kind === 'group' ? 'Group created' : 'No messages yet';
  if (m.deleted_at) return 'Message deleted';
  const who = m.sender_id === S.me.id ? 'You: ' : c.kind === 'group' ? nameOf(m.sender_id) + ': ' : '';
  return who + (m.body || filesLabel(m));
}

function renderConversations() {
  const list = $('conv-list');
  const convs = [...S.convs.values()].sort((a, b) => b.activity - a.activity || b.id - a.id);
  $('conv-empty').hidden = convs.length > 0;
  list.replaceChildren(...convs.map((c) => {
    const title = titleOf(c);
    const peer = peerOf(c);
    const typing = S.typing.get(c.id);
    const unread = S.view && S.view.cid === c.id ? 0 : c.unread || 0;
    const av = h('span', { class: 'avatar', 'aria-hidden': 'true' });
    avatar(av, title, peer || c.id + 1000);
    const label = `${title}${unread ? `, ${unread} unread` : ''}${c.muted ? ', muted' : ''}`;
    return h('li', { class: 'conv' + (S.view && S.view.cid === c.id ? ' active' : ''), 'data-cid': c.id },
      h('button', { type: 'button', class: 'conv-btn', 'aria-label': label,
        'aria-current': S.view && S.view.cid === c.id ? 'true' : null, onclick: () => openConversation(c.id) },
      h('span', { class: 'av-wrap' }, av,
        peer ? h('span', { class: 'dot ' + (S.presence.get(peer) || 'offline'), 'data-presence': S.presence.get(peer) || 'offline' }) : null),
      h('span', { class: 'conv-main' },
        h('span', { class: 'conv-top' },
          h('span', { class: 'conv-title', text: title }),
          c.muted ? h('span', { class: 'muted-icon', title: 'Muted', text: '🔕' }) : null,
          h('span', { class: 'conv-time', text: c.last_message ? timeOf(c.last_message.created_at) : '' })),
        h('span', { class: 'conv-bottom' },
          h('span', { class: 'conv-preview' + (typing && typing.size ? ' is-typing' : ''),
            text: typing && typing.size ? 'typing…' : previewOf(c) }),
          unread ? h('span', { class: 'badge unread', 'data-unread': unread, text: unread > 99 ? '99+' : unread }) : null))));
  }));
  const total = [...S.convs.values()].reduce((n, c) => n + (c.muted ? 0 : c.unread || 0), 0);
  document.title = total ? `(${total}) Parley` : 'Parley';
}

// ---------------------------------------------------------------------------
// Opening a conversation, history, infinite scroll

async function openConversation(cid, { around } = {}) {
  const c = S.convs.get(cid);
  if (!c) return;
  // unreadAfter: what was read before this visit; the "New messages" line
  // goes above the first message from someone else after it, and stays
  // there for the visit (reading it clears c.unread, not the line).
  S.view = { cid, msgs: new Map(), atStart: false, atEnd: true, loading: false, highlight: around || null,
    unreadAfter: c.unread > 0 ? c.last_read_message_id || 0 : null };
  closeMenu(false);
  if (S.compose && S.compose.cid !== cid) cancelCompose();
  closeNotification(cid);
  sessionStorage.setItem('parley.open', String(cid));
  document.body.classList.add('chat-open');
  $('chat-none').hidden = true;
  $('chat-view').hidden = false;
  $('typing').textContent = '';
  hideDropTarget();
  renderChatHead();
  renderMessages();
  renderConversations();
  renderUploads();
  const view = S.view;
  try {
    if (around) {
      const [older, newer] = await Promise.all([
        api.messages(cid, { before: around + 1, limit: 20 }),
        api.messages(cid, { after: around, limit: 20 }),
      ]);
      if (S.view !== view) return;
      older.messages.forEach(addToView);
      newer.messages.forEach(addToView);
      view.atStart = older.messages.length < 20;
      view.atEnd = newer.messages.length < 20;
      renderMessages();
      const el = $('messages').querySelector(`[data-mid="${around}"]`);
      if (el) {
        el.scrollIntoView({ block: 'center' });
        el.classList.add('highlight');
      }
    } else {
      const { messages } = await api.messages(cid, { limit: PAGE });
      if (S.view !== view) return;
      messages.forEach(addToView);
      view.atStart = messages.length < PAGE;
      renderMessages();
      scrollToBottom();
      showUnreadLine();
    }
  } catch (e) {
    if (S.view === view) showToast(errorText(e));
  }
  markRead();
  if (!around) $('composer-input').focus({ preventScroll: true });
}

function closeConversation() {
  closeMenu(false);
  if (S.compose) cancelCompose();
  S.view = null;
  sessionStorage.removeItem('parley.open');
  document.body.classList.remove('chat-open');
  $('chat-view').hidden = true;
  $('chat-none').hidden = false;
  renderConversations();
}

function addToView(m) {
  if (!S.view || m.conversation_id !== S.view.cid) return;
  S.view.msgs.set(keyOf(m), m);
}

async function loadOlder() {
  const v = S.view;
  if (!v || v.loading || v.atStart) return;
  const ids = [...v.msgs.values()].map((m) => m.message_id);
  if (!ids.length) return;
  v.loading = true;
  const wrap = $('messages-wrap');
  const before = wrap.scrollHeight - wrap.scrollTop;
  try {
    const { messages } = await api.messages(v.cid, { before: Math.min(...ids), limit: PAGE });
    if (S.view !== v) return;
    messages.forEach(addToView);
    v.atStart = messages.length < PAGE;
    renderMessages();
    wrap.scrollTop = wrap.scrollHeight - before; // keep what was on screen in place
  } catch { /* try again on the next scroll */ }
  finally { v.loading = false; }
}

// Loads what came after the newest message shown (after a jump, or after a
// reconnect). quiet: keep the scroll position unless already at the bottom.
async function loadNewer(quiet) {
  const v = S.view;
  if (!v || v.loading) return;
  const ids = [...v.msgs.values()].map((m) => m.message_id);
  if (!ids.length) { if (!v.atEnd) v.atEnd = true; return; }
  v.loading = true;
  const stick = nearBottom();
  try {
    const { messages } = await api.messages(v.cid, { after: Math.max(...ids), limit: PAGE });
    if (S.view !== v) return;
    messages.forEach(addToView);
    if (messages.length < PAGE) v.atEnd = true;
    renderMessages();
    if (stick && quiet) scrollToBottom();
    if (v.atEnd) markRead();
  } catch { /* next scroll or reconnect */ }
  finally { v.loading = false; }
}

function nearBottom() {
  const w = $('messages-wrap');
  return w.scrollHeight - w.scrollTop - w.clientHeight < 80;
}
function scrollToBottom() {
  const w = $('messages-wrap');
  w.scrollTop = w.scrollHeight;
}

// After opening at the bottom: when more is unread than fits, scroll back
// so that reading starts at the "New messages" line.
function showUnreadLine() {
  const line = $('messages').querySelector('.unread-line');
  if (!line) return;
  const w = $('messages-wrap');
  const top = line.getBoundingClientRect().top - w.getBoundingClientRect().top;
  if (top < 0) w.scrollTop += top - 8;
}

function onMessagesScroll() {
  const w = $('messages-wrap');
  if (w.scrollTop < 80) loadOlder();
  if (S.view && !S.view.atEnd && nearBottom()) loadNewer(false);
}

// Tells the server (and so the user's other devices and the other members)
// that everything up to the newest message shown is read.
function markRead() {
  const v = S.view;
  if (!v || !v.atEnd || document.visibilityState === 'hidden') return;
  const c = S.convs.get(v.cid);
  let last = 0;
  for (const m of v.msgs.values()) if (m.message_id > last) last = m.message_id;
  if (!c || !last) return;
  if (last > (c.last_read_message_id || 0) || c.unread) {
    c.last_read_message_id = Math.max(last, c.last_read_message_id || 0);
    c.unread = 0;
    client.markRead(v.cid, last).catch(() => {});
    renderConversations();
  }
}

function renderChatHead() {
  const c = S.convs.get(S.view.cid);
  if (!c) return;
  const title = titleOf(c);
  const peer = peerOf(c);
  $('chat-title').textContent = title;
  avatar($('chat-avatar'), title, peer || c.id + 1000);
  let sub;
  if (peer && S.blocked.has(peer)) {
    sub = 'Blocked';
    delete $('chat-sub').dataset.presence;
  } else if (peer) {
    sub = S.presence.get(peer) === 'online' ? 'online' : 'offline';
    $('chat-sub').dataset.presence = sub;
  } else {
    sub = (c.member_ids || []).map(nameOf).join(', ');
    delete $('chat-sub').dataset.presence;
  }
  $('chat-sub').textContent = sub;
  $('btn-person').hidden = !peer;
  if (peer) $('btn-person').setAttribute('aria-label', `More options for ${nameOf(peer)}`);
  $('btn-members').hidden = c.kind !== 'group';
  $('btn-mute').textContent = c.muted ? 'Unmute' : 'Mute';
  $('btn-mute').setAttribute('aria-pressed', String(!!c.muted));
  $('btn-latest').hidden = S.view.atEnd;
}

function readersOf(cid, mid) {
  const reads = S.reads.get(cid);
  if (!reads) return [];
  return [...reads.entries()].filter(([uid, r]) => uid !== S.me.id && r >= mid).map(([uid]) => uid);
}

function renderMessages() {
  const v = S.view;
  const ol = $('messages');
  const c = S.convs.get(v.cid);
  const group = c && c.kind === 'group';
  const confirmed = [...v.msgs.values()].sort((a, b) => a.message_id - b.message_id);
  const pending = v.atEnd ? client.outbox.items.filter((o) => o.conversation_id === v.cid) : [];
  // The newest own message someone has read carries the "Read" label.
  let lastReadOwn = 0;
  for (const m of confirmed) {
    if (m.sender_id === S.me.id && readersOf(v.cid, m.message_id).length) lastReadOwn = m.message_id;
  }
  const firstUnread = v.unreadAfter === null ? null
    : confirmed.find((m) => m.sender_id !== S.me.id && m.message_id > v.unreadAfter);
  const items = [];
  if (v.atStart && confirmed.length) items.push(h('li', { class: 'start', text: 'Beginning of the conversation' }));
  else if (!v.atStart && confirmed.length) items.push(h('li', { class: 'start', text: 'Loading older messages…' }));
  let prevSender = null;
  let prevDay = null;
  // A day separator above the first message of each day (pending ones are
  // today's); the list is redrawn whole, so older pages and live messages
  // land under the right day.
  const daySeparator = (iso) => {
    const d = dateOf(iso) || new Date();
    if (dayKey(d) === prevDay) return;
    prevDay = dayKey(d);
    prevSender = null;
    items.push(h('li', { class: 'day', 'data-day': prevDay }, h('span', { text: dayLabel(d) })));
  };
  for (const m of confirmed) {
    daySeparator(m.created_at);
    if (m === firstUnread) items.push(h('li', { class: 'unread-line' }, h('span', { text: 'New messages' })));
    const own = m.sender_id === S.me.id;
    const readers = own ? readersOf(v.cid, m.message_id) : [];
    const state = own ? (readers.length ? 'read' : 'sent') : null;
    let status = null;
    if (own) {
      const label = m.message_id === lastReadOwn
        ? (group ? `Read by ${readers.length}` : 'Read') : readers.length ? '' : 'Sent';
      status = h('span', { class: 'status', 'aria-label': readers.length ? 'read' : 'sent' },
        readers.length ? '✓✓' : '✓', label ? ' ' + label : '');
    }
    const deleted = !!m.deleted_at;
    items.push(h('li', {
      class: `msg ${own ? 'own' : 'other'}${deleted ? ' deleted' : ''}${m.message_id === v.highlight ? ' highlight' : ''}`,
      'data-mid': m.message_id, 'data-key': keyOf(m), 'data-state': state,
      tabindex: m.message_id === v.highlight ? '-1' : null,
    },
    group && !own && prevSender !== m.sender_id ? h('span', { class: 'sender', text: nameOf(m.sender_id) }) : null,
    m.reply_to && !deleted ? quoteOf(m.conversation_id, m.reply_to, keyOf(m)) : null,
    deleted ? h('span', { class: 'body', text: 'Message deleted' })
      : m.body || !(m.attachments || []).length ? h('span', { class: 'body' }, linkify(m.body)) : null,
    deleted ? null : attachmentsOf(m),
    deleted ? null : reactionsOf(m),
    h('span', { class: 'meta' },
      m.edited_at && !deleted ? h('span', { class: 'edited', title: 'Edited ' + fullTimeOf(m.edited_at), text: 'edited' }) : null,
      h('time', { datetime: m.created_at, title: fullTimeOf(m.created_at), text: clockOf(m.created_at) }), status),
    deleted ? null : h('button', { type: 'button', class: 'msg-more', 'data-fkey': 'more:' + keyOf(m),
      'aria-label': 'Message actions', title: 'React, reply and more', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
      onclick: (e) => openMessageMenu(e.currentTarget, keyOf(m)) }, '⋯')));
    prevSender = m.sender_id;
  }
  for (const o of pending) {
    daySeparator(o.created_at);
    items.push(h('li', { class: 'msg own pending' + (o.failed ? ' failed' : ''), 'data-client-id': o.client_msg_id,
      'data-state': o.failed ? 'failed' : 'pending' },
    o.reply_to ? quoteOf(o.conversation_id, o.reply_to, o.client_msg_id) : null,
    o.body ? h('span', { class: 'body', text: o.body }) : null,
    attachmentsOf(o),
    h('span', { class: 'meta' },
      o.failed ? h('button', { type: 'button', class: 'link', onclick: () => client.outbox.retry(o.client_msg_id), text: 'Not sent. Retry' })
        : h('span', { class: 'status', 'aria-label': 'sending', text: '🕓 Sending…' }))));
  }
  if (!confirmed.length && !pending.length) items.push(h('li', { class: 'start', text: 'No messages yet. Say hello!' }));
  const stick = nearBottom();
  redraw(ol, items);
  if (stick && v.atEnd) scrollToBottom();
  $('btn-latest').hidden = v.atEnd;
}

// The quote above a reply: who wrote the message it answers, and its first
// line. Clicking it goes to that message. fkey names it for the focus.
function quoteOf(cid, mid, fkey) {
  const o = originalOf(cid, mid);
  const who = o && o !== 'loading' ? nameOf(o.sender_id) : '';
  const text = o === 'loading' ? '…' : !o ? 'Message unavailable' : o.deleted_at ? 'Message deleted'
    : firstLine(o.body) || filesLabel(o);
  return h('button', { type: 'button', class: 'quote', 'data-fkey': 'quote:' + fkey, 'data-reply-to': mid,
    'aria-label': `Go to the message${who ? ' from ' + who : ''} this replies to: ${text}`,
    onclick: () => jumpTo(cid, mid) },
  who ? h('span', { class: 'quote-name', text: who }) : null, h('span', { class: 'quote-text', text }));
}

const firstLine = (text) => (text || '').trim().split('\n', 1)[0];

// The message a reply answers: from the view when it is loaded, else
// fetched once (PROTOCOL.md: ?after=MID-1 gives MID first). Returns the
// message, "loading", or null when it cannot be seen (say, its sender is
// blocked).
function originalOf(cid, mid) {
  const key = `${cid}:${mid}`;
  if (S.view && S.view.cid === cid && S.view.msgs.has(key)) return S.view.msgs.get(key);
  if (S.quotes.has(key)) return S.quotes.get(key);
  S.quotes.set(key, 'loading');
  api.messages(cid, { after: mid - 1, limit: 1 }).then(({ messages }) => {
    S.quotes.set(key, messages.find((x) => x.message_id === mid) || null);
    scheduleRender();
  }).catch(() => { S.quotes.delete(key); }); // tried again at the next redraw
  return 'loading';
}

// What a message of files alone says in the conversation list, a quote or
// a notification: "Photo" when its first file is a picture, else "File: "
// and that file's name (as the server's push notifications say it).
function filesLabel(m) {
  const f = (m.attachments || [])[0];
  if (!f) return '';
  return /^image\//.test(f.content_type || '') ? 'Photo' : `File: ${f.name || 'file'}`;
}

// A message's files: pictures as their thumbnail, at its size (the space
// is kept before it loads, so nothing below jumps), opening the whole image
// when clicked; other files as a link with name and size that downloads
// the file. A picture's button is made once per attachment and moved into
// every redraw of the list, so its image is not loaded again.
const pictures = new Map(); // attachment id -> its button

function attachmentsOf(m) {
  const files = m.attachments || [];
  if (!files.length) return null;
  return h('ul', { class: 'attachments', 'aria-label': files.length > 1 ? `${files.length} attachments` : 'Attachment' },
    files.map((f) => h('li', { class: 'attachment' + (isPicture(f) ? ' picture' : ' file'), 'data-attachment': f.id },
      isPicture(f) ? pictureOf(f) : fileLinkOf(f))));
}

function pictureOf(f) {
  let b = pictures.get(f.id);
  if (b) return b;
  const name = f.name || 'Photo';
  const img = h('img', { alt: name, width: f.thumbnail.width, height: f.thumbnail.height, decoding: 'async' });
  const label = h('span', { class: 'att-failed', text: 'Image not loaded. Try again' });
  b = h('button', { type: 'button', class: 'att-picture', 'data-fkey': 'att:' + f.id, 'data-state': 'loading',
    'aria-label': `Open image ${name}, ${formatSize(f.size)}`, title: name }, img, label);
  // The thumbnail's width at most; CSS scales it down in a narrow bubble.
  b.style.width = `${f.thumbnail.width}px`;
  const load = () => {
    b.dataset.state = 'loading';
    const t = thumbnailUrl(api, f.id);
    const show = (url) => {
      if (url) { img.src = url; b.dataset.state = 'loaded'; } else b.dataset.state = 'failed';
    };
    if (t.url) show(t.url);
    else t.promise.then(show);
  };
  b.addEventListener('click', () => {
    if (b.dataset.state === 'failed') load();
    else openLightbox(f, b);
  });
  pictures.set(f.id, b);
  load();
  return b;
}

function fileLinkOf(f) {
  const name = f.name || 'file';
  const busy = S.downloading.has(f.id);
  return h('button', { type: 'button', class: 'att-file', 'data-fkey': 'att:' + f.id, 'aria-busy': busy ? 'true' : null,
    'aria-label': `Download ${name}, ${formatSize(f.size)}`, title: 'Download', onclick: () => downloadAttachment(f) },
  fileIcon('att-icon'),
  h('span', { class: 'att-text' }, h('span', { class: 'att-name', text: name }),
    h('span', { class: 'att-size', text: busy ? 'Downloading…' : formatSize(f.size) })));
}

// A document icon, drawn (emoji fonts are not everywhere).
function fileIcon(cls) {
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  for (const [k, v] of Object.entries({ class: 'ico' + (cls ? ' ' + cls : ''), viewBox: '0 0 24 24', width: '22',
    height: '22', 'aria-hidden': 'true', focusable: 'false' })) svg.setAttribute(k, v);
  const path = document.createElementNS(NS, 'path');
  path.setAttribute('d', 'M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5M9 13h6M9 17h6');
  svg.append(path);
  return svg;
}

// Fetches the file with the token and saves it under its name.
async function downloadAttachment(f) {
  if (S.downloading.has(f.id)) return;
  S.downloading.add(f.id);
  scheduleRender();
  try {
    saveBlob(await fileBlob(api, f.id), f.name || 'file');
  } catch (e) {
    showToast(`${f.name || 'The file'} could not be downloaded: ${errorText(e)}`);
  } finally {
    S.downloading.delete(f.id);
    scheduleRender();
  }
}

// The whole image over the page (a modal dialog: Escape, the × or a click
// beside the image closes it, and the focus goes back to the thumbnail).
let lightbox = null; // {f, url, fkey}
async function openLightbox(f, opener) {
  const dlg = $('dlg-image');
  const img = $('lightbox-img');
  const mine = { f, url: null, fkey: opener && opener.dataset.fkey };
  lightbox = mine;
  $('lightbox-title').textContent = f.name || 'Photo';
  $('lightbox-info').textContent = [f.width && f.height ? `${f.width} × ${f.height}` : '', formatSize(f.size)]
    .filter(Boolean).join(' · ');
  img.removeAttribute('src');
  img.alt = f.name || 'Photo';
  img.hidden = true;
  $('lightbox-status').textContent = 'Loading…';
  if (!dlg.open) dlg.showModal();
  $('lightbox-close').focus();
  try {
    const blob = await fileBlob(api, f.id);
    if (lightbox !== mine) return;
    mine.url = URL.createObjectURL(blob);
    img.src = mine.url;
    img.hidden = false;
    $('lightbox-status').textContent = '';
  } catch (e) {
    if (lightbox === mine) $('lightbox-status').textContent = errorText(e);
  }
}

function onLightboxClose() {
  const lb = lightbox;
  lightbox = null;
  const img = $('lightbox-img');
  img.removeAttribute('src');
  img.hidden = true;
  if (!lb) return;
  if (lb.url) URL.revokeObjectURL(lb.url);
  const back = lb.fkey && $('messages').querySelector(`[data-fkey="${CSS.escape(lb.fkey)}"]`);
  if (back) back.focus({ preventScroll: true });
}

// The reactions under a message: one button each, its emoji and count,
// pressed when one of them is this user's; a click gives or takes it back.
function reactionsOf(m) {
  const list = m.reactions || [];
  if (!list.length) return null;
  const named = new Map(REACTIONS);
  return h('div', { class: 'reactions', role: 'group', 'aria-label': 'Reactions' }, list.map((r) =>
    h('button', { type: 'button', class: 'reaction', 'aria-pressed': String(!!r.me), 'data-emoji': r.emoji,
      'data-fkey': `react:${keyOf(m)}:${r.emoji}`,
      'aria-label': `${named.get(r.emoji) || r.emoji}: ${r.count}`,
      title: r.me ? 'Take back your reaction' : 'React with this too',
      onclick: () => toggleReaction(keyOf(m), r.emoji) },
    h('span', { 'aria-hidden': 'true', text: r.emoji }), h('span', { class: 'count', text: r.count }))));
}

// ---------------------------------------------------------------------------
// Sending: outbox, confirmation, resend

// Sends body in the open conversation; reply_to: the message it answers;
// attachments: the files uploaded for it (the server's answers). The
// client's outbox keeps it until the server confirms it, and sends it again
// after a reconnect with the same client_msg_id.
function sendMessage(body, reply_to, attachments) {
  const v = S.view;
  if (!v) return;
  const options = {};
  if (reply_to) options.reply_to = reply_to;
  if (attachments && attachments.length) {
    options.attachments = attachments.map(({ id, content_type, size, name, width, height, thumbnail }) =>
      ({ id, content_type, size, name, width, height, thumbnail }));
  }
  client.send(v.cid, body, options);
  if (!v.atEnd) { openConversation(v.cid); }
  renderMessages();
  scrollToBottom();
}

// A send the server refused for good: it stays, marked, with Retry.
function onSendFailed(e) {
  showToast('Message not sent: ' + errorText(e));
  if (S.view) renderMessages();
}

// The server stored an own message: it left the outbox, and shows as sent.
// A REST answer is the whole message, news for the list as well.
function onConfirmed({ item, message: m, via }) {
  if (m && m.message_id) {
    const key = `${item.conversation_id}:${m.message_id}`;
    if (!(S.view && S.view.msgs.has(key))) {
      addToView({ conversation_id: item.conversation_id, message_id: m.message_id, sender_id: S.me.id,
        body: item.body, created_at: m.created_at || item.created_at, client_msg_id: item.client_msg_id,
        reply_to: item.reply_to || null, attachments: m.attachments || item.attachments || [], edited_at: null,
        deleted_at: null, reactions: [] });
    }
  }
  if (via === 'rest' && m && m.sender_id) onMessage(m);
  else if (S.view && S.view.cid === item.conversation_id) renderMessages();
}

// ---------------------------------------------------------------------------
// Live frames

function onMessage(m) {
  // A message read back from the inbox later shows it as it stands now
  // (edited, deleted, its reactions); a new one has none of that yet.
  const msg = { conversation_id: m.conversation_id, message_id: m.message_id, sender_id: m.sender_id,
    body: m.body, created_at: m.created_at, client_msg_id: m.client_msg_id, reply_to: m.reply_to || null,
    attachments: m.attachments || [], edited_at: m.edited_at || null, deleted_at: m.deleted_at || null,
    reactions: m.reactions || [] };
  const own = msg.sender_id === S.me.id;
  // Whoever sent a message has stopped typing it, wherever that shows.
  clearTyping(msg.conversation_id, msg.sender_id);
  const c = S.convs.get(msg.conversation_id);
  if (!c) {
    // A conversation this client has not heard of: the list has its count.
    refreshConversations().then(() => {
      const fresh = S.convs.get(msg.conversation_id);
      if (fresh && !own) notifyMessage(fresh, msg);
    });
    return;
  }
  const isNew = !c.last_message || msg.message_id > c.last_message.message_id;
  if (isNew) {
    c.last_message = msg;
    c.activity = Math.max(c.activity, Date.parse(msg.created_at) || Date.now());
  }
  const v = S.view;
  const shown = v && v.cid === msg.conversation_id;
  // A message shown already keeps its copy: events may have changed it.
  if (shown && v.atEnd && !v.msgs.has(keyOf(msg))) {
    addToView(msg);
    renderMessages();
  }
  if (!own && isNew && msg.message_id > (c.last_read_message_id || 0)) {
    if (shown && v.atEnd && document.visibilityState !== 'hidden') {
      markRead();
    } else {
      c.unread = (c.unread || 0) + 1;
      // Arrived while the tab was hidden: mark where the user left off.
      if (shown && v.unreadAfter === null) {
        v.unreadAfter = c.last_read_message_id || 0;
        renderMessages();
      }
    }
    notifyMessage(c, msg);
  }
  scheduleRender();
}

// ---------------------------------------------------------------------------
// After sending: edits, deletions, reactions (PROTOCOL.md "Additions")

// An edit, delete or reaction event (live, replayed, or made here): the
// message changes in place wherever the client keeps it (the view, the
// conversation list's last message, a reply's quote).
//
// A reaction of someone else is not counted from the event: a message read
// back from the inbox or from history already counts the reactions given
// before it was read, and events that follow it in a replay may be among
// them. So the message is read again, and its reactions shown as they
// stand. This user's own reactions are counted from the event: its "me"
// flag tells whether it is counted already.
function onMessageEvent(ev) {
  const key = keyOf(ev);
  const v = S.view;
  if (ev.type === 'reaction' && ev.user_id !== S.me.id) {
    rereadSoon(ev.conversation_id, ev.message_id);
    return;
  }
  const copies = new Set();
  if (v && v.msgs.has(key)) copies.add(v.msgs.get(key));
  const c = S.convs.get(ev.conversation_id);
  if (c && c.last_message && c.last_message.message_id === ev.message_id) copies.add(c.last_message);
  const quoted = S.quotes.get(key);
  if (quoted && typeof quoted === 'object') copies.add(quoted);
  // A deleted message's files are no longer shown, nor fetchable.
  if (ev.type === 'delete') {
    for (const m of copies) for (const f of m.attachments || []) { forget(f.id); pictures.delete(f.id); }
  }
  let changed = false;
  for (const m of copies) changed = applyEvent(m, ev, S.me.id) || changed;
  // A message being answered or edited here was deleted: the composer lets go.
  if (ev.type === 'delete' && S.compose && `${S.compose.cid}:${S.compose.mid}` === key) {
    if (S.compose.kind === 'edit') showToast('The message you were editing was deleted.');
    cancelCompose();
  }
  if (changed) scheduleRender();
}

// Reads messages of the open view again (their reactions), a moment after
// the first asks, in one request for those close together. Each message
// takes its reactions from the newest answer about it. The state is the
// view's: a conversation left drops what it waited for.
function rereadSoon(cid, mid) {
  const v = S.view;
  if (!v || v.cid !== cid || !v.msgs.has(`${cid}:${mid}`)) return;
  const r = v.reread || (v.reread = { mids: new Set(), timer: null, gen: 0, last: new Map() });
  r.mids.add(mid);
  if (!r.timer) r.timer = setTimeout(() => rereadNow(v), 100);
}

async function rereadNow(v) {
  const r = v.reread;
  r.timer = null;
  if (S.view !== v || !r.mids.size) return;
  const lo = Math.min(...r.mids);
  const mids = [...r.mids].filter((mid) => mid < lo + 100);
  mids.forEach((mid) => r.mids.delete(mid));
  if (r.mids.size) r.timer = setTimeout(() => rereadNow(v), 0);
  const gen = ++r.gen;
  for (const mid of mids) r.last.set(mid, gen);
  try {
    const { messages } = await api.messages(v.cid, { after: lo - 1, limit: Math.max(...mids) - lo + 1 });
    if (S.view !== v) return;
    for (const fresh of messages) {
      const m = v.msgs.get(keyOf(fresh));
      if (!m || r.last.get(fresh.message_id) !== gen) continue;
      r.last.delete(fresh.message_id);
      m.reactions = fresh.reactions || [];
    }
    scheduleRender();
  } catch { /* the next reaction reads it again */ }
}

// The "⋯" menu of a message: the quick reactions, Reply, and Edit or
// Delete where this user may.
function openMessageMenu(anchor, key) {
  if (menuOpenFor(anchor)) { closeMenu(true); return; }
  const v = S.view;
  const m = v && v.msgs.get(key);
  if (!m || m.deleted_at) return;
  const c = S.convs.get(m.conversation_id);
  const own = m.sender_id === S.me.id;
  const items = [
    { label: 'React', row: REACTIONS.map(([emoji, name]) => ({ text: emoji, label: `React with ${name}`, title: name,
      checked: reactedWith(m, emoji), onSelect: () => toggleReaction(key, emoji) })) },
    { text: 'Reply', onSelect: () => startCompose('reply', m) },
  ];
  if (own && Date.now() - (Date.parse(m.created_at) || 0) < EDIT_WINDOW_MS) {
    items.push({ text: 'Edit', onSelect: () => startCompose('edit', m) });
  }
  // The sender, or a group admin (PROTOCOL.md: conversation admin_ids, role).
  const admin = c && c.kind === 'group' && ((c.admin_ids || []).includes(S.me.id) || c.role === 'admin');
  if (own || admin) items.push({ text: 'Delete', danger: true, onSelect: () => deleteMessage(key) });
  openMenu(anchor, items, {
    label: 'Message actions',
    anchorAgain: () => $('messages').querySelector(`[data-fkey="more:${CSS.escape(key)}"]`),
  });
}

// Gives or takes back a reaction: shown at once, undone if the server
// refuses. Requests go one after another, so quick clicks end as clicked.
let reacting = Promise.resolve();
function toggleReaction(key, emoji) {
  const m = S.view && S.view.msgs.get(key);
  if (!m || m.deleted_at) return;
  const add = !reactedWith(m, emoji);
  applyReaction(m, emoji, add, true);
  renderMessages();
  reacting = reacting.then(async () => {
    try {
      await (add ? api.react(m.conversation_id, m.message_id, emoji) : api.unreact(m.conversation_id, m.message_id, emoji));
    } catch (e) {
      applyReaction(m, emoji, !add, true);
      if (S.view) renderMessages();
      showToast(errorText(e));
    }
  });
}

async function deleteMessage(key) {
  const m = S.view && S.view.msgs.get(key);
  if (!m) return;
  const own = m.sender_id === S.me.id;
  const ok = await confirmDialog({
    title: 'Delete this message?',
    text: own ? 'It is deleted for everyone in the conversation.'
      : `${nameOf(m.sender_id)}'s message is deleted for everyone in the conversation.`,
    action: 'Delete',
  });
  if (!ok) return;
  try {
    await api.deleteMessage(m.conversation_id, m.message_id);
    onMessageEvent({ type: 'delete', conversation_id: m.conversation_id, message_id: m.message_id,
      deleted_at: new Date().toISOString(), deleted_by: S.me.id });
  } catch (e) { showToast(errorText(e)); }
}

// Goes to message mid of the open conversation, highlighted: at once when
// it is loaded, else by opening the conversation around it.
function jumpTo(cid, mid) {
  const v = S.view;
  if (!v || v.cid !== cid) return;
  if (!v.msgs.has(`${cid}:${mid}`)) {
    openConversation(cid, { around: mid });
    return;
  }
  v.highlight = mid;
  renderMessages();
  const el = $('messages').querySelector(`li.msg[data-mid="${mid}"]`);
  if (el) {
    el.scrollIntoView({ block: 'center' });
    el.focus({ preventScroll: true });
  }
}

// The composer answers a message (kind "reply") or edits one ("edit": the
// body goes into the composer; what was typed there comes back after).
function startCompose(kind, m) {
  const ta = $('composer-input');
  if (S.compose && S.compose.kind === 'edit') ta.value = S.compose.draft;
  S.compose = { kind, cid: m.conversation_id, mid: m.message_id, draft: ta.value };
  if (kind === 'edit') ta.value = m.body;
  renderComposer();
  ta.focus();
  ta.setSelectionRange(ta.value.length, ta.value.length);
  autosizeComposer();
}

function cancelCompose() {
  const x = S.compose;
  if (!x) return;
  S.compose = null;
  if (x.kind === 'edit') {
    $('composer-input').value = x.draft;
    autosizeComposer();
  }
  renderComposer();
}

function renderComposer() {
  const x = S.compose;
  const send = $('composer-send');
  const editing = !!x && x.kind === 'edit';
  // A message may be files alone: the text is then not required.
  $('composer-input').required = editing || !(S.view && uploadsOf(S.view.cid).length);
  $('btn-attach').disabled = editing;
  send.textContent = editing ? 'Save' : 'Send';
  send.setAttribute('aria-label', editing ? 'Save edit' : 'Send message');
  $('composer-context').hidden = !x;
  if (!x) return;
  const m = originalOf(x.cid, x.mid);
  const who = m && m !== 'loading' ? nameOf(m.sender_id) : '';
  $('cc-title').textContent = editing ? 'Editing message' : `Replying to ${who}`;
  $('cc-quote').textContent = m && m !== 'loading' ? firstLine(m.body) : '';
  $('cc-cancel').setAttribute('aria-label', editing ? 'Cancel editing' : 'Cancel reply');
  $('cc-cancel').title = editing ? 'Cancel editing' : 'Cancel reply';
}

// Saves the composer's text as the new body of the message being edited.
async function saveEdit(body) {
  const x = S.compose;
  const key = `${x.cid}:${x.mid}`;
  const m = S.view && S.view.msgs.get(key);
  if (m && m.body === body) { cancelCompose(); return; }
  const send = $('composer-send');
  send.disabled = true;
  try {
    const fresh = await api.editMessage(x.cid, x.mid, body);
    onMessageEvent({ type: 'edit', conversation_id: x.cid, message_id: x.mid, body: fresh.body,
      edited_at: fresh.edited_at, sender_id: S.me.id });
    if (S.compose === x) cancelCompose();
  } catch (e) {
    showToast(e.code === 'forbidden' ? 'This message can no longer be edited.'
      : e.code === 'not_found' ? 'This message was deleted.' : errorText(e));
    if (e.code === 'not_found' && S.compose === x) cancelCompose();
  } finally {
    send.disabled = false;
  }
}

// Asks before something that cannot be undone; resolves true for yes.
function confirmDialog({ title, text, action }) {
  const dlg = $('dlg-confirm');
  $('dlg-confirm-title').textContent = title;
  $('dlg-confirm-text').textContent = text;
  $('dlg-confirm-ok').textContent = action;
  dlg.returnValue = '';
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
  });
}

// ---------------------------------------------------------------------------
// Desktop notifications
//
// Permission is asked for only from the "Enable notifications" button:
// browsers refuse or penalise a prompt no user action asked for. A message
// notifies unless its conversation is on screen or muted; one notification
// per conversation (its tag), the newest replacing the one before.

const NOTIFY_DISMISSED = 'parley.notify.dismissed';
const notifications = new Map(); // conversation id -> Notification

function renderNotifyBar() {
  $('notify-bar').hidden = !('Notification' in window) || Notification.permission !== 'default' ||
    localStorage.getItem(NOTIFY_DISMISSED) === '1';
}

async function enableNotifications() {
  try { await Notification.requestPermission(); } catch { /* unsupported: the bar goes away */ }
  if (Notification.permission === 'default') localStorage.setItem(NOTIFY_DISMISSED, '1');
  renderNotifyBar();
}

function dismissNotifyBar() {
  localStorage.setItem(NOTIFY_DISMISSED, '1');
  renderNotifyBar();
}

function notifyMessage(c, msg) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  if (msg.sender_id === S.me.id || c.muted) return;
  if (S.view && S.view.cid === c.id && document.visibilityState === 'visible') return;
  const sender = nameOf(msg.sender_id);
  const group = c.kind === 'group';
  let n;
  try {
    n = new Notification(group ? titleOf(c) : sender, {
      body: ((group ? sender + ': ' : '') + (msg.body || filesLabel(msg))).slice(0, 200),
      tag: `parley-conversation-${c.id}`,
    });
  } catch { return; } // some browsers only notify from a service worker
  notifications.set(c.id, n);
  n.onclick = () => {
    window.focus();
    n.close();
    selectTab('chats');
    openConversation(c.id);
  };
  n.onclose = () => { if (notifications.get(c.id) === n) notifications.delete(c.id); };
}

// Opening a conversation answers its notification.
function closeNotification(cid) {
  const n = notifications.get(cid);
  if (n) n.close();
  notifications.delete(cid);
}

// ---------------------------------------------------------------------------
// Typing

function onTyping(f) {
  if (f.user_id === S.me.id) return;
  let m = S.typing.get(f.conversation_id);
  if (!m) S.typing.set(f.conversation_id, (m = new Map()));
  clearTimeout(m.get(f.user_id));
  m.set(f.user_id, setTimeout(() => clearTyping(f.conversation_id, f.user_id), 4000));
  renderTyping();
  scheduleRender();
}

function clearTyping(cid, uid) {
  const m = S.typing.get(cid);
  if (!m || !m.has(uid)) return;
  clearTimeout(m.get(uid));
  m.delete(uid);
  renderTyping();
  scheduleRender();
}

function renderTyping() {
  const el = $('typing');
  if (!S.view) return;
  const m = S.typing.get(S.view.cid);
  const names = m ? [...m.keys()].map(nameOf) : [];
  el.textContent = names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…`
    : `${names.join(', ')} are typing…`;
}

function onRead(f) {
  const c = S.convs.get(f.conversation_id);
  if (f.user_id === S.me.id) {
    // Read on another device: clear the unread count here too.
    if (c) {
      c.last_read_message_id = Math.max(c.last_read_message_id || 0, f.message_id);
      if (!c.last_message || f.message_id >= c.last_message.message_id) c.unread = 0;
      scheduleRender();
    }
    return;
  }
  let m = S.reads.get(f.conversation_id);
  if (!m) S.reads.set(f.conversation_id, (m = new Map()));
  if ((m.get(f.user_id) || 0) < f.message_id) m.set(f.user_id, f.message_id);
  if (S.view && S.view.cid === f.conversation_id) renderMessages();
}

function onConversation(f) {
  const c = f.conversation || {};
  if (!c.kind || (c.member_ids && !c.member_ids.includes(S.me.id))) {
    S.convs.delete(c.id);
    if (S.view && S.view.cid === c.id) closeConversation();
  } else {
    upsertConversation(c);
  }
  scheduleRender();
}

// ---------------------------------------------------------------------------
// Friends and presence

// Refetches the friend list (states and presence). Calls may overlap (a
// live event, the tab, a reconnect): only the latest one's answer is kept.
let friendsGen = 0;
async function refreshFriends() {
  const gen = ++friendsGen;
  try {
    const { friends } = await api.friends();
    if (gen !== friendsGen) return;
    S.friends = friends;
    renderFound();
    for (const f of friends) {
      rememberUser(f);
      if (f.presence) S.presence.set(f.id, f.presence.status);
    }
    // Presence of conversation peers who are not friends.
    const peers = new Set();
    for (const c of S.convs.values()) for (const id of c.member_ids || []) if (id !== S.me.id) peers.add(id);
    for (const f of friends) peers.delete(f.id);
    if (peers.size) {
      const { presence } = await api.presence([...peers].slice(0, 100));
      for (const p of presence) S.presence.set(p.user_id, p.status);
    }
    scheduleRender();
  } catch { /* retried */ }
}

function renderFriends() {
  const list = $('friend-list');
  const order = { incoming: 0, accepted: 1, outgoing: 2 };
  const friends = [...S.friends].sort((a, b) => order[a.state] - order[b.state] ||
    (a.display_name || a.username).localeCompare(b.display_name || b.username));
  $('friend-empty').hidden = friends.length > 0;
  const incoming = friends.filter((f) => f.state === 'incoming').length;
  $('incoming-badge').hidden = !incoming;
  $('incoming-badge').textContent = incoming;
  redraw(list, friends.map((f) => {
    const name = f.display_name || f.username;
    const status = S.presence.get(f.id) || 'offline';
    const av = h('span', { class: 'avatar', 'aria-hidden': 'true' });
    avatar(av, name, f.id);
    let actions;
    if (f.state === 'accepted') {
      actions = [h('button', { type: 'button', class: 'small', 'aria-label': `Message ${name}`, text: 'Message',
        onclick: () => startDirect(f.id) })];
    } else if (f.state === 'incoming') {
      actions = [
        h('button', { type: 'button', class: 'small primary', 'aria-label': `Accept ${name}`, text: 'Accept',
          onclick: () => friendAction(() => api.addFriend(f.id)) }),
        h('button', { type: 'button', class: 'small', 'aria-label': `Decline ${name}`, text: 'Decline',
          onclick: () => friendAction(() => api.removeFriend(f.id)) }),
      ];
    } else {
      actions = [h('span', { class: 'hint', text: 'Request sent' }),
        h('button', { type: 'button', class: 'small', 'aria-label': `Cancel request to ${name}`, text: 'Cancel',
          onclick: () => friendAction(() => api.removeFriend(f.id)) })];
    }
    const blocked = S.blocked.has(f.id);
    return h('li', { class: 'person', 'data-user': f.username, 'data-state': f.state, 'data-blocked': blocked ? 'true' : null },
      h('span', { class: 'av-wrap' }, av, f.state === 'accepted'
        ? h('span', { class: 'dot ' + status, 'data-presence': status, role: 'img', 'aria-label': status }) : null),
      h('span', { class: 'person-main' }, h('span', { class: 'person-name', text: name }),
        h('span', { class: 'hint', text: '@' + f.username + (blocked ? ' · blocked'
          : f.state === 'incoming' ? ' wants to be friends' : '') })),
      h('span', { class: 'person-actions' }, actions, personButton(f, 'friend')));
  }));
  renderBlocked();
}

// ---------------------------------------------------------------------------
// Blocking (PROTOCOL.md "Additions": blocking)
//
// Every person shown (a friend, someone found, the other member of a direct
// conversation) has a "⋯" menu to block or unblock them; the people blocked
// are listed under the friends, each with "Unblock".

async function refreshBlocks() {
  try {
    const { users } = await api.blocks();
    S.blocked = new Map(users.map((u) => [u.id, u]));
    users.forEach(rememberUser);
    scheduleRender();
  } catch { /* retried on the next ready */ }
}

// A person's "⋯" button; where: the list it is in (to find it again).
function personButton(u, where) {
  const name = u.display_name || u.username;
  return h('button', { type: 'button', class: 'icon more', 'data-fkey': `person:${where}:${u.id}`,
    'aria-label': `More options for ${name}`, title: 'More options', 'aria-haspopup': 'menu', 'aria-expanded': 'false',
    onclick: (e) => personMenu(e.currentTarget, u.id, where) }, '⋯');
}

function personMenu(anchor, id, where) {
  if (menuOpenFor(anchor)) { closeMenu(true); return; }
  const name = nameOf(id);
  openMenu(anchor, [S.blocked.has(id)
    ? { text: `Unblock ${name}`, onSelect: () => unblockUser(id) }
    : { text: `Block ${name}`, danger: true, onSelect: () => blockUser(id) }], {
    label: name,
    anchorAgain: where ? () => document.querySelector(`[data-fkey="person:${where}:${id}"]`) : null,
  });
}

async function blockUser(id) {
  const name = nameOf(id);
  const ok = await confirmDialog({
    title: `Block ${name}?`,
    text: `${name} will not be able to message you in your direct conversation, add you to groups or send you ` +
      `friend requests, and you stop seeing each other online. Their messages in groups you share are hidden ` +
      `from you. ${name} is not told.`,
    action: 'Block',
  });
  if (!ok) return;
  try {
    await api.block(id);
    S.blocked.set(id, S.users.get(id) || { id });
    showToast(`You blocked ${name}.`);
    afterBlockChange(id);
  } catch (e) { showToast(errorText(e)); }
}

async function unblockUser(id) {
  const name = nameOf(id);
  try {
    await api.unblock(id);
    S.blocked.delete(id);
    showToast(`You unblocked ${name}.`);
    afterBlockChange(id);
  } catch (e) { showToast(errorText(e)); }
}

// History and presence change with a block: a group on screen with that
// person in it is read again (their messages leave it, or come back).
function afterBlockChange(id) {
  scheduleRender();
  refreshBlocks();
  refreshFriends();
  const c = S.view && S.convs.get(S.view.cid);
  if (c && c.kind === 'group' && (c.member_ids || []).includes(id)) openConversation(c.id);
}

function renderBlocked() {
  const users = [...S.blocked.values()];
  $('blocked-section').hidden = !users.length;
  redraw($('blocked-list'), users.map((u) => {
    const name = nameOf(u.id);
    const av = h('span', { class: 'avatar', 'aria-hidden': 'true' });
    avatar(av, name, u.id);
    return h('li', { class: 'person', 'data-user': u.username, 'data-state': 'blocked' },
      h('span', { class: 'av-wrap' }, av),
      h('span', { class: 'person-main' }, h('span', { class: 'person-name', text: name }),
        h('span', { class: 'hint', text: '@' + (u.username || u.id) })),
      h('span', { class: 'person-actions' }, h('button', { type: 'button', class: 'small', 'data-fkey': `unblock:${u.id}`,
        'aria-label': `Unblock ${name}`, text: 'Unblock', onclick: () => unblockUser(u.id) })));
  }));
}

async function friendAction(fn) {
  try { await fn(); } catch (e) { showToast(errorText(e)); }
  await refreshFriends();
}

// A friend request, an acceptance or an ended friendship (the live "friend"
// event; it names the other user). The list is redrawn at once from the
// event, so the request badge shows on any tab, then refetched for states
// and presence; the people found are redrawn with it, so a result never
// says "Request sent" for someone who is a friend by now.
function onFriend(f) {
  const u = f.user;
  if (!u || !u.id) return;
  rememberUser(u);
  const i = S.friends.findIndex((x) => x.id === u.id);
  if (f.change === 'removed') {
    if (i >= 0) S.friends.splice(i, 1);
  } else if (f.change === 'request' || f.change === 'accepted') {
    const entry = { ...(i >= 0 ? S.friends[i] : {}), ...u, state: f.change === 'request' ? 'incoming' : 'accepted' };
    if (i >= 0) S.friends[i] = entry;
    else S.friends.push(entry);
  }
  renderFriends();
  renderFound();
  refreshFriends();
}

async function findPeople(ev) {
  ev.preventDefault();
  const q = $('find-input').value.trim().toLowerCase();
  if (!q) { S.found = null; renderFound(); return; }
  try {
    const { users } = await api.findUsers(q);
    S.found = { q, users: users.filter((u) => u.id !== S.me.id) };
    S.found.users.forEach(rememberUser);
    renderFound();
  } catch (e) { showToast(errorText(e)); }
}

// The people found, each with what can be done given the friend list now.
function renderFound() {
  const list = $('find-list');
  if (!S.found) { list.replaceChildren(); return; }
  const known = new Map(S.friends.map((f) => [f.id, f.state]));
  redraw(list, (S.found.users.length ? S.found.users.map((u) => {
    const name = u.display_name || u.username;
    const state = known.get(u.id);
    return h('li', { class: 'person', 'data-user': u.username, 'data-state': state || 'none' },
      h('span', { class: 'person-main' }, h('span', { class: 'person-name', text: name }),
        h('span', { class: 'hint', text: '@' + u.username })),
      h('span', { class: 'person-actions' }, state === 'accepted' ? h('span', { class: 'hint', text: 'Friend' })
        : state === 'outgoing' ? h('span', { class: 'hint', text: 'Request sent' })
          : h('button', { type: 'button', class: 'small primary',
            'aria-label': state === 'incoming' ? `Accept ${name}` : `Add ${name} as a friend`,
            text: state === 'incoming' ? 'Accept' : 'Add friend',
            onclick: (e) => {
              e.target.disabled = true;
              friendAction(() => api.addFriend(u.id));
            } }), personButton(u, 'found')));
  }) : [h('li', { class: 'empty', text: 'Nobody found.' })]));
}

async function startDirect(userId) {
  try {
    const c = await api.startDirect(userId);
    upsertConversation(c);
    selectTab('chats');
    openConversation(c.id);
  } catch (e) { showToast(errorText(e)); }
}

// ---------------------------------------------------------------------------
// Groups, members, mute, profile

function openGroupDialog() {
  const box = $('group-members');
  const friends = S.friends.filter((f) => f.state === 'accepted');
  box.replaceChildren(...(friends.length ? friends.map((f) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', value: f.id, name: 'member' }), f.display_name || f.username))
    : [h('p', { class: 'hint', text: 'Add friends first.' })]));
  $('group-title').value = '';
  $('group-error').textContent = '';
  $('dlg-group').showModal();
}

async function createGroup(ev) {
  ev.preventDefault();
  const title = $('group-title').value.trim();
  const ids = [...$('group-members').querySelectorAll('input:checked')].map((i) => Number(i.value));
  if (!title) { $('group-error').textContent = 'Give the group a name.'; return; }
  if (!ids.length) { $('group-error').textContent = 'Pick at least one friend.'; return; }
  try {
    const c = await api.startGroup(title, ids);
    upsertConversation(c);
    $('dlg-group').close();
    openConversation(c.id);
  } catch (e) { $('group-error').textContent = errorText(e); }
}

function openMembersDialog() {
  const c = S.convs.get(S.view.cid);
  if (!c) return;
  renderMembersDialog(c);
  $('members-error').textContent = '';
  $('dlg-members').showModal();
}

function renderMembersDialog(c) {
  const admins = new Set(c.admin_ids || []);
  $('members-list').replaceChildren(...(c.member_ids || []).map((id) => h('li', { class: 'person' },
    h('span', { class: 'dot ' + (id === S.me.id ? 'online' : S.presence.get(id) || 'offline') }),
    h('span', { class: 'person-name', text: nameOf(id) + (id === S.me.id ? ' (you)' : '') }),
    admins.has(id) ? h('span', { class: 'hint', text: 'admin' }) : null)));
  const isAdmin = admins.has(S.me.id) || c.role === 'admin';
  const candidates = S.friends.filter((f) => f.state === 'accepted' && !(c.member_ids || []).includes(f.id));
  $('members-add-row').hidden = !isAdmin || !candidates.length;
  $('members-add').replaceChildren(...candidates.map((f) => h('option', { value: f.id, text: f.display_name || f.username })));
}

async function addMember() {
  const c = S.convs.get(S.view.cid);
  const id = Number($('members-add').value);
  if (!c || !id) return;
  try {
    await api.addMember(c.id, id);
    const fresh = await api.conversation(c.id);
    renderMembersDialog(upsertConversation(fresh));
    scheduleRender();
  } catch (e) { $('members-error').textContent = errorText(e); }
}

async function toggleMute() {
  const c = S.convs.get(S.view.cid);
  if (!c) return;
  try {
    upsertConversation(await api.updateConversation(c.id, { muted: !c.muted }));
    scheduleRender();
  } catch (e) { showToast(errorText(e)); }
}

function openProfile() {
  $('profile-username').textContent = '@' + S.me.username;
  $('profile-display').value = S.me.display_name || '';
  $('profile-error').textContent = '';
  $('dlg-profile').showModal();
}

async function saveProfile(ev) {
  ev.preventDefault();
  const name = $('profile-display').value.trim();
  if (!name) { $('profile-error').textContent = 'A display name has 1 to 64 characters.'; return; }
  try {
    S.me = { ...S.me, ...(await api.updateMe({ display_name: name })) };
    rememberUser(S.me);
    renderMe();
    $('dlg-profile').close();
    scheduleRender();
  } catch (e) { $('profile-error').textContent = errorText(e); }
}

// ---------------------------------------------------------------------------
// Search

async function runSearch(ev) {
  ev.preventDefault();
  const q = $('search-input').value.trim();
  if (!q) { clearSearch(); return; }
  $('search-results').hidden = false;
  $('search-summary').textContent = 'Searching…';
  try {
    const { messages } = await api.search(q);
    $('search-summary').textContent = messages.length ? `${messages.length} found` : 'Nothing found';
    $('search-list').replaceChildren(...messages.map((m) => {
      const c = S.convs.get(m.conversation_id);
      return h('li', { class: 'result', 'data-mid': m.message_id },
        h('button', { type: 'button', class: 'result-btn',
          'aria-label': `Open "${m.body.slice(0, 60)}" in ${titleOf(c)}`,
          onclick: () => { openConversation(m.conversation_id, { around: m.message_id }); } },
        h('span', { class: 'conv-top' }, h('span', { class: 'conv-title', text: c ? titleOf(c) : 'Conversation' }),
          h('span', { class: 'conv-time', text: timeOf(m.created_at) })),
        h('span', { class: 'conv-preview' }, nameOf(m.sender_id) + ': ', highlight(m.body, q))));
    }));
  } catch (e) { $('search-summary').textContent = errorText(e); }
}

function highlight(text, q) {
  const i = text.toLowerCase().indexOf(q.toLowerCase());
  if (i < 0) return text;
  return [text.slice(0, i), h('mark', { text: text.slice(i, i + q.length) }), text.slice(i + q.length)];
}

function clearSearch() {
  $('search-input').value = '';
  $('search-results').hidden = true;
  $('search-list').replaceChildren();
}

// ---------------------------------------------------------------------------
// Misc UI

function selectTab(tab) {
  S.tab = tab;
  for (const t of ['chats', 'friends']) {
    $('tab-' + t).setAttribute('aria-selected', String(t === tab));
    $('panel-' + t).hidden = t !== tab;
  }
  if (tab === 'friends') refreshFriends();
}

let toastTimer;
function showToast(text) {
  let el = document.querySelector('.toast');
  if (!el) document.body.append(el = h('div', { class: 'toast', role: 'alert' }));
  el.textContent = text;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 5000);
}

let lastTyping = 0;
function autosizeComposer() {
  const ta = $('composer-input');
  ta.style.height = 'auto';
  ta.style.height = Math.min(ta.scrollHeight, 160) + 'px';
}

// Typing is announced for new messages, not for edits.
function onComposerInput() {
  const ta = $('composer-input');
  autosizeComposer();
  if (!S.view || !ta.value || (S.compose && S.compose.kind === 'edit') || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  client.typing(S.view.cid);
}

// Sends the text and the files uploaded for this conversation (a message
// may be files alone); an edit saves the text only.
function onComposerSubmit(ev) {
  ev.preventDefault();
  const ta = $('composer-input');
  const body = ta.value.trim();
  const x = S.compose;
  const editing = !!x && x.kind === 'edit';
  const ups = editing || !S.view ? [] : uploadsOf(S.view.cid);
  if (!body && !ups.length) {
    if (editing) showToast('A message cannot be empty: delete it instead.');
    return;
  }
  if (new TextEncoder().encode(body).length > 4096) { showToast('A message has at most 4096 bytes.'); return; }
  if (editing) { saveEdit(body); return; }
  if (ups.some((u) => u.state === 'uploading')) { showToast('Wait until your files are uploaded.'); return; }
  if (ups.some((u) => u.state === 'error')) { showToast('Retry or remove the files that could not be uploaded.'); return; }
  ta.value = '';
  ta.style.height = 'auto';
  lastTyping = 0;
  S.compose = null;
  for (const u of ups) dropUpload(u);
  S.uploads = S.uploads.filter((u) => !ups.includes(u));
  renderUploads();
  renderComposer();
  sendMessage(body, x && x.kind === 'reply' ? x.mid : null, ups.map((u) => u.att));
}

// ---------------------------------------------------------------------------
// Files for the next message: picked with the paperclip, dropped on the
// conversation or pasted. Each is uploaded at once (its chip shows the
// progress), and is sent by id with the next message of its conversation.

const MAX_FILES = 10; // per message (PROTOCOL.md)
const uploadsOf = (cid) => S.uploads.filter((u) => u.cid === cid);

function addFiles(list) {
  const v = S.view;
  const files = [...(list || [])];
  if (!v || !files.length) return;
  const room = MAX_FILES - uploadsOf(v.cid).length;
  if (files.length > room) showToast(`A message takes at most ${MAX_FILES} files.`);
  for (const file of files.slice(0, Math.max(0, room))) {
    const u = { key: newId(), cid: v.cid, file, name: file.name || 'file', size: file.size, loaded: 0,
      state: 'uploading', error: '', att: null, req: null, preview: null, el: null };
    if (/^image\//.test(file.type)) u.preview = URL.createObjectURL(file);
    S.uploads.push(u);
    startUpload(u);
  }
  renderUploads();
  renderComposer();
}

function startUpload(u) {
  u.state = 'uploading';
  u.loaded = 0;
  u.error = '';
  if (!u.size) { uploadFailed(u, { code: 'empty' }); return; }
  u.req = api.upload(u.file, (loaded, total) => {
    u.loaded = Math.min(loaded, total || u.size);
    updateChip(u);
  });
  const req = u.req;
  req.promise.then((att) => {
    if (u.req !== req) return;
    u.req = null;
    u.att = att;
    u.loaded = u.size;
    u.state = 'done';
    updateChip(u);
  }, (e) => {
    if (u.req !== req || e.code === 'aborted') return;
    u.req = null;
    uploadFailed(u, e);
  });
  updateChip(u);
}

function uploadFailed(u, e) {
  u.state = 'error';
  u.tooLarge = e.code === 'too_large' || e.status === 413;
  u.error = e.code === 'empty' ? 'This file is empty.'
    : u.tooLarge ? 'Too large to send.'
      : `Not uploaded. ${errorText(e)}`;
  updateChip(u);
}

// Lets go of an upload: stops it if it is under way, frees its preview.
function dropUpload(u) {
  const req = u.req;
  u.req = null;
  if (req) req.abort();
  if (u.preview) URL.revokeObjectURL(u.preview);
  u.preview = null;
}

function removeUpload(u) {
  const list = $('composer-files');
  const chips = [...list.children];
  const i = chips.indexOf(u.el);
  dropUpload(u);
  S.uploads = S.uploads.filter((x) => x !== u);
  renderUploads();
  renderComposer();
  // The focus goes to the next chip's Remove, else back to the message box.
  const next = list.children[Math.min(i, list.children.length - 1)];
  (next ? next.querySelector('.chip-remove') : $('composer-input')).focus();
}

// The chips of the open conversation's files, above the composer. A chip
// is made once and updated in place as its upload goes on.
function renderUploads() {
  const list = $('composer-files');
  const ups = S.view ? uploadsOf(S.view.cid) : [];
  const els = ups.map(chipOf);
  if (list.hidden === !ups.length && els.length === list.children.length &&
      els.every((el, i) => list.children[i] === el)) return;
  // The chips take room from the messages: the newest stay in sight.
  const stick = S.view && nearBottom();
  list.hidden = !ups.length;
  redraw(list, els);
  if (stick) scrollToBottom();
}

function chipOf(u) {
  if (u.el) return u.el;
  const progress = h('progress', { class: 'chip-progress', max: '100', value: '0', 'aria-label': `Upload of ${u.name}` });
  u.el = h('li', { class: 'chip', 'data-key': u.key },
    u.preview ? h('img', { class: 'chip-thumb', src: u.preview, alt: '' })
      : h('span', { class: 'chip-thumb chip-icon' }, fileIcon()),
    h('span', { class: 'chip-main' },
      h('span', { class: 'chip-name', title: u.name, text: u.name }),
      h('span', { class: 'chip-info' }),
      progress,
      h('span', { class: 'chip-error', role: 'alert' })),
    h('button', { type: 'button', class: 'small chip-retry', 'data-fkey': 'retry:' + u.key, 'aria-label': `Retry ${u.name}`,
      text: 'Retry', hidden: true, onclick: () => { startUpload(u); u.el.querySelector('.chip-remove').focus(); } }),
    h('button', { type: 'button', class: 'icon chip-remove', 'data-fkey': 'remove:' + u.key,
      'aria-label': `Remove ${u.name}`, title: 'Remove', text: '×', onclick: () => removeUpload(u) }));
  updateChip(u);
  return u.el;
}

function updateChip(u) {
  const el = u.el;
  if (!el) return;
  const pct = u.size ? Math.floor((100 * u.loaded) / u.size) : 100;
  el.dataset.state = u.state;
  el.querySelector('.chip-info').textContent = formatSize(u.size) + (u.state === 'uploading' ? ` · ${pct}%`
    : u.state === 'done' ? ' · Uploaded' : '');
  const bar = el.querySelector('.chip-progress');
  bar.value = u.state === 'done' ? 100 : pct;
  bar.hidden = u.state === 'error';
  el.querySelector('.chip-error').textContent = u.state === 'error' ? u.error : '';
  el.querySelector('.chip-retry').hidden = !(u.state === 'error' && !u.tooLarge && u.size);
}

// Dragging files over the conversation shows where to drop them. Files
// dropped anywhere else are ignored rather than opened in place of the app.
let dragDepth = 0;
const hasFiles = (e) => !!e.dataTransfer && [...(e.dataTransfer.types || [])].includes('Files');
function hideDropTarget() {
  dragDepth = 0;
  $('drop-target').hidden = true;
}

function wireDrop() {
  const view = $('chat-view');
  view.addEventListener('dragenter', (e) => {
    if (!hasFiles(e) || !S.view) return;
    e.preventDefault();
    dragDepth++;
    $('drop-title').textContent = `Drop files to send to ${titleOf(S.convs.get(S.view.cid))}`;
    $('drop-target').hidden = false;
  });
  view.addEventListener('dragover', (e) => {
    if (!hasFiles(e) || !S.view) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
  });
  view.addEventListener('dragleave', (e) => {
    if (!hasFiles(e)) return;
    if (--dragDepth <= 0) hideDropTarget();
  });
  view.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    hideDropTarget();
    addFiles(e.dataTransfer.files);
    $('composer-input').focus({ preventScroll: true });
  });
  for (const type of ['dragover', 'drop']) {
    window.addEventListener(type, (e) => {
      if (hasFiles(e) && !view.contains(e.target)) { e.preventDefault(); e.dataTransfer.dropEffect = 'none'; }
    });
  }
}

function wire() {
  $('tab-login').addEventListener('click', () => setAuthMode(false));
  $('tab-signup').addEventListener('click', () => setAuthMode(true));
  $('auth-form').addEventListener('submit', onAuthSubmit);
  $('btn-logout').addEventListener('click', logout);
  $('btn-profile').addEventListener('click', openProfile);
  $('profile-form').addEventListener('submit', saveProfile);
  $('tab-chats').addEventListener('click', () => selectTab('chats'));
  $('tab-friends').addEventListener('click', () => selectTab('friends'));
  $('find-form').addEventListener('submit', findPeople);
  $('btn-refresh-friends').addEventListener('click', refreshFriends);
  $('btn-new-group').addEventListener('click', openGroupDialog);
  $('group-form').addEventListener('submit', createGroup);
  $('btn-members').addEventListener('click', openMembersDialog);
  $('members-add-btn').addEventListener('click', addMember);
  $('btn-mute').addEventListener('click', toggleMute);
  $('btn-back').addEventListener('click', closeConversation);
  $('btn-latest').addEventListener('click', () => S.view && openConversation(S.view.cid));
  $('search-form').addEventListener('submit', runSearch);
  $('search-clear').addEventListener('click', clearSearch);
  $('messages-wrap').addEventListener('scroll', onMessagesScroll, { passive: true });
  $('composer').addEventListener('submit', onComposerSubmit);
  $('composer-input').addEventListener('input', onComposerInput);
  $('composer-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); $('composer').requestSubmit(); }
    if (e.key === 'Escape' && S.compose) { e.preventDefault(); cancelCompose(); }
  });
  $('cc-cancel').addEventListener('click', () => { cancelCompose(); $('composer-input').focus(); });
  $('btn-attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', (e) => {
    addFiles(e.target.files);
    e.target.value = ''; // picking the same file again is a change too
    $('composer-input').focus();
  });
  $('composer-input').addEventListener('paste', (e) => {
    const files = e.clipboardData && e.clipboardData.files;
    if (files && files.length) { e.preventDefault(); addFiles(files); }
  });
  wireDrop();
  $('dlg-image').addEventListener('close', onLightboxClose);
  $('dlg-image').addEventListener('click', (e) => { if (e.target === e.currentTarget) $('dlg-image').close(); });
  $('lightbox-close').addEventListener('click', () => $('dlg-image').close());
  $('lightbox-download').addEventListener('click', () => { if (lightbox) downloadAttachment(lightbox.f); });
  $('btn-person').addEventListener('click', (e) => {
    const peer = S.view && peerOf(S.convs.get(S.view.cid));
    if (peer) personMenu(e.currentTarget, peer, null);
  });
  for (const b of document.querySelectorAll('dialog [data-close]')) {
    b.addEventListener('click', () => b.closest('dialog').close());
  }
  $('btn-notify').addEventListener('click', enableNotifications);
  $('btn-notify-dismiss').addEventListener('click', dismissNotifyBar);
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') markRead(); });
  // Friend changes come as live events on the WebSocket, but long-poll
  // carries only inbox events: there the friend list is refetched while it
  // is on screen.
  setInterval(() => {
    if (S.me && S.tab === 'friends' && document.visibilityState === 'visible' && client.mode !== 'ws') {
      refreshFriends();
    }
  }, 5000);
  client.addEventListener('status', (e) => renderConn(e.detail));
  client.addEventListener('ready', () => onReady());
  client.addEventListener('unauthorized', () => onUnauthorized());
  client.addEventListener('message', (e) => onMessage(e.detail));
  for (const type of ['edit', 'delete', 'reaction']) client.addEventListener(type, (e) => onMessageEvent(e.detail));
  client.addEventListener('presence', (e) => {
    S.presence.set(e.detail.user_id, e.detail.status);
    scheduleRender();
  });
  client.addEventListener('typing', (e) => onTyping(e.detail));
  client.addEventListener('read', (e) => onRead(e.detail));
  client.addEventListener('conversation', (e) => onConversation(e.detail));
  client.addEventListener('friend', (e) => onFriend(e.detail));
  client.outbox.addEventListener('confirmed', (e) => onConfirmed(e.detail));
  client.outbox.addEventListener('failed', (e) => onSendFailed(e.detail.error));
}

wire();
if (api.token) {
  enterApp();
} else {
  showAuth();
}

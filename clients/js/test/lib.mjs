// lib.mjs: what the library's tests share. They run against a real stack
// (nginx, parley-api, the relays), as tests/stack-tests.sh starts it:
// PARLEY_TEST_URL (default http://127.0.0.1:18080) is its web server.
// Node 20 has no WebSocket of its own: the ws package (a devDependency)
// stands in for it, as an app in Node would pass it.

import assert from 'node:assert/strict';
import { ParleyClient, MemoryStorage } from '../src/index.js';

export const BASE_URL = (process.env.PARLEY_TEST_URL || 'http://127.0.0.1:18080').replace(/\/$/, '');
export const PASSWORD = 'correct horse battery';
export const WebSocket = globalThis.WebSocket || (await import('ws')).default;

let seq = 0;
/** A fresh username (3..32 of [a-z0-9_.-]) for this run. */
export function uname(prefix) {
  const r = Math.random().toString(36).slice(2, 7);
  return `${prefix}${Date.now().toString(36).slice(-5)}${r}${seq++}`.slice(0, 32);
}

/** A client of the test stack; options go to ParleyClient (storage: a fresh MemoryStorage). */
export function newClient(options = {}) {
  return new ParleyClient({ baseUrl: BASE_URL, WebSocket, storage: new MemoryStorage(),
    device: { platform: 'web', name: 'parley-client tests' }, ...options });
}

/** Signs up a new user and logs a client in as them: {client, user, username}. */
export async function makeUser(prefix, options = {}) {
  const client = newClient(options);
  const username = uname(prefix);
  await client.signup(username, PASSWORD, prefix);
  const r = await client.login(username, PASSWORD);
  return { client, user: r.user, username, storage: client.storage };
}

/** Two friends (a befriends b) with a direct conversation: its id. */
export async function directChat(a, b) {
  await a.client.api.addFriend(b.user.id);
  await b.client.api.addFriend(a.user.id);
  const c = await a.client.api.startDirect(b.user.id);
  return c.id;
}

/**
 * Waits for the next event of type on target for which pred(detail) holds;
 * resolves with its detail, rejects after ms.
 */
export function nextEvent(target, type, pred = () => true, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      target.removeEventListener(type, on);
      reject(new Error(`no "${type}" event within ${ms} ms`));
    }, ms);
    function on(e) {
      if (!pred(e.detail)) return;
      clearTimeout(t);
      target.removeEventListener(type, on);
      resolve(e.detail);
    }
    target.addEventListener(type, on);
  });
}

/** Collects the details of every event of type on target, in order. */
export function collect(target, type) {
  const list = [];
  target.addEventListener(type, (e) => list.push(e.detail));
  return list;
}

/** Waits until cond() is true (polled every 50 ms), or fails after ms. */
export async function until(cond, what, ms = 10000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

export { assert };

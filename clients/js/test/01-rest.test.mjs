// The REST side: accounts, the session kept in the storage, and every error
// as an ApiError with PROTOCOL.md's status and code.

import { test } from 'node:test';
import { ApiError, Api, MemoryStorage } from '../src/index.js';
import { assert, makeUser, newClient, uname, BASE_URL, PASSWORD } from './lib.mjs';

test('signup, login, the session kept in the storage', async () => {
  const a = await makeUser('ra');
  assert.equal(typeof a.client.session.token, 'string');
  assert.equal(a.client.user.username, a.username);
  assert.ok(a.client.session.device_id > 0);
  const stored = JSON.parse(a.storage.getItem('parley.session'));
  assert.equal(stored.token, a.client.session.token);
  // A client made later on the same storage (a reload) is still logged in.
  const again = newClient({ storage: a.storage });
  const me = await again.api.me();
  assert.equal(me.id, a.user.id);
  await a.client.logout();
  assert.equal(a.storage.getItem('parley.session'), null);
  assert.equal(a.client.session, null);
});

test('a wrong password is an ApiError 401 unauthorized', async () => {
  const a = await makeUser('rb');
  const other = newClient();
  await assert.rejects(other.login(a.username, 'not the password'), (e) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'unauthorized');
    assert.equal(e.retryable, false);
    return true;
  });
  assert.equal(other.session, null);
});

test('a taken username is 409 conflict, a short password 400 bad_request', async () => {
  const a = await makeUser('rc');
  const c = newClient();
  await assert.rejects(c.signup(a.username, PASSWORD), { name: 'ApiError', status: 409, code: 'conflict' });
  await assert.rejects(c.signup(uname('rd'), 'short'), { status: 400, code: 'bad_request' });
});

test('not found and not logged in', async () => {
  const a = await makeUser('re');
  await assert.rejects(a.client.api.conversation(999999999), { status: 404, code: 'not_found' });
  const anon = newClient();
  await assert.rejects(anon.api.me(), { status: 401, code: 'unauthorized' });
  await assert.rejects(anon.connect(), { code: 'not_logged_in' });
});

test('a server that cannot be reached is code network, status 0, retryable', async () => {
  const api = new Api({ baseUrl: 'http://127.0.0.1:9', storage: new MemoryStorage() });
  await assert.rejects(api.health(), (e) => e instanceof ApiError && e.status === 0 &&
    e.code === 'network' && e.retryable === true);
});

test('the token is refreshed for the same session and device', async () => {
  const a = await makeUser('rf');
  const before = a.client.session;
  const r = await a.client.api.refresh();
  assert.equal(typeof r.token, 'string');
  assert.equal(a.client.session.token, r.token);
  assert.equal(a.client.session.device_id, before.device_id);
  assert.equal((await a.client.api.me()).id, a.user.id);
});

test('discover names a relay WebSocket URL ending in /ws', async () => {
  const a = await makeUser('rg');
  const { relay } = await a.client.api.discover();
  assert.match(relay.url, /^wss?:\/\/.+\/ws$/);
  assert.ok(BASE_URL);
});

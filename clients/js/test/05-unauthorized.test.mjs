// A session that ends (revoked, or a token the server refuses) is the
// "unauthorized" event, once, and the client forgets it.

import { test } from 'node:test';
import { ApiError } from '../src/index.js';
import { assert, BASE_URL, makeUser, newClient, nextEvent } from './lib.mjs';

test('a session revoked elsewhere closes the socket: unauthorized, session forgotten', async (t) => {
  const a = await makeUser('ua');
  t.after(() => a.client.close());
  await a.client.connect();
  const events = [];
  a.client.addEventListener('unauthorized', (e) => events.push(e.detail));
  const ended = nextEvent(a.client, 'unauthorized');
  // The same token ends its session from somewhere else.
  const res = await fetch(`${BASE_URL}/api/v1/sessions/current`,
    { method: 'DELETE', headers: { Authorization: 'Bearer ' + a.client.session.token } });
  assert.equal(res.status, 204);
  const detail = await ended;
  assert.ok(detail.error instanceof ApiError);
  assert.equal(detail.error.code, 'unauthorized');
  assert.equal(a.client.session, null);
  assert.equal(a.storage.getItem('parley.session'), null);
  assert.equal(a.client.state, 'offline');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(events.length, 1, 'once');
});

test('connect with a token the server refuses rejects with unauthorized', async () => {
  const a = await makeUser('ub');
  const c = newClient({ storage: a.storage });
  c.api.saveSession({ ...c.session, token: 'not-a-token' });
  const ended = nextEvent(c, 'unauthorized');
  await assert.rejects(c.connect(), { name: 'ApiError', status: 401, code: 'unauthorized' });
  await ended;
  assert.equal(c.session, null);
});

test('a 401 to a REST call is the unauthorized event too', async () => {
  const a = await makeUser('uc');
  await fetch(`${BASE_URL}/api/v1/sessions/current`,
    { method: 'DELETE', headers: { Authorization: 'Bearer ' + a.client.session.token } });
  const ended = nextEvent(a.client, 'unauthorized');
  await assert.rejects(a.client.api.me(), { status: 401, code: 'unauthorized' });
  await ended;
  assert.equal(a.client.session, null);
});

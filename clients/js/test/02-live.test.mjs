// The live connection: discover, hello with the cursor, typed events, acks,
// and a reconnect that replays only what is missing.

import { test } from 'node:test';
import { backoffDelay } from '../src/index.js';
import { assert, collect, directChat, makeUser, newClient, nextEvent, until } from './lib.mjs';

test('connect, and a message arrives live as a typed event', async (t) => {
  const a = await makeUser('la');
  const b = await makeUser('lb');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  const statuses = collect(b.client, 'status');
  const ready = await b.client.connect();
  assert.equal(ready.mode, 'ws');
  assert.equal(b.client.state, 'online');
  assert.equal(b.client.mode, 'ws');
  assert.deepEqual(statuses.at(-1), { state: 'online', mode: 'ws' });
  const got = nextEvent(b.client, 'message', (m) => m.body === 'hello, live');
  await a.client.api.sendMessage(cid, 'c-live-1', 'hello, live');
  const m = await got;
  assert.equal(m.type, 'message');
  assert.equal(m.conversation_id, cid);
  assert.equal(m.sender_id, a.user.id);
  assert.equal(typeof m.seq, 'number');
  // The cursor moved past it and is kept in the storage under the device.
  assert.equal(b.client.cursor, m.seq);
  assert.equal(Number(b.storage.getItem(`parley.cursor.${b.client.session.device_id}`)), m.seq);
});

test('typing, read, edit, reaction and delete are typed events too', async (t) => {
  const a = await makeUser('lc');
  const b = await makeUser('ld');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  await Promise.all([a.client.connect(), b.client.connect()]);
  const typing = nextEvent(b.client, 'typing', (f) => f.conversation_id === cid);
  assert.equal(a.client.typing(cid), true);
  assert.equal((await typing).user_id, a.user.id);
  const msg = nextEvent(b.client, 'message', (m) => m.body === 'to be changed');
  const { promise } = a.client.send(cid, 'to be changed');
  const sent = await promise;
  const mid = sent.message_id;
  assert.equal((await msg).message_id, mid);
  const read = nextEvent(a.client, 'read', (f) => f.user_id === b.user.id);
  await b.client.markRead(cid, mid);
  assert.equal((await read).message_id, mid);
  const edit = nextEvent(b.client, 'edit', (f) => f.message_id === mid);
  await a.client.api.editMessage(cid, mid, 'changed');
  assert.equal((await edit).body, 'changed');
  const reaction = nextEvent(a.client, 'reaction', (f) => f.message_id === mid);
  await b.client.api.react(cid, mid, '👍');
  assert.deepEqual([(await reaction).emoji, (await reaction).op], ['👍', 'add']);
  const del = nextEvent(b.client, 'delete', (f) => f.message_id === mid);
  await a.client.api.deleteMessage(cid, mid);
  assert.equal((await del).deleted_by, a.user.id);
});

test('conversation and friend events', async (t) => {
  const a = await makeUser('le');
  const b = await makeUser('lf');
  t.after(() => { a.client.close(); b.client.close(); });
  await b.client.connect();
  const friend = nextEvent(b.client, 'friend', (f) => f.change === 'request');
  await a.client.api.addFriend(b.user.id);
  assert.equal((await friend).user.id, a.user.id);
  const conv = nextEvent(b.client, 'conversation', (f) => f.change === 'created');
  const c = await a.client.api.startGroup('lib test', [b.user.id]);
  assert.equal((await conv).conversation.id, c.id);
});

test('after a close, a reconnect replays only what is missing, once, in order', async (t) => {
  const a = await makeUser('lg');
  const b = await makeUser('lh');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  await b.client.connect();
  const first = nextEvent(b.client, 'message', (m) => m.body === 'before');
  await a.client.api.sendMessage(cid, 'c-before', 'before');
  const seen = await first;
  // The ack goes out within ackDelayMs; the cursor is stored at once.
  await new Promise((r) => setTimeout(r, 400));
  b.client.close();
  assert.equal(b.client.state, 'offline');
  for (let i = 1; i <= 3; i++) await a.client.api.sendMessage(cid, `c-gap-${i}`, `gap ${i}`);
  // A new client on the same storage: a reload, or a restarted program.
  const again = newClient({ storage: b.storage });
  t.after(() => again.close());
  const got = collect(again, 'message');
  await again.connect();
  await until(() => got.length >= 3, 'the three missing messages');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(got.map((m) => m.body), ['gap 1', 'gap 2', 'gap 3']);
  assert.ok(got.every((m) => m.seq > seen.seq));
  assert.deepEqual(got.map((m) => m.seq), [...got.map((m) => m.seq)].sort((x, y) => x - y));
});

test('the ack is stored on the server: without a stored cursor, hello resumes after it', async (t) => {
  const a = await makeUser('lm');
  const b = await makeUser('ln');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  await b.client.connect();
  const first = nextEvent(b.client, 'message', (m) => m.body === 'acked');
  await a.client.api.sendMessage(cid, 'c-acked', 'acked');
  await first;
  // The ack leaves within 200 ms and the relay stores it within 250 ms.
  await new Promise((r) => setTimeout(r, 1000));
  b.client.close();
  await a.client.api.sendMessage(cid, 'c-after-ack', 'after the ack');
  b.storage.removeItem(`parley.cursor.${b.client.session.device_id}`);
  const again = newClient({ storage: b.storage });
  t.after(() => again.close());
  const got = collect(again, 'message');
  await again.connect();
  await until(() => got.length >= 1, 'the message after the ack');
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(got.map((m) => m.body), ['after the ack']);
});

test('a dropped socket reconnects by itself and resumes from the cursor', async (t) => {
  const a = await makeUser('li');
  const b = await makeUser('lj', { backoff: { initialMs: 50, maxMs: 200 } });
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  await b.client.connect();
  const readies = collect(b.client, 'ready');
  const got = collect(b.client, 'message');
  await a.client.api.sendMessage(cid, 'c-d1', 'one');
  await until(() => got.length === 1, 'the first message');
  b.client.live.ws.close(); // the network drops it
  await until(() => readies.length === 1, 'a new ready');
  await a.client.api.sendMessage(cid, 'c-d2', 'two');
  await until(() => got.length === 2, 'the second message');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(got.map((m) => m.body), ['one', 'two']);
});

test('connect({cursor}) starts from that seq', async (t) => {
  const a = await makeUser('lk');
  const b = await makeUser('ll');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  await b.client.connect();
  const got = collect(b.client, 'message');
  for (let i = 1; i <= 3; i++) await a.client.api.sendMessage(cid, `c-k-${i}`, `k ${i}`);
  await until(() => got.length === 3, 'three messages');
  b.client.close();
  const replay = newClient({ storage: b.storage });
  t.after(() => replay.close());
  const again = collect(replay, 'message');
  await replay.connect({ cursor: got[0].seq });
  await until(() => again.length === 2, 'the two after the cursor');
  assert.deepEqual(again.map((m) => m.body), ['k 2', 'k 3']);
});

test('backoff doubles up to its cap, with jitter of a quarter either way', () => {
  const mid = () => 0.5;
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, {}, mid)),
    [500, 1000, 2000, 4000, 8000, 15000, 15000]);
  assert.equal(backoffDelay(0, {}, () => 0), 375);
  assert.equal(backoffDelay(0, {}, () => 0.999999), 625);
  assert.equal(backoffDelay(3, { initialMs: 100, maxMs: 500 }, mid), 500);
});

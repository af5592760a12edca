// The outbox: sends confirmed over the WebSocket or REST, kept across a
// reload, sent again after a dropped connection with the same client_msg_id,
// and so stored once.

import { test } from 'node:test';
import { ApiError } from '../src/index.js';
import { assert, collect, directChat, makeUser, newClient, nextEvent, until } from './lib.mjs';

// The messages of conversation cid with that client_msg_id, as the server has them.
async function copiesOf(api, cid, client_msg_id) {
  const { messages } = await api.messages(cid, { limit: 100 });
  return messages.filter((m) => m.client_msg_id === client_msg_id);
}

test('a send over the WebSocket resolves with the sent frame', async (t) => {
  const a = await makeUser('oa');
  const b = await makeUser('ob');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  await a.client.connect();
  const sentEvents = collect(a.client, 'sent');
  const { item, promise } = a.client.send(cid, 'over the socket');
  assert.match(item.client_msg_id, /^[0-9a-f]{32}$/);
  assert.equal(a.client.outbox.items.length, 1);
  const sent = await promise;
  assert.equal(sent.client_msg_id, item.client_msg_id);
  assert.equal(sent.conversation_id, cid);
  assert.ok(sent.message_id > 0);
  assert.equal(a.client.outbox.items.length, 0);
  assert.deepEqual(JSON.parse(a.storage.getItem(`parley.outbox.${a.user.id}`)), []);
  await until(() => sentEvents.length === 1, 'the sent event');
  assert.equal(sentEvents[0].message_id, sent.message_id);
});

test('without a connection the send goes over REST', async (t) => {
  const a = await makeUser('oc');
  const b = await makeUser('od');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  const sentEvents = collect(a.client, 'sent');
  const confirmed = nextEvent(a.client.outbox, 'confirmed');
  const m = await a.client.send(cid, 'over REST', {}).promise;
  assert.equal(m.body, 'over REST');
  assert.equal(m.sender_id, a.user.id);
  assert.equal((await confirmed).via, 'rest');
  assert.equal(sentEvents.length, 1);
  assert.equal(sentEvents[0].message_id, m.message_id);
});

test('an unsent message survives a reload and is sent once on the next connection', async (t) => {
  const a = await makeUser('oe');
  const b = await makeUser('of');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  // The network is gone for sends: the item waits in the storage.
  let offline = true;
  const fetchFn = (url, init) => (offline && /\/messages$/.test(String(url)) ?
    Promise.reject(new TypeError('fetch failed')) : globalThis.fetch(url, init));
  const first = newClient({ storage: a.storage, fetch: fetchFn });
  const { item } = first.send(cid, 'kept across a reload');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(first.outbox.items.length, 1);
  const kept = JSON.parse(a.storage.getItem(`parley.outbox.${a.user.id}`));
  assert.equal(kept.length, 1);
  assert.equal(kept[0].client_msg_id, item.client_msg_id);
  first.close();
  offline = false;
  // The reload: a new client on the same storage sends it on "ready".
  const again = newClient({ storage: a.storage });
  t.after(() => again.close());
  assert.equal(again.outbox.items.length, 1);
  const confirmed = nextEvent(again.outbox, 'confirmed');
  await again.connect();
  const c = await confirmed;
  assert.equal(c.item.client_msg_id, item.client_msg_id);
  assert.equal((await copiesOf(a.client.api, cid, item.client_msg_id)).length, 1);
});

test('a send whose answer was lost is sent again with the same client_msg_id: one message', async (t) => {
  const a = await makeUser('og');
  const b = await makeUser('oh');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  // The server stored the send, but its answer never came back: the fetch
  // fails after the request went through.
  let dropAnswers = true;
  const fetchFn = async (url, init) => {
    const res = await globalThis.fetch(url, init);
    if (dropAnswers && /\/messages$/.test(String(url)) && init.method === 'POST') throw new TypeError('connection reset');
    return res;
  };
  const lossy = newClient({ storage: a.storage, fetch: fetchFn, outboxRetryMs: 300, outboxTickMs: 100 });
  t.after(() => lossy.close());
  const { item, promise } = lossy.send(cid, 'exactly once');
  await until(async () => (await copiesOf(a.client.api, cid, item.client_msg_id)).length === 1, 'the stored send');
  assert.equal(lossy.outbox.items.length, 1, 'still unconfirmed');
  dropAnswers = false;
  // On its own timer, the outbox sends it again and gets the original back.
  const m = await promise;
  const copies = await copiesOf(a.client.api, cid, item.client_msg_id);
  assert.equal(copies.length, 1);
  assert.equal(copies[0].message_id, m.message_id);
});

test('a send on a socket that drops before "sent" is resent after the reconnect: one message', async (t) => {
  const a = await makeUser('oi', { backoff: { initialMs: 50, maxMs: 200 } });
  const b = await makeUser('oj');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  await a.client.connect();
  const readies = collect(a.client, 'ready');
  const ws = a.client.live.ws;
  const { item, promise } = a.client.send(cid, 'through a drop');
  ws.close(); // gone before any answer can be read
  const m = await promise;
  assert.ok(readies.length >= 1, 'it was confirmed after a reconnect');
  const copies = await copiesOf(a.client.api, cid, item.client_msg_id);
  assert.equal(copies.length, 1);
  assert.equal(copies[0].message_id, m.message_id);
  // And the other member got it once.
  const got = collect(b.client, 'message');
  await b.client.connect({ cursor: 0 });
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(got.filter((x) => x.client_msg_id === item.client_msg_id).length, 1);
});

test('a send refused for good fails, stays until discarded', async (t) => {
  const a = await makeUser('ok');
  t.after(() => a.client.close());
  await a.client.connect();
  const failed = nextEvent(a.client.outbox, 'failed');
  const { item, promise } = a.client.send(999999999, 'nowhere');
  await assert.rejects(promise, (e) => e instanceof ApiError && e.code === 'not_found' && e.status === 404);
  assert.equal((await failed).item.client_msg_id, item.client_msg_id);
  assert.equal(a.client.outbox.get(item.client_msg_id).failed, true);
  assert.equal(JSON.parse(a.storage.getItem(`parley.outbox.${a.user.id}`))[0].failed, true);
  assert.equal(a.client.outbox.discard(item.client_msg_id), true);
  assert.equal(a.client.outbox.items.length, 0);
});

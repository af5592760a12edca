// Long-poll: when the WebSocket cannot connect, the client falls back to
// /poll beside the relay's /ws, receives there and sends over REST.

import { test } from 'node:test';
import { assert, collect, directChat, makeUser, nextEvent, until } from './lib.mjs';

// A WebSocket that never reaches a relay: it closes as a blocked one would.
class BlockedWebSocket {
  constructor(url) {
    BlockedWebSocket.tried.push(url);
    this.readyState = 0;
    setTimeout(() => {
      this.readyState = 3;
      if (this.onerror) this.onerror({ type: 'error' });
      if (this.onclose) this.onclose({ code: 1006, reason: '' });
    }, 10);
  }
  send() { throw new Error('not open'); }
  close() {}
}
BlockedWebSocket.tried = [];

test('a WebSocket that cannot connect falls back to long-poll, both ways', async (t) => {
  const a = await makeUser('pa', { WebSocket: BlockedWebSocket, backoff: { initialMs: 50, maxMs: 100 },
    pollTimeoutS: 5 });
  const b = await makeUser('pb');
  t.after(() => { a.client.close(); b.client.close(); });
  const cid = await directChat(a, b);
  const ready = await a.client.connect();
  assert.equal(ready.mode, 'poll');
  assert.ok(BlockedWebSocket.tried.length >= 2, 'the WebSocket was tried first');
  assert.ok(BlockedWebSocket.tried.every((u) => /\/ws$/.test(u)));
  assert.deepEqual([a.client.state, a.client.mode], ['online', 'poll']);
  await b.client.connect();
  // Received on the poll, in order, once.
  const got = collect(a.client, 'message');
  for (let i = 1; i <= 3; i++) await b.client.api.sendMessage(cid, `c-p-${i}`, `poll ${i}`);
  await until(() => got.length >= 3, 'three messages on the poll');
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(got.map((m) => m.body), ['poll 1', 'poll 2', 'poll 3']);
  assert.equal(a.client.cursor, got[2].seq);
  // Sent over REST, seen live by the other member.
  const seen = nextEvent(b.client, 'message', (m) => m.body === 'from long-poll');
  const confirmed = nextEvent(a.client.outbox, 'confirmed');
  await a.client.send(cid, 'from long-poll').promise;
  assert.equal((await confirmed).via, 'rest');
  assert.equal((await seen).sender_id, a.user.id);
  // Edits arrive as inbox events on the poll too.
  const edit = nextEvent(a.client, 'edit', (e) => e.message_id === got[0].message_id);
  await b.client.api.editMessage(cid, got[0].message_id, 'poll 1, edited');
  assert.equal((await edit).body, 'poll 1, edited');
});

test('WebSocket: null is long-poll only', async (t) => {
  const a = await makeUser('pc', { WebSocket: null, pollTimeoutS: 5 });
  t.after(() => a.client.close());
  const ready = await a.client.connect();
  assert.equal(ready.mode, 'poll');
});

test('long-poll goes back to try the WebSocket after wsRetryFromPollMs', async (t) => {
  const { WebSocket } = await import('./lib.mjs');
  let blocked = true;
  class SometimesBlocked {
    constructor(url, proto) {
      if (!blocked) return new WebSocket(url, proto);
      return new BlockedWebSocket(url);
    }
  }
  const a = await makeUser('pd', { WebSocket: SometimesBlocked, backoff: { initialMs: 50, maxMs: 100 },
    pollTimeoutS: 1, wsRetryFromPollMs: 1500 });
  t.after(() => a.client.close());
  await a.client.connect();
  assert.equal(a.client.mode, 'poll');
  blocked = false;
  await nextEvent(a.client, 'ready', (r) => r.mode === 'ws', 15000);
  assert.equal(a.client.mode, 'ws');
});

// A small Parley app in Node: logs in, connects, prints every message that
// arrives and sends one, then keeps printing until Ctrl-C.
//
//   node examples/chat.mjs URL USERNAME CONVERSATION_ID "text to send"
//
// with the password in PARLEY_PASSWORD. Node 22 has a WebSocket of its own;
// on Node 18 and 20 install the ws package beside parley-client.

import { ParleyClient } from 'parley-client';

const [url, username, conversationId, text] = process.argv.slice(2);
if (!url || !username || !conversationId) {
  console.error('usage: node chat.mjs URL USERNAME CONVERSATION_ID [TEXT] (password in PARLEY_PASSWORD)');
  process.exit(2);
}
const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;

const client = new ParleyClient({ baseUrl: url, WebSocket, device: { platform: 'web', name: 'chat.mjs' } });
await client.login(username, process.env.PARLEY_PASSWORD ?? '');

client.addEventListener('message', (e) => {
  const m = e.detail;
  console.log(`[${m.conversation_id}] ${m.sender_id === client.user.id ? 'me' : m.sender_id}: ${m.body}`);
});
client.addEventListener('status', (e) => console.error(`(${e.detail.state}${e.detail.mode ? ' over ' + e.detail.mode : ''})`));
client.addEventListener('unauthorized', () => { console.error('the session ended'); process.exit(1); });

await client.connect();
if (text) {
  const sent = await client.send(Number(conversationId), text).promise;
  console.error(`(sent as message ${sent.message_id})`);
}
process.on('SIGINT', async () => { await client.logout(); process.exit(0); });

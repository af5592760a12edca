// The README's example app (examples/chat.mjs) runs as written: it logs in,
// connects, sends one message and prints the messages that arrive.

import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, BASE_URL, directChat, makeUser, PASSWORD } from './lib.mjs';

const example = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'chat.mjs');

test('examples/chat.mjs sends one message and prints what arrives', async (t) => {
  const a = await makeUser('ea');
  const b = await makeUser('eb');
  const cid = await directChat(a, b);
  const child = spawn(process.execPath, [example, BASE_URL, a.username, String(cid), 'hello from the example'],
    { env: { ...process.env, PARLEY_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const printed = (text) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not printed: ${text}\nstdout: ${out}\nstderr: ${err}`)), 15000);
    const look = () => { if (out.includes(text)) { clearTimeout(timer); resolve(); } };
    child.stdout.on('data', (d) => { out += d; look(); });
    look();
  });
  await printed(`[${cid}] me: hello from the example`);
  await b.client.api.sendMessage(cid, 'c-to-example', 'hello back');
  await printed(`[${cid}] ${b.user.id}: hello back`);
  assert.match(err, /sent as message \d+/);
});

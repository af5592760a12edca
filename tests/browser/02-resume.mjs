// A browser goes offline; the other sends five messages; when it comes back
// it shows all five, once each, in order. What it wrote while offline waits
// as pending and goes out when it reconnects.

import {
  test, run, newPage, makeUser, befriend, rest, uiLogin, openChat, send, seeMessage, assert, assertEqual,
} from './lib.mjs';

let a, b, conv, A, B;

test('set up two friends with a direct chat open', async () => {
  a = await makeUser('ra', 'Rita');
  b = await makeUser('rb', 'Sam');
  await befriend(a, b);
  conv = await rest('POST', '/conversations', { kind: 'direct', user_id: b.id }, a.token);
  await rest('POST', `/conversations/${conv.id}/messages`, { client_msg_id: 'r-0', body: 'before the drop' }, b.token);
  A = await newPage();
  B = await newPage();
  await uiLogin(A.page, a);
  await uiLogin(B.page, b);
  await openChat(A.page, 'Sam');
  await openChat(B.page, 'Rita');
  await seeMessage(A.page, 'before the drop');
});

test('offline: the other side sends five; back online: all five once, in order', async () => {
  await A.context.setOffline(true);
  await A.page.locator('#conn:not([data-state="online"])').waitFor();
  // Rita writes while offline: shown as pending.
  await send(A.page, 'written while offline');
  await A.page.locator('#messages li.msg.pending[data-state="pending"]', { hasText: 'written while offline' }).waitFor();
  const bodies = [1, 2, 3, 4, 5].map((i) => `missed message ${i}`);
  for (const body of bodies) await send(B.page, body);
  for (const body of bodies) await seeMessage(B.page, body);
  await A.context.setOffline(false);
  await A.page.locator('#conn[data-state="online"]').waitFor({ timeout: 20000 });
  await seeMessage(A.page, 'missed message 5', 20000);
  // The pending message went out (same client_msg_id) and Sam has it.
  await seeMessage(A.page, 'written while offline', 20000);
  await seeMessage(B.page, 'written while offline', 20000);
  const shown = await A.page.locator('#messages li.msg[data-mid] .body').allTextContents();
  assertEqual(shown.filter((t) => t.startsWith('missed')), bodies, 'the five missed messages, once, in order');
  assert(await A.page.locator('#messages li.msg.pending').count() === 0, 'nothing left pending');
  const keys = await A.page.locator('#messages li.msg[data-mid]').evaluateAll((els) => els.map((e) => e.dataset.key));
  assert(new Set(keys).size === keys.length, 'no message twice');
  // The server has "written while offline" exactly once.
  const { messages } = await rest('GET', `/conversations/${conv.id}/messages?limit=50`, undefined, a.token);
  assert(messages.filter((m) => m.body === 'written while offline').length === 1, 'sent once');
});

test('a reload resumes from the stored cursor without repeats', async () => {
  const cursor = await A.page.evaluate(() => Object.entries(localStorage)
    .filter(([k]) => k.startsWith('parley.cursor.')).map(([, v]) => Number(v))[0]);
  assert(cursor > 0, 'a cursor is stored');
  await A.page.reload();
  await A.page.locator('#conn[data-state="online"]').waitFor();
  await seeMessage(A.page, 'missed message 5');
  await send(B.page, 'after the reload');
  await seeMessage(A.page, 'after the reload');
  const keys = await A.page.locator('#messages li.msg[data-mid]').evaluateAll((els) => els.map((e) => e.dataset.key));
  assert(new Set(keys).size === keys.length, 'no message twice');
  await A.context.close();
  await B.context.close();
});

run();

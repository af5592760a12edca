// With the WebSocket blocked the client falls back to long-poll on the
// relay and still chats both ways.

import {
  test, run, newPage, makeUser, befriend, rest, uiLogin, openChat, send, seeMessage, assert,
} from './lib.mjs';

let a, b, A, B, wsTried = 0;

test('a browser whose WebSocket cannot connect', async () => {
  a = await makeUser('pa', 'Pia');
  b = await makeUser('pb', 'Quinn');
  await befriend(a, b);
  await rest('POST', '/conversations', { kind: 'direct', user_id: b.id }, a.token);
  A = await newPage();
  B = await newPage();
  // Every WebSocket of Pia's browser is closed before it reaches a relay.
  await A.context.routeWebSocket(/\/ws$/, (ws) => { wsTried++; ws.close({ code: 1011, reason: 'blocked by test' }); });
  await uiLogin(B.page, b);
  await A.page.goto(new URL('/', process.env.PARLEY_TEST_URL || 'http://127.0.0.1:18080').href);
  await A.page.getByLabel('Username', { exact: true }).fill(a.username);
  await A.page.getByLabel('Password', { exact: true }).fill('correct horse battery');
  await A.page.getByRole('button', { name: 'Log in' }).click();
  await A.page.locator('#conn[data-state="online"][data-mode="poll"]').waitFor({ timeout: 20000 });
  assert(wsTried >= 2, 'the WebSocket was tried first');
});

test('chats both ways over long-poll', async () => {
  await openChat(A.page, 'Quinn');
  await openChat(B.page, 'Pia');
  await send(A.page, 'hello from long-poll');
  await seeMessage(A.page, 'hello from long-poll');
  await seeMessage(B.page, 'hello from long-poll');
  await send(B.page, 'received, over the WebSocket');
  await seeMessage(A.page, 'received, over the WebSocket');
  for (let i = 1; i <= 3; i++) await send(B.page, `burst ${i}`);
  await seeMessage(A.page, 'burst 3');
  const shown = await A.page.locator('#messages li.msg[data-mid] .body').allTextContents();
  assert(JSON.stringify(shown) === JSON.stringify(['hello from long-poll', 'received, over the WebSocket',
    'burst 1', 'burst 2', 'burst 3']), 'all once, in order: ' + JSON.stringify(shown));
  await A.context.close();
  await B.context.close();
});

run();

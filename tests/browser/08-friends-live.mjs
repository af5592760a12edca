// Friends, live: a request shows its badge on whatever tab is open, an
// acceptance turns the sender's "Request sent" into "Friend" in the people
// found and in the friend list, and an ended friendship leaves both lists,
// all from the server's "friend" events, without a reload or a refresh.
// Friend rows show long display names in full when the row has room.

import {
  test, run, newPage, makeUser, rest, uiLogin, shot, assert, assertEqual,
} from './lib.mjs';

let l, m, L, M;

// A name is shown whole when its box is as wide as its text. The box is
// measured once it is laid out (a list just shown by a tab switch may not
// be yet), within 5 s.
async function nameFits(row, name) {
  const el = row.locator('.person-name');
  await el.waitFor({ state: 'visible' });
  assertEqual(await el.textContent(), name, 'the display name');
  let scroll = 0;
  let client = 0;
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    [scroll, client] = await el.evaluate((e) => [e.scrollWidth, e.clientWidth]);
    if (client > 0) break;
    await row.page().waitForTimeout(50);
  }
  assert(client > 0 && scroll <= client, `"${name}" is not cut short (${scroll} > ${client})`);
}

test('two people, each on the chat list', async () => {
  l = await makeUser('fl', 'Magdalena Konstantinopoulou');
  m = await makeUser('fm', 'Marcus Aurelius Antoninus');
  [L, M] = await Promise.all([newPage(), newPage()]);
  await uiLogin(L.page, l);
  await uiLogin(M.page, m);
});

test('a request shows its badge on the Chats tab at once', async () => {
  await L.page.getByRole('tab', { name: /Friends/ }).click();
  await L.page.getByLabel('Find people by username').fill(m.username);
  await L.page.getByRole('button', { name: 'Find', exact: true }).click();
  await L.page.getByRole('button', { name: 'Add Marcus Aurelius Antoninus as a friend' }).click();
  const found = L.page.locator(`#find-list li[data-user="${m.username}"]`);
  await found.locator('.person-actions', { hasText: 'Request sent' }).waitFor();
  await M.page.locator('#incoming-badge:not([hidden])', { hasText: '1' }).waitFor({ timeout: 3000 });
  assertEqual(await M.page.getByRole('tab', { name: /Chats/ }).getAttribute('aria-selected'), 'true',
    'still on the Chats tab');
  await M.page.getByRole('tab', { name: /Friends/ }).click();
  const incoming = M.page.locator(`#friend-list li[data-user="${l.username}"][data-state="incoming"]`);
  await incoming.waitFor();
  await nameFits(incoming, 'Magdalena Konstantinopoulou');
  await nameFits(L.page.locator(`#friend-list li[data-user="${m.username}"][data-state="outgoing"]`),
    'Marcus Aurelius Antoninus');
  await nameFits(found, 'Marcus Aurelius Antoninus');
  await shot(M.page, 'desktop-friend-request');
});

test('accepting turns "Request sent" into "Friend" on the other side', async () => {
  await M.page.getByRole('button', { name: 'Accept Magdalena Konstantinopoulou' }).click();
  await M.page.locator('#incoming-badge[hidden]').waitFor({ state: 'attached' });
  const found = L.page.locator(`#find-list li[data-user="${m.username}"][data-state="accepted"]`);
  await found.locator('.person-actions', { hasText: 'Friend' }).waitFor({ timeout: 3000 });
  assert(await L.page.locator('#find-list', { hasText: 'Request sent' }).count() === 0, 'no stale "Request sent"');
  const row = L.page.locator(`#friend-list li[data-user="${m.username}"][data-state="accepted"]`);
  await row.waitFor({ timeout: 3000 });
  await row.getByRole('button', { name: 'Message Marcus Aurelius Antoninus' }).waitFor();
  await nameFits(row, 'Marcus Aurelius Antoninus');
  await nameFits(M.page.locator(`#friend-list li[data-user="${l.username}"][data-state="accepted"]`),
    'Magdalena Konstantinopoulou');
  await shot(L.page, 'desktop-friends-live');
});

test('an ended friendship leaves the list, and the person can be added again', async () => {
  await rest('DELETE', `/friends/${l.id}`, undefined, m.token);
  await L.page.locator(`#friend-list li[data-user="${m.username}"]`).waitFor({ state: 'detached', timeout: 3000 });
  await L.page.getByRole('button', { name: 'Add Marcus Aurelius Antoninus as a friend' }).waitFor({ timeout: 3000 });
  await M.page.locator(`#friend-list li[data-user="${l.username}"]`).waitFor({ state: 'detached', timeout: 3000 });
  // A new request, while Magdalena reads her chats.
  await L.page.getByRole('tab', { name: /Chats/ }).click();
  await rest('POST', '/friends', { user_id: l.id }, m.token);
  await L.page.locator('#incoming-badge:not([hidden])', { hasText: '1' }).waitFor({ timeout: 3000 });
  await L.context.close();
  await M.context.close();
});

run();

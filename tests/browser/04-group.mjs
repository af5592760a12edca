// A group of three: created in the UI, a member added from the members
// dialog, everyone sees everyone's messages; mute.

import {
  test, run, newPage, makeUser, befriend, uiLogin, openChat, send, seeMessage, shot, assert,
} from './lib.mjs';

let a, b, c, A, B, C;

test('three friends log in', async () => {
  a = await makeUser('ga', 'Greta');
  b = await makeUser('gb', 'Hugo');
  c = await makeUser('gc', 'Ines');
  await befriend(a, b);
  await befriend(a, c);
  [A, B, C] = await Promise.all([newPage(), newPage(), newPage()]);
  await uiLogin(A.page, a);
  await uiLogin(B.page, b);
  await uiLogin(C.page, c);
});

test('create a group, then add a member', async () => {
  await A.page.getByRole('button', { name: 'New group' }).click();
  await A.page.getByLabel('Group name').fill('Weekend trip');
  await A.page.getByRole('checkbox', { name: 'Hugo' }).check();
  await A.page.getByRole('button', { name: 'Create group' }).click();
  await A.page.locator('#chat-title', { hasText: 'Weekend trip' }).waitFor();
  // Hugo's list gets it live (a "conversation" event).
  await B.page.locator('#conv-list .conv-btn', { hasText: 'Weekend trip' }).waitFor();
  await A.page.getByRole('button', { name: 'Members' }).click();
  await A.page.getByLabel('Add a friend').selectOption({ label: 'Ines' });
  await A.page.getByRole('button', { name: 'Add', exact: true }).click();
  await A.page.locator('#members-list li', { hasText: 'Ines' }).waitFor();
  await A.page.locator('#dlg-members').getByRole('button', { name: 'Close' }).click();
  await C.page.locator('#conv-list .conv-btn', { hasText: 'Weekend trip' }).waitFor();
});

test('everyone sees everyone', async () => {
  await send(A.page, 'Who brings the tent?');
  await openChat(B.page, 'Weekend trip');
  await openChat(C.page, 'Weekend trip');
  await seeMessage(B.page, 'Who brings the tent?');
  await seeMessage(C.page, 'Who brings the tent?');
  await send(B.page, 'I will');
  await send(C.page, 'I bring food');
  for (const P of [A, B, C]) {
    await seeMessage(P.page, 'I will');
    await seeMessage(P.page, 'I bring food');
    assert(await P.page.locator('#messages li.msg').count() === 3, 'three messages, once each');
  }
  // Sender names show in a group.
  await A.page.locator('#messages li.msg.other .sender', { hasText: 'Hugo' }).waitFor();
  await A.page.locator('#messages li.msg.own .status', { hasText: /Read by [12]/ }).waitFor();
  await shot(A.page, 'desktop-group');
});

test('mute a conversation', async () => {
  await B.page.getByRole('button', { name: 'Mute' }).click();
  await B.page.locator('#btn-mute[aria-pressed="true"]').waitFor();
  await B.page.locator('#conv-list .conv-btn[aria-label*="muted"]').waitFor();
  await B.page.getByRole('button', { name: 'Unmute' }).click();
  await B.page.locator('#btn-mute[aria-pressed="false"]').waitFor();
  for (const P of [A, B, C]) await P.context.close();
});

run();

// What can be done to a message after it is sent, and blocking: an edit
// shows "edited" and a deletion "Message deleted" on every screen, live
// (the other member's, the sender's other device, and a device on
// long-poll); a group admin deletes someone else's message; a reply quotes
// its message, and the quote leads back to it, loading it when needed;
// reactions count on the other screens and toggle, and count once when a
// replay brings the event of one the history already shows; a person
// blocked from their "⋯" menu cannot send to the blocker, who never sees
// the attempt, until the block is lifted.

import {
  test, run, newPage, makeUser, befriend, rest, uiLogin, openChat, send, seeMessage, shot, assert, assertEqual,
  BASE_URL, PASSWORD, PHONE, DESKTOP,
} from './lib.mjs';

let a, b, c, direct, group;
let A, A2, B, B2; // Nadia, Nadia's second device, Omar, Omar on long-poll

const msg = (page, text) => page.locator('#messages li.msg[data-mid]', { hasText: text }).first();

// Opens the "⋯" menu of the message with this text and picks an item.
async function messageAction(page, text, item, role = 'menuitem') {
  const li = msg(page, text);
  await li.hover();
  await li.getByRole('button', { name: 'Message actions' }).click();
  const menu = page.getByRole('menu', { name: 'Message actions' });
  await menu.waitFor();
  await menu.getByRole(role, { name: item }).click();
}

// The items of a message's menu, as a user reads them; the menu is closed after.
async function messageMenuItems(page, text) {
  const li = msg(page, text);
  await li.hover();
  await li.getByRole('button', { name: 'Message actions' }).click();
  const menu = page.getByRole('menu', { name: 'Message actions' });
  await menu.waitFor();
  const items = await menu.getByRole('menuitem').allTextContents();
  await page.keyboard.press('Escape');
  await menu.waitFor({ state: 'detached' });
  return items;
}

// The reaction under a message, as its button: its text is the emoji and count.
const reaction = (page, text, emoji) => msg(page, text).locator('.reactions button', { hasText: emoji });

async function seeReaction(page, text, emoji, count, mine) {
  const r = reaction(page, text, emoji);
  await r.filter({ hasText: String(count) }).waitFor();
  assertEqual(await r.locator('.count').textContent(), String(count), `${emoji} count on "${text}"`);
  assertEqual(await r.getAttribute('aria-pressed'), String(mine), `${emoji} highlighted as one's own on "${text}"`);
}

// The message is on screen in the messages pane (not scrolled away).
async function onScreen(page, li) {
  let box = null;
  for (const deadline = Date.now() + 5000; Date.now() < deadline;) {
    box = await li.boundingBox();
    const wrap = await page.locator('#messages-wrap').boundingBox();
    if (box && box.y >= wrap.y && box.y + box.height <= wrap.y + wrap.height) return;
    await page.waitForTimeout(50);
  }
  throw new Error(`not on screen: ${JSON.stringify(box)}`);
}

test('Nadia on two devices, Omar on two (one on long-poll), in a direct conversation', async () => {
  a = await makeUser('ma', 'Nadia');
  b = await makeUser('mb', 'Omar');
  c = await makeUser('mc', 'Pia');
  await befriend(a, b);
  await befriend(a, c);
  direct = await rest('POST', '/conversations', { kind: 'direct', user_id: b.id }, a.token);
  group = await rest('POST', '/conversations', { kind: 'group', title: 'Book club', member_ids: [b.id, c.id] }, a.token);
  [A, A2, B, B2] = await Promise.all([newPage(), newPage(), newPage(), newPage()]);
  // Omar's second device cannot open a WebSocket: it long-polls.
  await B2.context.routeWebSocket(/\/ws$/, (ws) => ws.close({ code: 1011, reason: 'blocked by test' }));
  await uiLogin(A.page, a);
  await uiLogin(A2.page, a);
  await uiLogin(B.page, b);
  await B2.page.goto(BASE_URL + '/');
  await B2.page.getByLabel('Username', { exact: true }).fill(b.username);
  await B2.page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await B2.page.getByRole('button', { name: 'Log in' }).click();
  await B2.page.locator('#conn[data-state="online"][data-mode="poll"]').waitFor({ timeout: 20000 });
  for (const [P, other] of [[A, 'Omar'], [A2, 'Omar'], [B, 'Nadia'], [B2, 'Nadia']]) await openChat(P.page, other);
});

test('an edit shows "edited" on every screen, live', async () => {
  await send(A.page, 'See you at 5');
  for (const P of [A, A2, B, B2]) await seeMessage(P.page, 'See you at 5');
  const li = msg(A.page, 'See you at 5');
  await li.hover();
  await li.getByRole('button', { name: 'Message actions' }).click();
  await A.page.getByRole('menu', { name: 'Message actions' }).getByRole('menuitem', { name: 'Edit' }).waitFor();
  await shot(A.page, 'desktop-message-menu');
  await A.page.getByRole('menuitem', { name: 'Edit' }).click();
  await A.page.locator('#composer-context', { hasText: 'Editing message' }).waitFor();
  const box = A.page.getByLabel('Message', { exact: true });
  assertEqual(await box.inputValue(), 'See you at 5', 'the composer holds the body');
  await box.fill('See you at 6');
  await shot(A.page, 'desktop-message-editing');
  await A.page.getByRole('button', { name: 'Save edit' }).click();
  await A.page.locator('#composer-context').waitFor({ state: 'hidden' });
  await A.page.getByRole('button', { name: 'Send message' }).waitFor();
  for (const P of [A, A2, B, B2]) {
    const li = msg(P.page, 'See you at 6');
    await li.locator('.meta .edited', { hasText: 'edited' }).waitFor();
    assertEqual(await li.locator('.body').textContent(), 'See you at 6', 'the new body');
    assertEqual(await P.page.locator('#messages li.msg', { hasText: 'See you at 5' }).count(), 0, 'the old body is gone');
  }
  // The conversation list shows the edited text too.
  await B.page.locator('#conv-list .conv-preview', { hasText: 'See you at 6' }).waitFor();
  await shot(B.page, 'desktop-message-edited');
});

test('a reply quotes its message; the quote leads back to it, loaded or not', async () => {
  await send(A.page, 'Which film tonight?');
  await seeMessage(B.page, 'Which film tonight?');
  // Enough after it that a fresh view of the chat does not load it.
  for (let i = 1; i <= 32; i++) {
    await rest('POST', `/conversations/${direct.id}/messages`, { client_msg_id: `f-${i}`, body: `filler ${i}` },
      (i % 2 ? b : a).token);
  }
  await seeMessage(B.page, 'filler 32', 20000);
  await messageAction(B.page, 'Which film tonight?', 'Reply');
  const context = B.page.locator('#composer-context');
  await context.locator('.cc-title', { hasText: 'Replying to Nadia' }).waitFor();
  await context.locator('.cc-quote', { hasText: 'Which film tonight?' }).waitFor();
  await send(B.page, 'The new one');
  await context.waitFor({ state: 'hidden' });
  for (const P of [A, B]) {
    const quote = msg(P.page, 'The new one').locator('.quote');
    await quote.locator('.quote-text', { hasText: 'Which film tonight?' }).waitFor();
    assertEqual(await quote.locator('.quote-name').textContent(), 'Nadia', 'the quote names who wrote it');
  }
  // Omar has it loaded, far above: the quote scrolls to it.
  const original = msg(B.page, 'Which film tonight?');
  await msg(B.page, 'The new one').locator('.quote').click();
  await B.page.locator('#messages li.msg.highlight', { hasText: 'Which film tonight?' }).waitFor();
  await onScreen(B.page, original);
  await shot(B.page, 'desktop-reply-jump');
  // Nadia reloads: the newest page does not reach it, the quote loads it.
  await A.page.reload();
  await A.page.locator('#conn[data-state="online"]').waitFor();
  await seeMessage(A.page, 'The new one');
  assertEqual(await A.page.locator('#messages li.msg', { hasText: 'Which film tonight?' }).count(), 1,
    'only the quote shows the original');
  await msg(A.page, 'The new one').locator('.quote').click();
  const loaded = A.page.locator('#messages li.msg.highlight', { hasText: 'Which film tonight?' });
  await loaded.waitFor();
  await onScreen(A.page, loaded);
  await A.page.getByRole('button', { name: 'Jump to latest ↓' }).click();
  await seeMessage(A.page, 'The new one');
});

test('a reaction counts on the other screens, and toggles', async () => {
  await messageAction(A.page, 'The new one', 'React with thumbs up', 'menuitemcheckbox');
  await seeReaction(A.page, 'The new one', '👍', 1, true);
  await seeReaction(A2.page, 'The new one', '👍', 1, true);
  await seeReaction(B.page, 'The new one', '👍', 1, false);
  await seeReaction(B2.page, 'The new one', '👍', 1, false);
  // Omar gives the same one by clicking it, then a heart from the menu.
  await reaction(B.page, 'The new one', '👍').click();
  await seeReaction(B.page, 'The new one', '👍', 2, true);
  await seeReaction(A.page, 'The new one', '👍', 2, true);
  await seeReaction(B2.page, 'The new one', '👍', 2, true);
  await messageAction(B.page, 'The new one', 'React with heart', 'menuitemcheckbox');
  await seeReaction(A.page, 'The new one', '❤️', 1, false);
  await shot(A.page, 'desktop-reactions');
  // The quote and the reactions fit a phone-sized screen too.
  await B.page.setViewportSize(PHONE);
  await seeReaction(B.page, 'The new one', '❤️', 1, true);
  await shot(B.page, 'phone-reply-reactions');
  await B.page.setViewportSize(DESKTOP);
  // Nadia takes hers back; then Omar both of his.
  await reaction(A.page, 'The new one', '👍').click();
  await seeReaction(B.page, 'The new one', '👍', 1, true);
  await seeReaction(A2.page, 'The new one', '👍', 1, false);
  await reaction(B.page, 'The new one', '👍').click();
  await reaction(B.page, 'The new one', '❤️').click();
  for (const P of [A, A2, B, B2]) {
    await msg(P.page, 'The new one').locator('.reactions').waitFor({ state: 'detached' });
  }
});

test('a reaction given while a device was away counts once when it is back', async () => {
  await send(A.page, 'Count me once');
  await seeMessage(B.page, 'Count me once');
  // Omar's browser loses its way to the relays: discover fails.
  let away = true;
  await B.page.route('**/api/v1/discover', async (route) => {
    if (away) {
      await route.fulfill({ status: 503, json: { error: { code: 'unavailable', message: 'no relay (test)' } } });
      return;
    }
    // Back: the relay's replay comes after the history is on screen.
    await reaction(B.page, 'Count me once', '👍').waitFor();
    await route.continue();
  });
  await B.context.setOffline(true);
  await B.page.locator('#conn:not([data-state="online"])').waitFor();
  await B.context.setOffline(false);
  await messageAction(A.page, 'Count me once', 'React with thumbs up', 'menuitemcheckbox');
  await seeReaction(A.page, 'Count me once', '👍', 1, true);
  // He reloads: the history shows the reaction, then the replay brings
  // its event. Once a later message is in, so is everything before it.
  away = false;
  await B.page.reload();
  await B.page.locator('#conn[data-state="online"]').waitFor({ timeout: 20000 });
  await rest('POST', `/conversations/${direct.id}/messages`, { client_msg_id: 'later-1', body: 'Later on' }, a.token);
  await seeMessage(B.page, 'Later on');
  await seeReaction(B.page, 'Count me once', '👍', 1, false);
  await B.page.unroute('**/api/v1/discover');
});

test('a deletion shows "Message deleted" on every screen, live', async () => {
  await send(A.page, 'Wrong chat, sorry');
  for (const P of [A, A2, B, B2]) await seeMessage(P.page, 'Wrong chat, sorry');
  // Omar may answer Nadia's message, not edit or delete it.
  assertEqual(await messageMenuItems(B.page, 'Wrong chat, sorry'), ['Reply'], 'Omar\'s menu on Nadia\'s message');
  assertEqual(await messageMenuItems(A.page, 'Wrong chat, sorry'), ['Reply', 'Edit', 'Delete'], 'Nadia\'s own menu');
  await messageAction(A.page, 'Wrong chat, sorry', 'Delete');
  const dialog = A.page.getByRole('dialog', { name: 'Delete this message?' });
  await dialog.getByRole('button', { name: 'Delete' }).click();
  for (const P of [A, A2, B, B2]) {
    await P.page.locator('#messages li.msg.deleted[data-mid]', { hasText: 'Message deleted' }).waitFor();
    assertEqual(await P.page.locator('#messages li.msg', { hasText: 'Wrong chat, sorry' }).count(), 0,
      'the text is gone');
  }
  await B.page.locator('#conv-list .conv-preview', { hasText: 'Message deleted' }).waitFor();
  await shot(B.page, 'desktop-message-deleted');
});

test('a group admin deletes another member\'s message', async () => {
  await rest('POST', `/conversations/${group.id}/messages`, { client_msg_id: 'spoiler', body: 'Spoiler: the butler did it' },
    c.token);
  await openChat(A.page, 'Book club');
  await openChat(B.page, 'Book club');
  await seeMessage(A.page, 'Spoiler: the butler did it');
  await seeMessage(B.page, 'Spoiler: the butler did it');
  // Omar is not an admin: he can reply to Pia's message, not delete it.
  assertEqual(await messageMenuItems(B.page, 'Spoiler: the butler did it'), ['Reply'], 'a member\'s menu');
  await messageAction(A.page, 'Spoiler: the butler did it', 'Delete');
  await A.page.getByRole('dialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
  for (const P of [A, B]) {
    await P.page.locator('#messages li.msg.deleted', { hasText: 'Message deleted' }).waitFor();
    assertEqual(await P.page.locator('#messages li.msg', { hasText: 'butler' }).count(), 0, 'the spoiler is gone');
  }
  await B.page.locator('#conv-list li.conv', { hasText: 'Book club' }).locator('.conv-preview', { hasText: 'Message deleted' })
    .waitFor();
  await openChat(A.page, 'Omar');
  await openChat(B.page, 'Nadia');
});

test('blocking from the person\'s menu: Omar\'s sends fail, Nadia never sees them', async () => {
  await A.page.getByRole('button', { name: 'More options for Omar' }).click();
  await A.page.getByRole('menuitem', { name: 'Block Omar' }).click();
  await A.page.getByRole('dialog', { name: 'Block Omar?' }).getByRole('button', { name: 'Block' }).click();
  await A.page.getByRole('alert').filter({ hasText: 'You blocked Omar.' }).waitFor();
  await A.page.locator('#chat-sub', { hasText: 'Blocked' }).waitFor();
  // The Friends tab lists him as blocked.
  await A.page.getByRole('tab', { name: /Friends/ }).click();
  await A.page.getByRole('list', { name: 'Blocked' }).getByRole('button', { name: 'Unblock Omar' }).waitFor();
  await A.page.locator(`#friend-list li[data-user="${b.username}"] .hint`, { hasText: 'blocked' }).waitFor();
  await shot(A.page, 'desktop-blocked');

  await send(B.page, 'Are you there?');
  await B.page.locator('#messages li.msg.failed', { hasText: 'Are you there?' })
    .getByRole('button', { name: 'Not sent. Retry' }).waitFor();
  await B.page.getByRole('alert').filter({ hasText: 'You cannot send in this conversation.' }).waitFor();
  await shot(B.page, 'desktop-send-refused');
  // Anything for Nadia arrives in order: once Pia's message is in, Omar's
  // would have been.
  await rest('POST', `/conversations/${group.id}/messages`, { client_msg_id: 'after-block', body: 'Chapter 3 next week' },
    c.token);
  await A.page.getByRole('tab', { name: /Chats/ }).click();
  await A.page.locator('#conv-list .conv-preview', { hasText: 'Chapter 3 next week' }).waitFor();
  for (const P of [A, A2]) {
    assertEqual(await P.page.locator('#messages li.msg', { hasText: 'Are you there?' }).count(), 0,
      'not in Nadia\'s chat');
    assertEqual(await P.page.locator('#conv-list', { hasText: 'Are you there?' }).count(), 0, 'not in her list');
  }
});

test('unblocking lets Omar\'s messages through again', async () => {
  await A.page.getByRole('tab', { name: /Friends/ }).click();
  const row = A.page.locator(`#friend-list li[data-user="${b.username}"]`);
  await row.getByRole('button', { name: 'More options for Omar' }).click();
  await A.page.getByRole('menuitem', { name: 'Unblock Omar' }).click();
  await A.page.getByRole('alert').filter({ hasText: 'You unblocked Omar.' }).waitFor();
  await A.page.locator('#blocked-section').waitFor({ state: 'hidden' });
  await A.page.getByRole('tab', { name: /Chats/ }).click();
  await A.page.locator('#chat-sub', { hasText: 'Blocked' }).waitFor({ state: 'detached' });
  await B.page.getByRole('button', { name: 'Not sent. Retry' }).click();
  for (const P of [A, A2, B]) await seeMessage(P.page, 'Are you there?');
  await shot(A.page, 'desktop-unblocked');
  for (const P of [A, A2, B, B2]) await P.context.close();
});

run();

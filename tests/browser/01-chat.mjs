// Two people sign up in two browsers, become friends, see each other
// online, chat both ways, see typing and read receipts; a phone-sized screen
// shows one pane at a time.

import {
  test, run, newPage, BASE_URL, PASSWORD, PHONE, uname, openChat, send, seeMessage, shot, assert,
} from './lib.mjs';

const alice = { username: uname('alice'), display: 'Alice' };
const bob = { username: uname('bob'), display: 'Bob' };
let A, B;

async function signup(page, user) {
  await page.goto(BASE_URL + '/');
  await page.getByRole('tab', { name: 'Sign up' }).click();
  await page.getByLabel('Username', { exact: true }).fill(user.username);
  await page.getByLabel('Display name (optional)').fill(user.display);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#me-name', { hasText: user.display }).waitFor();
  await page.locator('#conn[data-state="online"]').waitFor();
}

test('sign up in two browsers', async () => {
  A = await newPage();
  B = await newPage();
  await A.page.goto(BASE_URL + '/');
  await shot(A.page, 'desktop-login');
  await signup(A.page, alice);
  await signup(B.page, bob);
});

test('a wrong password is refused with a message', async () => {
  const { page, context } = await newPage();
  await page.goto(BASE_URL + '/');
  await page.getByLabel('Username', { exact: true }).fill(alice.username);
  await page.getByLabel('Password', { exact: true }).fill('not the password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong username or password' }).waitFor();
  await context.close();
});

test('find by username prefix, request, accept, presence dots', async () => {
  await A.page.getByRole('tab', { name: /Friends/ }).click();
  await A.page.getByLabel('Find people by username').fill(bob.username.slice(0, 8));
  await A.page.getByRole('button', { name: 'Find', exact: true }).click();
  await A.page.getByRole('button', { name: 'Add Bob as a friend' }).click();
  await A.page.locator(`#friend-list li[data-user="${bob.username}"][data-state="outgoing"]`).waitFor();

  await B.page.getByRole('tab', { name: /Friends/ }).click();
  await B.page.getByRole('button', { name: 'Accept Alice' }).click();
  await B.page.locator(`#friend-list li[data-user="${alice.username}"][data-state="accepted"]`).waitFor();
  // Alice's list learns of the acceptance (a live "friend" event), and both
  // are online.
  await A.page.locator(`#friend-list li[data-user="${bob.username}"][data-state="accepted"] .dot[data-presence="online"]`)
    .waitFor({ timeout: 15000 });
  await B.page.locator(`#friend-list li[data-user="${alice.username}"] .dot[data-presence="online"]`)
    .waitFor({ timeout: 15000 });
  await shot(A.page, 'desktop-friends');
});

test('chat both ways, live', async () => {
  await A.page.getByRole('button', { name: 'Message Bob' }).click();
  await A.page.locator('#chat-title', { hasText: 'Bob' }).waitFor();
  await send(A.page, 'Hi Bob, lunch today?');
  await seeMessage(A.page, 'Hi Bob, lunch today?');
  // Bob's list shows the new conversation with one unread message.
  await B.page.getByRole('tab', { name: /Chats/ }).click();
  await B.page.locator('#conv-list .badge.unread[data-unread="1"]').waitFor();
  await openChat(B.page, 'Alice');
  await seeMessage(B.page, 'Hi Bob, lunch today?');
  await send(B.page, 'Sure, noon works.');
  await seeMessage(A.page, 'Sure, noon works.');
  await seeMessage(B.page, 'Sure, noon works.');
  // Each shows each message once.
  assert(await A.page.locator('#messages li.msg').count() === 2, 'Alice sees two messages');
  assert(await B.page.locator('#messages li.msg').count() === 2, 'Bob sees two messages');
});

test('typing indicator', async () => {
  // Typing is throttled (the client repeats it every 2 s, the relay passes
  // one a second), so type for a few seconds, as a person would.
  await B.page.getByLabel('Message', { exact: true }).pressSequentially('see you at noon then', { delay: 150 });
  await A.page.locator('#typing', { hasText: 'Bob is typing' }).waitFor();
  await B.page.getByLabel('Message', { exact: true }).fill('');
  await A.page.locator('#typing:empty').waitFor({ timeout: 10000 });
});

test('read receipts', async () => {
  await send(A.page, 'Great, see you there');
  // Bob has the chat open: he reads it at once, and Alice sees it.
  await seeMessage(B.page, 'Great, see you there');
  await A.page.locator('#messages li.msg.own[data-state="read"]', { hasText: 'Great, see you there' }).waitFor();
  await A.page.locator('#messages li.msg.own .status', { hasText: 'Read' }).waitFor();
  await shot(A.page, 'desktop-chat');
});

test('unread count and reordering follow live messages', async () => {
  // Bob goes back to the list; Alice writes; the badge counts it.
  // (The back button only shows on phones; desktop closes the chat the same way.)
  await B.page.evaluate(() => document.getElementById('btn-back').click());
  await send(A.page, 'One more thing');
  await B.page.locator('#conv-list .badge.unread[data-unread="1"]').waitFor();
  await B.page.locator('#conv-list .conv-preview', { hasText: 'One more thing' }).waitFor();
});

test('profile: change the display name', async () => {
  await A.page.getByRole('button', { name: 'Edit profile' }).click();
  await A.page.getByLabel('Display name', { exact: true }).fill('Alice A.');
  await A.page.getByRole('button', { name: 'Save' }).click();
  await A.page.locator('#me-name', { hasText: 'Alice A.' }).waitFor();
});

test('phone-sized screen: list, then chat with a back button', async () => {
  const { page, context } = await newPage({ viewport: PHONE, isMobile: true });
  await page.goto(BASE_URL + '/');
  await page.getByLabel('Username', { exact: true }).fill(bob.username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#conv-list .conv-btn').first().waitFor();
  assert(!(await page.locator('#chat').isVisible()), 'the chat pane is hidden on the list');
  await shot(page, 'phone-list');
  await page.locator('#conv-list .conv-btn').first().click();
  await seeMessage(page, 'One more thing');
  assert(!(await page.locator('#sidebar').isVisible()), 'the list is hidden in the chat');
  await page.getByRole('button', { name: 'Back to conversations' }).waitFor();
  await shot(page, 'phone-chat');
  await page.getByRole('button', { name: 'Back to conversations' }).click();
  await page.locator('#sidebar').waitFor();
  await context.close();
});

test('log out', async () => {
  await B.page.getByRole('button', { name: 'Log out' }).click();
  await B.page.getByRole('button', { name: 'Log in' }).waitFor();
  const stored = await B.page.evaluate(() => localStorage.getItem('parley.session'));
  assert(stored === null, 'the session is forgotten');
  await A.context.close();
  await B.context.close();
});

run();

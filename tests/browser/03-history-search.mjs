// History: the chat opens at the newest page and scrolls back into older
// ones; search finds an old message and opens the history around it.

import {
  test, run, newPage, makeUser, befriend, rest, uiLogin, openChat, seeMessage, shot, assert, PHONE,
} from './lib.mjs';

let a, b, conv, A;

test('a conversation with a long history', async () => {
  a = await makeUser('ha', 'Hana');
  b = await makeUser('hb', 'Ivo');
  await befriend(a, b);
  conv = await rest('POST', '/conversations', { kind: 'direct', user_id: b.id }, a.token);
  for (let i = 1; i <= 75; i++) {
    const who = i % 2 ? a : b;
    const body = i === 4 ? 'the pineapple protocol is settled' : `history line ${i}`;
    await rest('POST', `/conversations/${conv.id}/messages`, { client_msg_id: `h-${i}`, body }, who.token);
  }
  A = await newPage();
  await uiLogin(A.page, a);
  await openChat(A.page, 'Ivo');
  await seeMessage(A.page, 'history line 75');
  assert(await A.page.locator('#messages li.msg').count() === 30, 'the newest page only');
});

test('scrolling up loads older pages (infinite scroll)', async () => {
  const beginning = A.page.locator('#messages li.start', { hasText: 'Beginning of the conversation' });
  for (let i = 0; i < 6 && !(await beginning.count()); i++) {
    const before = await A.page.locator('#messages li.msg').count();
    await A.page.locator('#messages-wrap').evaluate((el) => { el.scrollTop = 0; });
    await A.page.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length > n, before);
  }
  await A.page.locator('#messages li.start', { hasText: 'Beginning of the conversation' }).waitFor();
  assert(await A.page.locator('#messages li.msg').count() === 75, 'all 75 messages');
  const mids = await A.page.locator('#messages li.msg').evaluateAll((els) => els.map((e) => Number(e.dataset.mid)));
  assert(mids.every((m, i) => i === 0 || m > mids[i - 1]), 'in order');
});

test('search finds an old message and jumps to it', async () => {
  await A.page.evaluate(() => document.getElementById('btn-back').click());
  await A.page.getByLabel('Search messages').fill('pineapple');
  await A.page.getByRole('button', { name: 'Search', exact: true }).click();
  const result = A.page.locator('#search-list .result-btn', { hasText: 'pineapple' });
  await result.waitFor();
  await shot(A.page, 'desktop-search');
  await result.click();
  const hit = A.page.locator('#messages li.msg.highlight', { hasText: 'the pineapple protocol is settled' });
  await hit.waitFor();
  assert(await hit.isVisible(), 'the result is on screen');
  // History around it: older and newer neighbours, not the newest page.
  await seeMessage(A.page, 'history line 3');
  await seeMessage(A.page, 'history line 5');
  assert(await A.page.locator('#messages li.msg', { hasText: 'history line 75' }).count() === 0, 'not at the end');
  await A.page.getByRole('button', { name: /Jump to latest/ }).click();
  await seeMessage(A.page, 'history line 75');
});

test('search on a phone-sized screen', async () => {
  const { page, context } = await newPage({ viewport: PHONE, isMobile: true });
  await uiLogin(page, b);
  await page.getByLabel('Search messages').fill('pineapple');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#search-list .result-btn').first().waitFor();
  await shot(page, 'phone-search');
  await page.locator('#search-list .result-btn').first().click();
  await page.locator('#messages li.msg.highlight').waitFor();
  await shot(page, 'phone-search-result');
  await context.close();
  await A.context.close();
});

run();

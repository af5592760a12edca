// Reading a conversation: messages sit under day separators ("Today",
// "Yesterday", a date) and show their time of day, also after older pages
// load and live messages arrive; http(s) URLs are links that open in a new
// tab, and nothing else in a body is markup; a "New messages" line marks
// where reading starts; "typing…" ends as soon as the typist's message
// arrives, wherever it shows.

import {
  test, run, newPage, makeUser, befriend, rest, uiLogin, openChat, send, seeMessage, shot, assert, assertEqual,
  BASE_URL,
} from './lib.mjs';

const DAY = 86400000;
let a, b, c, conv, convC, A, B;

// The server stamps messages with the time they are sent, so history is
// made older on its way to the browser: "day line N" looks sent three days
// ago for N <= 20, yesterday for N <= 35, and today after that.
const dayOfLine = (n) => (n <= 20 ? 3 : n <= 35 ? 1 : 0);
function backdate(m) {
  const n = Number((/day line (\d+)$/.exec(m.body) || [])[1]);
  if (n && dayOfLine(n)) m.created_at = new Date(Date.parse(m.created_at) - dayOfLine(n) * DAY).toISOString();
}
async function backdateHistory(page) {
  await page.route(/\/api\/v1\/conversations\/\d+\/messages\?/, async (route) => {
    if (route.request().method() !== 'GET') { await route.fallback(); return; }
    const res = await route.fetch();
    const json = await res.json();
    for (const m of json.messages || []) backdate(m);
    await route.fulfill({ response: res, json });
  });
}

// The messages shown, in order, each as [the day separator above it, body].
const underDays = (page) => page.locator('#messages > li').evaluateAll((els) => {
  const out = [];
  let day = null;
  for (const el of els) {
    if (el.classList.contains('day')) day = el.textContent;
    else if (el.classList.contains('msg')) out.push([day, el.querySelector('.body').textContent]);
  }
  return out;
});

// The browser runs in UTC with British English (en-GB), so the label of
// three days ago is that date, written out.
function threeDaysAgoParts() {
  const d = new Date(Date.now() - 3 * DAY);
  const part = (o) => d.toLocaleDateString('en-GB', { timeZone: 'UTC', ...o });
  return [part({ weekday: 'long' }), part({ month: 'long' }), String(d.getUTCDate()), String(d.getUTCFullYear())];
}

function checkDays(shown, label3) {
  for (const [day, body] of shown) {
    const n = Number((/day line (\d+)$/.exec(body) || [])[1]);
    const want = !n ? 'Today' : ['Today', 'Yesterday', null, label3][dayOfLine(n)];
    assertEqual(day, want, `the day above "${body}"`);
  }
}

// Typing is throttled (the client repeats it every 2 s, the relay passes
// one a second): type until the other side shows it.
async function typeUntilSeen(page, seen) {
  const box = page.getByLabel('Message', { exact: true });
  for (let i = 0; i < 12; i++) {
    await box.pressSequentially('x');
    try {
      await seen.waitFor({ timeout: 1000 });
      return;
    } catch { /* not passed on yet: keep typing */ }
  }
  throw new Error('the typing indicator never showed');
}

test('a history over three days, and a conversation with 20 unread', async () => {
  a = await makeUser('da', 'Tess');
  b = await makeUser('db', 'Umar');
  c = await makeUser('dc', 'Vera');
  await befriend(a, b);
  await befriend(a, c);
  conv = await rest('POST', '/conversations', { kind: 'direct', user_id: b.id }, a.token);
  for (let i = 1; i <= 45; i++) {
    const body = i === 10 ? 'walrus day line 10' : `day line ${i}`;
    await rest('POST', `/conversations/${conv.id}/messages`, { client_msg_id: `d-${i}`, body }, (i % 2 ? a : b).token);
  }
  convC = await rest('POST', '/conversations', { kind: 'direct', user_id: c.id }, a.token);
  let last = null;
  for (let i = 1; i <= 4; i++) {
    last = await rest('POST', `/conversations/${convC.id}/messages`, { client_msg_id: `r-${i}`, body: `read ${i}` },
      (i % 2 ? c : a).token);
  }
  await rest('POST', `/conversations/${convC.id}/read`, { message_id: last.message_id }, a.token);
  for (let i = 1; i <= 20; i++) {
    await rest('POST', `/conversations/${convC.id}/messages`, { client_msg_id: `u-${i}`, body: `unread ${i}` }, c.token);
  }
  A = await newPage({ locale: 'en-GB', timezoneId: 'UTC' });
  B = await newPage({ locale: 'en-GB', timezoneId: 'UTC' });
  await backdateHistory(A.page);
  await uiLogin(A.page, a);
  await uiLogin(B.page, b);
  await openChat(B.page, 'Tess');
});

test('day separators and times of day, also after loading older pages', async () => {
  const parts = threeDaysAgoParts();
  await openChat(A.page, 'Umar');
  await seeMessage(A.page, 'day line 45');
  const days = await A.page.locator('#messages li.day').allTextContents();
  assertEqual(days.length, 3, 'three days: ' + JSON.stringify(days));
  const label3 = days[0];
  for (const p of parts) assert(label3.includes(p), `"${label3}" names the day three days ago (${p})`);
  assertEqual(days.slice(1), ['Yesterday', 'Today'], 'then yesterday and today');
  let shown = await underDays(A.page);
  assertEqual(shown.length, 30, 'the newest page');
  checkDays(shown, label3);
  const times = await A.page.locator('#messages li.msg .meta time').allTextContents();
  assert(times.length === 30 && times.every((t) => /^\d\d:\d\d$/.test(t)), 'each message shows HH:MM: ' + times[0]);

  // Older pages go under the day already shown, not under a second one.
  const beginning = A.page.locator('#messages li.start', { hasText: 'Beginning of the conversation' });
  for (let i = 0; i < 4 && !(await beginning.count()); i++) {
    const before = await A.page.locator('#messages li.msg').count();
    await A.page.locator('#messages-wrap').evaluate((el) => { el.scrollTop = 0; });
    await A.page.waitForFunction((n) => document.querySelectorAll('#messages li.msg').length > n, before);
  }
  await beginning.waitFor();
  shown = await underDays(A.page);
  assertEqual(shown.length, 45, 'all of the history');
  assertEqual(await A.page.locator('#messages li.day').allTextContents(), [label3, 'Yesterday', 'Today'],
    'still one separator a day');
  checkDays(shown, label3);

  // A live message goes under "Today".
  await rest('POST', `/conversations/${conv.id}/messages`, { client_msg_id: 'd-live', body: 'live and today' }, b.token);
  await seeMessage(A.page, 'live and today');
  shown = await underDays(A.page);
  assertEqual(shown[shown.length - 1], ['Today', 'live and today'], 'the live message is today\'s');
  assertEqual(await A.page.locator('#messages li.day').count(), 3, 'no new separator');
});

test('links: http(s) URLs open in a new tab; nothing else is markup', async () => {
  const health = `${BASE_URL}/health`;
  const body = `Docs at https://example.com/docs?a=1&b=2, (see https://en.wikipedia.org/wiki/Parley_(film)). ` +
    `Status: ${health}. Not links: javascript:alert(1) ftp://example.com/x <b>bold</b> <img src=x onerror=alert(1)>`;
  await send(B.page, body);
  await seeMessage(A.page, 'Docs at');
  const msg = A.page.locator('#messages li.msg', { hasText: 'Docs at' }).first();
  assertEqual(await msg.locator('.body').textContent(), body, 'the body shows as it was written');
  const links = await msg.locator('.body a').evaluateAll((els) => els.map((e) => ({
    href: e.getAttribute('href'), text: e.textContent, target: e.target, rel: e.rel,
  })));
  assertEqual(links.map((l) => l.href), ['https://example.com/docs?a=1&b=2',
    'https://en.wikipedia.org/wiki/Parley_(film)', health], 'three links, without the punctuation around them');
  assertEqual(links.map((l) => l.text), links.map((l) => l.href), 'each shows its URL');
  for (const l of links) {
    assert(l.target === '_blank', 'opens in a new tab');
    assert(l.rel.split(' ').includes('noopener') && l.rel.split(' ').includes('noreferrer'), 'rel=noopener noreferrer');
  }
  assert(await msg.locator('b, img, script').count() === 0, 'no markup from the body');
  // The sender's own bubble has the links too.
  await B.page.locator('#messages li.msg.own[data-mid] .body a', { hasText: 'example.com/docs' }).waitFor();
  // Following one opens a new tab that cannot reach back into the chat.
  const [tab] = await Promise.all([A.context.waitForEvent('page'),
    msg.locator('.body a', { hasText: '/health' }).click()]);
  await tab.waitForLoadState();
  assertEqual(tab.url(), health, 'the link\'s page');
  assert(await tab.evaluate(() => window.opener === null), 'no window.opener');
  await tab.close();
  await shot(A.page, 'desktop-days-links');
});

test('a "New messages" line above the first unread message', async () => {
  await A.page.locator('#conv-list .badge.unread[data-unread="20"]').waitFor();
  await openChat(A.page, 'Vera');
  await seeMessage(A.page, 'unread 20');
  const line = A.page.locator('#messages li.unread-line');
  assertEqual(await line.count(), 1, 'one line');
  assertEqual(await line.textContent(), 'New messages', 'its words');
  // In one step: the list is redrawn whole when something changes.
  const around = () => A.page.evaluate(() => {
    const el = document.querySelector('#messages li.unread-line');
    return [el.previousElementSibling, el.nextElementSibling].map((x) => x.querySelector('.body').textContent);
  });
  assertEqual(await around(), ['read 4', 'unread 1'], 'between the last read and the first unread');
  // More is unread than fits: the chat opens where reading starts.
  // The list is redrawn whole, so the line may be replaced while it is
  // measured: measure again (within 5 s) until it is laid out.
  let box = null;
  for (const deadline = Date.now() + 5000; !box && Date.now() < deadline;) {
    await line.waitFor({ state: 'visible' });
    box = await line.boundingBox();
  }
  assert(box, 'the line is laid out');
  const wrap = await A.page.locator('#messages-wrap').boundingBox();
  assert(box.y >= wrap.y && box.y + box.height <= wrap.y + wrap.height, 'the line is on screen');
  await shot(A.page, 'desktop-new-messages');
  // It stays put while new messages come in, and is gone on the next visit.
  await rest('POST', `/conversations/${convC.id}/messages`, { client_msg_id: 'u-live', body: 'one more' }, c.token);
  await seeMessage(A.page, 'one more');
  assertEqual(await line.count(), 1, 'still one line');
  assertEqual(await around(), ['read 4', 'unread 1'], 'in the same place');
  await A.page.evaluate(() => document.getElementById('btn-back').click());
  await openChat(A.page, 'Vera');
  await seeMessage(A.page, 'unread 20');
  assertEqual(await line.count(), 0, 'no line once read');
});

test('"typing…" ends when the message arrives: in the list', async () => {
  // Tess reads Vera's chat; Umar types and sends in theirs.
  const row = A.page.locator('#conv-list li.conv', { hasText: 'Umar' });
  await typeUntilSeen(B.page, row.locator('.conv-preview.is-typing'));
  await send(B.page, 'done typing');
  // Within 2 s: "typing…" would otherwise only go 4 s after the last frame.
  await row.locator('.conv-preview:not(.is-typing)', { hasText: 'done typing' }).waitFor({ timeout: 2000 });
});

test('"typing…" ends when the message arrives: under a chat opened at a search result', async () => {
  await A.page.getByLabel('Search messages').fill('walrus');
  await A.page.getByRole('button', { name: 'Search', exact: true }).click();
  await A.page.locator('#search-list .result-btn', { hasText: 'walrus' }).click();
  await A.page.locator('#messages li.msg.highlight', { hasText: 'walrus' }).waitFor();
  await A.page.locator('#btn-latest:not([hidden])').waitFor();
  await typeUntilSeen(B.page, A.page.locator('#typing', { hasText: 'Umar is typing' }));
  await send(B.page, 'typed and sent');
  await A.page.locator('#typing:empty').waitFor({ timeout: 2000 });
  await A.page.locator('#conv-list li.conv .conv-preview:not(.is-typing)', { hasText: 'typed and sent' })
    .waitFor({ timeout: 2000 });
  await A.context.close();
  await B.context.close();
});

run();

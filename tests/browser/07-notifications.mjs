// Desktop notifications: permission is asked only when the user clicks
// "Enable notifications"; then a message notifies unless its conversation
// is on screen, muted, or it is the user's own; with the tab hidden the open
// conversation notifies too; clicking a notification opens its conversation.
//
// The browser's Notification constructor is wrapped to record what the page
// shows; the permission itself is granted through the browser context (a
// headless browser has no prompt to click).

import {
  test, run, newPage, makeUser, befriend, rest, uiLogin, openChat, seeMessage, shot, assert, assertEqual, BASE_URL,
} from './lib.mjs';

let n, o, p, convO, convP, N;

// Runs in the page before the app: records each notification and each
// permission request in window.__notes and window.__asked.
function recordNotifications() {
  const Real = window.Notification;
  window.__notes = [];
  window.__asked = 0;
  function Recorded(title, options = {}) {
    const note = new Real(title, options);
    window.__notes.push({ title, body: options.body, tag: options.tag, note });
    return note;
  }
  Recorded.prototype = Real.prototype;
  Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
  Recorded.requestPermission = (...args) => { window.__asked++; return Real.requestPermission(...args); };
  window.Notification = Recorded;
}

const notes = () => N.page.evaluate(() => window.__notes.map(({ title, body, tag }) => ({ title, body, tag })));
const waitNotes = (count) => N.page.waitForFunction((k) => window.__notes.length >= k, count);
const say = (conv, user, body) => rest('POST', `/conversations/${conv.id}/messages`,
  { client_msg_id: 'n-' + Math.random().toString(36).slice(2), body }, user.token);

// The page thinks it is in a background tab (or back in front).
const setHidden = (hidden) => N.page.evaluate((h) => {
  if (h) Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
  else delete document.visibilityState;
  document.dispatchEvent(new Event('visibilitychange'));
}, hidden);

test('permission is asked on a click, never on load', async () => {
  n = await makeUser('na', 'Nora');
  o = await makeUser('no', 'Omar');
  p = await makeUser('np', 'Pia');
  await befriend(n, o);
  await befriend(n, p);
  convO = await rest('POST', '/conversations', { kind: 'direct', user_id: o.id }, n.token);
  convP = await rest('POST', '/conversations', { kind: 'direct', user_id: p.id }, n.token);
  N = await newPage();
  await N.context.addInitScript(recordNotifications);
  await uiLogin(N.page, n);
  await openChat(N.page, 'Omar');
  const button = N.page.getByRole('button', { name: 'Enable notifications' });
  await button.waitFor();
  assertEqual(await N.page.evaluate(() => [window.__asked, Notification.permission]), [0, 'default'],
    'nothing asked on load');
  await shot(N.page, 'desktop-notify-bar');
  // The user says yes to the prompt the click brings up.
  await N.context.grantPermissions(['notifications'], { origin: BASE_URL });
  await button.click();
  await button.waitFor({ state: 'hidden' });
  assertEqual(await N.page.evaluate(() => window.__asked), 1, 'asked once, on the click');
});

test('a message elsewhere notifies; in view or own does not', async () => {
  await say(convP, p, 'ping from Pia');
  await waitNotes(1);
  assertEqual(await notes(), [{ title: 'Pia', body: 'ping from Pia', tag: `parley-conversation-${convP.id}` }],
    'one notification, titled with the sender');
  // Omar writes in the conversation on screen; Nora writes from another
  // device; then Pia again. Live messages come in order, so once Pia's shows,
  // the two before it were seen and did not notify.
  await say(convO, o, 'in view, no notification');
  await seeMessage(N.page, 'in view, no notification');
  await say(convP, n, 'from my phone');
  await say(convP, p, 'second from Pia');
  await waitNotes(2);
  assertEqual((await notes()).map((x) => x.body), ['ping from Pia', 'second from Pia'], 'only Pia\'s');
});

test('clicking a notification opens its conversation', async () => {
  await N.page.evaluate(() => window.__notes[1].note.dispatchEvent(new Event('click')));
  await N.page.locator('#chat-title', { hasText: 'Pia' }).waitFor();
  await seeMessage(N.page, 'second from Pia');
});

test('muted conversations never notify; a hidden tab notifies for the open one', async () => {
  await N.page.getByRole('button', { name: 'Mute' }).click();
  await N.page.locator('#btn-mute[aria-pressed="true"]').waitFor();
  await openChat(N.page, 'Omar');
  await say(convP, p, 'muted ping');
  await N.page.locator('#conv-list .conv-preview', { hasText: 'muted ping' }).waitFor();
  await setHidden(true);
  await say(convO, o, 'while you were away');
  await waitNotes(3);
  const shown = await notes();
  assertEqual(shown.map((x) => x.body), ['ping from Pia', 'second from Pia', 'while you were away'],
    'none for the muted conversation');
  assertEqual(shown[2].title, 'Omar', 'titled Omar');
  // Back in front, the open chat marks what arrived meanwhile.
  await setHidden(false);
  const line = N.page.locator('#messages li.unread-line + li.msg', { hasText: 'while you were away' });
  await line.waitFor();
  assert(await N.page.locator('#messages li.unread-line').count() === 1, 'one "New messages" line');
  await N.context.close();
});

run();

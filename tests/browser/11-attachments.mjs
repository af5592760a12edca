// Attachments: a photo picked with the paperclip uploads with a progress
// bar on its chip and is sent with a caption; the other member sees its
// thumbnail arrive with the message, at its size, and opens the whole image
// over the page (Escape closes it). A text file dropped on the conversation
// (the drop target shows while dragging) reaches the other member, who
// downloads the same bytes. A photo alone, without text, is a message. A
// file over the server's limit, or an upload that cannot reach the server,
// says so on its chip: retried, or removed. A deleted message takes its
// files with it.

import { readFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import {
  test, run, newPage, makeUser, befriend, rest, uiLogin, openChat, send, seeMessage, shot, assert, assertEqual,
  PHONE,
} from './lib.mjs';

let a, b, A, B;

// A PNG of w x h pixels (RGB), colours from px(x, y) -> [r, g, b].
const CRC = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const x of buf) c = CRC[(c ^ x) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function png(w, h, px) {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8 bits, RGB
  const raw = Buffer.alloc(h * (1 + 3 * w));
  for (let y = 0; y < h; y++) {
    raw[y * (1 + 3 * w)] = 0;
    for (let x = 0; x < w; x++) raw.set(px(x, y), y * (1 + 3 * w) + 1 + 3 * x);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// A sunset (480 x 360: its thumbnail is 320 x 240), with some noise so the
// file is big enough for its upload to be seen going on a slow link.
const SUNSET = png(480, 360, (x, y) => {
  const n = (x * 7919 + y * 104729) % 23;
  return [230 - (y >> 2) + n, 120 + (y >> 2) - (x >> 4) + n, 60 + (y >> 1) - n];
});
const LEAF = png(200, 300, (x, y) => [40 + (x >> 2), 140 + ((x + y) % 60), 60]);
const NOTES = 'Shopping list\n- bread\n- olives\n- café crème ☕\n';

const msg = (page, text) => page.locator('#messages li.msg[data-mid]', { hasText: text }).first();
const chips = (page) => page.getByRole('list', { name: 'Files to send' }).getByRole('listitem');
const chip = (page, name) => chips(page).filter({ hasText: name });

// Picks files with the paperclip, as a user does in the file chooser.
async function attach(page, files) {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'),
    page.getByRole('button', { name: 'Attach photos or files' }).click()]);
  assert(chooser.isMultiple(), 'the file chooser takes several files');
  await chooser.setFiles(files);
}

// Drags files (a DataTransfer made in the page by make(arg)) over the
// conversation; then drops them unless drop is false.
async function dragFiles(page, make, arg, { drop = true } = {}) {
  const dt = await page.evaluateHandle(make, arg);
  await page.dispatchEvent('#messages-wrap', 'dragenter', { dataTransfer: dt });
  await page.dispatchEvent('#messages-wrap', 'dragover', { dataTransfer: dt });
  if (drop) await page.dispatchEvent('#messages-wrap', 'drop', { dataTransfer: dt });
  return dt;
}

// The picture of a message, once its thumbnail is on screen.
async function seePicture(page, li) {
  const img = li.locator('.att-picture img');
  await img.waitFor();
  await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await img.elementHandle());
  return img;
}

test('Rosa and Sami, friends, in a direct conversation', async () => {
  a = await makeUser('pa', 'Rosa');
  b = await makeUser('pb', 'Sami');
  await befriend(a, b);
  await rest('POST', '/conversations', { kind: 'direct', user_id: b.id }, a.token);
  [A, B] = await Promise.all([newPage(), newPage()]);
  await uiLogin(A.page, a);
  await uiLogin(B.page, b);
  await openChat(A.page, 'Sami');
  await openChat(B.page, 'Rosa');
});

test('a photo picked with the paperclip shows its upload on a chip, and is sent with a caption', async () => {
  // A slow link, so the upload is seen going on.
  const cdp = await A.context.newCDPSession(A.page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: SUNSET.length / 3 });
  await attach(A.page, [{ name: 'sunset.png', mimeType: 'image/png', buffer: SUNSET }]);
  const c = chip(A.page, 'sunset.png');
  await c.waitFor();
  const bar = c.getByRole('progressbar');
  await A.page.waitForFunction((el) => el.value > 0 && el.value < 100, await bar.elementHandle(), { timeout: 10000 });
  assert(/%/.test(await c.locator('.chip-info').textContent()), 'the chip says how far the upload is');
  await shot(A.page, 'desktop-attach-uploading');
  await c.filter({ hasText: 'Uploaded' }).waitFor({ timeout: 15000 });
  assertEqual(await bar.evaluate((el) => el.value === el.max), true, 'the progress bar is full');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  assert(await c.getByRole('button', { name: 'Remove sunset.png' }).isVisible(), 'the chip can be removed');
  await shot(A.page, 'desktop-attach-ready');

  await send(A.page, 'The view from the hill');
  await chips(A.page).first().waitFor({ state: 'detached' });
  assert(await A.page.getByRole('list', { name: 'Files to send' }).isHidden(), 'the chips leave the composer');
  for (const P of [A, B]) {
    await seeMessage(P.page, 'The view from the hill');
    const img = await seePicture(P.page, msg(P.page, 'The view from the hill'));
    assertEqual(await img.evaluate((el) => el.naturalWidth), 320, 'the thumbnail is shown');
    const box = await img.boundingBox();
    assertEqual([Math.round(box.width), Math.round(box.height)], [320, 240], 'the thumbnail at its size');
  }
  await shot(B.page, 'desktop-attach-photo');
});

test('clicking the thumbnail opens the whole image; Escape closes it', async () => {
  const button = msg(B.page, 'The view from the hill').getByRole('button', { name: /^Open image sunset\.png/ });
  await button.click();
  const dlg = B.page.getByRole('dialog', { name: 'sunset.png' });
  await dlg.waitFor();
  const full = dlg.locator('img');
  await B.page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await full.elementHandle());
  assertEqual(await full.evaluate((el) => [el.naturalWidth, el.naturalHeight]), [480, 360], 'the whole image');
  assert((await dlg.textContent()).includes('480 × 360'), 'the image\'s size is said');
  await shot(B.page, 'desktop-attach-lightbox');
  await B.page.keyboard.press('Escape');
  await dlg.waitFor({ state: 'hidden' });
  assert(await button.evaluate((el) => el === document.activeElement), 'the focus is back on the thumbnail');
  // The keyboard opens it too.
  await B.page.keyboard.press('Enter');
  await dlg.waitFor();
  await dlg.getByRole('button', { name: 'Close image' }).click();
  await dlg.waitFor({ state: 'hidden' });
});

test('a text file dropped on the conversation is downloaded by the other member, the same bytes', async () => {
  const dt = await dragFiles(A.page, (text) => {
    const d = new DataTransfer();
    d.items.add(new File([text], 'notes.txt', { type: 'text/plain' }));
    return d;
  }, NOTES, { drop: false });
  const target = A.page.locator('#drop-target');
  await target.filter({ hasText: 'Drop files to send to Sami' }).waitFor();
  await shot(A.page, 'desktop-attach-drop-target');
  await A.page.dispatchEvent('#messages-wrap', 'drop', { dataTransfer: dt });
  await target.waitFor({ state: 'hidden' });
  await chip(A.page, 'notes.txt').filter({ hasText: 'Uploaded' }).waitFor();
  await send(A.page, 'Here is the list');
  await seeMessage(B.page, 'Here is the list');
  const size = Buffer.byteLength(NOTES);
  const link = msg(B.page, 'Here is the list').getByRole('button', { name: `Download notes.txt, ${size} B` });
  await link.waitFor();
  const [download] = await Promise.all([B.page.waitForEvent('download'), link.click()]);
  assertEqual(download.suggestedFilename(), 'notes.txt', 'the file keeps its name');
  assertEqual(readFileSync(await download.path(), 'utf8'), NOTES, 'the bytes downloaded');
});

test('a photo alone, without text, is a message of its own', async () => {
  await attach(A.page, [{ name: 'leaf.png', mimeType: 'image/png', buffer: LEAF }]);
  await chip(A.page, 'leaf.png').filter({ hasText: 'Uploaded' }).waitFor();
  const box = A.page.getByLabel('Message', { exact: true });
  assertEqual(await box.inputValue(), '', 'nothing is typed');
  await box.press('Enter');
  await chips(A.page).first().waitFor({ state: 'detached' });
  for (const P of [A, B]) {
    const li = P.page.locator('#messages li.msg[data-mid]').filter({ has: P.page.getByRole('button', { name: /^Open image leaf\.png/ }) });
    await li.waitFor();
    const img = await seePicture(P.page, li);
    assertEqual(await img.evaluate((el) => [el.naturalWidth, el.naturalHeight]), [200, 300], 'the thumbnail of a small image');
    assertEqual(await li.locator('.body').count(), 0, 'no text above the photo');
  }
  await A.page.locator('#conv-list .conv-preview', { hasText: 'You: Photo' }).waitFor();
  await B.page.locator('#conv-list .conv-preview', { hasText: 'Photo' }).waitFor();
});

test('a file over the limit, or one that cannot reach the server, says so on its chip', async () => {
  await dragFiles(A.page, () => {
    const d = new DataTransfer();
    d.items.add(new File([new Uint8Array(26 * 1024 * 1024)], 'holiday.mov', { type: 'video/quicktime' }));
    return d;
  });
  const big = chip(A.page, 'holiday.mov');
  await big.getByRole('alert').filter({ hasText: 'Too large to send.' }).waitFor({ timeout: 30000 });
  assertEqual(await big.getByRole('button', { name: 'Retry holiday.mov' }).isVisible(), false, 'no retry for a file too large');
  await shot(A.page, 'desktop-attach-too-large');
  // Sending is refused while it is there.
  await A.page.getByRole('button', { name: 'Send message' }).click();
  await A.page.locator('.toast', { hasText: 'Retry or remove' }).waitFor();
  await big.getByRole('button', { name: 'Remove holiday.mov' }).click();
  await big.waitFor({ state: 'detached' });
  assert(await A.page.getByRole('list', { name: 'Files to send' }).isHidden(), 'no chips left');

  // The server cannot be reached: Retry, once it can.
  await A.page.route('**/api/v1/attachments', (route) => route.abort('connectionrefused'));
  await attach(A.page, [{ name: 'receipt.txt', mimeType: 'text/plain', buffer: Buffer.from('Total: 12.40\n') }]);
  const c = chip(A.page, 'receipt.txt');
  await c.getByRole('alert').filter({ hasText: "Can't reach the server" }).waitFor();
  await A.page.unroute('**/api/v1/attachments');
  await c.getByRole('button', { name: 'Retry receipt.txt' }).click();
  await c.filter({ hasText: 'Uploaded' }).waitFor();
  assertEqual(await c.getByRole('alert').count(), 0, 'the error is gone');
  await send(A.page, 'The receipt');
  await msg(B.page, 'The receipt').getByRole('button', { name: /^Download receipt\.txt/ }).waitFor();
});

test('a deleted message takes its files with it, on both screens', async () => {
  const li = msg(A.page, 'The view from the hill');
  await li.hover();
  await li.getByRole('button', { name: 'Message actions' }).click();
  await A.page.getByRole('menuitem', { name: 'Delete' }).click();
  await A.page.getByRole('dialog', { name: 'Delete this message?' }).getByRole('button', { name: 'Delete' }).click();
  for (const P of [A, B]) {
    await P.page.locator('#messages li.msg.deleted', { hasText: 'Message deleted' }).first().waitFor();
    assertEqual(await P.page.getByRole('button', { name: /^Open image sunset\.png/ }).count(), 0, 'the photo is gone');
    assertEqual(await P.page.locator('#messages li.msg', { hasText: 'The view from the hill' }).count(), 0, 'its caption too');
  }
  // The other photo and the files stay; at phone size too.
  await B.page.setViewportSize(PHONE);
  const leaf = B.page.getByRole('button', { name: /^Open image leaf\.png/ });
  await leaf.scrollIntoViewIfNeeded();
  const box = await leaf.boundingBox();
  assert(box.width <= PHONE.width, 'the photo fits a phone screen');
  await shot(B.page, 'phone-attach-messages');
});

run();

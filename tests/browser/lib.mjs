// lib.mjs: what Parley's browser tests share: launching Debian's Chromium
// with playwright-core, a tiny test registry, REST helpers for setting up
// users faster than through the UI, and screenshots.
//
// Environment: PARLEY_TEST_URL (default http://127.0.0.1:18080), the stack
// serving the web client; PARLEY_CHROMIUM (default /usr/bin/chromium);
// PARLEY_SCREENSHOTS (default tests/output/screenshots of the source tree).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const BASE_URL = (process.env.PARLEY_TEST_URL || 'http://127.0.0.1:18080').replace(/\/$/, '');
export const CHROMIUM = process.env.PARLEY_CHROMIUM || '/usr/bin/chromium';
export const SHOTS = process.env.PARLEY_SCREENSHOTS || join(here, '..', 'output', 'screenshots');

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

const tests = [];
export function test(name, fn) { tests.push({ name, fn }); }

let browser = null;
export async function getBrowser() {
  if (!browser) {
    // launch() gives every run a fresh, temporary profile (user-data dir).
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // The app is served over plain HTTP; notifications need a secure
      // context, which loopback is and the cluster bed's address is not.
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        `--unsafely-treat-insecure-origin-as-secure=${new URL(BASE_URL).origin}`],
    });
  }
  return browser;
}

// A new browser context (its own storage, like another device) and page.
// Other options (locale, timezoneId, permissions...) go to newContext.
export async function newPage({ viewport = DESKTOP, isMobile = false, ...options } = {}) {
  const b = await getBrowser();
  const context = await b.newContext({ viewport, isMobile, hasTouch: isMobile, deviceScaleFactor: 1, ...options });
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`# console: ${m.text()}`); });
  return { context, page };
}

// Runs the registered tests in order: "# ok NAME" or "# FAIL NAME: why"
// (and "# skipped NAME" for those after a failure); exits 1 if any failed (tests/stack-tests.sh makes one TAP line of it).
export async function run() {
  let failed = 0;
  for (const t of tests) {
    // Each test builds on the ones before it: after a failure, skip the rest.
    if (failed) { console.log(`# skipped ${t.name}`); continue; }
    const started = Date.now();
    try {
      await t.fn();
      console.log(`# ok ${t.name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed++;
      console.log(`# FAIL ${t.name}: ${(e && e.stack) || e}`);
    }
  }
  if (browser) await browser.close().catch(() => {});
  process.exit(failed ? 1 : 0);
}

// A fresh username (3..32 of [a-z0-9_.-]) for this run.
let seq = 0;
export function uname(prefix) {
  const r = Math.random().toString(36).slice(2, 7);
  return `${prefix}${Date.now().toString(36).slice(-5)}${r}${seq++}`.slice(0, 32);
}
export const PASSWORD = 'correct horse battery';

export async function rest(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(BASE_URL + '/api/v1' + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return data;
}

// Signs a user up and logs in over REST: {id, username, token}.
export async function makeUser(prefix, displayName) {
  const username = uname(prefix);
  const u = await rest('POST', '/users', { username, password: PASSWORD, display_name: displayName });
  const s = await rest('POST', '/sessions', { username, password: PASSWORD });
  return { id: u.id, username, display_name: displayName, token: s.token };
}

export async function befriend(a, b) {
  await rest('POST', '/friends', { user_id: b.id }, a.token);
  await rest('POST', '/friends', { user_id: a.id }, b.token);
}

// Logs in through the web client's form.
export async function uiLogin(page, user) {
  await page.goto(BASE_URL + '/');
  await page.getByLabel('Username', { exact: true }).fill(user.username);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('#conn[data-state="online"]').waitFor();
}

// Opens the conversation whose list entry starts with title.
export async function openChat(page, title) {
  await page.getByRole('tab', { name: /Chats/ }).click();
  await page.locator('#conv-list .conv-btn', { hasText: title }).first().click();
  await page.locator('#chat-title', { hasText: title }).waitFor();
}

export async function send(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send message' }).click();
}

// Waits until a confirmed message with this body is shown.
export async function seeMessage(page, text, timeout = 10000) {
  await page.locator('#messages li.msg[data-mid]', { hasText: text }).first().waitFor({ timeout });
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, name + '.png') });
}

export function assert(cond, msg) {
  if (!cond) throw new Error('assertion failed: ' + msg);
}

export function assertEqual(actual, expected, msg) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}: expected ${e}, got ${a}`);
}

// The sign-in form when the API is down or cannot be reached: the user reads
// the app's own words, never the server's or a proxy's raw text; once the
// server is back, logging in works.

import {
  test, run, newPage, makeUser, BASE_URL, PASSWORD, assert,
} from './lib.mjs';

const UNREACHABLE = "Can't reach the server. Check your connection and try again.";
const UNAVAILABLE = 'The server is not available right now. Try again in a moment.';
let u, P;

async function submit(signup) {
  await P.page.getByRole('tab', { name: signup ? 'Sign up' : 'Log in' }).click();
  await P.page.getByLabel('Username', { exact: true }).fill(signup ? u.username + 'x' : u.username);
  await P.page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await P.page.getByRole('button', { name: signup ? 'Create account' : 'Log in' }).click();
}

// Waits for the form's message, and returns it.
async function formError(text) {
  const alert = P.page.locator('#auth-error', { hasText: text });
  await alert.waitFor();
  return alert.textContent();
}

test('the API cannot be reached', async () => {
  u = await makeUser('sd', 'Sid');
  P = await newPage();
  await P.page.goto(BASE_URL + '/');
  await P.page.route('**/api/v1/**', (route) => route.abort('connectionrefused'));
  await submit(false);
  await formError(UNREACHABLE);
  await submit(true);
  await formError(UNREACHABLE);
  await P.page.unroute('**/api/v1/**');
});

test('the API is down behind the web server (503, as nginx answers)', async () => {
  await P.page.route('**/api/v1/**', (route) => route.fulfill({ status: 503, contentType: 'application/json',
    body: '{"error":{"code":"unavailable","message":"the service is temporarily unavailable"}}' }));
  await submit(false);
  const text = await formError(UNAVAILABLE);
  assert(!text.includes('temporarily unavailable'), 'not the server\'s own words');
  await P.page.unroute('**/api/v1/**');
});

test('a proxy answers 502 with an HTML page', async () => {
  await P.page.route('**/api/v1/**', (route) => route.fulfill({ status: 502, contentType: 'text/html',
    body: '<html><body><h1>502 Bad Gateway</h1></body></html>' }));
  await submit(false);
  const text = await formError(UNAVAILABLE);
  assert(!/bad gateway/i.test(text), 'not the proxy\'s words');
  await P.page.unroute('**/api/v1/**');
});

test('back up: logging in works', async () => {
  await submit(false);
  await P.page.locator('#me-name', { hasText: 'Sid' }).waitFor();
  await P.context.close();
});

run();

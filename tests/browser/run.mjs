#!/usr/bin/env node
// run.mjs: runs the browser tests (NN-*.mjs here, or the files named) one
// after another, each in its own node process, and prints TAP: "1..N", then
// "ok I - NAME" or "not ok I - NAME", with each test's output as "# " lines.
// tests/stack-tests.sh runs the files itself, as part of "make check";
// this is for running them alone against a stack:
//   PARLEY_TEST_URL=http://127.0.0.1:8080 node tests/browser/run.mjs [FILE...]

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => resolve(f))
  : readdirSync(here).filter((f) => /^\d\d-.*\.mjs$/.test(f)).sort().map((f) => join(here, f));
const timeoutMs = Number(process.env.PARLEY_TEST_TIMEOUT || 300) * 1000;

function runOne(file) {
  return new Promise((done) => {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => { console.log(`# timed out after ${timeoutMs / 1000} s`); child.kill('SIGKILL'); }, timeoutMs);
    let rest = '';
    const onData = (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const l of lines) if (l && !l.includes('dbus')) console.log(l.startsWith('#') ? l : '# ' + l);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => { clearTimeout(timer); if (rest) console.log('# ' + rest); done(code === 0); });
  });
}

console.log(`1..${files.length}`);
let failed = 0;
for (const [i, f] of files.entries()) {
  const ok = await runOne(f);
  if (!ok) failed++;
  console.log(`${ok ? 'ok' : 'not ok'} ${i + 1} - browser/${basename(f)}`);
}
process.exit(failed ? 1 : 0);

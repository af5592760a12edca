// npm pack makes the package apps install: the modules, the types and the
// README, and nothing of the tests or of node_modules. Needs no stack.

import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert } from './lib.mjs';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');

test('npm pack holds the source, the types and the README', () => {
  const out = mkdtempSync(join(tmpdir(), 'parley-client-pack-'));
  try {
    // npm runs under "#!/usr/bin/env node": the node running this test.
    const env = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}` };
    execFileSync('npm', ['pack', '--pack-destination', out, '--silent'], { cwd: pkgDir, env, stdio: ['ignore', 'pipe', 'inherit'] });
    const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
    const tarballs = readdirSync(out);
    assert.deepEqual(tarballs, [`parley-client-${pkg.version}.tgz`]);
    const files = execFileSync('tar', ['-tzf', join(out, tarballs[0])], { encoding: 'utf8' })
      .split('\n').filter(Boolean).sort();
    for (const f of ['package/package.json', 'package/README.md', 'package/index.d.ts',
      'package/src/index.js', 'package/src/api.js', 'package/src/live.js', 'package/src/outbox.js',
      'package/src/client.js', 'package/src/errors.js', 'package/src/events.js', 'package/src/storage.js']) {
      assert.ok(files.includes(f), `${f} is in the tarball: ${files.join(' ')}`);
    }
    assert.ok(!files.some((f) => f.includes('node_modules') || f.startsWith('package/test/')),
      'no tests and no node_modules: ' + files.join(' '));
    // What package.json points at is there.
    assert.ok(files.includes('package/' + pkg.exports['.'].default.replace(/^\.\//, '')));
    assert.ok(files.includes('package/' + pkg.exports['.'].types.replace(/^\.\//, '')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the version is the one configure.ac gives the project', () => {
  const configure = join(pkgDir, '..', '..', 'configure.ac');
  const m = /AC_INIT\(\[parley\], \[([^\]]+)\]/.exec(readFileSync(configure, 'utf8'));
  assert.ok(m, 'AC_INIT names a version');
  assert.equal(JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version, m[1]);
});

test('every export of src/index.js is typed in index.d.ts', async () => {
  const mod = await import('../src/index.js');
  const dts = readFileSync(join(pkgDir, 'index.d.ts'), 'utf8');
  for (const name of Object.keys(mod)) {
    assert.match(dts, new RegExp(`export (declare )?(class|function|const) ${name}\\b`), `${name} in index.d.ts`);
  }
});

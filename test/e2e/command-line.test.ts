// The command line as a user meets it: a line imgx rejects is one line on stderr and exit status 2
// (IMGX_USAGE), and the command does not run; a command that does run does not pay for laying out
// the help text.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runImgx } from '../helpers/imgx.ts';
import { tempDir } from '../helpers/tempdir.ts';

/** One line naming the problem and pointing at --help. */
function assertUsage(r: { code: number | null; stderr: string }, message: RegExp): void {
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /^imgx: [^\n]+ \(see imgx --help\)\n$/);
  assert.match(r.stderr, message);
}

test('missing arguments are a usage error, not an internal one', async () => {
  for (const args of [['extract'], ['extract', 'debian'], ['inspect'], ['ls'], ['to-disk', 'debian'], ['boot']]) {
    assertUsage(await runImgx(args), /Not enough non-option arguments/);
  }
});

test('an unknown option stops the command before it runs', async () => {
  // Were it run, the inspect would fail to connect (exit 6) and the extract would create DIR.
  assertUsage(await runImgx(['inspect', 'docker://127.0.0.1:1/x', '--bogus']), /Unknown argument: bogus/);
  const dir = join(tempDir(), 'rootfs');
  assertUsage(await runImgx(['extract', 'docker://127.0.0.1:1/x', dir, '--bogus']), /Unknown argument: bogus/);
  assert.not.ok(existsSync(dir));
});

test('an unknown command is named, with the nearest command when there is one', async () => {
  assertUsage(await runImgx(['extrct', 'debian', 'out']), /Unknown arguments: extrct, debian, out \(did you mean extract\?\)/);
  assertUsage(await runImgx(['bogus']), /Unknown argument: bogus/);
});

test('a command that runs does not lay out the help text (string-width is never loaded)', async () => {
  // A preload reports at exit whether the real string-width module was loaded (lazy-string-width.ts).
  const probe = join(tempDir(), 'probe.cjs');
  writeFileSync(
    probe,
    `process.on('exit', () => process.stderr.write('string-width loaded: ' + Object.keys(require.cache).some((k) => k.includes('/string-width/')) + '\\n'));\n`,
  );
  const env = { NODE_OPTIONS: `--require ${probe}` };
  const ran = await runImgx(['cache', 'ls'], { env });
  assert.is(ran.code, 0, ran.stderr);
  assert.match(ran.stderr, /string-width loaded: false/);
  // The probe sees it when it is loaded: --help lays the text out.
  const help = await runImgx(['--help'], { env });
  assert.is(help.code, 0, help.stderr);
  assert.match(help.stderr, /string-width loaded: true/);
});

test.run();

// The browse index keeps pass 1's warnings: a run served from the index repeats them, and
// --strict fails on them, exactly as a run that scanned the layers would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { writeOciLayout } from '../fixtures/oci-layout.ts';
import { makeTar } from '../fixtures/tar.ts';
import { runImgx } from '../helpers/imgx.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { EXIT_STATUS } from '../../src/cli/exit-codes.ts';

test('warnings from the scan come back from the index; --strict fails on them', async () => {
  const layout = join(tempDir(), 'layout');
  writeOciLayout(layout, { layers: [makeTar([{ name: '../../escape.txt', content: Buffer.from('x') }, { name: 'ok.txt', content: Buffer.from('y') }])], tag: 't' });
  const cache = tempDir('imgx-cache-');
  const env = { IMGX_CACHE: cache };
  const first = await runImgx(['--debug', 'ls', `oci:${layout}:t`], { env });
  assert.is(first.code, 0, first.stderr);
  assert.match(first.stderr, /built by scanning/);
  assert.match(first.stderr, /IMGX_PATH_CLAMPED/);
  assert.match(first.stdout, /escape\.txt/);

  const second = await runImgx(['--debug', 'ls', `oci:${layout}:t`], { env });
  assert.is(second.code, 0, second.stderr);
  assert.match(second.stderr, /loaded from the cache/);
  assert.match(second.stderr, /IMGX_PATH_CLAMPED/, 'the warning is repeated from the index');

  const strict = await runImgx(['--strict', '--debug', 'ls', `oci:${layout}:t`], { env });
  assert.is(strict.code, EXIT_STATUS.IMGX_STRICT, strict.stderr);
  assert.match(strict.stderr, /loaded from the cache|IMGX_PATH_CLAMPED/);
});

test.run();

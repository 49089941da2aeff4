import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejects } from '../helpers/rejects.ts';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { constants, gzipSync, zstdCompressSync } from 'node:zlib';
import { ImgxError } from '../../src/errors.ts';
import { decompress, detectCompression } from '../../src/layers/decompress.ts';
import { chunked } from '../helpers/chunked.ts';
import { haveTool } from '../helpers/tools.ts';


/** Compressible but not trivial: text-like data with some randomness. */
function payload(n: number): Buffer {
  const words = ['usr', 'lib', 'share', 'doc', 'bin', 'etc', 'x86_64', 'linux', 'gnu', '\n', '/'];
  const out = Buffer.alloc(n);
  let pos = 0;
  let seed = 7;
  while (pos < n) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    pos += out.write(words[seed % words.length]!, pos);
  }
  return out;
}

const SIZES = [1, 3, 4, 5, 100, 4096, 1 << 16];

test('detectCompression reads the magic bytes', () => {
  assert.is(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  assert.is(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
  assert.is(detectCompression(Buffer.from([0x5e, 0x2a, 0x4d, 0x18])), 'zstd'); // skippable frame first
  assert.is(detectCompression(Buffer.from('ustar')), 'none');
  assert.is(detectCompression(Buffer.from([0x1f])), 'none');
  assert.is(detectCompression(Buffer.alloc(0)), 'none');
});

test('gzip, in chunks of any size', async () => {
  for (const data of [payload(20_000), payload(3 << 20)]) {
    const gz = gzipSync(data);
    for (const size of SIZES) {
      // Each chunk is a trip to the thread pool: tiny chunks only over small data.
      if (gz.length / size > 1000) continue;
      assert.ok((await buffer(decompress(chunked(gz, size), 'gzip', 'layer 0'))).equals(data), `chunks of ${size}`);
    }
  }
});

test('gzip: concatenated members (what pigz -i and appending writers give)', async () => {
  const parts = [payload(100_000), randomBytes(1000), Buffer.alloc(0), payload(7)];
  const gz = Buffer.concat(parts.map((p) => gzipSync(p)));
  for (const size of [1, 13, 4096, gz.length]) {
    assert.ok((await buffer(decompress(chunked(gz, size), 'gzip', 'l'))).equals(Buffer.concat(parts)), `chunks of ${size}`);
  }
  if (haveTool('gzip')) {
    // And members written by GNU gzip itself.
    const a = execFileSync('gzip', ['-c'], { input: Buffer.from('first\n') });
    const b = execFileSync('gzip', ['-c'], { input: Buffer.from('second\n') });
    assert.is((await buffer(decompress(chunked(Buffer.concat([a, b]), 5), 'gzip', 'l'))).toString(), 'first\nsecond\n');
  }
});

test('zstd, in chunks of any size', async () => {
  for (const data of [payload(20_000), payload(3 << 20)]) {
    const zs = zstdCompressSync(data);
    for (const size of SIZES) {
      if (zs.length / size > 1000) continue;
      assert.ok((await buffer(decompress(chunked(zs, size), 'zstd', 'l'))).equals(data), `chunks of ${size}`);
    }
  }
});

test('zstd: concatenated frames and skippable frames (zstd:chunked) all come out', async () => {
  const skippable = (n: number) => {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(0x184d2a50 + (n % 16), 0);
    h.writeUInt32LE(n, 4);
    return Buffer.concat([h, randomBytes(n)]);
  };
  const parts = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? randomBytes(50 + i) : payload(100 * i + 1)));
  // One big frame too, made of several blocks.
  parts.push(payload(1 << 20));
  const frames: Buffer[] = [skippable(10)];
  parts.forEach((p, i) => {
    frames.push(zstdCompressSync(p, { params: { [constants.ZSTD_c_checksumFlag]: i % 2 } }));
    if (i % 7 === 0) frames.push(skippable(i * 10));
  });
  frames.push(skippable(100));
  const zs = Buffer.concat(frames);
  const want = Buffer.concat(parts);
  for (const size of [1, 2, 3, 7, 512, 65536, zs.length]) {
    // Tiny chunks over the small frames only (each chunk is a trip to the thread pool).
    const input = size < 512 ? zs.subarray(0, zs.length - frames.at(-1)!.length - frames.at(-2)!.length) : zs;
    const expected = size < 512 ? want.subarray(0, want.length - parts.at(-1)!.length) : want;
    assert.ok((await buffer(decompress(chunked(input, size), 'zstd', 'l'))).equals(expected), `chunks of ${size}`);
  }
});

if (haveTool('zstd')) {
  test('zstd: frames written by the zstd tool (multi-block, checksummed, concatenated)', async () => {
    const a = payload(2 << 20);
    const b = randomBytes(300_000);
    const za = execFileSync('zstd', ['-c', '-3', '--check', '-B256KiB'], { input: a, maxBuffer: 1 << 26 });
    const zb = execFileSync('zstd', ['-c', '-1', '--no-check'], { input: b, maxBuffer: 1 << 26 });
    const got = await buffer(decompress(chunked(Buffer.concat([za, zb]), 4000), 'zstd', 'l'));
    assert.ok(got.equals(Buffer.concat([a, b])));
  });
}

test('none passes bytes through untouched', async () => {
  const data = Buffer.concat([Buffer.from('ustar-ish'), randomBytes(100_000)]);
  assert.ok((await buffer(decompress(chunked(data, 3), 'none', 'l'))).equals(data));
  assert.is((await buffer(decompress(chunked(Buffer.alloc(0)), 'none', 'l'))).length, 0);
});

test('the magic bytes must agree with the media type', async () => {
  const data = payload(10_000);
  await rejects(buffer(decompress(chunked(zstdCompressSync(data), 2), 'gzip', 'layer 3 (sha256:abc)')), 'IMGX_BAD_LAYER', /layer 3 \(sha256:abc\): its media type says gzip-compressed but the data is zstd-compressed/);
  await rejects(buffer(decompress(chunked(gzipSync(data)), 'zstd', 'l')), 'IMGX_BAD_LAYER', /says zstd-compressed but the data is gzip-compressed/);
  await rejects(buffer(decompress(chunked(data), 'gzip', 'l')), 'IMGX_BAD_LAYER', /says gzip-compressed but the data is uncompressed \(starts with [0-9a-f]{8}\)/);
  await rejects(buffer(decompress(chunked(gzipSync(data)), 'none', 'l')), 'IMGX_BAD_LAYER', /says uncompressed but the data is gzip-compressed/);
  await rejects(buffer(decompress(chunked(Buffer.alloc(0)), 'gzip', 'l')), 'IMGX_BAD_LAYER', /empty/);
  await rejects(buffer(decompress(chunked(Buffer.from([0x1f])), 'gzip', 'l')), 'IMGX_BAD_LAYER');
});

test('corrupt or truncated data is IMGX_BAD_LAYER', async () => {
  const data = payload(500_000);
  const gz = gzipSync(data);
  const zs = zstdCompressSync(data);
  await rejects(buffer(decompress(chunked(gz.subarray(0, gz.length >> 1)), 'gzip', 'l')), 'IMGX_BAD_LAYER', /truncated gzip/);
  await rejects(buffer(decompress(chunked(gz.subarray(0, gz.length - 4)), 'gzip', 'l')), 'IMGX_BAD_LAYER', /truncated gzip/);
  const badGz = Buffer.from(gz);
  for (let i = 100; i < 200; i++) badGz[i] = badGz[i]! ^ 0xa5;
  await rejects(buffer(decompress(chunked(badGz), 'gzip', 'l')), 'IMGX_BAD_LAYER', /corrupt gzip data/);
  await rejects(buffer(decompress(chunked(Buffer.concat([gz, Buffer.from('garbage after')])), 'gzip', 'l')), 'IMGX_BAD_LAYER', /corrupt gzip/);
  for (const cut of [5, 20, zs.length >> 1, zs.length - 1]) {
    await rejects(buffer(decompress(chunked(zs.subarray(0, cut), 1000), 'zstd', 'l')), 'IMGX_BAD_LAYER', /truncated zstd/);
  }
  const checked = zstdCompressSync(data, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
  const badZs = Buffer.from(checked);
  for (let i = 200; i < 300; i++) badZs[i] = badZs[i]! ^ 0xa5;
  await rejects(buffer(decompress(chunked(badZs), 'zstd', 'l')), 'IMGX_BAD_LAYER');
  await rejects(buffer(decompress(chunked(Buffer.concat([zs, Buffer.from('garbage!')])), 'zstd', 'l')), 'IMGX_BAD_LAYER', /unexpected data after the last zstd frame/);
});

test('errors of the input come through unchanged', async () => {
  const gz = gzipSync(payload(300_000));
  const failing = new Readable({
    read() {
      this.push(gz.subarray(0, 1000));
      this.destroy(new ImgxError('IMGX_DIGEST_MISMATCH', 'blob: digest mismatch'));
    },
  });
  await rejects(buffer(decompress(failing, 'gzip', 'l')), 'IMGX_DIGEST_MISMATCH');
});

test('destroying the output destroys the input', async () => {
  for (const c of ['gzip', 'zstd', 'none'] as const) {
    const data = payload(2 << 20);
    const input = chunked(c === 'gzip' ? gzipSync(data) : c === 'zstd' ? zstdCompressSync(data) : data, 4096);
    const out = decompress(input, c, 'l');
    for await (const _ of out) break;
    await new Promise((r) => setImmediate(r));
    assert.ok(input.destroyed, c);
  }
});

test.run();

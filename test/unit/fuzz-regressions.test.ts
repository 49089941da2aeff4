// What the fuzz test (issue 16, test/unit/fuzz.test.ts) found, pinned one behaviour per test, each
// named after what must hold. The inputs are the fuzzer's findings made small by hand.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { join } from 'node:path';
import { ImgxError, NotFoundError } from '../../src/errors.ts';
import { readTar } from '../../src/layers/tar-reader.ts';
import { BlobCache } from '../../src/image/blob-cache.ts';
import { CachingSource } from '../../src/image/caching-source.ts';
import { sha256 } from '../../src/image/digest.ts';
import { parsePlatform } from '../../src/image/platform.ts';
import { resolveImage } from '../../src/image/resolve.ts';
import type { ImageSource } from '../../src/image/source.ts';
import { TarArchive } from '../../src/image/tar-archive.ts';
import { BLOCK_SIZE, encodeHeader, encodeNumber, encodePax, paddingFor } from '../../src/layers/tar-header.ts';
import { fixChecksum } from '../helpers/fuzz-seeds.ts';
import { tempDir } from '../helpers/tempdir.ts';

/** Resolves to the error `p` rejects with, failing the test if it resolves or takes longer than `ms` (a hang is the bug). */
async function rejection(p: Promise<unknown>, ms = 5000): Promise<Error & { code?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms (a hang)`)), ms);
  });
  try {
    await Promise.race([p, hang]);
  } catch (e) {
    return e as Error & { code?: string };
  } finally {
    clearTimeout(timer);
  }
  throw new assert.Assertion({ message: 'expected a rejection', generated: false, operator: 'rejects' } as never);
}

/** A header whose size field is `size` in base-256 (negative sizes only fit there), checksum right. */
function headerWithSize(h: Parameters<typeof encodeHeader>[0], size: number): Buffer {
  const b = encodeHeader({ ...h, size: 0 });
  encodeNumber(size, 12).copy(b, 124);
  fixChecksum(b);
  return b;
}

const archive = (parts: Buffer[]) => {
  const file = join(tempDir(), 'image.tar');
  writeFileSync(file, Buffer.concat([...parts, Buffer.alloc(2 * BLOCK_SIZE)]));
  return file;
};

test('image archives: a member with a negative size is IMGX_BAD_ARCHIVE (indexing went back to the same header forever)', async () => {
  const file = archive([headerWithSize({ name: 'manifest.json' }, -512), Buffer.alloc(BLOCK_SIZE)]);
  const e = await rejection(TarArchive.open(file));
  assert.is(e.code, 'IMGX_BAD_ARCHIVE', e.message);
  assert.match(e.message, /negative size -512/);
});

test('image archives: an extension header with a negative size is IMGX_BAD_ARCHIVE, not a RangeError from Buffer.alloc', async () => {
  for (const type of ['pax-header', 'gnu-long-name'] as const) {
    const file = archive([headerWithSize({ name: 'ext', type }, -1), encodeHeader({ name: 'a' })]);
    const e = await rejection(TarArchive.open(file));
    assert.is(e.code, 'IMGX_BAD_ARCHIVE', `${type}: ${e.name}: ${e.message}`);
  }
});

test('image archives: a PAX size record of -1 is IMGX_BAD_ARCHIVE', async () => {
  const body = encodePax({ size: '-1' });
  const file = archive([encodeHeader({ name: 'PaxHeader', type: 'pax-header', size: body.length }), body, Buffer.alloc(paddingFor(body.length)), encodeHeader({ name: 'a', size: 0 })]);
  const e = await rejection(TarArchive.open(file));
  assert.is(e.code, 'IMGX_BAD_ARCHIVE', e.message);
});

test('the cache: a cached blob that is JSON null, named by its digest, is IMGX_BAD_MANIFEST (it was a TypeError)', async () => {
  const cache = new BlobCache(tempDir());
  for (const text of ['null', '[]', '"x"', '7']) {
    const bytes = Buffer.from(text);
    const digest = sha256(bytes);
    await cache.putBytes({ digest, size: bytes.length }, bytes);
    const offline: ImageSource = {
      displayName: 'docker://registry.example/app',
      getRootManifest: () => Promise.reject(new NotFoundError('IMGX_MANIFEST_UNKNOWN', 'not asked')),
      getManifest: () => Promise.reject(new NotFoundError('IMGX_MANIFEST_UNKNOWN', 'not asked')),
      openBlob: () => Promise.reject(new NotFoundError('IMGX_BLOB_UNKNOWN', 'not asked')),
      readBlob: () => Promise.reject(new NotFoundError('IMGX_BLOB_UNKNOWN', 'not asked')),
      close: async () => {},
    };
    const e = await rejection(resolveImage(new CachingSource(offline, cache, { pinnedDigest: digest }), parsePlatform('linux/amd64')));
    assert.is(e.code, 'IMGX_BAD_MANIFEST', `${text}: ${e.name}: ${e.message}`);
  }
});

/** A layer stream that gives `bytes`, then fails as a diff_id check fails at the end of a layer. */
function failingAtEnd(bytes: Buffer): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(bytes);
      } else this.destroy(new ImgxError('IMGX_DIFFID_MISMATCH', 'layer 0: uncompressed content does not match the config\'s diff_id'));
    },
  });
}

async function drain(input: Readable): Promise<void> {
  for await (const e of readTar(input)) for await (const _ of e.body);
}

test('tar reader: an input error while a sparse map is read comes through as it is (a diff_id mismatch was relabelled IMGX_BAD_ARCHIVE "bad sparse map")', async () => {
  // Old GNU: an 'S' header whose map goes on in an extension block the stream never gives.
  const s = encodeHeader({ name: 'sparse', typeflag: 'S', size: 0 }, { format: 'gnu' });
  s[482] = 1;
  encodeNumber(10, 12).copy(s, 483);
  fixChecksum(s);
  const e1 = await rejection(drain(failingAtEnd(s)));
  assert.is(e1.code, 'IMGX_DIFFID_MISMATCH', `old GNU: ${e1.code}: ${e1.message}`);
  // PAX 1.0: the map is at the start of the data, which the stream never gives.
  const pax = encodePax({ 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '10', 'GNU.sparse.name': 'sparse' });
  const t = Buffer.concat([encodeHeader({ name: 'PaxHeader', type: 'pax-header', size: pax.length }), pax, Buffer.alloc(paddingFor(pax.length)), encodeHeader({ name: 'GNUSparseFile.0/sparse', size: 512 })]);
  const e2 = await rejection(drain(failingAtEnd(t)));
  assert.is(e2.code, 'IMGX_DIFFID_MISMATCH', `PAX 1.0: ${e2.code}: ${e2.message}`);
});

test.run();

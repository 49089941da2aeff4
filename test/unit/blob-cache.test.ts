import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, existsSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { BlobCache } from '../../src/image/blob-cache.ts';
import { sha256 } from '../../src/image/digest.ts';
import { pullImage } from '../../src/image/pull.ts';
import { pruneCache } from '../../src/image/cache-gc.ts';
import { CachingSource } from '../../src/image/caching-source.ts';
import { parsePlatform } from '../../src/image/platform.ts';
import { NetworkError } from '../../src/errors.ts';
import { MemorySource } from '../helpers/memory-source.ts';

const tmp = () => mkdtempSync(join(tmpdir(), 'imgx-cache-'));
const amd64 = parsePlatform('linux/amd64');

test('ingest stores a verified blob under its digest as an OCI layout', async () => {
  const cache = new BlobCache(tmp());
  const data = randomBytes(300_000);
  const desc = { digest: sha256(data), size: data.length };
  await cache.ingest(desc, Readable.from([data]));
  assert.ok(await cache.has(desc));
  assert.equal(readFileSync(cache.blobPath(desc.digest)), data);
  assert.equal(JSON.parse(readFileSync(join(cache.root, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  assert.equal(JSON.parse(readFileSync(join(cache.root, 'index.json'), 'utf8')).manifests, []);
});

test('a digest mismatch fails with IMGX_DIGEST_MISMATCH and leaves nothing behind', async () => {
  const cache = new BlobCache(tmp());
  const data = randomBytes(100_000);
  const desc = { digest: sha256(Buffer.from('something else')), size: data.length };
  try {
    await cache.ingest(desc, Readable.from([data]));
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'IMGX_DIGEST_MISMATCH');
  }
  assert.not.ok(await cache.has(desc));
  assert.equal(readdirSync(join(cache.root, 'blobs', 'sha256')), []);
});

test('too many bytes fail with IMGX_SIZE_MISMATCH', async () => {
  const cache = new BlobCache(tmp());
  const data = randomBytes(1000);
  try {
    await cache.ingest({ digest: sha256(data), size: 999 }, Readable.from([data]));
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'IMGX_SIZE_MISMATCH');
  }
  assert.equal(readdirSync(join(cache.root, 'blobs', 'sha256')), []);
});

test('concurrent writers of the same blob and the same index are safe', async () => {
  const root = tmp();
  const data = randomBytes(2_000_000);
  const desc = { digest: sha256(data), size: data.length };
  const caches = Array.from({ length: 6 }, () => new BlobCache(root));
  await Promise.all(caches.map((c) => c.ingest(desc, Readable.from([data.subarray(0, 1_000_000), data.subarray(1_000_000)]))));
  assert.equal(readFileSync(caches[0]!.blobPath(desc.digest)), data);
  await Promise.all(caches.map((c, i) => c.recordRef(`example.test/app:${i}`, { mediaType: 'x', digest: desc.digest, size: desc.size })));
  const entries = await caches[0]!.entries();
  assert.is(entries.length, 6);
  assert.equal(readdirSync(join(root, 'blobs', 'sha256')), [desc.digest.slice(7)]);
  assert.not.ok(existsSync(join(root, 'index.json.lock')));
});

test('pull fetches each layer once, records the ref, and reuses the cache', async () => {
  const src = new MemorySource();
  const img = src.addImage([randomBytes(200_000), randomBytes(150_000), Buffer.from('small')]);
  src.setRoot(img.manifest);
  const cache = new BlobCache(tmp());
  const r1 = await pullImage(new CachingSource(src, cache), cache, { platform: amd64, refKey: 'example.test/app:1' });
  assert.is(r1.fetched.length, 3);
  assert.is(r1.bytesFetched, 350_005);
  for (const l of img.layers) assert.ok(await cache.has(l));
  assert.ok(await cache.has(img.config));
  assert.ok(await cache.has({ digest: img.manifest.digest, size: -1 }));
  const entry = await cache.lookupRef('example.test/app:1');
  assert.is(entry?.digest, img.manifest.digest);
  src.opened = [];
  const r2 = await pullImage(new CachingSource(src, cache), cache, { platform: amd64, refKey: 'example.test/app:1' });
  assert.is(r2.fetched.length, 0);
  assert.is(r2.reused.length, 3);
  assert.equal(src.opened, [], 'nothing fetched from upstream the second time');
});

test('a corrupt layer fails the pull with IMGX_DIGEST_MISMATCH; no blob and no ref recorded', async () => {
  const src = new MemorySource();
  const img = src.addImage([randomBytes(100_000), randomBytes(100_000)]);
  src.setRoot(img.manifest);
  const bad = Buffer.from(img.layers[1]!.bytes);
  bad[500] = bad[500]! ^ 0xff;
  src.corrupt.set(img.layers[1]!.digest, bad);
  const cache = new BlobCache(tmp());
  try {
    await pullImage(new CachingSource(src, cache), cache, { platform: amd64, refKey: 'example.test/bad:1' });
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code: string }).code, 'IMGX_DIGEST_MISMATCH');
  }
  assert.not.ok(await cache.has(img.layers[1]!));
  assert.is(await cache.lookupRef('example.test/bad:1'), undefined);
  assert.ok(readdirSync(join(cache.root, 'blobs', 'sha256')).every((n) => !n.startsWith('.')), 'no temp files left');
});

test('an unreachable upstream falls back to the cached tag', async () => {
  const src = new MemorySource();
  const img = src.addImage([randomBytes(1000)]);
  src.setRoot(img.manifest);
  const cache = new BlobCache(tmp());
  await pullImage(new CachingSource(src, cache), cache, { platform: amd64, refKey: 'example.test/app:1' });
  src.getRootManifest = async () => {
    throw new NetworkError('IMGX_UNREACHABLE', 'cannot reach example.test');
  };
  const warnings: string[] = [];
  const r = await pullImage(new CachingSource(src, cache, { refKey: 'example.test/app:1', warn: (m) => warnings.push(m) }), cache, { platform: amd64 });
  assert.is(r.image.root.digest, img.manifest.digest);
  assert.match(warnings[0] ?? '', 'using the cached example.test/app:1');
});

test('prune removes unreferenced blobs past the grace period and keeps referenced ones', async () => {
  const src = new MemorySource();
  const img = src.addImage([randomBytes(1000)]);
  src.setRoot(img.manifest);
  const cache = new BlobCache(tmp());
  await pullImage(new CachingSource(src, cache), cache, { platform: amd64, refKey: 'example.test/app:1' });
  const orphan = randomBytes(500);
  await cache.putBytes({ digest: sha256(orphan), size: 500 }, orphan);
  let r = await pruneCache(cache, {});
  assert.is(r.removedBlobs, 0, 'young orphan kept (grace period)');
  const old = new Date(Date.now() - 3600_000);
  utimesSync(cache.blobPath(sha256(orphan)), old, old);
  r = await pruneCache(cache, {});
  assert.is(r.removedBlobs, 1);
  assert.ok(await cache.has(img.layers[0]!));
  r = await pruneCache(cache, { all: true });
  assert.is(r.removedEntries, 1);
  assert.is(r.removedBlobs, 3);
});

test("a damaged index.json of the cache is one IMGX_IO line, whatever its shape, never a crash", async () => {
  for (const text of ['garbage', '[]', 'null', '{"manifests": 5}', '{"manifests": [1]}', '{"manifests": [{"digest": "x", "mediaType": "m", "size": 1, "annotations": {"a": 1}}]}']) {
    const cache = new BlobCache(tmp());
    await cache.entries();
    writeFileSync(join(cache.root, 'index.json'), text);
    try {
      await cache.entries();
      assert.unreachable(text);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'IMGX_IO', text);
      assert.match((e as Error).message, /index\.json is damaged/);
    }
  }
});

test.run();

// The follower of a blob being downloaded into the cache: it must give exactly the bytes written,
// however the writes and reads interleave, wait at the writer's heels, and fail when the write does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BlobCache } from '../../src/image/blob-cache.ts';
import { sha256 } from '../../src/image/digest.ts';
import { BlobFollower, type BlobWriting } from '../../src/image/growing-blob.ts';
import { slowSource } from '../helpers/slow-source.ts';
import { tempDir } from '../helpers/tempdir.ts';

async function drain(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('a follower started with the download reads every byte, in order, while it is written', async () => {
  const cache = new BlobCache(tempDir());
  const data = randomBytes(5 * 1024 * 1024 + 12345);
  const desc = { digest: sha256(data), size: data.length };
  let follower: Promise<Buffer> | undefined;
  let sawPartial = false;
  await cache.ingest(desc, slowSource(data, 256 * 1024), {
    onWriting: (w) => {
      follower = drain(new BlobFollower(w));
      w.onChange(() => {
        if (w.written > 0 && w.written < data.length) sawPartial = true;
      });
    },
  });
  assert.ok(follower, 'the cache announced the writing');
  assert.ok(sawPartial, 'the follower ran while the blob was partly written');
  assert.equal((await follower!).equals(data), true);
  assert.ok(await cache.has(desc));
});

test('a follower that starts after the blob is complete reads it from its final place', async () => {
  const cache = new BlobCache(tempDir());
  const data = randomBytes(300_000);
  const desc = { digest: sha256(data), size: data.length };
  let writing: BlobWriting | undefined;
  await cache.ingest(desc, Readable.from([data]), { onWriting: (w) => (writing = w) });
  assert.not.ok(existsSync(writing!.path), 'the temporary name is gone');
  assert.equal((await drain(new BlobFollower(writing!))).equals(data), true);
});

test('when the download fails, the follower fails with its error and nothing is left in the cache', async () => {
  const root = tempDir();
  const cache = new BlobCache(root);
  const data = randomBytes(3 * 1024 * 1024);
  const desc = { digest: sha256(data), size: data.length * 2 };
  const boom = new Error('connection reset');
  let follower: Promise<unknown> | undefined;
  const ingest = cache.ingest(desc, slowSource(data, 200_000, boom), {
    onWriting: (w) => {
      follower = drain(new BlobFollower(w)).then(
        () => 'ended',
        (e: unknown) => e,
      );
    },
  });
  await ingest.then(
    () => assert.unreachable('the ingest should fail'),
    (e: Error) => assert.is(e, boom),
  );
  assert.is(await follower, boom);
  assert.not.ok(await cache.has(desc));
  const leftovers = readdirSync(join(root, 'blobs', 'sha256')).filter((n) => n.includes(desc.digest.slice(7, 20)));
  assert.equal(leftovers, []);
});

test('a digest mismatch found at the end fails the follower too', async () => {
  const cache = new BlobCache(tempDir());
  const data = randomBytes(2 * 1024 * 1024);
  const desc = { digest: sha256(Buffer.from('something else')), size: data.length };
  let follower: Promise<unknown> | undefined;
  await cache
    .ingest(desc, slowSource(data, 300_000), {
      onWriting: (w) => {
        follower = drain(new BlobFollower(w)).then(
          () => 'ended',
          (e: unknown) => e,
        );
      },
    })
    .then(
      () => assert.unreachable('the ingest should fail'),
      (e: { code?: string }) => assert.is(e.code, 'IMGX_DIGEST_MISMATCH'),
    );
  assert.is(((await follower) as { code?: string }).code, 'IMGX_DIGEST_MISMATCH');
});

test.run();

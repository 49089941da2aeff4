// Layers decoded on the helper threads into recycled shared memory: the bytes must be exactly the
// uncompressed stream (multi-member gzip, uncompressed layers, a download still being written), the
// diff_id and the first bytes checked as on the stream path, every failure a clear error, and a
// reader that stops early must leave nothing running. Pass 1 over such chunks gives the same tree
// as over the stream.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { BlobCache } from '../../src/image/blob-cache.ts';
import { sha256 } from '../../src/image/digest.ts';
import type { BlobWriting } from '../../src/image/growing-blob.ts';
import { OCI_LAYER_GZIP } from '../../src/image/media-types.ts';
import { diffIdMismatch, layerName, layerReadersFromBuffers, type LayerReader } from '../../src/layers/layer-reader.ts';
import { decodeOffThread, type LayerFile, type RecycledChunks } from '../../src/layers/offthread-decode.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { helperThread, helperThreadCount, retireIdleHelperThreads, runningHelperThread } from '../../src/offthread/pool.ts';
import { Warnings } from '../../src/warnings.ts';
import { makeTar } from '../fixtures/tar.ts';
import { rejects } from '../helpers/rejects.ts';
import { slowSource } from '../helpers/slow-source.ts';
import { tempDir } from '../helpers/tempdir.ts';

/** Bytes from a xorshift generator: like random data, the same every run (so are the failures of corrupt copies). */
function noise(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A tar of `files` files of `size` bytes each, half noise and half repeated (gzip has work, and the blob stays large). */
function bigTar(files: number, size: number, seed = 0): Buffer {
  const entries = [];
  for (let i = 0; i < files; i++) {
    const body = Buffer.alloc(size, `${seed}-${i}-`.repeat(8));
    noise(size >> 1, seed * 1000 + i).copy(body, 0);
    entries.push({ name: `d/f${i}`, content: body });
  }
  return makeTar([{ name: 'd/', type: 'directory' }, ...entries]);
}

function fileOf(bytes: Buffer): LayerFile {
  const path = join(tempDir(), 'blob');
  writeFileSync(path, bytes);
  return { path, size: bytes.length };
}

function options(diffId: string, compression: 'gzip' | 'none' = 'gzip', hashOnOtherThread = false) {
  const what = layerName(0, diffId);
  return { compression, diffId, what, mismatch: (actual: string) => diffIdMismatch(what, diffId, actual), hashOnOtherThread };
}

async function open(file: LayerFile, opts: ReturnType<typeof options> & { signal?: AbortSignal }): Promise<RecycledChunks> {
  const chunks = await decodeOffThread(file, opts);
  assert.ok(chunks, 'this Node decodes off-thread');
  return chunks!;
}

/** Every chunk copied (they are only valid until the next is asked for). */
async function drain(chunks: RecycledChunks): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

test('a gzip layer of several members comes out whole, in order, its diff_id checked', async () => {
  const tar = bigTar(40, 100_000);
  // Three members, cut anywhere: a multi-member gzip stream is one layer.
  const blob = Buffer.concat([gzipSync(tar.subarray(0, 1_000_001)), gzipSync(tar.subarray(1_000_001, 3_000_000)), gzipSync(tar.subarray(3_000_000))]);
  const out = await drain(await open(fileOf(blob), options(sha256(tar))));
  assert.ok(out.equals(tar));
  // The same with the hash on the other thread.
  assert.ok((await drain(await open(fileOf(blob), options(sha256(tar), 'gzip', true)))).equals(tar));
});

test('an uncompressed layer is read straight into the slots', async () => {
  const tar = bigTar(10, 300_000);
  assert.ok((await drain(await open(fileOf(tar), options(sha256(tar), 'none')))).equals(tar));
});

test('a chunk is a view of memory that is reused once the next is asked for', async () => {
  const tar = bigTar(30, 200_000);
  const chunks = await open(fileOf(gzipSync(tar)), options(sha256(tar)));
  const views: Buffer[] = [];
  const copies: Buffer[] = [];
  for await (const c of chunks) {
    views.push(c);
    copies.push(Buffer.from(c));
  }
  assert.ok(Buffer.concat(copies).equals(tar));
  assert.ok(views.length > 4, 'more chunks than slots');
  assert.ok(views.every((v) => v.buffer instanceof SharedArrayBuffer));
  assert.ok(new Set(views.map((v) => v.byteOffset)).size <= 4, 'the same few slots, over and over');
});

test("the stream ends after the decoder's last chunk even when the hasher's digest is heard first", async () => {
  // With two threads the digest comes from the hasher and the chunks from the decoder, in no set
  // order between them. Here the hasher is the older thread and a timer keeps blocking the main
  // thread, so the last chunk and the digest are often queued together: with the digest taken as
  // the end, this lost the last chunk in every run (an extract failed on a truncated tar that way).
  const stall = new Int32Array(new SharedArrayBuffer(4));
  for (let round = 0; round < 4; round++) {
    retireIdleHelperThreads();
    const older = helperThread(0);
    older.begin(false);
    const tar = bigTar(4, 400_000, 50 + round);
    const chunks = await open(fileOf(round % 2 ? gzipSync(tar) : tar), options(sha256(tar), round % 2 ? 'gzip' : 'none', true));
    older.end(false);
    // Other work on the main thread (a timer here) blocks it while both threads post.
    const busy = setInterval(() => Atomics.wait(stall, 0, 0, 10), 1);
    const parts: Buffer[] = [];
    try {
      for await (const c of chunks) parts.push(Buffer.from(c));
    } finally {
      clearInterval(busy);
    }
    assert.ok(Buffer.concat(parts).equals(tar), `round ${round}`);
  }
});

test('content that does not hash to the diff_id (damaged deflate data too) fails at its end with IMGX_DIFFID_MISMATCH', async () => {
  const tar = bigTar(3, 1000);
  await rejects(drain(await open(fileOf(gzipSync(tar)), options(sha256(Buffer.from('other'))))), 'IMGX_DIFFID_MISMATCH', /does not match the config's diff_id/);
  await rejects(drain(await open(fileOf(gzipSync(tar)), options(sha256(Buffer.from('other')), 'gzip', true))), 'IMGX_DIFFID_MISMATCH', /does not match the config's diff_id/);
  // Deflate data damaged so that it still inflates, to other bytes of the same length (a byte of a
  // stored block): the gzip CRC-32 is not checked on this path (gzip-inflater.js), the diff_id is.
  const damaged = gzipSync(tar, { level: 0 });
  damaged[damaged.length >> 1] = damaged[damaged.length >> 1]! ^ 0x5a;
  await rejects(drain(await open(fileOf(damaged), options(sha256(tar)))), 'IMGX_DIFFID_MISMATCH', /does not match the config's diff_id/);
});

test('corrupt, truncated, mislabelled and empty layers are IMGX_BAD_LAYER, worded as on the stream path', async () => {
  const tar = bigTar(20, 50_000);
  const gz = gzipSync(tar);
  // Deflate data zlib refuses (the first block's type is the reserved one).
  const corrupt = Buffer.from(gz);
  corrupt[10] = corrupt[10]! | 0x06;
  await rejects(drain(await open(fileOf(corrupt), options(sha256(tar)))), 'IMGX_BAD_LAYER', /corrupt gzip data: invalid block type/);
  await rejects(drain(await open(fileOf(gz.subarray(0, gz.length >> 1)), options(sha256(tar)))), 'IMGX_BAD_LAYER', /truncated gzip stream/);
  await rejects(drain(await open(fileOf(tar), options(sha256(tar)))), 'IMGX_BAD_LAYER', /media type says gzip-compressed but the data is uncompressed/);
  await rejects(drain(await open(fileOf(gz), options(sha256(tar), 'none'))), 'IMGX_BAD_LAYER', /media type says uncompressed but the data is gzip-compressed/);
  await rejects(drain(await open(fileOf(Buffer.alloc(0)), options(sha256(tar)))), 'IMGX_BAD_LAYER', /empty, but its media type says gzip/);
});

test('a file shorter than its descriptor says is an error, not a short layer', async () => {
  const tar = bigTar(5, 10_000);
  const gz = gzipSync(tar);
  const file = fileOf(gz);
  const read = drain(await open({ path: (file as { path: string }).path, size: gz.length + 10 }, options(sha256(tar))));
  await read.then(
    () => assert.unreachable('the short file was accepted'),
    (e: Error) => assert.match(e.message, /unexpected end of file/),
  );
});

test('a layer still downloading is decoded behind the writer, to its last byte', async () => {
  const tar = bigTar(60, 100_000, 7);
  const gz = gzipSync(tar);
  const cache = new BlobCache(tempDir());
  const desc = { digest: sha256(gz), size: gz.length };
  let decoded: Promise<Buffer> | undefined;
  let partial = false;
  await cache.ingest(desc, slowSource(gz, 64 * 1024), {
    onWriting: (w: BlobWriting) => {
      decoded = open({ writing: w }, options(sha256(tar))).then(drain);
      w.onChange(() => {
        if (w.written > 0 && w.written < gz.length) partial = true;
      });
    },
  });
  assert.ok(partial);
  assert.ok((await decoded!).equals(tar));
});

test('a download that fails ends the decode with the download error', async () => {
  const tar = bigTar(60, 100_000, 8);
  const gz = gzipSync(tar);
  const cache = new BlobCache(tempDir());
  const boom = new Error('connection reset');
  let decoded: Promise<unknown> | undefined;
  await cache
    .ingest({ digest: sha256(gz), size: gz.length }, slowSource(gz.subarray(0, gz.length >> 1), 64 * 1024, boom), {
      onWriting: (w: BlobWriting) => {
        decoded = open({ writing: w }, options(sha256(tar)))
          .then(drain)
          .then(
            () => 'ended',
            (e: unknown) => e,
          );
      },
    })
    .catch(() => {});
  assert.is(await decoded, boom);
});

test('a reader that stops early or is interrupted leaves the threads free for the next layers', async () => {
  const tar = bigTar(40, 200_000, 9);
  const file = fileOf(gzipSync(tar));
  for (const split of [false, true]) {
    const early = await open(file, options(sha256(tar), 'gzip', split));
    for await (const c of early) {
      assert.ok(c.length > 0);
      break;
    }
    assert.ok(early.destroyed);
  }
  const ac = new AbortController();
  const interrupted = await open(file, { ...options(sha256(tar)), signal: ac.signal });
  const it = interrupted[Symbol.asyncIterator]();
  await it.next();
  ac.abort();
  await rejects(it.next(), 'IMGX_INTERRUPTED');
  // Six at once, on both threads: each whole.
  const tars = Array.from({ length: 6 }, (_, i) => bigTar(12, 150_000, 100 + i));
  const outs = await Promise.all(tars.map(async (t, i) => drain(await open(fileOf(gzipSync(t)), options(sha256(t), 'gzip', i % 3 === 0)))));
  outs.forEach((o, i) => assert.ok(o.equals(tars[i]!), `layer ${i}`));
});

test('with two threads one decodes and the other hashes; if the hasher dies the layer fails with that, and the next layer decodes', async () => {
  if (helperThreadCount() < 2) return;
  const tar = bigTar(40, 200_000, 11);
  const file = fileOf(gzipSync(tar));
  retireIdleHelperThreads();
  const chunks = await open(file, options(sha256(tar), 'gzip', true));
  const it = chunks[Symbol.asyncIterator]();
  assert.ok(!(await it.next()).done);
  // On a tie the decoder is the later thread: the first hashes.
  const hasher = runningHelperThread(0);
  assert.ok(hasher && runningHelperThread(1), 'both threads work on the one layer');
  hasher!.terminate();
  await (async () => {
    for (;;) if ((await it.next()).done) break;
  })().then(
    () => assert.unreachable('the layer ended without its hash'),
    (e: Error) => assert.match(e.message, /helper thread exited/),
  );
  assert.ok((await drain(await open(file, options(sha256(tar), 'gzip', true)))).equals(tar));
});

test('IMGX_SPLIT_DECODE=0 keeps the hash on the decoding thread: the same bytes, the diff_id still checked', async () => {
  process.env.IMGX_SPLIT_DECODE = '0';
  try {
    const tar = bigTar(20, 100_000, 12);
    const file = fileOf(gzipSync(tar));
    retireIdleHelperThreads();
    const chunks = await open(file, options(sha256(tar), 'gzip', true));
    if (helperThreadCount() > 1) assert.is(runningHelperThread(0), undefined, 'only the decoding thread runs');
    const out = await drain(chunks);
    assert.ok(out.equals(tar));
    await rejects(drain(await open(file, options(sha256(Buffer.from('other')), 'gzip', true))), 'IMGX_DIFFID_MISMATCH');
  } finally {
    delete process.env.IMGX_SPLIT_DECODE;
  }
});

test('pass 1 over recycled chunks gives the same tree and staged contents as over the stream, and leaves the threads idle', async () => {
  const tars = [
    makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/a', content: 'a'.repeat(700_000) },
      { name: 'etc/l', type: 'symlink', linkname: 'a' },
      { name: 'etc/x', content: Buffer.from('x'), pax: { 'SCHILY.xattr.user.k': Buffer.from([0, 1, 255]) } },
    ]),
    makeTar([{ name: 'etc/.wh.a' }, { name: 'etc/b', content: noise(2_000_000, 42) }, { name: 'usr/bin/', type: 'directory' }]),
  ];
  const streamed = layerReadersFromBuffers(tars);
  const files = tars.map((t) => fileOf(gzipSync(t)));
  const recycled: LayerReader[] = streamed.map((l, i) => ({
    ...l,
    desc: { ...l.desc, mediaType: OCI_LAYER_GZIP },
    // The second hashed on the other thread: both threads must be let go of.
    openChunks: (o) => decodeOffThread(files[i]!, { ...options(l.diffId!, 'gzip', i === 1), ...(o.signal ? { signal: o.signal } : {}) }),
  }));
  const staged = (into: Map<string, Buffer>) => ({
    file: async (layer: number, offset: number, _e: unknown, readBody: (sink: (c: Buffer) => void) => Promise<void>) => {
      const parts: Buffer[] = [];
      await readBody((c) => parts.push(Buffer.from(c)));
      into.set(`${layer}-${offset}`, Buffer.concat(parts));
    },
  });
  const a = new Map<string, Buffer>();
  const b = new Map<string, Buffer>();
  const ta = await scanLayers(streamed, { warnings: new Warnings(), contents: staged(a) });
  // Once every layer is applied, no decode holds a thread: image-tree.ts retires them all there.
  let applied = 0;
  const layersApplied = () => {
    applied++;
    retireIdleHelperThreads();
    for (let i = 0; i < helperThreadCount(); i++) assert.is(runningHelperThread(i), undefined, `thread ${i} was idle when the layers were applied`);
  };
  const tb = await scanLayers(recycled, { warnings: new Warnings(), contents: staged(b), layersApplied });
  assert.is(applied, 1);
  assert.equal(JSON.stringify(tb.toJSON()), JSON.stringify(ta.toJSON()));
  assert.equal([...b.keys()].sort(), [...a.keys()].sort());
  for (const [k, v] of a) assert.ok(b.get(k)!.equals(v), k);
});

test.run();

// Local I/O failures as IMGX_IO (exit 11), for the errors no test can make for real on this
// machine (EIO, EDQUOT) and the paths a tmpfs does not reach: the mapping itself (io-errors.ts),
// main.ts's last resort for a system error that escaped a command, and real write paths (the blob
// cache, the directory writer, atomic files, the cache's lock) with a shim that makes the system
// calls fail the way Node reports it. The e2e side (full and read-only tmpfs mounts) is
// test/e2e/local-io-errors.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs, { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { reportError } from '../../src/cli/main.ts';
import { configWriteError } from '../../src/cli/commands/login.ts';
import { EXIT_STATUS } from '../../src/cli/exit-codes.ts';
import { ImgxError, isImgxError } from '../../src/errors.ts';
import { writeDirectory } from '../../src/export/dir-writer.ts';
import { writeFileAtomic } from '../../src/image/atomic-file.ts';
import { BlobCache } from '../../src/image/blob-cache.ts';
import { sha256 } from '../../src/image/digest.ts';
import { cacheIoError, errnoName, escapedIoError, ioError, ioReason, isLocalIoError, type SystemError } from '../../src/io-errors.ts';
import type { FlatEntry } from '../../src/layers/fs-entry.ts';
import { Warnings } from '../../src/warnings.ts';
import { tempDir } from '../helpers/tempdir.ts';

const IO = EXIT_STATUS.IMGX_IO;

/**
 * A system error as Node makes one (UVException: errno, code, syscall, path; the message
 * "CODE: text, syscall 'path'"). libuv has no EDQUOT: Node reports it as code 'UNKNOWN' with errno
 * -122 and the message "UNKNOWN: unknown error, write" (checked against Node 24's UVException).
 */
function sysError(code: string, syscall: string, path?: string): SystemError {
  const texts: Record<string, string> = { EIO: 'i/o error', ENOSPC: 'no space left on device', EROFS: 'read-only file system', ENOENT: 'no such file or directory', ECONNRESET: 'connection reset by peer', EACCES: 'permission denied' };
  if (code === 'EDQUOT') return Object.assign(new Error(`UNKNOWN: unknown error, ${syscall}${path ? ` '${path}'` : ''}`), { errno: -122, code: 'UNKNOWN', syscall, ...(path ? { path } : {}) });
  const errno = -(constants.errno as Record<string, number>)[code]!;
  return Object.assign(new Error(`${code}: ${texts[code] ?? code}, ${syscall}${path ? ` '${path}'` : ''}`), { errno, code, syscall, ...(path ? { path } : {}) });
}

/** What reportError writes and returns. */
function report(e: unknown): { status: number; stderr: string } {
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { status: reportError(e, false), stderr };
  } finally {
    process.stderr.write = write;
  }
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** Makes fs.writeSync fail with `error` on every descriptor but stdout and stderr, for the length of `fn`. */
async function writeSyncFails<T>(error: () => Error, fn: () => Promise<T>): Promise<T> {
  const original = fs.writeSync;
  fs.writeSync = ((fd: number, ...rest: unknown[]) => {
    if (fd > 2) throw error();
    return (original as (...a: unknown[]) => number)(fd, ...rest);
  }) as typeof fs.writeSync;
  try {
    return await fn();
  } finally {
    fs.writeSync = original;
  }
}

/** Makes FileHandle.writeFile (atomic files, the lock file) fail with `error`, for the length of `fn`. */
async function fileHandleWritesFail<T>(dir: string, error: () => Error, fn: () => Promise<T>): Promise<T> {
  const fh = await open(join(dir, '.probe'), 'w');
  const proto = Object.getPrototypeOf(fh) as { writeFile: (...a: unknown[]) => Promise<void> };
  await fh.close();
  fs.rmSync(join(dir, '.probe'));
  const original = proto.writeFile;
  proto.writeFile = async () => {
    throw error();
  };
  try {
    return await fn();
  } finally {
    proto.writeFile = original;
  }
}

// ---- the mapping ----------------------------------------------------------------------------------

test('errnoName and ioReason: the common codes in plain words, EDQUOT named from its errno', () => {
  assert.is(ioReason(sysError('ENOSPC', 'write')), 'no space left on device (ENOSPC)');
  assert.is(ioReason(sysError('EROFS', 'open', '/x')), 'read-only file system (EROFS)');
  assert.is(ioReason(sysError('EIO', 'read')), 'input/output error (EIO)');
  const dq = sysError('EDQUOT', 'write');
  assert.is(dq.code, 'UNKNOWN');
  assert.is(errnoName(dq), 'EDQUOT');
  assert.is(ioReason(dq), 'disk quota exceeded (EDQUOT)');
  assert.ok(isLocalIoError(dq));
  assert.not.ok(isLocalIoError(sysError('ENOENT', 'open', '/x')), 'ENOENT is not a local I/O failure');
  assert.not.ok(isLocalIoError(sysError('ECONNRESET', 'read')), 'a socket error is not one');
  assert.not.ok(isLocalIoError(new Error('ENOSPC: looks like one, is not')));
});

test('ioError: a system error becomes IMGX_IO with one line; ImgxErrors and bugs pass as they are', () => {
  const e = ioError(sysError('EDQUOT', 'write'), 'cannot write /srv/rootfs') as ImgxError;
  assert.ok(isImgxError(e));
  assert.is(e.code, 'IMGX_IO');
  assert.is(e.message, 'cannot write /srv/rootfs: disk quota exceeded (EDQUOT)');
  const coded = new ImgxError('IMGX_BAD_LAYER', 'bad');
  assert.is(ioError(coded, 'cannot write x'), coded);
  const bug = new TypeError('x is undefined');
  assert.is(ioError(bug, 'cannot write x'), bug);
});

test('cacheIoError: writes and paths in the cache name the cache; a pathless read, a path elsewhere, a socket error pass', () => {
  const root = '/var/cache/imgx';
  const w = cacheIoError(sysError('EIO', 'write'), root) as ImgxError;
  assert.is(w.message, 'cannot write to the cache /var/cache/imgx: input/output error (EIO)');
  const r = cacheIoError(sysError('EIO', 'read', `${root}/blobs/sha256/ab`), root) as ImgxError;
  assert.is(r.message, 'cannot read the cache /var/cache/imgx: input/output error (EIO)');
  for (const e of [sysError('EIO', 'read'), sysError('EIO', 'open', '/srv/layout/blobs/sha256/ab'), sysError('ECONNRESET', 'write'), sysError('ENOENT', 'open', `${root}/x`)]) {
    assert.is(cacheIoError(e, root), e);
  }
  // A sibling directory whose name starts like the cache's is not the cache.
  const sibling = sysError('EROFS', 'open', `${root}-old/x`);
  assert.is(cacheIoError(sibling, root), sibling);
});

test('reportError: an EIO or EDQUOT that escaped a command is exit 11 and one line, never "internal error"', () => {
  const eio = report(sysError('EIO', 'write', '/srv/out/file'));
  assert.is(eio.status, IO);
  assert.is(eio.stderr, 'imgx: write /srv/out/file: input/output error (EIO)\n');
  const dq = report(sysError('EDQUOT', 'write'));
  assert.is(dq.status, IO);
  assert.is(dq.stderr, 'imgx: write: disk quota exceeded (EDQUOT)\n');
  const rename = report(Object.assign(sysError('EXDEV', 'rename', '/a'), { dest: '/b' }));
  assert.is(rename.status, IO);
  assert.match(rename.stderr, /^imgx: rename \/a -> \/b: .*\(EXDEV\)\n$/);
  assert.is(escapedIoError(new ImgxError('IMGX_IO', 'x')), undefined);
});

test('reportError: a bug is still exit 1, and so is an ENOENT or a socket error that escaped', () => {
  for (const e of [new TypeError('x is undefined'), sysError('ENOENT', 'open', '/x'), sysError('ECONNRESET', 'read')]) {
    const r = report(e);
    assert.is(r.status, 1, String(e));
    assert.match(r.stderr, /^imgx: internal error: /);
  }
  const coded = report(new ImgxError('IMGX_IO', 'cannot write /x: no space left on device (ENOSPC)'));
  assert.is(coded.status, IO);
  assert.is(coded.stderr, 'imgx: cannot write /x: no space left on device (ENOSPC)\n');
});

test('login: a Docker config that cannot be written for a local reason is IMGX_IO; one that cannot be read stays a credentials error', () => {
  const cfg = '/home/u/.docker/config.json';
  const cause = sysError('EDQUOT', 'write');
  const wrapped = new ImgxError('IMGX_CREDENTIALS', `cannot write ${cfg}: ${cause.message}`, { cause });
  const w = configWriteError(wrapped, cfg) as ImgxError;
  assert.is(w.code, 'IMGX_IO');
  assert.is(w.message, `cannot write ${cfg}: disk quota exceeded (EDQUOT)`);
  const unreadable = new ImgxError('IMGX_CREDENTIALS', `cannot read ${cfg}: EACCES`, { cause: sysError('EACCES', 'open', cfg) });
  assert.is(configWriteError(unreadable, cfg), unreadable);
  const raw = configWriteError(sysError('EROFS', 'mkdir', '/home/u/.docker'), cfg) as ImgxError;
  assert.is(raw.code, 'IMGX_IO');
  assert.is(raw.message, `cannot write ${cfg}: read-only file system (EROFS)`);
});

// ---- real write paths with failing system calls ---------------------------------------------------

test('blob cache: an EIO while a blob is written is IMGX_IO naming the cache; no temporary file, no blob; the next ingest succeeds', async () => {
  const cache = new BlobCache(tempDir('imgx-io-cache-'));
  await cache.init();
  const data = randomBytes(200_000);
  const desc = { digest: sha256(data), size: data.length };
  const e = (await writeSyncFails(() => sysError('EIO', 'write'), () => rejection(cache.ingest(desc, Readable.from([data]))))) as ImgxError;
  assert.is(e.code, 'IMGX_IO', String(e));
  assert.is(e.message, `cannot write to the cache ${cache.root}: input/output error (EIO)`);
  assert.equal(readdirSync(join(cache.root, 'blobs', 'sha256')), [], 'no temporary file, no blob');
  assert.not.ok(await cache.has(desc));
  await cache.ingest(desc, Readable.from([data]));
  assert.equal(readFileSync(cache.blobPath(desc.digest)), data);
});

test('blob cache: a source that fails is not called a cache failure', async () => {
  const cache = new BlobCache(tempDir('imgx-io-cache-'));
  const data = randomBytes(1000);
  const desc = { digest: sha256(data), size: data.length };
  const failing = new Readable({
    read() {
      this.destroy(sysError('EIO', 'read'));
    },
  });
  const e = await rejection(cache.ingest(desc, failing));
  assert.is((e as SystemError).code, 'EIO', 'the source error, as it was');
  assert.not.ok(isImgxError(e));
  assert.equal(readdirSync(join(cache.root, 'blobs', 'sha256')), []);
});

test('directory writer: an EDQUOT while a file is written is IMGX_IO naming DEST; no DEST, no staging directory', async () => {
  const dir = tempDir('imgx-io-dirw-');
  const dest = join(dir, 'dest');
  const content = randomBytes(300_000);
  async function* entries(): AsyncGenerator<FlatEntry> {
    const base = { uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: new Map() };
    yield { ...base, path: '.', type: 'directory', mode: 0o755, size: 0 };
    yield { ...base, path: 'etc', type: 'directory', mode: 0o755, size: 0 };
    yield { ...base, path: 'etc/big', type: 'file', mode: 0o644, size: content.length, body: Readable.from([content]) };
  }
  const e = (await writeSyncFails(() => sysError('EDQUOT', 'write'), () => rejection(writeDirectory(entries(), dest, { warnings: new Warnings({ strict: false }) })))) as ImgxError;
  assert.is(e.code, 'IMGX_IO', String(e));
  assert.is(e.message, `cannot write ${dest}: disk quota exceeded (EDQUOT)`);
  assert.equal(readdirSync(dir), [], 'nothing left beside DEST');
});

test('writeFileAtomic: a failed write removes its temporary file and leaves the old file as it was', async () => {
  const dir = tempDir('imgx-io-atomic-');
  const target = join(dir, 'index.json');
  writeFileSync(target, 'old');
  const e = await fileHandleWritesFail(dir, () => sysError('ENOSPC', 'write'), () => rejection(writeFileAtomic(target, 'new')));
  assert.is((e as SystemError).code, 'ENOSPC');
  assert.equal(readdirSync(dir), ['index.json']);
  assert.is(readFileSync(target, 'utf8'), 'old');
});

test('the cache lock: a lock file that cannot be written is removed, so the cache stays usable at once', async () => {
  const cache = new BlobCache(tempDir('imgx-io-lock-'));
  await cache.init();
  const desc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from('m')), size: 1 };
  const e = (await fileHandleWritesFail(cache.root, () => sysError('ENOSPC', 'write'), () => rejection(cache.recordRef('example.test/app:v1', desc)))) as ImgxError;
  assert.is(e.code, 'IMGX_IO', String(e));
  assert.is(e.message, `cannot write to the cache ${cache.root}: no space left on device (ENOSPC)`);
  assert.not.ok(existsSync(join(cache.root, 'index.json.lock')), 'no lock left behind');
  assert.equal((await cache.entries()).length, 0, 'index.json as it was');
  // A lock file left without a pid would hold this up until the lock's timeout, then fail.
  await cache.recordRef('example.test/app:v1', desc);
  assert.is((await cache.lookupRef('example.test/app:v1'))?.digest, desc.digest);
  assert.equal(readdirSync(cache.root).filter((n) => n.includes('.tmp-') || n.endsWith('.lock')), []);
});

test.run();

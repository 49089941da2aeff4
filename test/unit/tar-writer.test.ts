import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { extract as tarStreamExtract } from 'tar-stream';
import type { FsEntry } from '../../src/layers/fs-entry.ts';
import { readTar } from '../../src/layers/tar-reader.ts';
import { BLOCK_SIZE, decodeHeader } from '../../src/layers/tar-header.ts';
import { TarWriter } from '../../src/layers/tar-writer.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { haveTool } from '../helpers/tools.ts';

function entry(path: string, type: FsEntry['type'], more: Partial<FsEntry> = {}): FsEntry {
  return { path, type, mode: type === 'directory' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1700000000, size: 0, xattrs: new Map(), ...more };
}

/** VFS_CAP_REVISION_2 with cap_setfcap (bit 31) permitted and effective: byte 0x80 is not UTF-8. */
const CAP = Buffer.from('0100000200000080000000000000000000000000', 'hex');
const BINARY = Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0xc3, 0x28, 0x80, 0x20]);
const BIG = randomBytes(200_000);

/** Every kind of entry and every field that needs PAX. */
function entries(): { e: FsEntry; body?: Buffer }[] {
  return [
    { e: entry('.', 'directory', { mode: 0o755 }) },
    { e: entry('etc', 'directory', { mode: 0o1777, uid: 1, gid: 2, uname: 'daemon', gname: 'daemon' }) },
    { e: entry('etc/hostname', 'file', { size: 4, mode: 0o600, uid: 1000, gid: 1000, uname: 'me', gname: 'us' }), body: Buffer.from('box\n') },
    { e: entry('bin/ping', 'file', { size: BIG.length, mode: 0o4755, xattrs: new Map([['security.capability', CAP], ['user.binary', BINARY]]) }), body: BIG },
    { e: entry('bin/ping-hard', 'hardlink', { linkname: 'bin/ping' }) },
    { e: entry('bin/sh', 'symlink', { linkname: 'dash', mode: 0o777 }) },
    { e: entry('dev/null', 'char-device', { devmajor: 1, devminor: 3, mode: 0o666 }) },
    { e: entry('dev/sda', 'block-device', { devmajor: 8, devminor: 0, mode: 0o660 }) },
    { e: entry('dev/huge', 'char-device', { devmajor: 4_000_000, devminor: 3_000_000 }) },
    { e: entry('run/fifo', 'fifo', { mode: 0o620 }) },
    { e: entry('long/' + 'n'.repeat(200) + '/' + 'm'.repeat(150), 'file', { size: 1 }), body: Buffer.from('L') },
    { e: entry('p'.repeat(150) + '/' + 'q'.repeat(90), 'directory') },
    { e: entry('links/long', 'symlink', { linkname: '../'.repeat(60) + 'target' }) },
    { e: entry('ünïcødé/名前', 'file', { size: 1 }), body: Buffer.from('u') },
    { e: entry('ctrl\nname', 'file') },
    { e: entry('ids', 'file', { uid: 4_294_967_294, gid: 3_000_000_000, uname: 'a-very-long-user-name-beyond-32-bytes', gname: 'grüppe' }) },
    { e: entry('times/fraction', 'file', { mtime: 1700000000.123456 }) },
    { e: entry('times/negative', 'file', { mtime: -86400 }) },
    { e: entry('empty', 'file') },
  ];
}

async function write(list: { e: FsEntry; body?: Buffer | Readable }[], opts?: { highWaterMark?: number }): Promise<Buffer> {
  const w = new TarWriter(opts);
  const out = buffer(w.stream);
  for (const { e, body } of list) await w.add(e, body);
  await w.finish();
  return out;
}

test('round trip through our reader: every field, xattrs byte for byte', async () => {
  const list = entries();
  const tar = await write(list);
  assert.is(tar.length % BLOCK_SIZE, 0);
  assert.ok(tar.subarray(tar.length - 1024).equals(Buffer.alloc(1024)), 'ends with two zero blocks');
  const got: { header: import('../../src/layers/tar-header.ts').TarHeader; data: Buffer }[] = [];
  for await (const t of readTar(Readable.from([tar]))) got.push({ header: t.header, data: await buffer(t.body) });
  assert.is(got.length, list.length);
  for (let i = 0; i < list.length; i++) {
    const { e, body } = list[i]!;
    const { header: h, data } = got[i]!;
    const name = e.type === 'directory' ? (e.path === '.' ? './' : e.path + '/') : e.path;
    assert.is(h.name, name);
    assert.is(h.type, e.type, name);
    assert.is(h.mode, e.mode, name);
    assert.is(h.uid, e.uid, name);
    assert.is(h.gid, e.gid, name);
    assert.is(h.mtime, e.mtime, name);
    assert.is(h.uname, e.uname ?? '', name);
    assert.is(h.gname, e.gname ?? '', name);
    assert.is(h.linkname, e.linkname ?? '', name);
    if (e.devmajor !== undefined) assert.equal([h.devmajor, h.devminor], [e.devmajor, e.devminor], name);
    assert.ok(data.equals(body ?? Buffer.alloc(0)), name);
    const xattrs = new Map([...(h.pax ?? [])].filter(([k]) => k.startsWith('SCHILY.xattr.')).map(([k, v]) => [k.slice(13), v]));
    assert.equal([...xattrs.keys()].sort(), [...e.xattrs.keys()].sort(), name);
    for (const [k, v] of e.xattrs) assert.ok(xattrs.get(k)!.equals(v), `${name} ${k}`);
  }
});

test('ustar when it fits: no PAX header for a plain entry; PAX only where needed', async () => {
  const tar = await write([{ e: entry('a/b', 'file', { size: 2 }), body: Buffer.from('hi') }]);
  const h = decodeHeader(tar.subarray(0, BLOCK_SIZE))!;
  assert.is(h.type, 'file');
  assert.is(h.format, 'ustar');
  assert.is(h.name, 'a/b');
  // A 150-byte name splits into prefix and name: still no PAX.
  const split = await write([{ e: entry('p'.repeat(100) + '/' + 'n'.repeat(49), 'file') }]);
  assert.is(decodeHeader(split.subarray(0, BLOCK_SIZE))!.type, 'file');
  const pax = await write([{ e: entry('x', 'file', { xattrs: new Map([['user.a', Buffer.from('b')]]) }) }]);
  assert.is(decodeHeader(pax.subarray(0, BLOCK_SIZE))!.type, 'pax-header');
});

test('the same entries give the same bytes', async () => {
  const a = await write(entries());
  const b = await write(entries());
  assert.ok(a.equals(b));
  // xattr order does not matter: records are sorted.
  const x1 = await write([{ e: entry('f', 'file', { xattrs: new Map([['user.b', Buffer.from('2')], ['user.a', Buffer.from('1')]]) }) }]);
  const x2 = await write([{ e: entry('f', 'file', { xattrs: new Map([['user.a', Buffer.from('1')], ['user.b', Buffer.from('2')]]) }) }]);
  assert.ok(x1.equals(x2));
});

test('stream bodies, with backpressure: add resolves once the body is written', async () => {
  const data = randomBytes(3 << 20);
  const w = new TarWriter({ highWaterMark: 1 << 16 });
  const body = Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += 100_000) yield data.subarray(i, i + 100_000);
    })(),
  );
  let resolved = false;
  const added = w.add(entry('big', 'file', { size: data.length }), body).then(() => (resolved = true));
  // Nobody reads yet: the writer must wait, not buffer 3 MiB.
  await new Promise((r) => setTimeout(r, 50));
  assert.not.ok(resolved);
  assert.ok(w.stream.readableLength < 1 << 20, `buffered ${w.stream.readableLength}`);
  const out = buffer(w.stream);
  await added;
  await w.finish();
  const tar = await out;
  const [t] = await (async () => {
    const r = [];
    for await (const e of readTar(Readable.from([tar]))) r.push(await buffer(e.body));
    return r;
  })();
  assert.ok(t!.equals(data));
});

test('a body of the wrong length is an error and breaks the stream', async () => {
  for (const [size, body] of [
    [5, Buffer.from('abc')],
    [2, Readable.from([Buffer.from('abc')])],
    [10, Readable.from([Buffer.from('abc')])],
  ] as const) {
    const w = new TarWriter();
    const out = buffer(w.stream).then(
      () => 'ended',
      (e: Error) => e.message,
    );
    try {
      await w.add(entry('f', 'file', { size }), body);
      assert.unreachable('expected an error');
    } catch (e) {
      assert.match((e as Error).message, /bytes|longer/);
    }
    assert.match(await out, /bytes|longer/);
    await w.finish().then(
      () => assert.unreachable('finish after a failure'),
      () => {},
    );
  }
});

test('calls made without waiting are written in order', async () => {
  const w = new TarWriter();
  const out = buffer(w.stream);
  const names = Array.from({ length: 50 }, (_, i) => `f${i}`);
  const all = names.map((n) => w.add(entry(n, 'file', { size: n.length }), Buffer.from(n)));
  all.push(w.finish());
  await Promise.all(all);
  const read: string[] = [];
  for await (const e of readTar(Readable.from([await out]))) read.push((await buffer(e.body)).toString());
  assert.equal(read, names);
});

test('tar-stream extracts what we write; it corrupts binary xattrs, we do not', async () => {
  const tar = await write(entries());
  const ex = tarStreamExtract();
  const seen = new Map<string, { type: string; mode: number; data: Buffer; linkname: string | null | undefined; pax: Record<string, string> | undefined }>();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      buffer(stream).then((data) => {
        seen.set(h.name, { type: h.type!, mode: h.mode!, data, linkname: h.linkname, pax: h.pax as Record<string, string> | undefined });
        next();
      }, reject);
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  Readable.from([tar]).pipe(ex);
  await done;
  assert.is(seen.get('etc/hostname')!.data.toString(), 'box\n');
  assert.is(seen.get('etc/hostname')!.mode, 0o600);
  assert.ok(seen.get('bin/ping')!.data.equals(BIG));
  assert.is(seen.get('bin/ping-hard')!.type, 'link');
  assert.is(seen.get('bin/ping-hard')!.linkname, 'bin/ping');
  assert.is(seen.get('long/' + 'n'.repeat(200) + '/' + 'm'.repeat(150))!.data.toString(), 'L');
  assert.is(seen.get('links/long')!.linkname, '../'.repeat(60) + 'target');
  assert.is(seen.get('ünïcødé/名前')!.data.toString(), 'u');
  assert.is(seen.get('dev/null')!.type, 'character-device');
  // tar-stream decodes PAX values as UTF-8 strings: binary bytes do not survive.
  const theirs = Buffer.from(seen.get('bin/ping')!.pax!['SCHILY.xattr.user.binary']!, 'utf8');
  assert.not.ok(theirs.equals(BINARY), 'tar-stream keeps binary xattrs (it did not when this was written)');
  const theirCap = Buffer.from(seen.get('bin/ping')!.pax!['SCHILY.xattr.security.capability']!, 'utf8');
  assert.not.ok(theirCap.equals(CAP));
  // Ours, from the same bytes:
  for await (const e of readTar(Readable.from([tar]), { skipBodies: true })) {
    if (e.header.name === 'bin/ping') {
      assert.ok(e.header.pax!.get('SCHILY.xattr.user.binary')!.equals(BINARY));
      assert.ok(e.header.pax!.get('SCHILY.xattr.security.capability')!.equals(CAP));
    }
  }
});

if (haveTool('tar')) {
  test('GNU tar lists and extracts what we write (names, modes, owners, links, xattrs)', async () => {
    const list = entries().filter(({ e }) => e.type !== 'char-device' && e.type !== 'block-device' && e.path !== 'ctrl\nname' && e.path !== '.');
    const tar = await write(list);
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', '-'], { input: tar, encoding: 'utf8' });
    assert.match(listing, /-rwsr-xr-x 0\/0 +200000 .* bin\/ping\n/);
    assert.match(listing, /bin\/ping-hard link to bin\/ping/);
    assert.match(listing, /drwxrwxrwt 1\/2 .* etc\//);
    assert.match(listing, /4294967294\/3000000000 .* ids/);
    assert.match(listing, new RegExp(`long/${'n'.repeat(200)}/${'m'.repeat(150)}\\n`));
    const dir = tempDir('imgx-tar-writer-');
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', '-', '-C', dir], { input: tar, stdio: 'pipe' });
    assert.ok(readFileSync(join(dir, 'bin/ping')).equals(BIG));
    assert.is(lstatSync(join(dir, 'bin/ping')).ino, lstatSync(join(dir, 'bin/ping-hard')).ino);
    assert.is(lstatSync(join(dir, 'bin/ping')).mode & 0o7777, 0o4755);
    assert.is(readlinkSync(join(dir, 'links/long')), '../'.repeat(60) + 'target');
    assert.is(readFileSync(join(dir, 'ünïcødé/名前'), 'utf8'), 'u');
    assert.is(lstatSync(join(dir, 'times/fraction')).mtimeMs, 1700000000123.456);
    if (haveTool('getfattr')) {
      const hex = execFileSync('getfattr', ['--only-values', '-n', 'user.binary', join(dir, 'bin/ping')], { stdio: 'pipe' });
      assert.ok(hex.equals(BINARY), `getfattr gave ${hex.toString('hex')}`);
      if (process.getuid?.() === 0) {
        const cap = execFileSync('getfattr', ['--only-values', '-n', 'security.capability', join(dir, 'bin/ping')], { stdio: 'pipe' });
        assert.ok(cap.equals(CAP));
      }
    }
  });
}

test('entries that cannot be written are refused before anything is written', async () => {
  const w = new TarWriter();
  const out = buffer(w.stream);
  for (const bad of [entry('', 'file'), entry('x', 'file', { uid: -1 }), entry('x', 'file', { xattrs: new Map([['a=b', Buffer.from('')]]) }), entry('x', 'file', { mtime: NaN })]) {
    await w.add(bad).then(
      () => assert.unreachable(`accepted ${JSON.stringify(bad.path)}`),
      (e: Error) => assert.instance(e, RangeError),
    );
  }
  await w.add(entry('ok', 'file'));
  await w.finish();
  const names: string[] = [];
  for await (const e of readTar(Readable.from([await out]))) names.push(e.header.name);
  assert.equal(names, ['ok']);
});

test.run();

// The safe directory writer from hand-made entry lists: what it writes (types, modes, owners,
// mtimes, contents, hardlinks, xattrs, devices), what it refuses (unsafe names, writes through
// symlinks, hardlinks to non-files), and that a failed run leaves neither DEST nor a staging dir.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BadArchiveError } from '../../src/errors.ts';
import { writeDirectory } from '../../src/export/dir-writer.ts';
import type { FlatEntry, FsEntryType } from '../../src/layers/fs-entry.ts';
import { Warnings } from '../../src/warnings.ts';
import { tempDir } from '../helpers/tempdir.ts';
import * as require_fs from 'node:fs';
import { decodeName, encodeName } from '../../src/util/raw-name.ts';
import { readXattrs } from '../helpers/tree-compare.ts';
import { requireTools } from '../helpers/tools.ts';

const isRoot = process.geteuid?.() === 0;
const MTIME = 1_700_000_000;

function e(path: string, type: FsEntryType, extra: Partial<FlatEntry> & { content?: string | Buffer } = {}): FlatEntry & { content?: Buffer } {
  const { content, ...rest } = extra;
  const data = content === undefined ? undefined : Buffer.from(content);
  return {
    path,
    type,
    mode: type === 'directory' ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    mtime: MTIME,
    size: data?.length ?? 0,
    xattrs: new Map(),
    ...rest,
    ...(data ? { content: data } : {}),
  };
}

/** Entries as the flatten stage gives them: a fresh body stream per file, made when it is reached. */
async function* stream(list: (FlatEntry & { content?: Buffer })[]): AsyncGenerator<FlatEntry> {
  for (const x of list) {
    const { content, ...entry } = x;
    if (x.type === 'file' && content) {
      // Several chunks, to exercise the chunked paths.
      const parts: Buffer[] = [];
      for (let i = 0; i < content.length; i += 100_000) parts.push(content.subarray(i, i + 100_000));
      yield { ...entry, body: Readable.from(parts) };
    } else yield entry;
  }
}

function work(): { dir: string; dest: string } {
  const dir = tempDir('imgx-dirw-');
  return { dir, dest: join(dir, 'dest') };
}

async function rejectsCode(p: Promise<unknown>, code: string): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.is((err as { code?: string }).code, code, (err as Error).message);
    return err as Error;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

test('writes files, directories, symlinks, hardlinks and fifos with their metadata', async () => {
  const { dir, dest } = work();
  const big = Buffer.alloc(1_000_000 + 17, 7);
  const w = new Warnings();
  const r = await writeDirectory(
    stream([
      e('etc', 'directory', { mode: 0o755, mtime: MTIME + 1 }),
      e('usr', 'directory'),
      e('usr/bin', 'directory', { mode: 0o750 }),
      e('etc/hostname', 'file', { content: 'box\n', mode: 0o640, mtime: MTIME + 2.5 }),
      e('usr/bin/big', 'file', { content: big, mode: 0o755 }),
      e('usr/bin/su', 'file', { content: 'su', mode: 0o4755 }),
      e('usr/bin/empty', 'file', { mode: 0o600 }),
      e('usr/bin/su2', 'hardlink', { linkname: 'usr/bin/su' }),
      e('bin', 'symlink', { linkname: 'usr/bin', mtime: MTIME + 3 }),
      e('etc/fifo', 'fifo', { mode: 0o620 }),
    ]),
    dest,
    { warnings: w, asRoot: isRoot },
  );
  assert.equal({ ...r }, { files: 4, dirs: 3, links: 2, bytes: 4 + big.length + 2, special: 1 });
  assert.is(readFileSync(join(dest, 'etc/hostname'), 'utf8'), 'box\n');
  assert.ok(readFileSync(join(dest, 'usr/bin/big')).equals(big));
  assert.is(lstatSync(join(dest, 'etc/hostname')).mode & 0o7777, 0o640);
  assert.is(lstatSync(join(dest, 'usr/bin/su')).mode & 0o7777, 0o4755);
  assert.is(lstatSync(join(dest, 'usr/bin/empty')).mode & 0o7777, 0o600);
  assert.is(lstatSync(join(dest, 'usr/bin')).mode & 0o7777, 0o750);
  assert.is(lstatSync(join(dest, 'usr/bin/su')).ino, lstatSync(join(dest, 'usr/bin/su2')).ino);
  assert.is(readlinkSync(join(dest, 'bin')), 'usr/bin');
  assert.ok(lstatSync(join(dest, 'etc/fifo')).isFIFO());
  assert.is(lstatSync(join(dest, 'etc/fifo')).mode & 0o7777, 0o620);
  assert.is(lstatSync(join(dest, 'etc')).mtimeMs, (MTIME + 1) * 1000, 'directory mtime restored after its children');
  assert.is(lstatSync(join(dest, 'etc/hostname')).mtimeMs, (MTIME + 2.5) * 1000);
  assert.is(lstatSync(join(dest, 'bin')).mtimeMs, (MTIME + 3) * 1000, 'symlink mtime (lutimes)');
  assert.is(lstatSync(dest).mode & 0o7777, 0o755, 'root without an entry: 0755');
  assert.equal(readdirSync(dir), ['dest'], 'no staging dir or dump file left');
});

test('a 0000 directory with children, and the root entry', async () => {
  const { dest } = work();
  await writeDirectory(
    stream([e('.', 'directory', { mode: 0o711, mtime: MTIME }), e('locked', 'directory', { mode: 0 }), e('locked/sub', 'directory', { mode: 0 }), e('locked/sub/f', 'file', { content: 'x' })]),
    dest,
    { warnings: new Warnings() },
  );
  assert.is(lstatSync(dest).mode & 0o7777, 0o711);
  assert.is(lstatSync(dest).mtimeMs, MTIME * 1000);
  assert.is(lstatSync(join(dest, 'locked')).mode & 0o7777, 0);
  chmodSync(join(dest, 'locked'), 0o700);
  chmodSync(join(dest, 'locked/sub'), 0o700);
  assert.is(readFileSync(join(dest, 'locked/sub/f'), 'utf8'), 'x');
});

test('missing parents are made 0755; duplicates: the last entry wins', async () => {
  const { dest } = work();
  const r = await writeDirectory(
    stream([
      e('a/b/c', 'file', { content: 'deep' }),
      e('f', 'file', { content: 'one' }),
      e('f', 'file', { content: 'two' }),
      e('d', 'directory'),
      e('d/x', 'file', { content: 'x' }),
      e('d', 'file', { content: 'now a file' }),
      e('g', 'file', { content: 'g' }),
      e('g', 'directory', { mode: 0o700 }),
      e('s', 'symlink', { linkname: '/etc' }),
      e('s', 'symlink', { linkname: 'other' }),
    ]),
    dest,
    { warnings: new Warnings() },
  );
  assert.is(readFileSync(join(dest, 'a/b/c'), 'utf8'), 'deep');
  assert.is(lstatSync(join(dest, 'a')).mode & 0o7777, 0o755);
  assert.is(readFileSync(join(dest, 'f'), 'utf8'), 'two');
  assert.is(readFileSync(join(dest, 'd'), 'utf8'), 'now a file');
  assert.ok(lstatSync(join(dest, 'g')).isDirectory());
  assert.is(lstatSync(join(dest, 'g')).mode & 0o7777, 0o700);
  assert.is(readlinkSync(join(dest, 's')), 'other');
  assert.is(r.bytes, 4 + 3 + 3 + 1 + 10 + 1);
});

for (const bad of ['..', '../x', '/etc/passwd', 'a/../../x', 'a//b', './a', 'a/.', '']) {
  test(`refuses the name ${JSON.stringify(bad)} and leaves nothing`, async () => {
    const { dir, dest } = work();
    await rejectsCode(writeDirectory(stream([e('ok', 'file', { content: 'x' }), e(bad, 'file', { content: 'evil' })]), dest, { warnings: new Warnings() }), 'IMGX_UNSAFE_PATH');
    assert.equal(readdirSync(dir), [], 'neither DEST nor a staging dir');
  });
}

test('never writes through a symlink planted by an earlier entry', async () => {
  const { dir, dest } = work();
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  for (const [link, path] of [
    [outside, 'evil/file'],
    ['..', 'evil/file'],
    ['../outside', 'evil/sub/dir'],
    ['/', 'evil/etc'],
  ] as const) {
    await rejectsCode(
      writeDirectory(stream([e('evil', 'symlink', { linkname: link }), e(path, path.endsWith('dir') ? 'directory' : 'file', { content: 'pwned' })]), dest, { warnings: new Warnings() }),
      'IMGX_UNSAFE_PATH',
    );
    assert.equal(readdirSync(outside), []);
    assert.equal(readdirSync(dir).sort(), ['outside']);
  }
});

test('a hardlink to a symlink links the symlink itself, never what it points to', async () => {
  const { dir, dest } = work();
  writeFileSync(join(dir, 'secret'), 'secret');
  await writeDirectory(stream([e('s', 'symlink', { linkname: '../secret' }), e('h', 'hardlink', { linkname: 's' })]), dest, { warnings: new Warnings() });
  assert.is(readlinkSync(join(dest, 'h')), '../secret');
  assert.is(lstatSync(join(dest, 'h')).ino, lstatSync(join(dest, 's')).ino);
  assert.is(lstatSync(join(dir, 'secret')).nlink, 1);
});

test('hardlinks through a symlink, outside, to a directory: refused', async () => {
  const { dir, dest } = work();
  writeFileSync(join(dir, 'secret'), 'secret');
  const cases: (FlatEntry & { content?: Buffer })[][] = [
    [e('s', 'symlink', { linkname: '..' }), e('h', 'hardlink', { linkname: 's/secret' })],
    [e('h', 'hardlink', { linkname: '../secret' })],
    [e('h', 'hardlink', { linkname: '/etc/passwd' })],
    [e('d', 'directory'), e('h', 'hardlink', { linkname: 'd' })],
  ];
  for (const list of cases) {
    await rejectsCode(writeDirectory(stream(list), dest, { warnings: new Warnings() }), 'IMGX_UNSAFE_PATH');
    assert.equal(readdirSync(dir).sort(), ['secret']);
    assert.is(lstatSync(join(dir, 'secret')).nlink, 1);
  }
});

test('a hardlink to a missing file is skipped with a warning', async () => {
  const { dest } = work();
  const w = new Warnings();
  await writeDirectory(stream([e('h', 'hardlink', { linkname: 'nope' }), e('f', 'file', { content: 'f' })]), dest, { warnings: w });
  assert.is(w.count('IMGX_BAD_HARDLINK'), 1);
  assert.not.ok(existsSync(join(dest, 'h')));
});

test('DEST that is not empty, or not a directory: IMGX_DEST_EXISTS, untouched', async () => {
  const { dir, dest } = work();
  mkdirSync(dest);
  writeFileSync(join(dest, 'mine'), 'keep');
  await rejectsCode(writeDirectory(stream([e('f', 'file', { content: 'x' })]), dest, { warnings: new Warnings() }), 'IMGX_DEST_EXISTS');
  assert.equal(readdirSync(dest), ['mine']);
  assert.equal(readdirSync(dir), ['dest']);
  const file = join(dir, 'file');
  writeFileSync(file, 'keep');
  await rejectsCode(writeDirectory(stream([]), file, { warnings: new Warnings() }), 'IMGX_DEST_EXISTS');
  assert.is(readFileSync(file, 'utf8'), 'keep');
});

test('an empty DEST directory is filled', async () => {
  const { dest } = work();
  mkdirSync(dest);
  await writeDirectory(stream([e('f', 'file', { content: 'x' })]), dest, { warnings: new Warnings() });
  assert.is(readFileSync(join(dest, 'f'), 'utf8'), 'x');
});

test('a body shorter than its size, or a failing stream: nothing left', async () => {
  const { dir, dest } = work();
  const short: FlatEntry = { ...e('f', 'file'), size: 10, body: Readable.from([Buffer.from('abc')]) };
  await rejectsCode(writeDirectory(stream([short]), dest, { warnings: new Warnings() }), 'IMGX_BAD_LAYER');
  assert.equal(readdirSync(dir), []);
  async function* failing(): AsyncGenerator<FlatEntry> {
    yield e('d', 'directory', { mode: 0 });
    yield { ...e('d/big', 'file'), size: 2_000_000, body: Readable.from([Buffer.alloc(1_000_000)]) };
  }
  await rejectsCode(writeDirectory(failing(), dest, { warnings: new Warnings() }), 'IMGX_BAD_LAYER');
  assert.equal(readdirSync(dir), []);
  async function* throwing(): AsyncGenerator<FlatEntry> {
    yield e('d', 'directory', { mode: 0 });
    yield { ...e('d/f', 'file'), size: 1, body: Readable.from([Buffer.from('x')]) };
    throw new BadArchiveError('layer went away');
  }
  await rejectsCode(writeDirectory(throwing(), dest, { warnings: new Warnings() }), 'IMGX_BAD_ARCHIVE');
  assert.equal(readdirSync(dir), []);
});

test('unprivileged: no chown, no device nodes, one warning per kind with counts; --strict fails', async () => {
  const { dir, dest } = work();
  const list = () =>
    stream([
      e('f', 'file', { content: 'x', uid: 1234, gid: 1234 }),
      e('g', 'file', { content: 'y', uid: 5, gid: 6 }),
      e('null', 'char-device', { devmajor: 1, devminor: 3, mode: 0o666 }),
      e('loop0', 'block-device', { devmajor: 7, devminor: 0 }),
      e('p', 'fifo'),
    ]);
  const w = new Warnings();
  const r = await writeDirectory(list(), dest, { warnings: w, asRoot: false });
  assert.is(r.special, 1);
  assert.is(w.count(), 1, 'a single summary warning');
  assert.is(w.count('IMGX_UNPRIVILEGED'), 1);
  assert.match(w.summary().join('\n'), /ownership of \d+ entries not applied, 2 device nodes not created/);
  assert.not.ok(existsSync(join(dest, 'null')));
  assert.ok(lstatSync(join(dest, 'p')).isFIFO());

  const dest2 = join(dir, 'dest2');
  await rejectsCode(writeDirectory(list(), dest2, { warnings: new Warnings({ strict: true }), asRoot: false }), 'IMGX_STRICT');
  assert.equal(readdirSync(dir), ['dest']);
});

if (requireTools(test, ['setfattr', 'getfattr'])) test('xattrs: user.* byte for byte; security.* only as root', async () => {
  const { dest } = work();
  const bin = Buffer.from([0, 1, 2, 0xff, 0x3d, 0x0a]);
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  const w = new Warnings();
  await writeDirectory(
    stream([
      e('d', 'directory', { xattrs: new Map([['user.dir', Buffer.from('d')]]) }),
      e('d/odd name=\\\n', 'file', { content: 'x', xattrs: new Map([['user.bin', bin], ['user.a=b c', Buffer.from('v')]]) }),
      e('ping', 'file', { content: 'p', mode: 0o755, xattrs: new Map([['security.capability', cap]]) }),
    ]),
    dest,
    { warnings: w, asRoot: isRoot },
  );
  const x = readXattrs(dest);
  assert.is(x.get('d')?.['user.dir'], Buffer.from('d').toString('base64'));
  assert.is(x.get('d/odd name=\\\n')?.['user.bin'], bin.toString('base64'));
  if (isRoot) {
    assert.is(x.get('ping')?.['security.capability'], cap.toString('base64'));
    assert.is(w.count('IMGX_NO_XATTR'), 0);
  } else {
    assert.is(w.count('IMGX_UNPRIVILEGED'), 1);
    assert.match(w.summary().join('\n'), /1 security\.\*\/trusted\.\* extended attributes not set/);
  }
});

if (isRoot) {
  test('as root: ownership (setuid kept), device nodes', async () => {
    const { dest } = work();
    const w = new Warnings();
    await writeDirectory(
      stream([
        e('d', 'directory', { uid: 1, gid: 2, mode: 0o2775 }),
        e('d/su', 'file', { content: 'x', uid: 1000, gid: 1000, mode: 0o6755 }),
        e('d/l', 'symlink', { linkname: 'su', uid: 3, gid: 4 }),
        e('dev', 'directory'),
        e('dev/null', 'char-device', { devmajor: 1, devminor: 3, mode: 0o666 }),
        e('dev/loop0', 'block-device', { devmajor: 7, devminor: 0, mode: 0o660, gid: 6 }),
      ]),
      dest,
      { warnings: w },
    );
    const su = lstatSync(join(dest, 'd/su'));
    assert.is(`${su.uid}:${su.gid} ${(su.mode & 0o7777).toString(8)}`, '1000:1000 6755');
    const d = lstatSync(join(dest, 'd'));
    assert.is(`${d.uid}:${d.gid} ${(d.mode & 0o7777).toString(8)}`, '1:2 2775');
    const l = lstatSync(join(dest, 'd/l'));
    assert.is(`${l.uid}:${l.gid}`, '3:4');
    const n = lstatSync(join(dest, 'dev/null'));
    assert.ok(n.isCharacterDevice());
    assert.is(n.rdev, (1 << 8) | 3);
    assert.is(n.mode & 0o7777, 0o666);
    const loop = lstatSync(join(dest, 'dev/loop0'));
    assert.ok(loop.isBlockDevice());
    assert.is(loop.gid, 6);
    assert.is(w.count(), 0, w.summary().join('\n'));
  });
}

test('a sparse file: its stored data at its offsets, the holes left unwritten, the size set', async () => {
  const { dest } = work();
  const GB = 1_000_000_000;
  const data = Buffer.concat([Buffer.alloc(300, 0x61), Buffer.alloc(200, 0x62)]);
  const sparse = [
    { offset: 10 * GB, size: 300 },
    { offset: 20 * GB + 7, size: 200 },
  ];
  await writeDirectory(stream([e('big', 'file', { size: 30 * GB, sparse, content: data }), e('empty-map', 'file', { size: 4096, sparse: [{ offset: 4096, size: 0 }], content: '' })]), dest, { warnings: new Warnings() });
  const st = lstatSync(join(dest, 'big'));
  assert.is(st.size, 30 * GB);
  assert.ok(st.blocks * 512 < 1 << 20, `${st.blocks} blocks`);
  const read = (at: number, n: number) => {
    const b = Buffer.alloc(n);
    const fd = require_fs.openSync(join(dest, 'big'), 'r');
    require_fs.readSync(fd, b, 0, n, at);
    require_fs.closeSync(fd);
    return b;
  };
  assert.ok(read(10 * GB - 10, 310).equals(Buffer.concat([Buffer.alloc(10), Buffer.alloc(300, 0x61)])));
  assert.ok(read(20 * GB + 7, 200).equals(Buffer.alloc(200, 0x62)));
  assert.is(lstatSync(join(dest, 'empty-map')).size, 4096);
  // Data that the map cannot hold is a bad layer, and nothing is left.
  const bad = work();
  try {
    await writeDirectory(stream([e('big', 'file', { size: 100, sparse: [{ offset: 0, size: 10 }], content: Buffer.alloc(20) })]), bad.dest, { warnings: new Warnings() });
    assert.unreachable();
  } catch (err) {
    assert.is((err as { code?: string }).code, 'IMGX_BAD_LAYER');
  }
  assert.not.ok(existsSync(bad.dest));
});

test('names that are not UTF-8 keep their bytes: files, directories, symlinks and their targets, hardlinks, xattrs, fifos', async () => {
  const { dest } = work();
  const raw = (...b: number[]) => decodeName(Buffer.from(b));
  const d = raw(0x64, 0xff);
  const f = `${d}/${raw(0x66, 0x80, 0x81)}`;
  await writeDirectory(
    stream([
      e(d, 'directory'),
      e(f, 'file', { content: 'x', xattrs: new Map([['user.a', Buffer.from('v')]]) }),
      e(`${d}/link`, 'symlink', { linkname: raw(0x74, 0xfe) }),
      e(`${d}/hard`, 'hardlink', { linkname: f }),
      e(`${d}/${raw(0x70, 0xfd)}`, 'fifo'),
    ]),
    dest,
    { warnings: new Warnings() },
  );
  const dir = Buffer.concat([Buffer.from(`${dest}/`), encodeName(d)]);
  assert.equal(readdirSync(dir, { encoding: 'buffer' }).map((b) => b.toString('hex')).sort(), [Buffer.from([0x66, 0x80, 0x81]), Buffer.from('hard'), Buffer.from('link'), Buffer.from([0x70, 0xfd])].map((b) => b.toString('hex')).sort());
  const file = Buffer.concat([dir, Buffer.from('/'), Buffer.from([0x66, 0x80, 0x81])]);
  assert.is(readFileSync(file, 'utf8'), 'x');
  assert.ok(readlinkSync(Buffer.concat([dir, Buffer.from('/link')]), { encoding: 'buffer' }).equals(Buffer.from([0x74, 0xfe])));
  assert.is(lstatSync(Buffer.concat([dir, Buffer.from('/hard')])).ino, lstatSync(file).ino);
  assert.ok(lstatSync(Buffer.concat([dir, Buffer.from('/'), Buffer.from([0x70, 0xfd])])).isFIFO());
});

test('a hardlink to a fifo (or device) made in the same batch links to it (found by the fuzz test)', async () => {
  const { dest } = work();
  const w = new Warnings();
  await writeDirectory(stream([e('p', 'fifo'), e('q', 'hardlink', { linkname: 'p' })]), dest, { warnings: w });
  assert.ok(lstatSync(join(dest, 'q')).isFIFO());
  assert.is(lstatSync(join(dest, 'q')).ino, lstatSync(join(dest, 'p')).ino);
  assert.is(w.count(), 0);
  if (isRoot) {
    const d2 = work();
    await writeDirectory(stream([e('null', 'char-device', { devmajor: 1, devminor: 3 }), e('null2', 'hardlink', { linkname: 'null' })]), d2.dest, { warnings: new Warnings() });
    assert.is(lstatSync(join(d2.dest, 'null2')).ino, lstatSync(join(d2.dest, 'null')).ino);
  }
});

test.run();

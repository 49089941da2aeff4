import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, linkSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pack as tarStreamPack } from 'tar-stream';
import { ImgxError } from '../../src/errors.ts';
import { readTar, type TarEntry } from '../../src/layers/tar-reader.ts';
import { BLOCK_SIZE, decodeHeader, encodeHeader, encodeNumber, encodePax, paddingFor } from '../../src/layers/tar-header.ts';
import { makeTar } from '../fixtures/tar.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { chunked } from '../helpers/chunked.ts';
import { haveTool } from '../helpers/tools.ts';

interface Read {
  entry: TarEntry;
  data: Buffer;
}

async function readAll(input: Readable, opts: { skipBodies?: boolean; what?: string } = {}): Promise<Read[]> {
  const out: Read[] = [];
  for await (const entry of readTar(input, opts)) out.push({ entry, data: await buffer(entry.body) });
  return out;
}

/** Fails (never times) a test whose promise does not settle: a hang is the bug being tested for. */
function noHang<T>(p: Promise<T>, label: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${label}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function rejects(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<ImgxError> {
  try {
    await p;
  } catch (e) {
    assert.is((e as { code?: string }).code, code, (e as Error).message);
    if (pattern) assert.match((e as Error).message, pattern);
    return e as ImgxError;
  }
  throw new assert.Assertion({ message: `expected ${code}`, generated: false, operator: 'rejects' } as never);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const sample = () =>
  makeTar([
    { name: 'etc/', type: 'directory', mode: 0o755 },
    { name: 'etc/hostname', content: 'box\n', mode: 0o644, uid: 1000, gid: 1000, uname: 'me', gname: 'us', mtime: 1700000000 },
    { name: 'bin/sh', type: 'symlink', linkname: 'dash' },
    { name: 'bin/big', content: randomBytes(300_000), mode: 0o4755 },
    { name: 'bin/hard', type: 'hardlink', linkname: 'bin/big' },
    { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0 },
    { name: 'run/fifo', type: 'fifo' },
    { name: 'x'.repeat(150) + '/' + 'y'.repeat(120), content: 'long' },
    { name: 'empty', content: '' },
  ]);

test('reads names, types, modes, owners, bodies and offsets, whatever the chunk size', async () => {
  const tar = sample();
  for (const size of [1, 7, 511, 512, 513, 4096, 1 << 16, tar.length]) {
    const got = await readAll(chunked(tar, size));
    assert.equal(
      got.map((g) => [g.entry.header.name, g.entry.header.type]),
      [
        ['etc/', 'directory'],
        ['etc/hostname', 'file'],
        ['bin/sh', 'symlink'],
        ['bin/big', 'file'],
        ['bin/hard', 'hardlink'],
        ['dev/null', 'char-device'],
        ['dev/sda', 'block-device'],
        ['run/fifo', 'fifo'],
        ['x'.repeat(150) + '/' + 'y'.repeat(120), 'file'],
        ['empty', 'file'],
      ],
      `chunk size ${size}`,
    );
    const host = got[1]!.entry.header;
    assert.equal([host.mode, host.uid, host.gid, host.uname, host.gname, host.mtime, host.size], [0o644, 1000, 1000, 'me', 'us', 1700000000, 4]);
    assert.is(got[1]!.data.toString(), 'box\n');
    assert.is(got[3]!.entry.header.mode, 0o4755);
    assert.is(got[3]!.data.length, 300_000);
    assert.is(sha(got[3]!.data), sha(tar.subarray(got[3]!.entry.offset + BLOCK_SIZE, got[3]!.entry.offset + BLOCK_SIZE + 300_000)));
    assert.equal([got[5]!.entry.header.devmajor, got[5]!.entry.header.devminor], [1, 3]);
    assert.is(got[8]!.data.toString(), 'long');
    // Each offset points at the entry's first header (its PAX header when it has one).
    for (const g of got) {
      const h = decodeHeader(tar.subarray(g.entry.offset, g.entry.offset + BLOCK_SIZE))!;
      if (h.type !== 'pax-header') assert.is(h.name, g.entry.header.name);
    }
  }
});

test('skipBodies: the same headers and offsets, empty bodies', async () => {
  const tar = sample();
  const full = await readAll(chunked(tar, 1000));
  const fast = await readAll(chunked(tar, 1000), { skipBodies: true });
  assert.equal(
    fast.map((g) => [g.entry.header, g.entry.offset]),
    full.map((g) => [g.entry.header, g.entry.offset]),
  );
  for (const g of fast) assert.is(g.data.length, 0);
});

test('bodies left unread, or read in part, are skipped', async () => {
  const tar = sample();
  const names: string[] = [];
  for await (const e of readTar(chunked(tar, 3000))) {
    names.push(e.header.name);
    if (e.header.name === 'bin/big') {
      // Read one chunk, then move on.
      const it = e.body[Symbol.asyncIterator]();
      const first = await it.next();
      assert.ok((first.value as Buffer).length > 0);
    }
  }
  assert.is(names.length, 10);
  assert.is(names[9], 'empty');
});

test('a body asked for after the reader moved on fails when read, never reads as empty', async () => {
  const entries: TarEntry[] = [];
  for await (const e of readTar(chunked(sample(), 1000))) entries.push(e);
  const host = entries[1]!;
  assert.is(host.header.name, 'etc/hostname');
  try {
    await buffer(host.body);
    assert.unreachable('read a body whose data was skipped');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'ERR_STREAM_PREMATURE_CLOSE');
  }
  // Entries without data have an empty body whenever it is asked for.
  assert.is((await buffer(entries[0]!.body)).length, 0);
});

test('a slow consumer gets every byte (backpressure)', async () => {
  const data = randomBytes(3 << 20);
  const tar = makeTar([{ name: 'a', content: data }, { name: 'b', content: 'after' }]);
  const got: Buffer[] = [];
  for await (const e of readTar(chunked(tar, 100_000))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) {
      parts.push(c as Buffer);
      await new Promise((r) => setImmediate(r));
    }
    got.push(Buffer.concat(parts));
  }
  assert.is(sha(got[0]!), sha(data));
  assert.is(got[1]!.toString(), 'after');
});

test('PAX: long names and links, sizes, ids, fractional mtime, binary xattrs byte for byte', async () => {
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  const weird = Buffer.from([0, 0xff, 0x0a, 0x3d, 0xc3, 0x28, 0x80]);
  const long = 'd/' + 'n'.repeat(300);
  const tar = makeTar([
    { name: long, content: 'x', uid: 5_000_000, gid: 4_294_967_295, mtime: 1700000000.25, pax: { 'SCHILY.xattr.security.capability': cap, 'SCHILY.xattr.user.weird': weird } },
    { name: 'link', type: 'symlink', linkname: 'L'.repeat(500) },
    { name: 'ünïcødé/名前', content: 'u' },
  ]);
  const got = await readAll(chunked(tar, 100));
  const h = got[0]!.entry.header;
  assert.is(h.name, long);
  assert.is(h.uid, 5_000_000);
  assert.is(h.gid, 4_294_967_295);
  assert.is(h.mtime, 1700000000.25);
  assert.ok(h.pax!.get('SCHILY.xattr.security.capability')!.equals(cap));
  assert.ok(h.pax!.get('SCHILY.xattr.user.weird')!.equals(weird));
  assert.is(got[0]!.entry.offset, 0);
  assert.is(decodeHeader(tar.subarray(0, BLOCK_SIZE))!.type, 'pax-header');
  assert.is(got[1]!.entry.header.linkname, 'L'.repeat(500));
  assert.is(got[2]!.entry.header.name, 'ünïcødé/名前');
});

test('PAX global headers change no entry (Go, containerd); an entry starts after them', async () => {
  const body = encodePax({ uname: 'globaluser', 'SCHILY.xattr.user.g': 'v', path: 'renamed' });
  const tar = Buffer.concat([
    encodeHeader({ name: 'pax_global_header', type: 'pax-global-header', size: body.length }),
    body,
    Buffer.alloc(paddingFor(body.length)),
    makeTar([{ name: 'a', content: '1' }, { name: 'b', content: '2', uname: 'x' }]),
  ]);
  const got = await readAll(chunked(tar));
  assert.is(got.length, 2);
  assert.is(got[0]!.entry.offset, 2 * BLOCK_SIZE);
  assert.equal(got.map((g) => g.entry.header.name), ['a', 'b']);
  assert.is(got[0]!.entry.header.uname, '');
  assert.is(got[1]!.entry.header.uname, 'x');
  assert.is(got[1]!.entry.header.pax, undefined);
});

test('GNU long name and long link entries (L, K)', async () => {
  const name = 'gnu/' + 'a'.repeat(200);
  const link = 'b'.repeat(180);
  const ext = (type: 'gnu-long-name' | 'gnu-long-link', value: string) => {
    const data = Buffer.from(value + '\0');
    return Buffer.concat([encodeHeader({ name: '././@LongLink', type, size: data.length }, { format: 'gnu' }), data, Buffer.alloc(paddingFor(data.length))]);
  };
  const tar = Buffer.concat([
    ext('gnu-long-name', name),
    ext('gnu-long-link', link),
    encodeHeader({ name: name.slice(0, 100), type: 'symlink', linkname: link.slice(0, 100) }, { format: 'gnu' }),
    Buffer.alloc(1024),
  ]);
  const got = await readAll(chunked(tar, 50));
  assert.is(got.length, 1);
  assert.is(got[0]!.entry.header.name, name);
  assert.is(got[0]!.entry.header.linkname, link);
  assert.is(got[0]!.entry.offset, 0);
});

test('headers at any alignment in memory decode the same (decompressors slice output anywhere)', () => {
  const block = encodeHeader({ name: 'usr/bin/ünï', size: 1234, mode: 0o4755, uid: 0o7777777, mtime: 1700000000, uname: 'root' });
  const want = decodeHeader(block);
  for (let shift = 0; shift < 8; shift++) {
    const big = Buffer.alloc(BLOCK_SIZE + 16);
    block.copy(big, shift);
    const view = big.subarray(shift, shift + BLOCK_SIZE);
    assert.equal(decodeHeader(view), want, `shift ${shift}`);
    view[20] = view[20]! ^ 1;
    assert.throws(() => decodeHeader(view), /checksum mismatch/);
  }
});

test('base-256 numbers: big uid, negative mtime, header-only types ignore their size field', async () => {
  const h = encodeHeader({ name: 'neg', mtime: -86400, uid: 2 ** 32 - 2 });
  assert.is(h[108]! & 0x80, 0x80);
  // A hardlink header claiming 5 bytes of data: readers treat it as none (GNU tar, Go).
  const hard = encodeHeader({ name: 'hl', type: 'hardlink', linkname: 'neg', size: 5 });
  const tar = Buffer.concat([h, hard, makeTar([{ name: 'next', content: 'n' }])]);
  const got = await readAll(chunked(tar));
  assert.equal(
    got.map((g) => [g.entry.header.name, g.entry.header.size]),
    [
      ['neg', 0],
      ['hl', 0],
      ['next', 1],
    ],
  );
  assert.is(got[0]!.entry.header.mtime, -86400);
  assert.is(got[0]!.entry.header.uid, 2 ** 32 - 2);
  // An id no file can have is refused (containerd's lchown would fail on it).
  await rejects(readAll(chunked(Buffer.concat([encodeHeader({ name: 'u', uid: 2 ** 40 }), Buffer.alloc(1024)]))), 'IMGX_BAD_ARCHIVE', /uid .* out of range/);
  // A big size in base-256 with the data there.
  const size = 9_000_000_000;
  assert.ok(encodeNumber(size, 12)[0]! & 0x80);
});

test('archives written by tar-stream read the same', async () => {
  const p = tarStreamPack();
  const big = randomBytes(70_000);
  p.entry({ name: 'dir', type: 'directory', mode: 0o750 });
  p.entry({ name: 'dir/file', mode: 0o600, uid: 7, gid: 8, uname: 'u', gname: 'g', mtime: new Date(1600000000000) }, big);
  p.entry({ name: 'dir/' + 'q'.repeat(250), mode: 0o644 }, 'pax name');
  p.entry({ name: 'dir/sym', type: 'symlink', linkname: '../target' });
  p.entry({ name: 'dir/hl', type: 'link', linkname: 'dir/file' });
  p.entry({ name: 'dir/fifo', type: 'fifo' });
  p.entry({ name: 'dir/tty', type: 'character-device', devmajor: 5, devminor: 0 });
  p.finalize();
  const tar = await buffer(p);
  const got = await readAll(chunked(tar, 999));
  assert.equal(
    got.map((g) => [g.entry.header.name.replace(/\/$/, ''), g.entry.header.type, g.entry.header.mode]),
    [
      ['dir', 'directory', 0o750],
      ['dir/file', 'file', 0o600],
      ['dir/' + 'q'.repeat(250), 'file', 0o644],
      ['dir/sym', 'symlink', 0o644], // tar-stream's default mode
      ['dir/hl', 'hardlink', 0o644],
      ['dir/fifo', 'fifo', 0o644],
      ['dir/tty', 'char-device', 0o644],
    ],
  );
  assert.ok(got[1]!.data.equals(big));
  assert.equal([got[1]!.entry.header.uid, got[1]!.entry.header.gid, got[1]!.entry.header.uname, got[1]!.entry.header.mtime], [7, 8, 'u', 1600000000]);
  assert.is(got[2]!.data.toString(), 'pax name');
  assert.is(got[3]!.entry.header.linkname, '../target');
  assert.is(got[4]!.entry.header.linkname, 'dir/file');
  assert.equal([got[6]!.entry.header.devmajor, got[6]!.entry.header.devminor], [5, 0]);
});

// ---- GNU tar ----------------------------------------------------------------------------------

/** A tree with what layers carry: long names and links, a hardlink, a fifo, a sparse file, xattrs. */
function buildTree(): { dir: string; longName: string; longLink: string } {
  const dir = tempDir('imgx-tar-reader-');
  const d = join(dir, 'd');
  const longName = `d/${'x'.repeat(120)}/${'y'.repeat(150)}`;
  mkdirSync(join(dir, longName), { recursive: true });
  writeFileSync(join(dir, longName, 'f'), 'deep');
  writeFileSync(join(d, 'f'), 'hello');
  const longLink = 'L'.repeat(150);
  symlinkSync(longLink, join(d, 'longlink'));
  linkSync(join(d, 'f'), join(d, 'hard'));
  execFileSync('mkfifo', [join(d, 'fifo')]);
  // A sparse file with more than 4 data segments (old GNU needs extension blocks) and a tail hole.
  const fd = openSync(join(d, 'sparse'), 'w');
  ftruncateSync(fd, 4 << 20);
  for (let i = 1; i <= 30; i++) writeSync(fd, Buffer.from(`segment ${i}`.padEnd(10)), 0, 10, i * 120_000);
  closeSync(fd);
  return { dir, longName, longLink };
}

const gnuTar = haveTool('tar') && /GNU tar/.test(execFileSync('tar', ['--version'], { encoding: 'utf8' }));

if (gnuTar) {
  test('GNU tar archives (gnu, pax, ustar formats) read like the tree they came from', async () => {
    const { dir, longName, longLink } = buildTree();
    const sparseSha = sha(readFileSync(join(dir, 'd/sparse')));
    for (const format of ['gnu', 'pax', 'ustar']) {
      // ustar has no sparse entries: GNU tar refuses -S there and stores the holes as zeros.
      const args = ['--format=' + format, ...(format === 'ustar' ? [] : ['-S']), '-cf', '-', '-C', dir];
      // ustar cannot hold the long name or the long link: leave those out.
      const members = format === 'ustar' ? ['d/f', 'd/hard', 'd/fifo', 'd/sparse'] : ['d'];
      const tar = execFileSync('tar', [...args, ...members], { maxBuffer: 1 << 28 });
      for (const skipBodies of [false, true]) {
        const got = await readAll(chunked(tar, 4096), { skipBodies });
        const by = new Map(got.map((g) => [g.entry.header.name.replace(/\/$/, ''), g]));
        assert.is(by.get('d/f')!.entry.header.type, 'file', format);
        assert.is(by.get('d/hard')!.entry.header.type, 'hardlink');
        assert.is(by.get('d/hard')!.entry.header.linkname, 'd/f');
        assert.is(by.get('d/fifo')!.entry.header.type, 'fifo');
        const sparse = by.get('d/sparse')!;
        assert.is(sparse.entry.header.type, 'file');
        assert.is(sparse.entry.header.size, 4 << 20);
        if (format !== 'ustar') assert.ok(sparse.entry.sparse && sparse.entry.sparse.length > 4, `${format} sparse map`);
        if (!skipBodies) {
          assert.is(by.get('d/f')!.data.toString(), 'hello');
          assert.is(sha(sparse.data), sparseSha, `${format} sparse content`);
        }
        if (format !== 'ustar') {
          assert.is(by.get(`${longName}/f`)!.data.toString(), skipBodies ? '' : 'deep');
          assert.is(by.get(longName)!.entry.header.type, 'directory');
          assert.is(by.get('d/longlink')!.entry.header.linkname, longLink);
        }
      }
    }
  });

  test('GNU sparse formats: old GNU, PAX 0.0, 0.1 and 1.0 expand to the same file', async () => {
    const { dir } = buildTree();
    const want = sha(readFileSync(join(dir, 'd/sparse')));
    const variants: [string, string[]][] = [
      ['old GNU', ['--format=gnu']],
      ['PAX 0.0', ['--format=pax', '--sparse-version=0.0']],
      ['PAX 0.1', ['--format=pax', '--sparse-version=0.1']],
      ['PAX 1.0', ['--format=pax', '--sparse-version=1.0']],
    ];
    for (const [label, flags] of variants) {
      const tar = execFileSync('tar', [...flags, '-S', '-cf', '-', '-C', dir, 'd/sparse', 'd/f']);
      const got = await readAll(chunked(tar, 1000));
      assert.is(got.length, 2, label);
      assert.is(got[0]!.entry.header.name, 'd/sparse', label);
      assert.is(got[0]!.entry.header.size, 4 << 20, label);
      assert.is(got[0]!.entry.sparse!.length, 31, label); // 30 segments and the tail marker
      assert.is(sha(got[0]!.data), want, label);
      assert.is(got[1]!.data.toString(), 'hello', label);
      assert.is(got[0]!.entry.offset, 0);
    }
  });

  test('GNU tar: huge owner ids (base-256 in gnu format, PAX records in pax format)', async () => {
    const dir = tempDir('imgx-tar-ids-');
    writeFileSync(join(dir, 'f'), 'x');
    for (const format of ['gnu', 'pax']) {
      const tar = execFileSync('tar', [`--format=${format}`, '--owner=big:4294967294', '--group=big:3000000000', '--mtime=@-100000', '-cf', '-', '-C', dir, 'f']);
      if (format === 'gnu') assert.is(tar[108]! & 0x80, 0x80, 'uid is base-256');
      const [g] = await readAll(chunked(tar));
      assert.equal([g!.entry.header.uid, g!.entry.header.gid, g!.entry.header.mtime], [4294967294, 3000000000, -100000], format);
    }
  });

  if (haveTool('setfattr')) {
    test('GNU tar --xattrs: binary values come through byte for byte', async () => {
      const dir = tempDir('imgx-tar-xattr-');
      const f = join(dir, 'f');
      writeFileSync(f, 'x');
      const value = Buffer.from([0x00, 0xff, 0x01, 0xfe, 0x0a, 0x3d, 0x80]);
      execFileSync('setfattr', ['-n', 'user.bin', '-v', '0x' + value.toString('hex'), f]);
      execFileSync('setfattr', ['-n', 'user.text', '-v', 'plain', f]);
      const tar = execFileSync('tar', ['--format=pax', '--xattrs', '--xattrs-include=user.*', '-cf', '-', '-C', dir, 'f']);
      const [g] = await readAll(chunked(tar, 10));
      assert.ok(g!.entry.header.pax!.get('SCHILY.xattr.user.bin')!.equals(value));
      assert.is(g!.entry.header.pax!.get('SCHILY.xattr.user.text')!.toString(), 'plain');
    });
  }

  if (process.getuid?.() === 0) {
    test('GNU tar: device nodes (as root)', async () => {
      const dir = tempDir('imgx-tar-dev-');
      execFileSync('mknod', [join(dir, 'null'), 'c', '1', '3']);
      execFileSync('mknod', [join(dir, 'loop'), 'b', '7', '200']);
      const tar = execFileSync('tar', ['--format=gnu', '-cf', '-', '-C', dir, 'null', 'loop']);
      const got = await readAll(chunked(tar));
      assert.equal(
        got.map((g) => [g.entry.header.name, g.entry.header.type, g.entry.header.devmajor, g.entry.header.devminor]),
        [
          ['null', 'char-device', 1, 3],
          ['loop', 'block-device', 7, 200],
        ],
      );
      assert.ok(lstatSync(join(dir, 'null')).isCharacterDevice());
    });
  }
}

// ---- broken archives --------------------------------------------------------------------------

test('truncated anywhere (in a header, data, padding, the end marker): an error naming the offset, or the entries up to an entry boundary; never a hang', async () => {
  const tar = makeTar([
    { name: 'a', content: 'x'.repeat(700) },
    { name: 'p'.repeat(120) + '/' + 'q'.repeat(120), content: 'pax', pax: { 'SCHILY.xattr.user.a': 'b' } },
    { name: 'd', type: 'directory' },
    { name: 'e', content: '' },
  ]);
  // Where an entry starts, and where the archive's data ends.
  const starts = (await readAll(chunked(tar), { skipBodies: true })).map((g) => g.entry.offset);
  const end = tar.length - 2 * BLOCK_SIZE;
  // Right after the second entry's PAX header: an extension with nothing after it ends the
  // archive there, as in Go.
  const paxSize = decodeHeader(tar.subarray(starts[1]!, starts[1]! + BLOCK_SIZE))!.size;
  const afterPax = starts[1]! + BLOCK_SIZE + paxSize + paddingFor(paxSize);
  // Around every block boundary, and inside blocks: headers, PAX records, data and padding.
  const cuts = new Set<number>();
  for (let b = 0; b <= tar.length; b += BLOCK_SIZE) for (const d of [-1, 0, 1, 100, 257, 345, 511]) cuts.add(Math.min(tar.length, Math.max(0, b + d)));
  for (const cut of [...cuts].sort((x, y) => x - y)) {
    const input = tar.subarray(0, cut);
    const boundary = starts.indexOf(cut) >= 0 || cut === afterPax || cut === end || cut === end + BLOCK_SIZE || cut === end + 2 * BLOCK_SIZE;
    for (const mode of ['skip', 'bodies'] as const) {
      const label = `cut at ${cut} (${mode})`;
      const run = noHang(readAll(chunked(input, 300), { skipBodies: mode === 'skip', what: 'layer 9' }), label);
      if (boundary) {
        const got = await run;
        assert.is(got.length, starts.filter((s) => s < cut).length - (cut === afterPax ? 1 : 0), label);
      } else {
        const e = await rejects(run, 'IMGX_BAD_ARCHIVE', /^layer 9: .* at offset \d+/);
        assert.match(e.message, /truncated|end-of-archive/, label);
      }
    }
  }
});

test('a truncated body errors the body stream and the generator', async () => {
  const tar = makeTar([{ name: 'a', content: randomBytes(100_000) }]).subarray(0, 60_000);
  let bodyError: unknown;
  const run = (async () => {
    for await (const e of readTar(chunked(tar, 8192))) {
      try {
        await buffer(e.body);
      } catch (err) {
        bodyError = err;
      }
    }
  })();
  await rejects(noHang(run, 'truncated body'), 'IMGX_BAD_ARCHIVE', /truncated/);
  assert.is((bodyError as ImgxError).code, 'IMGX_BAD_ARCHIVE');
});

test('a bad checksum names the offset; garbage is not a tar archive', async () => {
  const tar = sample();
  const second = (await readAll(chunked(tar), { skipBodies: true }))[1]!.entry.offset;
  const broken = Buffer.from(tar);
  broken[second + 3] = broken[second + 3]! ^ 0x55;
  await rejects(readAll(chunked(broken), { what: 'layer 1' }), 'IMGX_BAD_ARCHIVE', new RegExp(`layer 1: corrupt tar header: .*checksum.* at offset ${second}`));
  await rejects(readAll(chunked(randomBytes(5000)), { what: 'blob' }), 'IMGX_BAD_ARCHIVE', /blob: not a tar archive: .* at offset 0/);
  await rejects(readAll(chunked(Buffer.from('hello, this is not a tar'))), 'IMGX_BAD_ARCHIVE', /truncated/);
});

test('an extension header with no entry after it describes nothing: the archive ends (Go: pax-path-hdr.tar)', async () => {
  const body = encodePax({ path: 'x' });
  const lone = Buffer.concat([encodeHeader({ name: 'PaxHeader', type: 'pax-header', size: body.length }), body, Buffer.alloc(paddingFor(body.length))]);
  assert.is((await readAll(chunked(lone))).length, 0);
  assert.is((await readAll(chunked(Buffer.concat([makeTar([{ name: 'a', content: '1' }]).subarray(0, 1024), lone, Buffer.alloc(1024)])))).length, 1);
  const huge = encodeHeader({ name: 'PaxHeader', type: 'pax-header', size: 50 << 20 });
  await rejects(readAll(chunked(huge)), 'IMGX_BAD_ARCHIVE', /pax-header entry of 52428800 bytes/);
});

test('endless extension headers: each replaces the one before, nothing accumulates', async () => {
  const body = encodePax({ comment: 'c'.repeat(1000 << 10) });
  const one = Buffer.concat([encodeHeader({ name: 'PaxHeader', type: 'pax-header', size: body.length }), body, Buffer.alloc(paddingFor(body.length))]);
  const many = Readable.from(
    (function* () {
      for (let i = 0; i < 100; i++) yield one;
    })(),
  );
  assert.is((await noHang(readAll(many, { skipBodies: true }), 'pax flood')).length, 0);
});

test('random corruption: every run ends, in entries or IMGX_BAD_ARCHIVE', async () => {
  const tar = sample();
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let i = 0; i < 300; i++) {
    const b = Buffer.from(tar);
    for (let k = 0; k < 1 + rand(8); k++) b[rand(Math.min(b.length, 4096))] = rand(256);
    const cut = rand(3) === 0 ? rand(b.length) : b.length;
    try {
      await noHang(readAll(chunked(b.subarray(0, cut), 64 + rand(4000)), { skipBodies: rand(2) === 0 }), `fuzz ${i}`);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'IMGX_BAD_ARCHIVE', (e as Error).message);
    }
  }
});

test('a lone zero block followed by more entries is refused (as Go tar refuses it)', async () => {
  const a = makeTar([{ name: 'a', content: 'aa' }]);
  const hidden = makeTar([{ name: 'hidden', content: 'hh' }]);
  const tar = Buffer.concat([a.subarray(0, a.length - BLOCK_SIZE), hidden]);
  await rejects(readAll(chunked(tar)), 'IMGX_BAD_ARCHIVE', new RegExp(`lone zero block followed by more data at offset ${a.length - 2 * BLOCK_SIZE}`));
  // After the full marker, whatever follows is not part of the archive.
  assert.is((await readAll(chunked(Buffer.concat([a, hidden])))).length, 1);
});

test('a stream ending on an entry boundary without the zero blocks is accepted', async () => {
  const tar = makeTar([{ name: 'a', content: 'aa' }, { name: 'b', content: 'bb' }]);
  const got = await readAll(chunked(tar.subarray(0, tar.length - 1024)));
  assert.equal(
    got.map((g) => g.data.toString()),
    ['aa', 'bb'],
  );
  assert.is((await readAll(chunked(Buffer.alloc(0)))).length, 0);
});

test('reads to the end of the input after the end-of-archive marker (so a digest check there runs)', async () => {
  const tar = Buffer.concat([makeTar([{ name: 'a', content: 'aa' }]), Buffer.alloc(10240), Buffer.from('trailing')]);
  const input = chunked(tar, 512);
  let ended = false;
  input.on('end', () => (ended = true));
  await readAll(input, { skipBodies: true });
  assert.ok(ended);
  // An error at the very end of the input comes through unchanged.
  const failing = new Readable({
    read() {
      this.push(tar);
      this.destroy(new ImgxError('IMGX_DIFFID_MISMATCH', 'layer 0: diff_id mismatch'));
    },
  });
  await rejects(readAll(failing, { skipBodies: true }), 'IMGX_DIFFID_MISMATCH');
});

test('stopping early destroys the input', async () => {
  const input = chunked(sample(), 1000);
  for await (const e of readTar(input)) {
    assert.is(e.header.name, 'etc/');
    break;
  }
  assert.ok(input.destroyed);
});

test.run();

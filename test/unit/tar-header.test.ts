import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BLOCK_SIZE,
  TarExtensions,
  checksums,
  decodeHeader,
  decodeNumber,
  encodeEntryHeaders,
  encodeHeader,
  encodeNumber,
  encodePax,
  isExtension,
  isHeaderOnly,
  paddingFor,
  parsePax,
  type TarHeader,
} from '../../src/layers/tar-header.ts';
import { makeTar } from '../fixtures/tar.ts';
import { haveTool } from '../helpers/tools.ts';
import { tempDir } from '../helpers/tempdir.ts';

/** Walks a whole archive in memory, applying extensions, as the streaming codec will. */
function walk(tar: Buffer): { header: TarHeader; data: Buffer }[] {
  const out: { header: TarHeader; data: Buffer }[] = [];
  const ext = new TarExtensions();
  let pos = 0;
  while (pos + BLOCK_SIZE <= tar.length) {
    const raw = decodeHeader(tar.subarray(pos, pos + BLOCK_SIZE));
    pos += BLOCK_SIZE;
    if (!raw) break;
    if (isExtension(raw.type)) {
      ext.absorb(raw, tar.subarray(pos, pos + raw.size));
      pos += raw.size + paddingFor(raw.size);
      continue;
    }
    const header = ext.apply(raw);
    const size = isHeaderOnly(header.type) ? 0 : header.size;
    out.push({ header, data: tar.subarray(pos, pos + size) });
    pos += size + paddingFor(size);
  }
  assert.not.ok(ext.pending);
  return out;
}

function expectBadArchive(fn: () => unknown, pattern: RegExp) {
  try {
    fn();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'IMGX_BAD_ARCHIVE');
    assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable('expected IMGX_BAD_ARCHIVE');
}

test('round trip of a ustar header', () => {
  const block = encodeHeader({ name: 'etc/passwd', mode: 0o600, uid: 1000, gid: 100, size: 1234, mtime: 1700000000, uname: 'u', gname: 'g' });
  assert.is(block.length, BLOCK_SIZE);
  const h = decodeHeader(block)!;
  assert.is(h.name, 'etc/passwd');
  assert.is(h.mode, 0o600);
  assert.is(h.uid, 1000);
  assert.is(h.gid, 100);
  assert.is(h.size, 1234);
  assert.is(h.mtime, 1700000000);
  assert.is(h.type, 'file');
  assert.is(h.typeflag, '0');
  assert.is(h.uname, 'u');
  assert.is(h.gname, 'g');
  assert.is(h.format, 'ustar');
  assert.is(h.pax, undefined);
});

test('long names split into the ustar prefix field', () => {
  const name = 'a'.repeat(120) + '/' + 'b'.repeat(90);
  const h = decodeHeader(encodeHeader({ name }))!;
  assert.is(h.name, name);
  assert.throws(() => encodeHeader({ name: 'c'.repeat(101) }), /name too long/);
});

test('an all-zero block is the end marker', () => {
  assert.is(decodeHeader(Buffer.alloc(BLOCK_SIZE)), null);
});

test('octal numbers: NUL or space terminated, leading spaces, empty', () => {
  assert.is(decodeNumber(Buffer.from('0000644\0')), 0o644);
  assert.is(decodeNumber(Buffer.from('   644 \0')), 0o644);
  assert.is(decodeNumber(Buffer.from('00000000017 ')), 0o17);
  assert.is(decodeNumber(Buffer.from('\0\0\0\0\0\0\0\0')), 0);
  assert.is(decodeNumber(Buffer.from('77777777777\0')), 8 ** 11 - 1);
  expectBadArchive(() => decodeNumber(Buffer.from('0000x44\0'), 'mode'), /mode is not octal/);
});

test('base-256 numbers, positive and negative', () => {
  // 8 GiB: one more than 11 octal digits allow.
  const big = 8 ** 11;
  const field = encodeNumber(big, 12);
  assert.is(field[0]! & 0x80, 0x80);
  assert.is(decodeNumber(field), big);
  assert.is(decodeNumber(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0])), 2 ** 32);
  assert.is(decodeNumber(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), -1);
  assert.is(decodeNumber(encodeNumber(-1700000000, 12)), -1700000000);
  assert.is(decodeNumber(encodeNumber(Number.MAX_SAFE_INTEGER, 12)), Number.MAX_SAFE_INTEGER);
  expectBadArchive(() => decodeNumber(Buffer.from([0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'size'), /size out of range/);
  // A big size survives a whole header.
  const h = decodeHeader(encodeHeader({ name: 'huge', size: 10 * 2 ** 30, mtime: -5 }))!;
  assert.is(h.size, 10 * 2 ** 30);
  assert.is(h.mtime, -5);
});

test('checksum: mismatch refused, signed sums accepted', () => {
  const block = encodeHeader({ name: 'x' });
  const corrupt = Buffer.from(block);
  corrupt[0] = 'y'.charCodeAt(0);
  expectBadArchive(() => decodeHeader(corrupt), /checksum mismatch/);

  // Old tars summed bytes as signed chars: differs from the unsigned sum once a byte is >= 0x80.
  const signed = encodeHeader({ name: 'caf\u00e9' });
  const { signed: sum } = checksums(signed);
  signed.write((sum >>> 0).toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  assert.ok(sum !== checksums(signed).unsigned);
  assert.is(decodeHeader(signed)!.name, 'caf\u00e9');
});

test('typeflags', () => {
  const types = ['file', 'hardlink', 'symlink', 'char-device', 'block-device', 'directory', 'fifo', 'pax-header', 'pax-global-header', 'gnu-long-name', 'gnu-long-link'] as const;
  for (const type of types) assert.is(decodeHeader(encodeHeader({ name: 'n', type }))!.type, type);
  assert.is(decodeHeader(encodeHeader({ name: 'n', typeflag: '7' }))!.type, 'file');
  assert.is(decodeHeader(encodeHeader({ name: 'n', typeflag: '\0' }))!.type, 'file');
  // v7 directories: NUL typeflag, trailing slash.
  assert.is(decodeHeader(encodeHeader({ name: 'd/', typeflag: '\0' }))!.type, 'directory');
  const sparse = decodeHeader(encodeHeader({ name: 'n', typeflag: 'S' }))!;
  assert.is(sparse.type, 'unknown');
  assert.is(sparse.typeflag, 'S');
  const link = decodeHeader(encodeHeader({ name: 'l', type: 'symlink', linkname: '../target' }))!;
  assert.is(link.linkname, '../target');
  const dev = decodeHeader(encodeHeader({ name: 'null', type: 'char-device', devmajor: 1, devminor: 3 }))!;
  assert.is(dev.devmajor, 1);
  assert.is(dev.devminor, 3);
});

test('old GNU headers and v7 headers', () => {
  const gnu = decodeHeader(encodeHeader({ name: 'g', uname: 'root' }, { format: 'gnu' }))!;
  assert.is(gnu.format, 'gnu');
  assert.is(gnu.uname, 'root');
  const v7 = Buffer.from(encodeHeader({ name: 'v', uname: 'root' }));
  v7.fill(0, 257, BLOCK_SIZE);
  v7.write(checksums(v7).unsigned.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const h = decodeHeader(v7)!;
  assert.is(h.format, 'v7');
  assert.is(h.name, 'v');
  assert.is(h.uname, '');
});

test('PAX records: binary values kept byte for byte', () => {
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x0a, 0xff, 0xfe, 0x3d, 0x00, 0x20]);
  const body = encodePax([['SCHILY.xattr.security.capability', cap], ['path', 'd\u00e9j\u00e0/vu']]);
  const records = parsePax(body);
  assert.ok(records.get('SCHILY.xattr.security.capability')!.equals(cap));
  assert.is(records.get('path')!.toString('utf8'), 'd\u00e9j\u00e0/vu');
  // Record lengths count their own digits, across the 9 → 10 and 99 → 100 boundaries.
  for (const n of [1, 2, 3, 4, 5, 6, 85, 86, 87, 88, 89, 90, 95]) {
    const v = 'v'.repeat(n);
    assert.is(parsePax(encodePax({ k: v })).get('k')!.toString(), v);
  }
  // Trailing NUL padding after the last record is tolerated.
  assert.is(parsePax(Buffer.concat([encodePax({ a: 'b' }), Buffer.alloc(20)])).get('a')!.toString(), 'b');
});

test('PAX records: malformed bodies refused', () => {
  expectBadArchive(() => parsePax(Buffer.from('30 path=short\n')), /length/);
  expectBadArchive(() => parsePax(Buffer.from('12 path=abc!')), /length/);
  expectBadArchive(() => parsePax(Buffer.from('path=abc\n')), /length/);
  expectBadArchive(() => parsePax(Buffer.from('9 =value\n')), /key/);
  expectBadArchive(() => parsePax(Buffer.from('5 ab\n')), /length|key/);
});

test('PAX x applies to the next entry only; g to every later one', () => {
  const xattr = Buffer.from([0, 1, 2, 255]);
  const g = encodePax({ uid: '4242', comment: 'hello' });
  const x = encodePax({ path: 'long/' + 'p'.repeat(200), linkpath: 't'.repeat(150), size: '3', gid: '77', mtime: '1700000000.25', 'SCHILY.xattr.user.bin': xattr });
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc(paddingFor(b.length))]);
  const archive = Buffer.concat([
    encodeHeader({ name: 'g', type: 'pax-global-header', size: g.length }),
    pad(g),
    encodeHeader({ name: 'x', type: 'pax-header', size: x.length }),
    pad(x),
    encodeHeader({ name: 'short', size: 999 }),
    pad(Buffer.from('abc')),
    encodeHeader({ name: 'second', size: 2 }),
    pad(Buffer.from('de')),
    Buffer.alloc(1024),
  ]);
  const [first, second] = walk(archive);
  assert.is(first!.header.name, 'long/' + 'p'.repeat(200));
  assert.is(first!.header.linkname, 't'.repeat(150));
  assert.is(first!.header.size, 3);
  assert.is(first!.data.toString(), 'abc');
  assert.is(first!.header.uid, 4242);
  assert.is(first!.header.gid, 77);
  assert.is(first!.header.mtime, 1700000000.25);
  assert.ok(first!.header.pax!.get('SCHILY.xattr.user.bin')!.equals(xattr));
  assert.is(second!.header.name, 'second');
  assert.is(second!.header.uid, 4242, 'global uid still applies');
  assert.is(second!.header.gid, 0, 'per-entry gid does not');
  assert.is(second!.header.pax!.get('comment')!.toString(), 'hello');
  assert.not.ok(second!.header.pax!.has('SCHILY.xattr.user.bin'));
});

test('an empty PAX value removes a global record', () => {
  const ext = new TarExtensions();
  const gh = decodeHeader(encodeHeader({ name: 'g', type: 'pax-global-header' }))!;
  const xh = decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!;
  ext.absorb(gh, encodePax({ uname: 'global', comment: 'c' }));
  ext.absorb(xh, encodePax({ uname: '' }));
  const h = ext.apply(decodeHeader(encodeHeader({ name: 'f', uname: 'own' }))!);
  assert.is(h.uname, 'own');
  assert.is(h.pax!.get('comment')!.toString(), 'c');
  assert.not.ok(h.pax!.has('uname'));
  ext.absorb(gh, encodePax({ comment: '', uname: '' }));
  assert.is(ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!).pax, undefined);
});

test('bad PAX numbers are refused', () => {
  const ext = new TarExtensions();
  ext.absorb(decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!, encodePax({ size: '-1' }));
  expectBadArchive(() => ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!), /PAX size/);
});

test('GNU long names (L) and long link names (K)', () => {
  const longName = 'dir/' + 'n'.repeat(300);
  const longLink = 'target/' + 'k'.repeat(300);
  const nul = (s: string) => Buffer.from(s + '\0');
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc(paddingFor(b.length))]);
  const archive = Buffer.concat([
    encodeHeader({ name: '././@LongLink', type: 'gnu-long-name', size: longName.length + 1 }, { format: 'gnu' }),
    pad(nul(longName)),
    encodeHeader({ name: '././@LongLink', type: 'gnu-long-link', size: longLink.length + 1 }, { format: 'gnu' }),
    pad(nul(longLink)),
    encodeHeader({ name: 'truncated', type: 'symlink', linkname: 'trunc' }, { format: 'gnu' }),
    encodeHeader({ name: 'plain', type: 'symlink', linkname: 'other' }, { format: 'gnu' }),
    Buffer.alloc(1024),
  ]);
  const [a, b] = walk(archive);
  assert.is(a!.header.name, longName);
  assert.is(a!.header.linkname, longLink);
  assert.is(b!.header.name, 'plain');
  assert.is(b!.header.linkname, 'other');
});

test('PAX path wins over a GNU long name', () => {
  const ext = new TarExtensions();
  ext.absorb(decodeHeader(encodeHeader({ name: 'L', type: 'gnu-long-name' }))!, Buffer.from('gnu-name\0'));
  ext.absorb(decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!, encodePax({ path: 'pax-name' }));
  assert.ok(ext.pending);
  assert.is(ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!).name, 'pax-name');
  assert.not.ok(ext.pending);
});

test('encodeEntryHeaders adds PAX only when needed', () => {
  assert.is(encodeEntryHeaders({ name: 'short', size: 1 }).length, BLOCK_SIZE);
  const cap = Buffer.from([1, 0, 0, 2]);
  const tar = makeTar([
    { name: 'x/' + 'y'.repeat(300), content: 'long name' },
    { name: 'link', type: 'symlink', linkname: 'z'.repeat(200) },
    { name: 'bin', content: 'b', pax: { 'SCHILY.xattr.security.capability': cap } },
    { name: 'frac', mtime: 12.5, content: '' },
  ]);
  const entries = walk(tar);
  assert.equal(entries.map((e) => e.header.name), ['x/' + 'y'.repeat(300), 'link', 'bin', 'frac']);
  assert.is(entries[0]!.data.toString(), 'long name');
  assert.is(entries[1]!.header.linkname, 'z'.repeat(200));
  assert.ok(entries[2]!.header.pax!.get('SCHILY.xattr.security.capability')!.equals(cap));
  assert.is(entries[3]!.header.mtime, 12.5);
});

if (haveTool('tar')) {
  test('reads what GNU tar writes (gnu and pax formats, long names, links)', () => {
    const dir = tempDir();
    const src = join(dir, 'src');
    const deep = join(src, 'd'.repeat(60), 'e'.repeat(60));
    mkdirSync(deep, { recursive: true });
    const longFile = join(deep, 'f'.repeat(150));
    writeFileSync(longFile, 'hello');
    symlinkSync('../' + 'l'.repeat(120), join(src, 'sym'));
    const read: string[] = [];
    for (const format of ['gnu', 'pax', 'ustar', 'v7']) {
      const file = join(dir, `${format}.tar`);
      let tar: Buffer;
      try {
        execFileSync('tar', ['--format', format, '-C', src, '-cf', file, '--sort=name', '.'], { stdio: 'ignore' });
        tar = readFileSync(file);
      } catch {
        // ustar and v7 cannot hold these names: GNU tar refuses, which is fine.
        continue;
      }
      const byName = new Map(walk(tar).map((e) => [e.header.name, e]));
      const rel = './' + longFile.slice(src.length + 1);
      assert.is(byName.get(rel)?.data.toString(), 'hello', `${format}: long file name`);
      assert.is(byName.get('./sym')?.header.linkname, '../' + 'l'.repeat(120), `${format}: long link`);
      read.push(format);
    }
    assert.equal(read, ['gnu', 'pax']);
  });
}

if (haveTool('tar')) {
  test('GNU tar reads what the encoder writes (PAX names, links, big ids, xattrs)', () => {
    const dir = tempDir();
    const name = 'p/' + 'q'.repeat(180) + '/file';
    const link = 'r'.repeat(150);
    const file = join(dir, 'ours.tar');
    writeFileSync(
      file,
      makeTar([
        { name, content: 'payload', uid: 2 ** 22, gid: 7 },
        { name: 'sym', type: 'symlink', linkname: link },
        { name: 'x', content: 'x', pax: { 'SCHILY.xattr.user.k': 'v' } },
      ]),
    );
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' });
    assert.match(listing, new RegExp(`4194304/7 .* ${name}\n`));
    assert.match(listing, new RegExp(`sym -> ${link}\n`));
    const out = join(dir, 'out');
    mkdirSync(out);
    execFileSync('tar', ['-xf', file, '-C', out]);
    assert.is(readFileSync(join(out, name), 'utf8'), 'payload');
  });
}

test.run();

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
  // v7 directories: NUL typeflag, trailing slash, once the name is final (Go: after PAX and GNU names).
  assert.is(new TarExtensions().apply(decodeHeader(encodeHeader({ name: 'd/', typeflag: '\0' }))!).type, 'directory');
  assert.is(new TarExtensions().apply(decodeHeader(encodeHeader({ name: 'd/', typeflag: '0' }))!).type, 'file');
  const renamed = new TarExtensions();
  renamed.absorb(decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!, encodePax({ path: 'f' }));
  assert.is(renamed.apply(decodeHeader(encodeHeader({ name: 'd/', typeflag: '\0' }))!).type, 'file');
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
  // As in Go: nothing may follow the last record, not even NUL padding.
  expectBadArchive(() => parsePax(Buffer.concat([encodePax({ a: 'b' }), Buffer.alloc(20)])), /length/);
});

test('PAX records as Go parses them (strconv_test.go vectors)', () => {
  const ok = (text: string, key: string, value: string) => assert.is(parsePax(Buffer.from(text, 'latin1')).get(key)?.toString('latin1'), value, text);
  ok('19 path=/etc/hosts\n', 'path', '/etc/hosts');
  ok('9 foo=ba\n', 'foo', 'ba');
  ok('18 foo=b=\nar=\n==\x00\n', 'foo', 'b=\nar=\n==\x00');
  ok('27 foo=hello9 foo=ba\nworld\n', 'foo', 'hello9 foo=ba\nworld');
  // Leading zeros and a sign in the length, as strconv.ParseInt takes them.
  ok('0012 foo=ba\n', 'foo', 'ba');
  ok('+11 foo=ba\n', 'foo', 'ba');
  const assertBad = (text: string) => expectBadArchive(() => parsePax(Buffer.from(text, 'latin1')), /PAX/);
  for (const bad of ['6 k=v\n\n', '11 foo=bar\n\x00', '17 \x00hello=\x00world\n', '1 k=1\n', '6 k~1\n', '6_k=1\n', '6 k=1 ', '632 k=1\n', '16 longkeyname=hahaha\n', '3 somelongkey=\n', '50 tooshort=\n', '-9 foo=ba\n']) assertBad(bad);
  // A NUL is refused in a key (xattr names included), and in the value of a name record only.
  expectBadArchive(() => parsePax(encodePax([['SCHILY.xattr.user.a\0b', 'v']])), /NUL/);
  expectBadArchive(() => parsePax(encodePax([['linkpath', 'a\0b']])), /NUL/);
  assert.is(parsePax(encodePax([['SCHILY.xattr.user.bin', Buffer.from([0, 0])]])).get('SCHILY.xattr.user.bin')!.length, 2);
  // Numbers with leading zeros are valid (Go's pax-pos-size-file.tar: size=000…0999).
  const ext = new TarExtensions();
  ext.absorb(decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!, encodePax({ size: '000000000000000000000999', uid: '+0007', mtime: '-0001.5' }));
  const h = ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!);
  assert.is(h.size, 999);
  assert.is(h.uid, 7);
  assert.is(h.mtime, -1.5);
});

test('PAX records: malformed bodies refused', () => {
  expectBadArchive(() => parsePax(Buffer.from('30 path=short\n')), /length/);
  expectBadArchive(() => parsePax(Buffer.from('12 path=abc!')), /length/);
  expectBadArchive(() => parsePax(Buffer.from('path=abc\n')), /length/);
  expectBadArchive(() => parsePax(Buffer.from('9 =value\n')), /key/);
  expectBadArchive(() => parsePax(Buffer.from('5 ab\n')), /length|key/);
});

test('PAX x applies to the next entry only; g is checked and ignored (Go, containerd)', () => {
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
  assert.is(first!.header.uid, 0, 'the global uid does not apply');
  assert.is(first!.header.gid, 77);
  assert.is(first!.header.mtime, 1700000000.25);
  assert.ok(first!.header.pax!.get('SCHILY.xattr.user.bin')!.equals(xattr));
  assert.is(first!.header.pax!.has('comment'), false, 'no global record reaches an entry');
  assert.is(second!.header.name, 'second');
  assert.is(second!.header.uid, 0, 'the global uid does not apply');
  assert.is(second!.header.gid, 0, 'per-entry gid does not');
  assert.is(second!.header.pax, undefined);
});

test('an empty PAX value keeps the header field; a global header drops pending extensions (Go)', () => {
  const ext = new TarExtensions();
  const gh = decodeHeader(encodeHeader({ name: 'g', type: 'pax-global-header' }))!;
  const xh = decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!;
  ext.absorb(xh, encodePax({ uname: '', path: '' }));
  const h = ext.apply(decodeHeader(encodeHeader({ name: 'f', uname: 'own' }))!);
  assert.is(h.uname, 'own');
  assert.is(h.name, 'f');
  // x, then g, then the entry: Go returns the g header as an entry, which ends the x's turn.
  ext.absorb(xh, encodePax({ path: 'renamed' }));
  ext.absorb(decodeHeader(encodeHeader({ name: 'L', type: 'gnu-long-name' }))!, Buffer.from('gnu-name\0'));
  ext.absorb(gh, encodePax({ path: 'global', mtime: '1500000000.0' }));
  assert.not.ok(ext.pending);
  const after = ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!);
  assert.is(after.name, 'f');
  assert.is(after.mtime, 0);
  // A global header is still checked as Go checks it.
  expectBadArchive(() => ext.absorb(gh, encodePax({ mtime: 'soon' })), /mtime/);
});

test('of several PAX headers in a row the last alone applies (Go: pax-multi-hdrs.tar)', () => {
  const ext = new TarExtensions();
  const xh = decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!;
  ext.absorb(xh, encodePax({ path: 'PAX1/PAX1/long-path-name', uid: '5' }));
  ext.absorb(xh, encodePax({ linkpath: 'PAX4/PAX4/long-linkpath-name' }));
  const h = ext.apply(decodeHeader(encodeHeader({ name: 'bar', type: 'symlink', linkname: 'short' }))!);
  assert.is(h.name, 'bar');
  assert.is(h.linkname, 'PAX4/PAX4/long-linkpath-name');
  assert.is(h.uid, 0);
  assert.equal([...h.pax!.keys()], ['linkpath']);
});

test('bad PAX numbers are refused', () => {
  const ext = new TarExtensions();
  const xh = decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!;
  for (const [k, v] of [['size', '1e3'], ['size', '12 '], ['uid', '-1'], ['gid', '4294967296'], ['mtime', '.5'], ['mtime', '1.2.3'], ['atime', 'x'], ['size', '99999999999999999999']]) {
    ext.absorb(xh, encodePax({ [k!]: v! }));
    expectBadArchive(() => ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!), new RegExp(`PAX ${k}`));
  }
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

test('a GNU long name wins over a PAX path (Go applies it last)', () => {
  const ext = new TarExtensions();
  ext.absorb(decodeHeader(encodeHeader({ name: 'L', type: 'gnu-long-name' }))!, Buffer.from('gnu-name\0'));
  ext.absorb(decodeHeader(encodeHeader({ name: 'x', type: 'pax-header' }))!, encodePax({ path: 'pax-name' }));
  assert.ok(ext.pending);
  assert.is(ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!).name, 'gnu-name');
  assert.not.ok(ext.pending);
  // The last of several long names (Go: gnu-multi-hdrs.tar).
  ext.absorb(decodeHeader(encodeHeader({ name: 'L', type: 'gnu-long-name' }))!, Buffer.from('GNU1\0'));
  ext.absorb(decodeHeader(encodeHeader({ name: 'L', type: 'gnu-long-name' }))!, Buffer.from('GNU2/GNU2/long-path-name\0'));
  assert.is(ext.apply(decodeHeader(encodeHeader({ name: 'f' }))!).name, 'GNU2/GNU2/long-path-name');
});

test('names keep their bytes: not UTF-8, in every field (Go: gnu-not-utf8.tar)', () => {
  const raw = Buffer.from('hi\x80\x81\x82\x83bye', 'latin1');
  const block = encodeHeader({ name: 'x', linkname: 'y', uname: 'u' });
  block.fill(0, 0, 100);
  raw.copy(block, 0);
  Buffer.from([0xff, 0x2f, 0xfe]).copy(block, 157);
  block.fill(0x20, 148, 156);
  block.write(checksums(block).unsigned.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  const h = decodeHeader(block)!;
  assert.is(h.name, 'hi\udc80\udc81\udc82\udc83bye');
  assert.is(h.linkname, '\udcff/\udcfe');
  // Encoding gives the same bytes back.
  assert.ok(encodeHeader({ name: h.name, linkname: h.linkname }).subarray(0, raw.length).equals(raw));
  const pax = encodePax([['path', h.name]]);
  assert.ok(pax.includes(raw));
  assert.is(parsePax(pax).get('path')!.toString('latin1'), raw.toString('latin1'));
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

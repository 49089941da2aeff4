// Flatten: metadata carried through — modes with setuid/setgid/sticky, owners and names, mtimes,
// binary xattrs, device numbers, fifos, unknown entry types.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { xattrsOf } from '../../src/layers/scan.ts';
import { dir, file, flatten, paths, rejectsWith, shape } from './flatten-helpers.ts';

// A v2 security.capability value: binary, with NULs and bytes above 0x7f (cap_net_bind_service+ep).
const CAP = Buffer.from('0100000200040000000000000000000000000000', 'hex');
const BINARY = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x3d, 0x20, 0xc3, 0x28]);

test('modes keep setuid, setgid and sticky; type bits are dropped', async () => {
  const f = await flatten([[file('su', 'x', { mode: 0o4755 }), file('sg', 'x', { mode: 0o2711 }), dir('tmp/', { mode: 0o1777 }), file('typed', 'x', { mode: 0o100644 })]]);
  assert.is(f.byPath.get('su')!.mode, 0o4755);
  assert.is(f.byPath.get('sg')!.mode, 0o2711);
  assert.is(f.byPath.get('tmp')!.mode, 0o1777);
  assert.is(f.byPath.get('typed')!.mode, 0o644);
});

test('owners, user and group names, large ids', async () => {
  const f = await flatten([[file('a', 'x', { uid: 1000, gid: 100, uname: 'alice', gname: 'users' }), file('big', 'x', { uid: 4_000_000_000, gid: 3_000_000_000 }), file('anon', 'x')]]);
  const a = f.byPath.get('a')!;
  assert.equal([a.uid, a.gid, a.uname, a.gname], [1000, 100, 'alice', 'users']);
  const big = f.byPath.get('big')!;
  assert.equal([big.uid, big.gid], [4_000_000_000, 3_000_000_000]);
  assert.is(f.byPath.get('anon')!.uname, undefined);
});

test('mtimes, fractional ones from PAX and negative ones included', async () => {
  const f = await flatten([[file('int', 'x', { mtime: 1700000000 }), file('frac', 'x', { mtime: 1700000000.123456 }), file('neg', 'x', { mtime: -86400 }), dir('d/', { mtime: 42 })]]);
  assert.is(f.byPath.get('int')!.mtime, 1700000000);
  assert.ok(Math.abs(f.byPath.get('frac')!.mtime - 1700000000.123456) < 1e-6);
  assert.is(f.byPath.get('neg')!.mtime, -86400);
  assert.is(f.byPath.get('d')!.mtime, 42);
});

test('SCHILY xattrs come through byte for byte, binary values included', async () => {
  const f = await flatten([
    [
      file('ping', 'x', { pax: { 'SCHILY.xattr.security.capability': CAP, 'SCHILY.xattr.user.bin': BINARY, 'SCHILY.xattr.user.empty': Buffer.alloc(0) } }),
      dir('d/', { pax: { 'SCHILY.xattr.user.dir': 'v' } }),
      file('plain', 'x'),
    ],
  ]);
  const x = f.byPath.get('ping')!.xattrs;
  assert.ok(x.get('security.capability')!.equals(CAP));
  assert.ok(x.get('user.bin')!.equals(BINARY));
  // An empty per-entry PAX value means "delete the record" in POSIX: the reader drops it.
  assert.is(f.byPath.get('d')!.xattrs.get('user.dir')!.toString(), 'v');
  assert.is(f.byPath.get('plain')!.xattrs.size, 0);
});

test('a directory entry over a directory replaces its xattrs', async () => {
  const f = await flatten([[dir('d/', { pax: { 'SCHILY.xattr.user.a': '1' } })], [dir('d/', { pax: { 'SCHILY.xattr.user.b': '2' } })]]);
  assert.equal([...f.byPath.get('d')!.xattrs.keys()], ['user.b']);
});

test('hardlinked paths share the inode xattrs', async () => {
  const f = await flatten([[file('a', 'x', { pax: { 'SCHILY.xattr.security.capability': CAP } }), { name: 'b', type: 'hardlink', linkname: 'a' }]]);
  assert.ok(f.byPath.get('b')!.xattrs.get('security.capability')!.equals(CAP));
});

test('LIBARCHIVE xattrs (URL-encoded names, base64 values) are read; SCHILY wins on a clash', () => {
  const pax = new Map<string, Buffer>([
    ['LIBARCHIVE.xattr.user.caf%C3%A9', Buffer.from(BINARY.toString('base64'))],
    ['LIBARCHIVE.xattr.user.both', Buffer.from(Buffer.from('lib').toString('base64'))],
    ['SCHILY.xattr.user.both', Buffer.from('schily')],
    ['path', Buffer.from('ignored')],
  ]);
  const x = xattrsOf(pax)!;
  assert.ok(x.get('user.café')!.equals(BINARY));
  assert.is(x.get('user.both')!.toString(), 'schily');
  assert.is(x.size, 2);
  assert.is(xattrsOf(new Map([['mtime', Buffer.from('1')]])), undefined);
});

test('device nodes and fifos keep their numbers and metadata', async () => {
  const f = await flatten([
    [
      dir('dev/'),
      { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
      { name: 'dev/big', type: 'char-device', devmajor: 4095, devminor: 1048575 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    ],
  ]);
  const n = f.byPath.get('dev/null')!;
  assert.equal([n.type, n.devmajor, n.devminor, n.mode], ['char-device', 1, 3, 0o666]);
  const s = f.byPath.get('dev/sda')!;
  assert.equal([s.type, s.devmajor, s.devminor, s.gid], ['block-device', 8, 0, 6]);
  assert.equal([f.byPath.get('dev/big')!.devmajor, f.byPath.get('dev/big')!.devminor], [4095, 1048575]);
  const p = f.byPath.get('run/fifo')!;
  assert.equal([p.type, p.mode, p.size, p.devmajor], ['fifo', 0o600, 0, undefined]);
});

test('symlink targets are kept exactly as the layer gave them', async () => {
  const f = await flatten([[{ name: 'abs', type: 'symlink', linkname: '/etc/../../x' }, { name: 'rel', type: 'symlink', linkname: '../lib//x/' }]]);
  assert.is(f.byPath.get('abs')!.linkname, '/etc/../../x');
  assert.is(f.byPath.get('rel')!.linkname, '../lib//x/');
  assert.is(f.byPath.get('abs')!.size, 0);
});

test('unknown entry types are skipped with a warning (an error with --strict)', async () => {
  const layer = [{ name: 'vol', typeflag: 'V' }, file('a', 'x')];
  const f = await flatten([layer]);
  assert.equal(paths(f), ['a']);
  assert.is(f.warnings.count('IMGX_UNKNOWN_ENTRY'), 1);
  await rejectsWith(flatten([layer], { strict: true }), 'IMGX_STRICT');
});

test('GNU sparse files come out expanded, at their real name and size', async () => {
  // PAX 0.1: the stored data is the two 1-byte segments; holes are zeros.
  const sparse = { name: 'GNUSparseFile.0/data.img', content: 'AB', pax: { 'GNU.sparse.map': '4,1,10,1', 'GNU.sparse.numblocks': '2', 'GNU.sparse.size': '12', 'GNU.sparse.name': 'var/data.img' } };
  const f = await flatten([[sparse]]);
  assert.equal(paths(f), ['var', 'var/data.img']);
  const e = f.byPath.get('var/data.img')!;
  assert.is(e.size, 12);
  assert.ok(e.content!.equals(Buffer.from([0, 0, 0, 0, 0x41, 0, 0, 0, 0, 0, 0x42, 0])));
  assert.is(f.tree.layerChanges[0]!.addedBytes, 12);
});

test('contiguous files (typeflag 7) are regular files', async () => {
  const f = await flatten([[{ name: 'c', typeflag: '7', content: 'contig' }]]);
  assert.equal(shape(f.entries), ['c file']);
  assert.is(f.byPath.get('c')!.content!.toString(), 'contig');
});

test.run();

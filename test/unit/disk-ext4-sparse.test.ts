// Sparse files in the native ext4 writer (issue 16: "the ext4 writer leaves them unallocated"):
// layers with PAX 1.0 sparse entries go through the real flatten stage into writeLayerRootFs, and
// e2fsprogs checks the result (e2fsck -fn clean, debugfs stat for size and block count, dump for the
// exact logical content); the image file stays small on the host and the to-disk size estimate
// counts data blocks, not the logical size. Also: extent trees deeper than one level, and the
// values a layer may carry that ext4 cannot hold as they are (times clamped, ids, device numbers,
// empty symlink targets, files past 16 TiB).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { dataRuns, MAX_FILE_BYTES } from '../../src/disk/ext4/data-blocks.ts';
import { EXTENTS_PER_BLOCK, extentTree, MAX_TIME, MIN_TIME, timeFields, treeBlocksFor, type Extent } from '../../src/disk/ext4/format.ts';
import { Ext4LimitError, Ext4Writer, ext4MinimumBytes, type Ext4Entry } from '../../src/disk/ext4/writer.ts';
import { treeEntries } from '../../src/disk/ext4/tree-source.ts';
import { autoFsBytes, measureTree, minimumFsBytes, usageOfEntries } from '../../src/disk/fs-size.ts';
import { layerEntries, writeLayerRootFs } from '../../src/disk/layer-rootfs.ts';
import { NativeExt4Builder } from '../../src/disk/native-ext4-builder.ts';
import { isImgxError } from '../../src/errors.ts';
import { writeDirectory } from '../../src/export/dir-writer.ts';
import { emitTree } from '../../src/layers/emit.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import type { SparseSegment } from '../../src/layers/sparse.ts';
import { sparseMapBlocks } from '../../src/layers/tar-writer.ts';
import { Warnings } from '../../src/warnings.ts';
import { makeTar, type TarEntry } from '../fixtures/tar.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { countingReaders } from './flatten-helpers.ts';

const MIB = 1024 * 1024;
const GB = 1e9;
const tmp = tempDir('imgx-disk-sparse-');
let n = 0;
const fresh = () => {
  const d = join(tmp, `t${n++}`);
  mkdirSync(d);
  return d;
};
function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 64 * MIB });
  return { status: r.status, out: r.stdout, err: r.stderr };
}
/** Deterministic bytes, never a whole block of zeros. */
function bytes(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < len; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = (x >>> 24) | 1;
  }
  return b;
}
/** A sparse file's whole content: its segments' data at their offsets, zeros elsewhere. */
function logical(size: number, segments: SparseSegment[], data: Buffer): Buffer {
  const out = Buffer.alloc(size);
  let at = 0;
  for (const s of segments) {
    data.copy(out, s.offset, at, at + s.size);
    at += s.size;
  }
  return out;
}
/** A PAX 1.0 sparse entry as GNU tar writes it: the map at the start of the data, then the stored data. */
function sparseEntry(name: string, size: number, segments: SparseSegment[], data: Buffer, extra: Partial<TarEntry> = {}): TarEntry {
  const slash = name.lastIndexOf('/');
  return {
    name: `${name.slice(0, slash + 1)}GNUSparseFile.0/${name.slice(slash + 1)}`,
    content: Buffer.concat([sparseMapBlocks(segments), data]),
    pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': name, 'GNU.sparse.realsize': String(size) },
    ...extra,
  };
}

// Go's gnu-sparse-big.tar shape: 60 GB with six 512-byte segments 10 GB apart (and its far-future mtime).
const BIG_SIZE = 60 * GB;
const BIG_SEGS: SparseSegment[] = Array.from({ length: 6 }, (_, i) => ({ offset: i * 10 * GB, size: 512 }));
const BIG_DATA = bytes(6 * 512, 1);
// A smaller one to read back whole: two segments sharing blocks 0-1, one over blocks 4-6, one in
// block 256, the last block a hole, and GNU's empty segment at the end.
const SMALL_SIZE = 2 * MIB + 100;
const SMALL_SEGS: SparseSegment[] = [
  { offset: 100, size: 50 },
  { offset: 4000, size: 200 },
  { offset: 20000, size: 5000 },
  { offset: MIB + 50, size: 50 },
  { offset: SMALL_SIZE, size: 0 },
];
const SMALL_DATA = bytes(5300, 2);
// Blocks of data: {0, 1}, {4, 5, 6}, {256}.
const SMALL_BLOCKS = 6;
// Fragmented: 1500 one-byte segments two blocks apart: 1500 extents, five leaves under an index block.
const FRAG_SEGS: SparseSegment[] = Array.from({ length: 1500 }, (_, i) => ({ offset: i * 8192 + (i % 4096), size: 1 }));
const FRAG_SIZE = 1500 * 8192;
const FRAG_DATA = bytes(1500, 3);
// All hole (the tree-source test reads it whole to find that out).
const HOLE_SIZE = 100 * MIB;
const LAYER: TarEntry[] = [
  { name: 'data/', type: 'directory' },
  sparseEntry('data/big', BIG_SIZE, BIG_SEGS, BIG_DATA, { mtime: 6e10 }),
  sparseEntry('data/small', SMALL_SIZE, SMALL_SEGS, SMALL_DATA),
  sparseEntry('data/frag', FRAG_SIZE, FRAG_SEGS, FRAG_DATA),
  sparseEntry('data/hole', HOLE_SIZE, [{ offset: HOLE_SIZE, size: 0 }], Buffer.alloc(0)),
  { name: 'data/plain', content: 'not sparse\n' },
  { name: 'data/small-link', type: 'hardlink', linkname: 'data/small' },
];

const OFF = MIB;
const debugfs = (spec: string, cmd: string) => {
  const r = run('debugfs', ['-R', cmd, spec]);
  assert.is(r.status, 0, r.err);
  return r.out;
};
const fsckClean = (spec: string) => {
  const r = run('e2fsck', ['-fn', spec]);
  assert.is(r.status, 0, r.out + r.err);
  const odd = r.out.split('\n').filter((l) => l && !/^Pass \d[a-z]?: /.test(l) && !/^\S+: \d+\/\d+ files \(.*\), \d+\/\d+ blocks$/.test(l));
  assert.equal(odd, [], r.out);
};
const blockcount = (stat: string) => Number(/Blockcount: (\d+)/.exec(stat)?.[1]);
const sizeOf = (stat: string) => Number(/Size: (\d+)/.exec(stat)?.[1]);
const allocated = (path: string) => statSync(path).blocks * 512;
function imageFile(path: string, bytes: number): string {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  closeSync(fd);
  return path;
}
function dump(spec: string, path: string, dir: string): Buffer {
  const out = join(dir, `dump${n++}`);
  debugfs(spec, `dump ${path} ${out}`);
  return readFileSync(out);
}

async function scan(layers: TarEntry[][]) {
  const { layers: readers } = countingReaders(layers.map((l) => makeTar(l)));
  const tree = await scanLayers(readers, { warnings: new Warnings() });
  return { tree, readers };
}

test('dataRuns: only the blocks a segment touches, shared blocks once, holes between; sizes past 16 TiB refused', () => {
  assert.equal(dataRuns(10_000), [{ logical: 0, len: 3 }]);
  assert.equal(dataRuns(0), []);
  assert.equal(dataRuns(SMALL_SIZE, SMALL_SEGS), [{ logical: 0, len: 2 }, { logical: 4, len: 3 }, { logical: 256, len: 1 }]);
  assert.equal(dataRuns(BIG_SIZE, BIG_SEGS).map((r) => r.len), [1, 1, 1, 1, 1, 1]);
  assert.equal(dataRuns(GB, [{ offset: GB, size: 0 }]), []);
  // Segments in adjacent blocks make one run.
  assert.equal(dataRuns(20_000, [{ offset: 0, size: 10 }, { offset: 4096, size: 10 }, { offset: 3 * 4096, size: 1 }]), [{ logical: 0, len: 2 }, { logical: 3, len: 1 }]);
  assert.throws(() => dataRuns(100, [{ offset: 50, size: 10 }, { offset: 40, size: 5 }]), /bad sparse map/);
  assert.throws(() => dataRuns(100, [{ offset: 95, size: 10 }]), /bad sparse map/);
  assert.is(MAX_FILE_BYTES, 2 ** 44 - 1);
});

test('extentTree: depth 0, 1, 2 and 3 trees hold every extent in order, as many blocks as treeBlocksFor says', () => {
  for (const count of [3, 4, 5, 340 * 4, 340 * 4 + 1, 340 * 340 * 4 + 1]) {
    const extents: Extent[] = Array.from({ length: count }, (_, i) => ({ logical: 2 * i, start: 100_000 + i, len: 1 }));
    const nb = treeBlocksFor(count);
    const blocks = Array.from({ length: nb }, (_, i) => 10 + i);
    const { iblock, treeBlocks } = extentTree(extents, blocks);
    assert.is(treeBlocks.length, nb);
    const byBlock = new Map(blocks.map((b, i) => [b, treeBlocks[i]!]));
    // Walk the tree as ext4 reads it.
    const seen: Extent[] = [];
    const walk = (node: Buffer, max: number, depth: number) => {
      assert.is(node.readUInt16LE(0), 0xf30a);
      assert.is(node.readUInt16LE(4), max);
      assert.is(node.readUInt16LE(6), depth);
      const entries = node.readUInt16LE(2);
      for (let i = 0; i < entries; i++) {
        const at = 12 + 12 * i;
        if (depth === 0) seen.push({ logical: node.readUInt32LE(at), len: node.readUInt16LE(at + 4), start: node.readUInt32LE(at + 8) });
        else {
          const child = byBlock.get(node.readUInt32LE(at + 4))!;
          assert.is(node.readUInt32LE(at), child.readUInt32LE(12), 'an index entry names its child\'s first logical block');
          walk(child, EXTENTS_PER_BLOCK, depth - 1);
        }
      }
    };
    const depth = iblock.readUInt16LE(6);
    assert.is(depth, count <= 4 ? 0 : count <= 4 * 340 ? 1 : count <= 4 * 340 * 340 ? 2 : 3, `depth for ${count}`);
    walk(iblock, 4, depth);
    assert.is(seen.length, count);
    assert.ok(seen.every((x, i) => x.logical === extents[i]!.logical && x.start === extents[i]!.start), `${count} extents in order`);
  }
});

test('timeFields: clamped to what ext4 holds (1901-12-13 … 2446-05-10), never a throw', () => {
  assert.equal(timeFields(MIN_TIME), [2 ** 31, 0]);
  assert.equal(timeFields(MAX_TIME, 5), [2 ** 31 - 1, (5 << 2) | 3]);
  for (const t of [-(2 ** 53), -1e12, MIN_TIME - 0.5]) assert.equal(timeFields(t), [2 ** 31, 0], String(t));
  for (const t of [2 ** 53, 6e10, MAX_TIME + 1]) assert.equal(timeFields(t), [2 ** 31 - 1, ((999_999_999 << 2) | 3) >>> 0], String(t));
  assert.equal(timeFields(Number.NaN), [0, 0]);
  assert.equal(timeFields(-1.25), [0xfffffffe, 3_000_000_000], '-2 s + 0.75 s');
  assert.equal(timeFields(2 ** 32 + 7), [7, 1]);
});

test('the size estimate counts data blocks: a 60 GB sparse file with 3 KB of data is a small filesystem', async () => {
  const { tree } = await scan([LAYER]);
  const planned = layerEntries(tree);
  assert.equal(planned.entries.get('data/big')!.entry.sparse, BIG_SEGS);
  const usage = usageOfEntries(planned.entries);
  // big: 6 data blocks and a leaf for its 6 extents; small: 6; frag: 1500, 5 leaves and an index
  // block; hole: none; two directories (/ and /data) and the plain file a block each.
  assert.is(usage.blocks, 6 + 1 + SMALL_BLOCKS + 1500 + 6 + 2 + 1);
  assert.is(usage.bytes, BIG_DATA.length + SMALL_DATA.length + FRAG_DATA.length + 'not sparse\n'.length);
  assert.ok(minimumFsBytes(usage) <= 32 * MIB, `minimum ${minimumFsBytes(usage)}`);
  assert.ok(autoFsBytes(usage) <= 320 * MIB, `auto ${autoFsBytes(usage)}`);
  assert.ok(ext4MinimumBytes([...planned.entries.values()].map((s) => s.entry)) <= 16 * MIB);
});

if (requireTools(test, ['e2fsck', 'debugfs'])) {

  test('writeLayerRootFs: sparse files from a PAX 1.0 layer keep their holes (e2fsck clean, few blocks, exact content, small image)', async () => {
    const t = fresh();
    const { tree, readers } = await scan([LAYER]);
    const planned = layerEntries(tree);
    // The filesystem as small as the estimate says: a 60 GB file and its siblings fit.
    const size = minimumFsBytes(usageOfEntries(planned.entries));
    const img = imageFile(join(t, 'disk.img'), OFF + size);
    await writeLayerRootFs({ image: img, offset: OFF, size, tree, layers: readers, planned, extras: [], uuid: '12345678-1234-1234-1234-123456789abc', label: 'root', inodes: 1024 });
    const spec = `${img}?offset=${OFF}`;
    fsckClean(spec);

    const big = debugfs(spec, 'stat /data/big');
    assert.is(sizeOf(big), BIG_SIZE);
    assert.is(blockcount(big), (6 + 1) * 8, 'six 4 KiB blocks and the leaf of its six extents (in 512-byte sectors)');
    // Six extents of one block each, at the segments' blocks.
    const ext = /EXTENTS:\n([^\n]*)/.exec(big)?.[1] ?? '';
    assert.equal([...ext.matchAll(/\((\d+)\):\d+/g)].map((m) => Number(m[1])), BIG_SEGS.map((s) => Math.floor(s.offset / 4096)));
    assert.match(big, /mtime: 0x7fffffff:ee6b27ff/, 'mtime 6e10 clamped to ext4\'s last second');
    // Reading blocks back at the segments' offsets: the data, and zeros around it in the block.
    for (const [i, s] of BIG_SEGS.entries()) {
      const blk = Math.floor(s.offset / 4096);
      const phys = Number(new RegExp(`\\(${blk}\\):(\\d+)`).exec(ext)?.[1]);
      const fd = openSync(img, 'r');
      const b = Buffer.alloc(4096);
      readSync(fd, b, 0, 4096, OFF + phys * 4096);
      closeSync(fd);
      const within = s.offset % 4096;
      assert.ok(b.subarray(within, within + 512).equals(BIG_DATA.subarray(i * 512, (i + 1) * 512)), `segment ${i} data`);
      assert.ok(b.subarray(0, within).every((x) => x === 0) && b.subarray(within + 512).every((x) => x === 0), `segment ${i} block zero around`);
    }

    const small = debugfs(spec, 'stat /data/small');
    assert.is(sizeOf(small), SMALL_SIZE);
    assert.is(blockcount(small), SMALL_BLOCKS * 8);
    assert.match(small, /Links: 2/);
    assert.ok(dump(spec, '/data/small', t).equals(logical(SMALL_SIZE, SMALL_SEGS, SMALL_DATA)), 'the logical content, holes as zeros');
    assert.ok(dump(spec, '/data/small-link', t).equals(logical(SMALL_SIZE, SMALL_SEGS, SMALL_DATA)));

    const frag = debugfs(spec, 'stat /data/frag');
    assert.is(blockcount(frag), (1500 + 6) * 8, '1500 data blocks, 5 leaves and an index block');
    assert.match(frag, /\(ETB1\):\d+/, 'an extent tree of depth 2 (debugfs names the tree block of each level)');
    assert.match(debugfs(spec, 'ex /data/frag'), /^ 0\/ 2\s+1\/\s+1 /m);
    assert.ok(dump(spec, '/data/frag', t).equals(logical(FRAG_SIZE, FRAG_SEGS, FRAG_DATA)));

    const hole = debugfs(spec, 'stat /data/hole');
    assert.is(sizeOf(hole), HOLE_SIZE);
    assert.is(blockcount(hole), 0);
    assert.is(debugfs(spec, 'cat /data/plain'), 'not sparse\n');

    // The image file on the host: the filesystem's metadata and the data, nothing like 60 GB.
    assert.ok(allocated(img) < 8 * MIB, `image allocates ${allocated(img)} bytes`);
    assert.ok(size <= 32 * MIB, `filesystem of ${size} bytes`);
  });

  test('writeLayerRootFs on a block device-like target: the blocks a sparse file shares with a hole are zeroed over old data', async () => {
    const t = fresh();
    const layer = [sparseEntry('s', 3 * 4096, [{ offset: 10, size: 20 }, { offset: 9000, size: 500 }], bytes(520, 4))];
    const { tree, readers } = await scan([layer]);
    const size = 16 * MIB;
    const img = join(t, 'dirty.img');
    // Old contents everywhere (a reused disk).
    const fd = openSync(img, 'w');
    const junk = Buffer.alloc(MIB, 0xee);
    for (let i = 0; i < (OFF + size) / MIB; i++) writeSync(fd, junk, 0, MIB, i * MIB);
    closeSync(fd);
    await writeLayerRootFs({ image: img, offset: OFF, size, tree, layers: readers, planned: layerEntries(tree), extras: [], uuid: '12345678-1234-1234-1234-123456789abc', label: 'root', inodes: 1024 });
    const spec = `${img}?offset=${OFF}`;
    fsckClean(spec);
    assert.is(blockcount(debugfs(spec, 'stat /s')), 2 * 8);
    assert.ok(dump(spec, '/s', t).equals(logical(3 * 4096, [{ offset: 10, size: 20 }, { offset: 9000, size: 500 }], bytes(520, 4))));
  });

  test('values a layer may hold: far times clamped, ids up to 2^32-1, type bits in modes, any device numbers, empty symlinks left out', async () => {
    const t = fresh();
    const size = 16 * MIB;
    const img = imageFile(join(t, 'disk.img'), OFF + size);
    const E = (path: string, type: Ext4Entry['type'], extra: Partial<Ext4Entry> = {}): Ext4Entry => ({ path, type, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0, xattrs: new Map(), ...extra });
    const w = await Ext4Writer.open(img, OFF, size, [
      E('past', 'file', { mtime: -(2 ** 53) }),
      E('future', 'file', { mtime: 2 ** 53 }),
      E('ids', 'file', { uid: 2 ** 32 - 1, gid: 2 ** 32 - 2, mode: 0o100755 }),
      E('dev', 'char-device', { devmajor: -1, devminor: 2 ** 40 + 5 }),
      E('dev2', 'block-device', { devmajor: 2 ** 32 + 8, devminor: 1 }),
      E('empty', 'symlink', { linkname: '' }),
      E('empty-link', 'hardlink', { linkname: 'empty' }),
    ]);
    assert.equal(w.notes, [{ code: 'IMGX_WARNING', message: 'symlink /empty has an empty target; skipped' }]);
    await w.finish();
    const spec = `${img}?offset=${OFF}`;
    fsckClean(spec);
    assert.match(debugfs(spec, 'stat /past'), /mtime: 0x80000000:00000000/);
    assert.match(debugfs(spec, 'stat /future'), /mtime: 0x7fffffff:ee6b27ff/);
    const ids = debugfs(spec, 'stat /ids');
    // debugfs prints ids as signed 32-bit numbers: 4294967295 and 4294967294.
    assert.match(ids, /User:\s+-1\s+Group:\s+-2\s/);
    assert.match(ids, /Mode:\s+0755/);
    assert.match(debugfs(spec, 'stat /dev'), /Device major\/minor number: 4095:05 /);
    assert.match(debugfs(spec, 'stat /dev2'), /Device major\/minor number: 08:01 /);
    assert.not.match(debugfs(spec, 'ls /'), /empty/);
  });
}

test('what ext4 cannot hold is a coded error (IMGX_UNSUPPORTED), not a crash', async () => {
  const t = fresh();
  const E = (path: string, type: Ext4Entry['type'], extra: Partial<Ext4Entry> = {}): Ext4Entry => ({ path, type, mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0, xattrs: new Map(), ...extra });
  const img = join(t, 'x.img');
  closeSync(openSync(img, 'w'));
  const cases: [string, Ext4Entry[], RegExp][] = [
    ['a sparse file past 16 TiB', [E('huge', 'file', { size: 2 ** 44, sparse: [{ offset: 0, size: 1 }] })], /\/huge is 17592186044416 bytes long: ext4 files end at 16 TiB/],
    ['lost+found a file', [E('lost+found', 'file')], /lost\+found is a file/],
    ['an xattr value over a block', [E('x', 'file', { xattrs: new Map([['user.big', Buffer.alloc(5000)]]) })], /\/x: extended attributes too large/],
  ];
  for (const [what, entries, re] of cases) {
    const e = await Ext4Writer.open(img, 0, 16 * MIB, entries).then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(e instanceof Ext4LimitError && isImgxError(e) && e.code === 'IMGX_UNSUPPORTED', `${what}: ${String(e)}`);
    assert.match((e as Error).message, re, what);
  }
});

if (requireTools(test, ['e2fsck', 'debugfs']) && requireRoot(test)) {
  test('an extracted tree with holes (measureTree, NativeExt4Builder): the zero blocks stay holes, the estimate counts data blocks', async () => {
    const t = fresh();
    const { tree, readers } = await scan([LAYER.filter((e) => !e.name.includes('big'))]);
    const dir = join(t, 'rootfs');
    await writeDirectory(emitTree(tree, readers), dir, { warnings: new Warnings(), asRoot: true });
    assert.ok(statSync(join(dir, 'data/hole')).blocks === 0, 'extract kept the hole');
    const walked = await treeEntries(dir, { xattrs: false });
    assert.equal(walked.entries.get('data/small')!.entry.sparse, [{ offset: 0, size: 2 * 4096 }, { offset: 4 * 4096, size: 3 * 4096 }, { offset: 256 * 4096, size: 4096 }]);
    assert.equal(walked.entries.get('data/hole')!.entry.sparse, []);
    assert.is(walked.entries.get('data/plain')!.entry.sparse, undefined);
    // The same blocks as the layers' maps.
    assert.is((await measureTree(dir)).blocks, usageOfEntries(layerEntries(tree).entries).blocks);
    const size = 32 * MIB;
    const img = imageFile(join(t, 'disk.img'), OFF + size);
    await new NativeExt4Builder().build({ image: img, offset: OFF, size, tree: dir, extras: [], uuid: '12345678-1234-1234-1234-123456789abc', label: 'root', inodes: 1024, workDir: t });
    const spec = `${img}?offset=${OFF}`;
    fsckClean(spec);
    assert.is(blockcount(debugfs(spec, 'stat /data/small')), SMALL_BLOCKS * 8);
    assert.is(blockcount(debugfs(spec, 'stat /data/hole')), 0);
    assert.ok(dump(spec, '/data/small', t).equals(logical(SMALL_SIZE, SMALL_SEGS, SMALL_DATA)));
    assert.ok(dump(spec, '/data/frag', t).equals(logical(FRAG_SIZE, FRAG_SEGS, FRAG_DATA)));
  });
}

test.run();

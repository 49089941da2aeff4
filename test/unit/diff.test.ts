// `imgx diff` logic on trees built from tars in the test: every kind of change, subtrees listed in
// full, content compared without reading when both sides come from the same layer entry, and
// hashed (each layer read once) when they cannot be told apart otherwise.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Readable } from 'node:stream';
import { makeTar } from '../fixtures/tar.ts';
import { contentKey, hashContents } from '../../src/export/cat.ts';
import { comparePaths, countChanges, describeChange, diffTrees, settleDiff, type ContentCheck, type PathChange, type TreeDiff } from '../../src/export/diff.ts';
import type { FlatTree } from '../../src/layers/flat-tree.ts';
import { layerReadersFromBuffers, type LayerReader } from '../../src/layers/layer-reader.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { Warnings } from '../../src/warnings.ts';

const CAP = Buffer.from('01000002200000000000000000000000000000', 'hex');

const BASE = makeTar([
  { name: 'etc/', type: 'directory' },
  { name: 'etc/passwd', content: 'root:x:0:0\n' },
  { name: 'etc/hostname', content: 'aaaa' },
  { name: 'etc/motd', content: 'same size A' },
  { name: 'etc/issue', content: 'Debian 12\n' },
  { name: 'etc/mode', content: 'm', mode: 0o644 },
  { name: 'etc/owner', content: 'o', uid: 0, gid: 0 },
  { name: 'etc/grows', content: 'short' },
  { name: 'etc/cap', content: 'c', pax: { 'SCHILY.xattr.security.capability': CAP } },
  { name: 'etc/link', type: 'symlink', linkname: 'passwd' },
  { name: 'opt/', type: 'directory' },
  { name: 'opt/app/', type: 'directory' },
  { name: 'opt/app/bin', content: 'bin' },
  { name: 'opt/app/lib/', type: 'directory' },
  { name: 'opt/app/lib/x.so', content: 'x' },
  { name: 'opt-file', content: 'sorts between opt and opt/…' },
  { name: 'dev/', type: 'directory' },
  { name: 'dev/tty', type: 'char-device', devmajor: 5, devminor: 0 },
  { name: 'lib/', type: 'directory' },
  { name: 'lib/libc.so', content: 'libc' },
  { name: 'same', content: 'identical bytes' },
]);

const UPPER = makeTar([
  { name: 'etc/.wh.hostname' },
  { name: 'etc/motd', content: 'same size B' }, // same size, other content
  { name: 'etc/issue', content: 'Debian 12\n' }, // rewritten with the same bytes: no change
  { name: 'etc/mode', content: 'm', mode: 0o4755 },
  { name: 'etc/owner', content: 'o', uid: 1000, gid: 100 },
  { name: 'etc/grows', content: 'longer now' },
  { name: 'etc/cap', content: 'c' }, // xattr dropped
  { name: 'etc/link', type: 'symlink', linkname: 'hostname' },
  { name: 'etc/new', content: 'new' },
  { name: 'opt/app', type: 'symlink', linkname: '/usr/app' }, // a directory replaced by a symlink
  { name: 'dev/tty', type: 'char-device', devmajor: 5, devminor: 1 },
  { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
  { name: 'usr/', type: 'directory' },
  { name: 'usr/lib/', type: 'directory' },
  { name: 'usr/lib/libc.so', content: 'libc' },
]);

async function treeOf(tars: Buffer[]): Promise<{ tree: FlatTree; layers: LayerReader[] }> {
  const layers = layerReadersFromBuffers(tars);
  return { tree: await scanLayers(layers, { warnings: new Warnings() }), layers };
}

/** Runs the whole diff: metadata, then the content checks hashed from the layers. */
async function fullDiff(a: { tree: FlatTree; layers: LayerReader[] }, b: { tree: FlatTree; layers: LayerReader[] }): Promise<{ raw: TreeDiff; changes: PathChange[] }> {
  const raw = diffTrees(a.tree, b.tree, { diffIdsA: a.layers.map((l) => l.diffId), diffIdsB: b.layers.map((l) => l.diffId) });
  const hashes = await hashContents(raw.contentChecks.flatMap((c) => [{ layers: a.layers, source: c.a }, { layers: b.layers, source: c.b }]));
  const differs = (c: ContentCheck) => hashes.get(contentKey(a.layers[c.a.layer]!, c.a.offset)) !== hashes.get(contentKey(b.layers[c.b.layer]!, c.b.offset));
  return { raw, changes: settleDiff(a.tree, b.tree, raw, differs) };
}

let A: { tree: FlatTree; layers: LayerReader[] };
let B: { tree: FlatTree; layers: LayerReader[] };

test.before(async () => {
  A = await treeOf([BASE]);
  B = await treeOf([BASE, UPPER]);
});

test('every kind of change, in path order, subtrees listed in full', async () => {
  const { changes } = await fullDiff(A, B);
  assert.equal(changes.map(describeChange), [
    'M /dev/tty (device 5,0→5,1)',
    'M /etc/cap (xattrs)',
    'M /etc/grows (size 5→10)',
    'D /etc/hostname',
    'M /etc/link (target passwd→hostname)',
    'M /etc/mode (mode 0644→4755)',
    'M /etc/motd (content)',
    'A /etc/new',
    'M /etc/owner (uid 0→1000, gid 0→100)',
    'M /lib (type directory→symlink)',
    'D /lib/libc.so',
    'M /opt/app (type directory→symlink)',
    'D /opt/app/bin',
    'D /opt/app/lib',
    'D /opt/app/lib/x.so',
    'A /usr',
    'A /usr/lib',
    'A /usr/lib/libc.so',
  ]);
  assert.equal(countChanges(changes), { added: 4, removed: 5, modified: 9 });
});

test('the reverse diff mirrors it', async () => {
  const { changes } = await fullDiff(B, A);
  const marks = new Map(changes.map((c) => [c.path, c.change]));
  assert.is(marks.get('/etc/hostname'), 'added');
  assert.is(marks.get('/etc/new'), 'removed');
  assert.is(marks.get('/usr/lib/libc.so'), 'removed');
  assert.is(marks.get('/opt/app/lib/x.so'), 'added');
  assert.is(marks.get('/etc/motd'), 'modified');
  assert.is(changes.length, 18);
});

test('an image against itself: nothing, and nothing read', async () => {
  const raw = diffTrees(B.tree, B.tree, { diffIdsA: B.layers.map((l) => l.diffId), diffIdsB: B.layers.map((l) => l.diffId) });
  assert.equal(raw, { changes: [], contentChecks: [] });
});

test('content from the same layer entry (diff_id and offset) is equal without reading', async () => {
  const { raw } = await fullDiff(A, B);
  const checked = raw.contentChecks.map((c) => c.path).sort();
  // /same and /etc/passwd come from the shared base layer: never checked. The files the upper layer
  // rewrote with the same size are checked (those modified otherwise too, to tell whether their
  // content changed as well); only motd's content differs.
  assert.equal(checked, ['etc/cap', 'etc/issue', 'etc/mode', 'etc/motd', 'etc/owner']);
  // Layers are told apart by diff_id, not by index: a base layer at another index still matches.
  const shifted = await treeOf([makeTar([{ name: 'unrelated', content: 'u' }]), BASE]);
  const r = diffTrees(A.tree, shifted.tree, { diffIdsA: A.layers.map((l) => l.diffId), diffIdsB: shifted.layers.map((l) => l.diffId) });
  assert.equal(r.contentChecks, []);
  assert.equal(r.changes.map(describeChange), ['A /unrelated']);
});

test('without diff_ids nothing is assumed equal: same-size files are hashed', async () => {
  const raw = diffTrees(A.tree, B.tree, { diffIdsA: [undefined], diffIdsB: [undefined, undefined] });
  assert.ok(raw.contentChecks.some((c) => c.path === 'same'));
});

test('content hashing reads each layer once, however many files it holds', async () => {
  const opens: number[] = [];
  const counted = (x: { tree: FlatTree; layers: LayerReader[] }, tag: number) => ({
    tree: x.tree,
    layers: x.layers.map((l): LayerReader => ({
      ...l,
      open: (o) => {
        opens.push(tag * 10 + l.index);
        return l.open(o);
      },
    })),
  });
  const { changes } = await fullDiff(counted(A, 1), counted(B, 2));
  assert.ok(changes.some((c) => c.path === '/etc/motd' && c.fields?.includes('content')));
  // motd and issue: base layer (A's and B's are the same diff_id: read once) and B's upper layer.
  assert.equal(opens.sort(), [10, 21]);
});

test('a modification that also changed content lists both', async () => {
  const a = await treeOf([makeTar([{ name: 'f', content: 'aaaa', mode: 0o644 }])]);
  const b = await treeOf([makeTar([{ name: 'f', content: 'bbbb', mode: 0o600 }])]);
  const { changes } = await fullDiff(a, b);
  assert.equal(changes.map(describeChange), ['M /f (mode 0644→0600, content)']);
  assert.equal(changes[0]!.fields, ['mode', 'content']);
  assert.equal(changes[0]!.before, { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 4 });
});

test('hardlinks compare by their inode content; mtimes are not compared', async () => {
  const a = await treeOf([makeTar([{ name: 'f', content: 'data', mtime: 1 }, { name: 'g', type: 'hardlink', linkname: 'f' }])]);
  const b = await treeOf([makeTar([{ name: 'f', content: 'data', mtime: 2 }, { name: 'g', content: 'data' }])]);
  const { changes, raw } = await fullDiff(a, b);
  assert.equal(raw.contentChecks.map((c) => c.path).sort(), ['f', 'g']);
  assert.equal(changes, []);
});

test('stable JSON records', async () => {
  const { changes } = await fullDiff(A, B);
  const by = new Map(changes.map((c) => [c.path, c]));
  assert.equal(JSON.parse(JSON.stringify(by.get('/etc/new'))), {
    path: '/etc/new',
    change: 'added',
    type: 'file',
    after: { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 3 },
  });
  assert.equal(JSON.parse(JSON.stringify(by.get('/etc/hostname'))), {
    path: '/etc/hostname',
    change: 'removed',
    type: 'file',
    before: { type: 'file', mode: 0o644, uid: 0, gid: 0, size: 4 },
  });
  const link = by.get('/etc/link')!;
  assert.equal(link.fields, ['linkname']);
  assert.is(link.before!.linkname, 'passwd');
  assert.is(link.after!.linkname, 'hostname');
  const tty = by.get('/dev/tty')!;
  assert.equal([tty.after!.devmajor, tty.after!.devminor], [5, 1]);
});

test('path order keeps a subtree together', () => {
  const paths = ['opt/app/lib', 'opt-file', 'opt', 'opt/app', 'opt/app.d', 'a', 'opt/app/bin'];
  assert.equal([...paths].sort(comparePaths), ['a', 'opt', 'opt/app', 'opt/app/bin', 'opt/app/lib', 'opt/app.d', 'opt-file']);
});

test('a layer that does not match the index is an error, not a silent difference', async () => {
  const raw = diffTrees(A.tree, B.tree, { diffIdsA: A.layers.map((l) => l.diffId), diffIdsB: B.layers.map((l) => l.diffId) });
  const broken = B.layers.map((l): LayerReader => ({ ...l, open: async () => Readable.from([makeTar([{ name: 'other', content: 'x' }])]) }));
  try {
    await hashContents(raw.contentChecks.map((c) => ({ layers: broken, source: c.b })));
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'IMGX_BAD_ARCHIVE');
  }
});

test.run();

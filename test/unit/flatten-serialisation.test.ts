// The browse index: FlatTree.toJSON / fromJSON, and saveTree / loadTree in the cache directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FORMAT_VERSION, FlatTree, type TreeNode } from '../../src/layers/flat-tree.ts';
import { loadTree, saveTree, treeIndexPath } from '../../src/layers/tree-cache.ts';
import { TreeBuilder } from '../../src/layers/scan.ts';
import { Warnings } from '../../src/warnings.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { collect, countingReaders, dir, file, flatten, link, symlink, wh } from './flatten-helpers.ts';
import { makeTar } from '../fixtures/tar.ts';

const CAP = Buffer.from('0100000200040000000000000000000000000000', 'hex');
const DIGEST = `sha256:${'ab'.repeat(32)}`;

async function sample() {
  return flatten([
    [
      dir('./', { mode: 0o755, mtime: 3 }),
      dir('bin/'),
      file('bin/ping', 'PING', { mode: 0o4755, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: 1700000000.5, pax: { 'SCHILY.xattr.security.capability': CAP } }),
      link('bin/ping6', 'bin/ping'),
      symlink('sbin', 'bin'),
      { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'run/fifo', type: 'fifo' },
      file('home/u/.profile', 'p', { uid: 1000, gid: 1000, uname: 'ü', gname: 'users' }),
      file('gone', 'g'),
    ],
    [wh('.wh.gone'), file('bin/ping', 'PONG', { mode: 0o755 }), file('empty', '')],
  ]);
}

function summary(t: FlatTree) {
  return {
    list: t.list().map((n: TreeNode) => ({ ...n, xattrs: [...n.xattrs].map(([k, v]) => [k, v.toString('hex')]) })),
    root: t.get('.'),
    groups: t.hardlinkGroups(),
    sources: t.list().map((n) => t.contentSource(n.path)),
    changes: t.layerChanges,
    counts: [t.fileCount, t.totalSize, t.rootExplicit, t.size],
  };
}

test('toJSON / fromJSON round-trips everything, through JSON text', async () => {
  const { tree } = await sample();
  const back = FlatTree.fromJSON(JSON.parse(JSON.stringify(tree.toJSON())));
  assert.equal(summary(back), summary(tree));
  // bin/ping was replaced in layer 1; bin/ping6 kept the old inode, its capability included.
  assert.ok(back.get('bin/ping6')!.xattrs.get('security.capability')!.equals(CAP));
  assert.is(back.get('bin/ping')!.xattrs.size, 0);
  assert.equal(back.children('.').map((n) => n.path), tree.children('.').map((n) => n.path));
});

test('a tree loaded from JSON emits the same stream as the scanned one', async () => {
  const tars = [makeTar([dir('a/'), file('a/x', 'X'), link('a/y', 'a/x'), symlink('l', 'a')]), makeTar([file('a/z', 'Z'), wh('a/.wh.x')])];
  const { layers } = countingReaders(tars);
  const f = await flatten(tars);
  const back = FlatTree.fromJSON(JSON.parse(JSON.stringify(f.tree.toJSON())));
  assert.equal(await collect(back, layers), f.entries);
});

test('fromJSON refuses what would put a path outside the tree, or is malformed', async () => {
  const { tree } = await sample();
  const good = tree.toJSON();
  const variants: [string, (j: ReturnType<FlatTree['toJSON']>) => void][] = [
    ['a .. name', (j) => (j.names[3] = '..')],
    ['a name with /', (j) => (j.names[3] = 'a/../../x')],
    ['an empty name', (j) => (j.names[3] = '')],
    ['a forward parent', (j) => (j.parents[3] = 5)],
    ['a parent that is not a directory', (j) => (j.parents[j.types.indexOf('f', 1) + 1] = j.types.indexOf('f', 1))],
    ['an unknown type', (j) => (j.types = 'x' + j.types.slice(1))],
    ['a short column', (j) => j.modes.pop()],
    ['another version', (j) => (j.version = 999)],
  ];
  for (const [what, mutate] of variants) {
    const j = JSON.parse(JSON.stringify(good)) as ReturnType<FlatTree['toJSON']>;
    mutate(j);
    assert.throws(() => FlatTree.fromJSON(j), undefined, what);
  }
  assert.throws(() => FlatTree.fromJSON(null));
  assert.throws(() => FlatTree.fromJSON('x'));
});

test('saveTree / loadTree: under imgx-index/<alg>/<hex>.json.gz, round-trip', async () => {
  const root = tempDir();
  const { tree } = await sample();
  assert.is(await loadTree(root, DIGEST), undefined);
  await saveTree(root, DIGEST, tree);
  const path = treeIndexPath(root, DIGEST);
  assert.is(path, `${root}/imgx-index/sha256/${'ab'.repeat(32)}.json.gz`);
  assert.ok(statSync(path).isFile());
  const j = JSON.parse(gunzipSync(readFileSync(path)).toString()) as { format: string; version: number };
  assert.equal([j.format, j.version], ['imgx-flat-tree', FORMAT_VERSION]);
  const back = await loadTree(root, DIGEST);
  assert.ok(back);
  assert.equal(summary(back!), summary(tree));
  // Another digest is another file.
  assert.is(await loadTree(root, `sha256:${'cd'.repeat(32)}`), undefined);
});

test('a corrupt, truncated, foreign or old-version index reads as absent', async () => {
  const root = tempDir();
  const { tree } = await sample();
  const path = treeIndexPath(root, DIGEST);
  mkdirSync(dirname(path), { recursive: true });
  const cases: [string, Buffer][] = [
    ['not gzip', Buffer.from('{}')],
    ['truncated gzip', gzipSync(JSON.stringify({ format: 'imgx-flat-tree', version: FORMAT_VERSION, digest: DIGEST, tree: tree.toJSON() })).subarray(0, 100)],
    ['bad JSON', gzipSync('{"format":')],
    ['old version', gzipSync(JSON.stringify({ format: 'imgx-flat-tree', version: FORMAT_VERSION - 1, digest: DIGEST, tree: tree.toJSON() }))],
    ['another format', gzipSync(JSON.stringify({ format: 'other', version: FORMAT_VERSION, digest: DIGEST, tree: tree.toJSON() }))],
    ['another digest', gzipSync(JSON.stringify({ format: 'imgx-flat-tree', version: FORMAT_VERSION, digest: `sha256:${'00'.repeat(32)}`, tree: tree.toJSON() }))],
    ['a broken tree', gzipSync(JSON.stringify({ format: 'imgx-flat-tree', version: FORMAT_VERSION, digest: DIGEST, tree: { ...tree.toJSON(), names: [] } }))],
  ];
  for (const [what, data] of cases) {
    writeFileSync(path, data);
    assert.is(await loadTree(root, DIGEST), undefined, what);
  }
  // A bad digest is refused before it becomes a path.
  await loadTree(root, 'sha256:../../etc').then(
    () => assert.unreachable(),
    (e: Error & { code?: string }) => assert.is(e.code, 'IMGX_BAD_DIGEST'),
  );
});

test('the shared empty xattr map refuses writes', async () => {
  const { tree } = await sample();
  const n = tree.get('sbin')!;
  assert.is(n.xattrs.size, 0);
  assert.throws(() => n.xattrs.set('user.x', Buffer.from('y')));
});

test('200k nodes: index size and load time (figures printed)', async () => {
  // Built straight in the model (no tar): 2000 directories of 100 files, a few hardlinks and xattrs.
  const b = new TreeBuilder({ warnings: new Warnings() });
  const entries = [];
  let offset = 0;
  const base = { mode: 0o644, uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: 1700000000, linkname: '', devmajor: 0, devminor: 0, xattrs: undefined };
  for (let d = 0; d < 2000; d++) {
    entries.push({ ...base, path: `usr/lib/python3/dist-packages/pkg${d}`, type: 'directory' as const, mode: 0o755, size: 0, offset: (offset += 512) });
    for (let i = 0; i < 99; i++) {
      entries.push({ ...base, path: `usr/lib/python3/dist-packages/pkg${d}/module_${i}.py`, type: 'file' as const, size: 1000 + i, offset: (offset += 2048) });
    }
  }
  b.applyLayer(0, { digest: DIGEST }, { entries });
  const tree = b.finish();
  const root = tempDir();
  const t0 = performance.now();
  await saveTree(root, DIGEST, tree);
  const t1 = performance.now();
  const cpu = process.cpuUsage();
  const back = await loadTree(root, DIGEST);
  const t2 = performance.now();
  const loadCpu = process.cpuUsage(cpu);
  back!.get('usr/lib/python3/dist-packages/pkg1999/module_98.py');
  const t3 = performance.now();
  const gz = statSync(treeIndexPath(root, DIGEST)).size;
  const raw = JSON.stringify(tree.toJSON()).length;
  assert.is(back!.size, tree.size);
  assert.ok(raw < 40 * 1048576);
  process.stdout.write(
    `\n    200k: ${tree.size} nodes; index JSON ${(raw / 1048576).toFixed(1)} MB, gzipped ${(gz / 1048576).toFixed(1)} MB; ` +
      `save ${(t1 - t0).toFixed(0)} ms, load ${(t2 - t1).toFixed(0)} ms (${((loadCpu.user + loadCpu.system) / 1000).toFixed(0)} ms cpu), first lookup ${(t3 - t2).toFixed(0)} ms\n`,
  );
});

test.run();

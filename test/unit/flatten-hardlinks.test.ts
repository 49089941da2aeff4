// Flatten: hardlinks — in one layer, across layers, to a file updated in the same layer, to a file
// whited out later, bad targets, and how they come out of the emitted stream.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dir, file, flatten, link, paths, shape, symlink, text, wh } from './flatten-helpers.ts';

test('a hardlink in the same layer: one file with a body, then the link to it', async () => {
  const f = await flatten([[dir('bin/'), file('bin/gzip', 'GZ', { mode: 0o755 }), link('bin/gunzip', 'bin/gzip')]]);
  assert.equal(shape(f.entries), ['bin directory', 'bin/gunzip file', 'bin/gzip hardlink -> bin/gunzip']);
  // The first path in tree order carries the body, whichever came first in the tar.
  assert.is(text(f, 'bin/gunzip'), 'GZ');
  assert.equal(f.tree.hardlinkGroups(), [['bin/gunzip', 'bin/gzip']]);
  assert.is(f.tree.get('bin/gzip')!.inode, f.tree.get('bin/gunzip')!.inode);
  assert.equal(f.tree.contentSource('bin/gzip'), f.tree.contentSource('bin/gunzip'));
  // The link shares the inode's metadata.
  assert.is(f.byPath.get('bin/gzip')!.mode, 0o755);
  assert.is(f.tree.fileCount, 2);
  assert.is(f.tree.totalSize, 2);
});

test('a hardlink across layers: content stays in the lower layer', async () => {
  const f = await flatten([[file('a', 'lower content')], [link('b', 'a')]]);
  assert.equal(shape(f.entries), ['a file', 'b hardlink -> a']);
  assert.is(text(f, 'a'), 'lower content');
  assert.is(f.tree.contentSource('b')!.layer, 0);
  // Layer 1 only added a link: no bytes, and it is not read again.
  assert.equal([f.tree.layerChanges[1]!.added, f.tree.layerChanges[1]!.addedBytes], [1, 0]);
  assert.equal(f.opens, [2, 1]);
});

test('a hardlink to a file updated in the same layer: the link takes the inode at that moment', async () => {
  // File then link: the link sees the new file.
  const after = await flatten([[file('a', 'v1')], [file('a', 'v2'), link('b', 'a')]]);
  assert.equal(after.tree.hardlinkGroups(), [['a', 'b']]);
  assert.is(text(after, 'a'), 'v2');
  // Link then file: the link keeps the old inode; `a` is a new, separate file.
  const before = await flatten([[file('a', 'v1')], [link('b', 'a'), file('a', 'v2')]]);
  assert.equal(before.tree.hardlinkGroups(), []);
  assert.is(text(before, 'a'), 'v2');
  assert.is(text(before, 'b'), 'v1');
  assert.is(before.tree.contentSource('b')!.layer, 0);
});

test('a hardlink to a file whited out later keeps the content', async () => {
  const f = await flatten([[file('orig', 'data'), link('copy', 'orig')], [wh('.wh.orig')]]);
  assert.equal(shape(f.entries), ['copy file']);
  assert.is(text(f, 'copy'), 'data');
  assert.equal(f.tree.hardlinkGroups(), []);
});

test('a hardlink whose target was replaced later keeps the old content', async () => {
  const f = await flatten([[file('a', 'old'), link('b', 'a')], [file('a', 'new')]]);
  assert.is(text(f, 'a'), 'new');
  assert.is(text(f, 'b'), 'old');
  assert.equal(f.tree.hardlinkGroups(), []);
});

test('three paths, one inode, across three layers; the primary is the first in tree order', async () => {
  const f = await flatten([[dir('z/'), file('z/data', 'D')], [link('m', 'z/data')], [link('a', 'm')]]);
  assert.equal(f.tree.hardlinkGroups(), [['a', 'm', 'z/data']]);
  assert.equal(shape(f.entries.filter((e) => e.type !== 'directory')), ['a file', 'm hardlink -> a', 'z/data hardlink -> a']);
  assert.is(text(f, 'a'), 'D');
});

test('the link entry metadata is ignored: the inode keeps its own', async () => {
  const f = await flatten([[file('a', 'x', { mode: 0o4755, uid: 1, mtime: 10 }), link('b', 'a', { mode: 0o600, uid: 2, mtime: 20 })]]);
  for (const p of ['a', 'b']) {
    const n = f.tree.get(p)!;
    assert.equal([n.mode, n.uid, n.mtime], [0o4755, 1, 10], p);
  }
});

test('hardlinks to missing paths or to directories are skipped with a warning', async () => {
  const f = await flatten([[dir('d/'), link('to-missing', 'nope'), link('to-dir', 'd'), link('to-root', '.'), file('ok')]]);
  assert.equal(paths(f), ['d', 'ok']);
  assert.is(f.warnings.count('IMGX_BAD_HARDLINK'), 3);
});

test('a hardlink before its target in the tar is skipped (the target did not exist yet)', async () => {
  const f = await flatten([[link('b', 'a'), file('a', 'x')]]);
  assert.equal(paths(f), ['a']);
  assert.is(f.warnings.count('IMGX_BAD_HARDLINK'), 1);
});

test('a hardlink target is never resolved through a symlink', async () => {
  const f = await flatten([[dir('real/'), file('real/f', 'x'), symlink('sl', 'real'), link('h', 'sl/f')]]);
  assert.ok(!f.byPath.has('h'));
  assert.is(f.warnings.count('IMGX_BAD_HARDLINK'), 1);
});

test('a hardlink target with .. or a leading / is confined to the root', async () => {
  const f = await flatten([[dir('etc/'), file('etc/passwd', 'root:x'), link('a', '../../etc/passwd'), link('b', '/etc/passwd')]]);
  assert.equal(f.tree.hardlinkGroups(), [['a', 'b', 'etc/passwd']]);
  assert.equal(shape(f.entries.filter((e) => e.type !== 'directory')), ['a file', 'b hardlink -> a', 'etc/passwd hardlink -> a']);
  assert.is(f.warnings.count('IMGX_PATH_CLAMPED'), 2);
});

test('a hardlink to a symlink shares the symlink inode', async () => {
  const f = await flatten([[symlink('s', 'target'), link('h', 's')]]);
  assert.equal(shape(f.entries), ['h symlink -> target', 's hardlink -> h']);
  assert.equal(f.tree.hardlinkGroups(), [['h', 's']]);
});

test('a hardlink to itself changes nothing', async () => {
  const f = await flatten([[file('a', 'x'), link('a', 'a')]]);
  assert.equal(shape(f.entries), ['a file']);
  assert.is(f.warnings.count(), 0);
});

test('a hardlink over an existing directory replaces it', async () => {
  const f = await flatten([[file('t', 'T'), dir('d/'), file('d/x')], [link('d', 't')]]);
  assert.equal(paths(f), ['d', 't']);
  assert.equal(f.tree.hardlinkGroups(), [['d', 't']]);
});

test('an empty hardlinked file needs no layer re-read', async () => {
  const f = await flatten([[file('e1', ''), link('e2', 'e1')], [file('x', 'x')]]);
  assert.equal(shape(f.entries), ['e1 file', 'e2 hardlink -> e1', 'x file']);
  assert.equal(f.byPath.get('e1')!.content!.length, 0);
  assert.equal(f.opens, [1, 2]);
});

test.run();

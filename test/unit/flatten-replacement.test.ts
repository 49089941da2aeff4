// Flatten: one type replacing another, duplicates, implicit parents, parents that are not directories.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { dir, file, flatten, paths, shape, symlink, text } from './flatten-helpers.ts';

test('a file replaced by a directory', async () => {
  const f = await flatten([[file('x', 'file')], [dir('x/'), file('x/inner', 'i')]]);
  assert.is(f.byPath.get('x')!.type, 'directory');
  assert.is(text(f, 'x/inner'), 'i');
  const c = f.tree.layerChanges[1]!;
  assert.equal(c.paths!.map((p) => `${p.change} ${p.path} ${p.type}`), ['modified x directory', 'added x/inner file']);
});

test('a directory replaced by a file loses its subtree', async () => {
  const f = await flatten([[dir('x/'), dir('x/y/'), file('x/y/z'), file('x/w')], [file('x', 'now a file')]]);
  assert.equal(paths(f), ['x']);
  assert.is(text(f, 'x'), 'now a file');
  const c = f.tree.layerChanges[1]!;
  assert.equal([c.added, c.modified, c.removed], [0, 1, 3]);
});

test('a directory replaced by a symlink (usrmerge), and a later write under it', async () => {
  const base = [dir('bin/'), file('bin/sh', 'old sh'), file('bin/ls', 'old ls'), dir('usr/'), dir('usr/bin/'), file('usr/bin/env', 'env')];
  const merged = [symlink('bin', 'usr/bin'), file('usr/bin/sh', 'new sh')];
  const f = await flatten([base, merged]);
  assert.equal(paths(f), ['bin', 'usr', 'usr/bin', 'usr/bin/env', 'usr/bin/sh']);
  assert.is(f.byPath.get('bin')!.type, 'symlink');
  assert.is(f.byPath.get('bin')!.linkname, 'usr/bin');
  assert.is(text(f, 'usr/bin/sh'), 'new sh');
  // A later layer writing through the symlink does not land in usr/bin: the link becomes a directory.
  const g = await flatten([base, merged, [file('bin/evil', 'x')]]);
  assert.is(g.byPath.get('bin')!.type, 'directory');
  assert.is(text(g, 'bin/evil'), 'x');
  assert.ok(!g.byPath.has('usr/bin/evil'));
  assert.is(g.warnings.count('IMGX_PARENT_REPLACED'), 1);
});

test('a directory over a directory replaces metadata and keeps the children', async () => {
  const f = await flatten([[dir('d/', { mode: 0o700, uid: 1, gid: 2, mtime: 100 }), file('d/a', 'a')], [dir('d/', { mode: 0o755, uid: 3, gid: 4, mtime: 200 })]]);
  const d = f.byPath.get('d')!;
  assert.equal([d.mode, d.uid, d.gid, d.mtime], [0o755, 3, 4, 200]);
  assert.is(text(f, 'd/a'), 'a');
  assert.equal(f.tree.layerChanges[1]!.paths!.map((p) => `${p.change} ${p.path}`), ['modified d']);
});

test('duplicate entries in one layer: the last wins', async () => {
  const f = await flatten([[file('a', 'first', { mode: 0o600 }), file('a', 'second', { mode: 0o640 }), dir('d/', { mode: 0o700 }), dir('d/', { mode: 0o711 })]]);
  assert.is(text(f, 'a'), 'second');
  assert.is(f.byPath.get('a')!.mode, 0o640);
  assert.is(f.byPath.get('d')!.mode, 0o711);
  assert.is(f.entries.filter((e) => e.path === 'a').length, 1);
  // Counted once.
  assert.equal([f.tree.layerChanges[0]!.added, f.tree.layerChanges[0]!.addedBytes], [2, 6]);
});

test('a file over a file from a lower layer: modified, content from the upper layer', async () => {
  const f = await flatten([[file('etc/hosts', 'lower')], [file('etc/hosts', 'upper!')]]);
  assert.is(text(f, 'etc/hosts'), 'upper!');
  const c = f.tree.layerChanges[1]!;
  assert.equal([c.added, c.modified, c.modifiedBytes], [0, 1, 6]);
  // The lower layer has no surviving content: it is not read again.
  assert.equal(f.opens, [1, 2]);
});

test('missing parents are created as 0755 root:root directories with mtime 0', async () => {
  const f = await flatten([[file('a/b/c/file', 'x', { uid: 5, gid: 6, mtime: 1000 })]]);
  assert.equal(paths(f), ['a', 'a/b', 'a/b/c', 'a/b/c/file']);
  for (const p of ['a', 'a/b', 'a/b/c']) {
    const d = f.byPath.get(p)!;
    assert.equal([d.type, d.mode, d.uid, d.gid, d.mtime], ['directory', 0o755, 0, 0, 0], p);
  }
  assert.is(f.tree.layerChanges[0]!.added, 4);
  // A later explicit entry gives the directory its real metadata.
  const g = await flatten([[file('a/f')], [dir('a/', { mode: 0o700, uid: 9 })]]);
  assert.equal([g.byPath.get('a')!.mode, g.byPath.get('a')!.uid], [0o700, 9]);
});

test('a parent that is a file is replaced by a directory, with a warning', async () => {
  const f = await flatten([[file('p', 'was a file')], [file('p/child', 'c')]]);
  assert.is(f.byPath.get('p')!.type, 'directory');
  assert.is(text(f, 'p/child'), 'c');
  assert.is(f.warnings.count('IMGX_PARENT_REPLACED'), 1);
});

test('a symlink planted by a lower layer never redirects a later write', async () => {
  // CVE-2021-29136 shape: layer 0 plants `etc` → `/`; layer 1 writes `etc/passwd`.
  const f = await flatten([[symlink('etc', '/'), symlink('escape', '../../../../tmp')], [file('etc/passwd', 'pw'), file('escape/x', 'x')]]);
  assert.equal(paths(f), ['escape', 'escape/x', 'etc', 'etc/passwd']);
  assert.is(f.byPath.get('etc')!.type, 'directory');
  assert.is(f.warnings.count('IMGX_PARENT_REPLACED'), 2);
  // Nothing anywhere names a path outside the tree.
  for (const e of f.entries) assert.ok(!e.path.startsWith('/') && !e.path.split('/').includes('..'), e.path);
});

test('a symlink in the same layer is replaced too, not followed', async () => {
  const f = await flatten([[dir('data/'), symlink('link', 'data'), file('link/f', 'x')]]);
  assert.equal(paths(f), ['data', 'link', 'link/f']);
  assert.is(f.byPath.get('link')!.type, 'directory');
});

test('a symlink replaced by a directory entry becomes a plain directory', async () => {
  const f = await flatten([[dir('real/'), file('real/a'), symlink('lib', 'real')], [dir('lib/', { mode: 0o755 })]]);
  assert.is(f.byPath.get('lib')!.type, 'directory');
  assert.equal(f.tree.children('lib'), []);
  assert.is(f.warnings.count(), 0);
});

test('a device and a fifo replaced by files, a file by a fifo', async () => {
  const f = await flatten([
    [{ name: 'dev0', type: 'char-device', devmajor: 1, devminor: 3 }, { name: 'pipe', type: 'fifo' }, file('f')],
    [file('dev0', 'now a file'), file('pipe', 'p'), { name: 'f', type: 'fifo' }],
  ]);
  assert.equal(shape(f.entries), ['dev0 file', 'pipe file', 'f fifo']);
});

test.run();

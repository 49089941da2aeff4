// Flatten: whiteouts and opaque whiteouts (OCI image-spec layer.md), against what lower layers left.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyWhiteout } from '../../src/layers/whiteout.ts';
import { dir, file, flatten, paths, rejectsWith, symlink, text, wh } from './flatten-helpers.ts';

test('classifyWhiteout: plain, opaque, AUFS metadata, ordinary names', () => {
  assert.equal(classifyWhiteout('etc/passwd'), { kind: 'none' });
  assert.equal(classifyWhiteout('etc/.wh.passwd'), { kind: 'whiteout', target: 'etc/passwd' });
  assert.equal(classifyWhiteout('.wh.etc'), { kind: 'whiteout', target: 'etc' });
  assert.equal(classifyWhiteout('a/.wh..wh..opq'), { kind: 'opaque', dir: 'a' });
  assert.equal(classifyWhiteout('.wh..wh..opq'), { kind: 'opaque', dir: '.' });
  assert.equal(classifyWhiteout('.wh..wh.plnk'), { kind: 'meta' });
  assert.equal(classifyWhiteout('.wh..wh.plnk/123.456'), { kind: 'meta' });
  assert.equal(classifyWhiteout('.wh..wh.aufs'), { kind: 'meta' });
  assert.equal(classifyWhiteout('a/x.wh.y'), { kind: 'none' });
  assert.equal(classifyWhiteout('a/.wh..hidden'), { kind: 'whiteout', target: 'a/.hidden' });
});

test('classifyWhiteout: malformed names are rejected', () => {
  for (const p of ['.wh.', 'a/.wh.', 'a/.wh..', 'a/.wh...', 'a/.wh.b/c']) {
    assert.throws(() => classifyWhiteout(p), (e: Error & { code?: string }) => e.code === 'IMGX_BAD_WHITEOUT', p);
  }
});

test('a whiteout removes a lower file and is never emitted', async () => {
  const f = await flatten([[dir('etc/'), file('etc/a', 'A'), file('etc/b', 'B')], [wh('etc/.wh.a')]]);
  assert.equal(paths(f), ['etc', 'etc/b']);
  assert.ok(!f.entries.some((e) => e.path.includes('.wh.')));
  assert.is(f.warnings.count(), 0);
  const c = f.tree.layerChanges[1]!;
  assert.is(c.removed, 1);
  assert.equal(c.paths, [{ path: 'etc/a', change: 'removed', size: 1, type: 'file' }]);
});

test('a whiteout of a directory removes its whole subtree', async () => {
  const f = await flatten([[dir('opt/'), dir('opt/app/'), file('opt/app/x', 'x'), dir('opt/app/lib/'), file('opt/app/lib/y', 'y'), file('opt/keep')], [wh('opt/.wh.app')]]);
  assert.equal(paths(f), ['opt', 'opt/keep']);
  assert.is(f.tree.layerChanges[1]!.removed, 4);
});

test('within a layer, whiteouts apply in tar order, as containerd applies them', async () => {
  // Before the entry: the lower file goes, the new one stays.
  const before = await flatten([[file('a', 'old')], [wh('.wh.a'), file('a', 'new')]]);
  assert.is(text(before, 'a'), 'new');
  // After it: the whiteout removes what is there then, the layer's own file included.
  const after = await flatten([[file('a', 'old')], [file('a', 'new'), wh('.wh.a')]]);
  assert.equal(paths(after), []);
  // A directory whited out after the layer wrote into it goes with what the layer put there.
  const d = await flatten([[dir('d/'), file('d/lower', 'l')], [dir('d/'), file('d/upper', 'u'), wh('.wh.d')]]);
  assert.equal(paths(d), []);
  assert.equal(d.tree.layerChanges[1]!.paths!.map((p) => `${p.change} ${p.path}`), ['removed d', 'removed d/lower']);
});

test('a hardlink to a lower file keeps its content when a later whiteout of the layer removes the file (containerd)', async () => {
  const f = await flatten([[dir('etc/'), file('etc/secret', 'S3CR3T')], [{ name: 'keep', type: 'hardlink', linkname: 'etc/secret' }, wh('etc/.wh.secret')]]);
  assert.equal(paths(f), ['etc', 'keep']);
  assert.is(text(f, 'keep'), 'S3CR3T');
  assert.is(f.warnings.count(), 0);
  // The other order: the file is gone before the link is made.
  const g = await flatten([[dir('etc/'), file('etc/secret', 'S3CR3T')], [wh('etc/.wh.secret'), { name: 'keep', type: 'hardlink', linkname: 'etc/secret' }]]);
  assert.equal(paths(g), ['etc']);
  assert.is(g.warnings.count('IMGX_BAD_HARDLINK'), 1);
});

test('an opaque whiteout keeps what its layer wrote before it and searches the directories it wrote', async () => {
  const layers = [
    [dir('d/'), file('d/a', 'a'), dir('d/sub/'), file('d/sub/lower', 'l'), dir('d/gone/'), file('d/gone/x', 'x')],
    // d/sub was written by this layer: kept, but its lower child goes; d/gone was not: it goes,
    // with the file this layer put in it (containerd walks over unpackedPaths).
    [dir('d/sub/'), file('d/sub/upper', 'u'), file('d/gone/new', 'n'), file('d/mine', 'm'), wh('d/.wh..wh..opq'), file('d/later', 'z'), wh('d/.wh..wh..opq')],
  ];
  const f = await flatten(layers);
  assert.equal(paths(f), ['d', 'd/later', 'd/mine', 'd/sub', 'd/sub/upper']);
});

test('a path whited out in one layer and recreated in a later one', async () => {
  const f = await flatten([[dir('srv/'), file('srv/f', 'one')], [wh('srv/.wh.f')], [file('srv/f', 'three')]]);
  assert.is(text(f, 'srv/f'), 'three');
  assert.is(f.tree.contentSource('srv/f')!.layer, 2);
  assert.is(f.tree.layerChanges[2]!.added, 1);
  // Only the last layer holds content that survives: layers 0 and 1 are read once (pass 1).
  assert.equal(f.opens, [1, 1, 2]);
});

test('an opaque whiteout hides the lower children and keeps the directory and its own layer', async () => {
  const layers = [
    [dir('d/', { mode: 0o700 }), file('d/a', 'a'), dir('d/sub/'), file('d/sub/b', 'b'), file('other', 'o')],
    // The opaque marker comes after the new child here: it must not remove it.
    [dir('d/', { mode: 0o750 }), file('d/new', 'n'), wh('d/.wh..wh..opq')],
  ];
  const f = await flatten(layers);
  assert.equal(paths(f), ['d', 'd/new', 'other']);
  assert.is(f.byPath.get('d')!.mode, 0o750);
  const c = f.tree.layerChanges[1]!;
  assert.equal([c.added, c.modified, c.removed], [1, 1, 3]);
});

test('an opaque whiteout without a directory entry keeps the lower directory metadata', async () => {
  const f = await flatten([[dir('d/', { mode: 0o711, uid: 7 }), file('d/a')], [wh('d/.wh..wh..opq')]]);
  assert.equal(paths(f), ['d']);
  assert.is(f.byPath.get('d')!.mode, 0o711);
  assert.is(f.byPath.get('d')!.uid, 7);
});

test('an opaque whiteout at the root hides every lower path', async () => {
  const f = await flatten([[dir('a/'), file('a/x'), file('b')], [wh('.wh..wh..opq'), file('c', 'c')]]);
  assert.equal(paths(f), ['c']);
});

test('whiteouts of paths no lower layer has remove nothing and warn nothing; their parents are made, as containerd and Docker make them', async () => {
  const f = await flatten([[file('a')], [wh('.wh.nothing'), wh('no/such/.wh.dir'), wh('none/.wh..wh..opq')]]);
  assert.equal(paths(f), ['a', 'no', 'no/such', 'none']);
  assert.is(f.warnings.count(), 0);
  assert.is(f.tree.layerChanges[1]!.removed, 0);
  // Under a file, nothing is made and nothing replaced.
  const g = await flatten([[file('a', 'A')], [wh('a/.wh.b'), wh('a/c/.wh..wh..opq')]]);
  assert.equal(paths(g), ['a']);
  assert.is(text(g, 'a'), 'A');
});

test('a whiteout never resolves a symlink: it removes nothing behind it', async () => {
  // `link` → `real`; `link/.wh.f` names a path that does not exist as such.
  const f = await flatten([[dir('real/'), file('real/f', 'keep'), symlink('link', 'real')], [wh('link/.wh.f')]]);
  assert.equal(paths(f), ['link', 'real', 'real/f']);
  assert.is(text(f, 'real/f'), 'keep');
});

test('a whiteout of a symlink removes the link, not its target', async () => {
  const f = await flatten([[dir('real/'), file('real/f'), symlink('link', 'real')], [wh('.wh.link')]]);
  assert.equal(paths(f), ['real', 'real/f']);
});

test('AUFS metadata entries are dropped', async () => {
  const f = await flatten([[dir('.wh..wh.plnk/'), file('.wh..wh.plnk/1234.5678', 'x'), file('.wh..wh.aufs'), file('a')]]);
  assert.equal(paths(f), ['a']);
});

test('malformed whiteouts in a layer are rejected', async () => {
  for (const name of ['.wh.', 'etc/.wh.', 'etc/.wh..', 'etc/.wh...', 'etc/.wh.x/y']) {
    await rejectsWith(flatten([[file('etc/passwd')], [wh(name)]]), 'IMGX_BAD_WHITEOUT');
  }
});

test('whiteouts of files under a lower directory only: siblings and parents stay', async () => {
  const f = await flatten([[dir('a/'), dir('a/b/'), file('a/b/c'), file('a/b/d')], [wh('a/b/.wh.c')]]);
  assert.equal(paths(f), ['a', 'a/b', 'a/b/d']);
});

test.run();

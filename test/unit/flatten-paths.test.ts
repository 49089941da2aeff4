// Flatten: member names — normalisation, and hostile names that try to leave the root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normalisePath } from '../../src/layers/normalise-path.ts';
import { makeTar } from '../fixtures/tar.ts';
import { countingReaders, dir, file, flatten, paths, rejectsWith, shape, text, wh } from './flatten-helpers.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { Warnings } from '../../src/warnings.ts';

test('normalisePath: clean names, ./ prefixes, slashes, . and ..', () => {
  const cases: [string, string, boolean][] = [
    ['usr/bin/env', 'usr/bin/env', false],
    ['usr/lib/', 'usr/lib', false],
    ['./usr/lib/', 'usr/lib', false],
    ['./', '.', false],
    ['.', '.', false],
    ['', '.', false],
    ['a//b///c', 'a/b/c', false],
    ['a/./b/.', 'a/b', false],
    ['a/b/../c', 'a/c', false],
    ['/abs/path', 'abs/path', true],
    ['//abs', 'abs', true],
    ['/', '.', true],
    ['../../etc/passwd', 'etc/passwd', true],
    ['a/../../b', 'b', true],
    ['a/b/../../..', '.', true],
    ['..', '.', true],
    ['...', '...', false],
    ['a/..b/c..', 'a/..b/c..', false],
    ['.hidden/.x', '.hidden/.x', false],
  ];
  for (const [input, path, clamped] of cases) assert.equal(normalisePath(input), { path, clamped }, JSON.stringify(input));
});

test('normalisePath: NUL bytes are refused', () => {
  assert.throws(() => normalisePath('a\0b'), (e: Error & { code?: string }) => e.code === 'IMGX_UNSAFE_PATH');
});

test('./ prefixes and leading slashes name the same paths as plain names', async () => {
  const f = await flatten([[dir('./etc/'), file('./etc/a', 'A')], [file('etc/a', 'B'), file('/etc//b', 'C')]]);
  assert.equal(paths(f), ['etc', 'etc/a', 'etc/b']);
  assert.is(text(f, 'etc/a'), 'B');
  assert.is(f.warnings.count('IMGX_PATH_CLAMPED'), 1);
});

test('hostile names are confined to the root with a warning', async () => {
  const f = await flatten([[file('../../etc/passwd', 'p'), file('/abs', 'a'), file('a/../../b', 'b'), file('x/y/../../../../z', 'z')]]);
  assert.equal(paths(f), ['abs', 'b', 'etc', 'etc/passwd', 'z']);
  assert.is(f.warnings.count('IMGX_PATH_CLAMPED'), 4);
  for (const e of f.entries) assert.ok(!e.path.startsWith('/') && !e.path.split('/').includes('..'), e.path);
});

test('with --strict, a name that leaves the root is an error', async () => {
  await rejectsWith(flatten([[file('../x')]], { strict: true }), 'IMGX_STRICT');
});

test('whiteouts with .. are confined too: they cannot remove anything outside', async () => {
  const f = await flatten([[dir('etc/'), file('etc/passwd'), dir('a/'), file('a/keep')], [wh('a/../../.wh.etc'), wh('../../../a/.wh.nothing')]]);
  assert.equal(paths(f), ['a', 'a/keep']);
  assert.is(f.warnings.count('IMGX_PATH_CLAMPED'), 2);
});

test('a whiteout that names the parent or itself is rejected', async () => {
  await rejectsWith(flatten([[file('a/b')], [wh('a/.wh..')]]), 'IMGX_BAD_WHITEOUT');
  await rejectsWith(flatten([[file('a/b')], [wh('a/.wh...')]]), 'IMGX_BAD_WHITEOUT');
  await rejectsWith(flatten([[file('a/b')], [wh('.wh.')]]), 'IMGX_BAD_WHITEOUT');
});

test('a NUL byte in a name (via PAX) is refused (Go: pax-nul-path.tar)', async () => {
  const tar = makeTar([{ name: 'ok', content: 'x', pax: { path: 'evil\0name' } }]);
  await rejectsWith(flatten([tar]), 'IMGX_BAD_ARCHIVE');
});

test('a directory entry for the root updates `.` and is emitted first', async () => {
  const f = await flatten([[dir('./', { mode: 0o700, uid: 0, mtime: 5 }), file('a')]]);
  assert.equal(shape(f.entries), ['. directory', 'a file']);
  assert.is(f.byPath.get('.')!.mode, 0o700);
  // Without one, `.` is not emitted (but the tree still answers for it).
  const g = await flatten([[file('a')]]);
  assert.equal(shape(g.entries), ['a file']);
  assert.is(g.tree.get('.')!.type, 'directory');
  // `/` and `..` as directories name the root too.
  const h = await flatten([[dir('/', { mode: 0o711 })], [dir('../', { mode: 0o751 })]]);
  assert.is(h.byPath.get('.')!.mode, 0o751);
});

test('anything but a directory naming the root is refused', async () => {
  await rejectsWith(flatten([[file('./', 'x')]]), 'IMGX_UNSAFE_PATH');
  await rejectsWith(flatten([[{ name: '..', type: 'symlink', linkname: '/etc' }]]), 'IMGX_UNSAFE_PATH');
  await rejectsWith(flatten([[{ name: '/', type: 'hardlink', linkname: 'a' }]]), 'IMGX_UNSAFE_PATH');
});

test('long names (PAX path) and odd but legal names are kept byte for byte', async () => {
  const long = `${'d'.repeat(120)}/${'f'.repeat(200)}`;
  const f = await flatten([[file(long, 'L'), file('sp ace/ünï\\cödé', 'u'), file('...', 'dots'), file('a/.wh-not-a-whiteout', 'w')]]);
  assert.is(text(f, long), 'L');
  assert.is(text(f, 'sp ace/ünï\\cödé'), 'u');
  assert.is(text(f, '...'), 'dots');
  assert.is(text(f, 'a/.wh-not-a-whiteout'), 'w');
});

test('the tree answers any spelling of a path', async () => {
  const f = await flatten([[dir('etc/'), file('etc/hosts', 'h')]]);
  assert.is(f.tree.get('/etc/hosts')!.path, 'etc/hosts');
  assert.is(f.tree.get('./etc/')!.path, 'etc');
  assert.is(f.tree.get('etc/../etc/hosts')!.path, 'etc/hosts');
  assert.is(f.tree.get('nope'), undefined);
  assert.is(f.tree.get('etc/hosts/x'), undefined);
  assert.is(f.tree.get('etc\0hosts'), undefined);
  // Past 64 lookups the tree builds a path index: the answers stay the same.
  for (let i = 0; i < 100; i++) assert.is(f.tree.get(i % 2 ? '/etc/hosts' : 'etc/nope')?.path, i % 2 ? 'etc/hosts' : undefined);
  assert.equal(f.tree.get('etc/hosts'), f.tree.get('./etc/hosts'));
});

test('an image that would place more paths than the limit is refused (IMGX_BAD_LAYER), implicit directories counted', async () => {
  const tars = [makeTar([{ name: `${'d/'.repeat(150)}f`, content: 'x' }])];
  const { layers } = countingReaders(tars);
  await rejectsWith(scanLayers(layers, { warnings: new Warnings(), maxPaths: 100 }), 'IMGX_BAD_LAYER');
  const ok = await scanLayers(countingReaders(tars).layers, { warnings: new Warnings(), maxPaths: 151 });
  assert.is(ok.size, 152);
});

test('a 1 MB name (one PAX path record) is refused with IMGX_UNSAFE_PATH, its layer read to the end', async () => {
  const tar = makeTar([{ name: 'ok', content: 'x', pax: { path: `${'n'.repeat(200)}/`.repeat(5000) + 'f' } }]);
  assert.ok(tar.length > 1_000_000);
  const err = await rejectsWith(flatten([tar]), 'IMGX_UNSAFE_PATH');
  assert.ok(err.message.length < 400, 'the name is cut in the message');
});

test.run();

// Browsing without extracting: lookups inside the tree (symlinks confined to the image root),
// ls listings and their formats, and cat's content reads (only the layer that holds the file,
// stopping right after its entry). Trees are built from tars made in the test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { makeTar } from '../fixtures/tar.ts';
import { formatMtime, listPath, listRecord, longRow, lookup, modeString, renderLong, type Listed } from '../../src/export/browse.ts';
import { contentKey, copyContent, hashContents, locateFile } from '../../src/export/cat.ts';
import type { FlatTree } from '../../src/layers/flat-tree.ts';
import { layerReadersFromBuffers, type LayerReader } from '../../src/layers/layer-reader.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { Warnings } from '../../src/warnings.ts';

const BIG = Buffer.alloc(300_000, 'x');

const LAYER0 = makeTar([
  { name: './', type: 'directory', mode: 0o755 },
  { name: 'etc/', type: 'directory' },
  { name: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\n', mtime: 1_700_000_000 },
  { name: 'etc/hostname', content: 'old\n' },
  { name: 'etc/alternatives/', type: 'directory' },
  { name: 'etc/alternatives/pager', type: 'symlink', linkname: '/usr/bin/less' },
  { name: 'usr/', type: 'directory' },
  { name: 'usr/bin/', type: 'directory' },
  { name: 'usr/bin/less', content: 'LESS', mode: 0o755 },
  { name: 'usr/bin/su', content: 'SU', mode: 0o4755 },
  { name: 'usr/bin/pager', type: 'symlink', linkname: '../../etc/alternatives/pager' },
  { name: 'usr/lib/', type: 'directory' },
  { name: 'usr/lib/libc.so', content: BIG },
  { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
  { name: 'lib', type: 'symlink', linkname: '/usr/lib' },
  { name: 'up', type: 'symlink', linkname: '../../../../etc' },
  { name: 'loop1', type: 'symlink', linkname: 'loop2' },
  { name: 'loop2', type: 'symlink', linkname: '/loop1' },
  { name: 'dangling', type: 'symlink', linkname: 'nowhere' },
  { name: 'dev/', type: 'directory' },
  { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
  { name: 'run/', type: 'directory' },
  { name: 'run/initctl', type: 'fifo', mode: 0o600 },
  { name: 'tmp/', type: 'directory', mode: 0o1777 },
  { name: 'empty', content: '' },
  { name: '.hidden', content: 'h' },
]);
const LAYER1 = makeTar([
  { name: 'etc/.wh.hostname' },
  { name: 'etc/motd', content: 'hello\n', uid: 1000, gid: 100 },
  { name: 'usr/bin/more', type: 'hardlink', linkname: 'usr/bin/less' },
  { name: 'usr/bin/less', content: 'LESS v2', mode: 0o755 },
  { name: 'usr/bin/vi', content: 'VI', mode: 0o755 },
  { name: 'usr/bin/view', type: 'hardlink', linkname: 'usr/bin/vi' },
]);

let tree: FlatTree;
let layers: LayerReader[];

test.before(async () => {
  layers = layerReadersFromBuffers([LAYER0, LAYER1]);
  tree = await scanLayers(layers, { warnings: new Warnings() });
});

const names = (l: Listed[]) => l.map((x) => x.name);

test('ls of the root: every name, dotfiles included, sorted', () => {
  assert.equal(names(listPath(tree, '/')), ['.hidden', 'bin', 'dangling', 'dev', 'empty', 'etc', 'lib', 'loop1', 'loop2', 'run', 'tmp', 'up', 'usr']);
  assert.equal(names(listPath(tree, '')), names(listPath(tree, '/')));
  assert.equal(names(listPath(tree, '.')), names(listPath(tree, '/')));
});

test('ls of a directory shows the final state: whiteouts gone, later layers in', () => {
  assert.equal(names(listPath(tree, '/etc')), ['alternatives', 'motd', 'passwd']);
  assert.equal(names(listPath(tree, 'etc/')), ['alternatives', 'motd', 'passwd']);
});

test('ls -R: the subtree in pre-order, names relative to PATH, symlinks not followed', () => {
  assert.equal(names(listPath(tree, '/usr', { recursive: true })), [
    'bin',
    'bin/less',
    'bin/more',
    'bin/pager',
    'bin/su',
    'bin/vi',
    'bin/view',
    'lib',
    'lib/libc.so',
  ]);
  const all = listPath(tree, '/', { recursive: true });
  assert.ok(all.some((l) => l.name === 'usr/lib/libc.so'));
  assert.not.ok(all.some((l) => l.name.startsWith('bin/')), 'the bin symlink is not descended into');
});

test('ls of a symlink to a directory follows it, as GNU ls does; -l shows the link itself', () => {
  assert.equal(names(listPath(tree, '/bin')), ['less', 'more', 'pager', 'su', 'vi', 'view']);
  const long = listPath(tree, '/bin', { long: true });
  assert.is(long.length, 1);
  assert.is(long[0]!.node.type, 'symlink');
  assert.is(longRow(tree, long[0]!).at(-1), '/bin -> usr/bin');
  // A trailing slash always follows.
  assert.equal(names(listPath(tree, '/bin/', { long: true })), names(listPath(tree, '/bin')));
  // An absolute target resolves from the image root, not the host's.
  assert.equal(names(listPath(tree, '/lib')), ['libc.so']);
});

test('ls of a file lists just it, under the name given', () => {
  const l = listPath(tree, '/etc/passwd');
  assert.equal(names(l), ['/etc/passwd']);
  assert.is(l[0]!.path, 'etc/passwd');
  // A dangling or looping link is listed as itself.
  assert.equal(names(listPath(tree, '/dangling')), ['/dangling']);
  assert.equal(names(listPath(tree, '/loop1')), ['/loop1']);
});

test('missing paths and files used as directories are IMGX_NOT_FOUND', () => {
  for (const p of ['/nope', '/etc/hostname', '/etc/passwd/x', '/etc/passwd/', '/dangling/', '/usr/bin/nope']) {
    try {
      listPath(tree, p);
      assert.unreachable(p);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'IMGX_NOT_FOUND', p);
      assert.not.match((e as Error).message, /\n/);
    }
  }
});

test('lookup: symlinks resolved inside the tree, `..` clamped at the image root', () => {
  assert.is(lookup(tree, '/bin/less', { followFinal: true }).path, 'usr/bin/less');
  assert.is(lookup(tree, '/usr/bin/pager', { followFinal: true }).path, 'usr/bin/less', 'relative link to an absolute link');
  assert.is(lookup(tree, '/usr/bin/pager', { followFinal: false }).path, 'usr/bin/pager');
  assert.is(lookup(tree, '/up/passwd', { followFinal: true }).path, 'etc/passwd', 'a link climbing above the root stops at it');
  assert.is(lookup(tree, '../../../etc/./passwd', { followFinal: true }).path, 'etc/passwd');
  assert.is(lookup(tree, '/usr/bin/../../etc/passwd', { followFinal: true }).path, 'etc/passwd');
  // `..` after a symlink goes up from where the link led (/usr/bin/.. is /usr), as in a chroot.
  assert.throws(() => lookup(tree, '/bin/../etc/passwd', { followFinal: true }), /looking for \/usr\/etc/);
  assert.is(lookup(tree, '/bin/../lib/libc.so', { followFinal: true }).path, 'usr/lib/libc.so');
  assert.is(lookup(tree, '/', { followFinal: true }).path, '.');
  assert.throws(() => lookup(tree, '/loop1', { followFinal: true }), /too many levels of symbolic links/);
  assert.throws(() => lookup(tree, '/dangling', { followFinal: true }), /no such file/);
});

test('mode strings as ls prints them, setuid/setgid/sticky included', () => {
  assert.is(modeString('directory', 0o755), 'drwxr-xr-x');
  assert.is(modeString('file', 0o644), '-rw-r--r--');
  assert.is(modeString('file', 0o4755), '-rwsr-xr-x');
  assert.is(modeString('file', 0o4644), '-rwSr--r--');
  assert.is(modeString('file', 0o2755), '-rwxr-sr-x');
  assert.is(modeString('file', 0o2745), '-rwxr-Sr-x');
  assert.is(modeString('directory', 0o1777), 'drwxrwxrwt');
  assert.is(modeString('directory', 0o1770), 'drwxrwx--T');
  assert.is(modeString('symlink', 0o777), 'lrwxrwxrwx');
  assert.is(modeString('char-device', 0o666), 'crw-rw-rw-');
  assert.is(modeString('block-device', 0o660), 'brw-rw----');
  assert.is(modeString('fifo', 0o600), 'prw-------');
  assert.is(modeString('file', 0), '----------');
});

test('ls -l rows: devices show major, minor; symlinks their target; mtimes in UTC', () => {
  const dev = listPath(tree, '/dev', { long: true });
  assert.equal(longRow(tree, dev[0]!), ['crw-rw-rw-', '0', '0', '1, 3', '1970-01-01 00:00', 'null']);
  assert.equal(longRow(tree, dev[1]!), ['brw-rw----', '0', '6', '8, 0', '1970-01-01 00:00', 'sda']);
  const passwd = listPath(tree, '/etc/passwd', { long: true });
  assert.equal(longRow(tree, passwd[0]!), ['-rw-r--r--', '0', '0', '26', '2023-11-14 22:13', '/etc/passwd']);
  const motd = listPath(tree, '/etc/motd', { long: true });
  assert.equal(longRow(tree, motd[0]!).slice(0, 4), ['-rw-r--r--', '1000', '100', '6']);
  assert.is(formatMtime(1_700_000_000.75), '2023-11-14 22:13');
  const text = renderLong(listPath(tree, '/usr/bin', { long: true }).map((l) => longRow(tree, l)));
  assert.match(text, /^lrw-r--r-- 0 0 0 1970-01-01 00:00 pager -> \.\.\/\.\.\/etc\/alternatives\/pager$/m);
  assert.match(text, /^-rwsr-xr-x 0 0 2 1970-01-01 00:00 su$/m);
});

test('ls --json records: stable fields, absolute paths, devices and link targets', () => {
  const recs = listPath(tree, '/', { recursive: true }).map((l) => listRecord(tree, l));
  const by = new Map(recs.map((r) => [r.path, r]));
  assert.equal(by.get('/dev/null'), { path: '/dev/null', type: 'char-device', mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 0, devmajor: 1, devminor: 3 });
  assert.equal(by.get('/bin'), { path: '/bin', type: 'symlink', mode: 0o777 & by.get('/bin')!.mode, uid: 0, gid: 0, size: 0, mtime: 0, linkname: 'usr/bin' });
  assert.equal(by.get('/usr/bin/su'), { path: '/usr/bin/su', type: 'file', mode: 0o4755, uid: 0, gid: 0, size: 2, mtime: 0 });
  assert.equal(by.get('/usr/lib/libc.so')!.size, BIG.length);
  assert.is(by.get('/tmp')!.mode, 0o1777);
  assert.is(by.get('/run/initctl')!.type, 'fifo');
  for (const r of recs) assert.ok(Object.keys(r).every((k) => ['path', 'type', 'mode', 'uid', 'gid', 'size', 'mtime', 'linkname', 'devmajor', 'devminor'].includes(k)));
});

// ---- cat -------------------------------------------------------------------------------------

/** A writable that collects what it is given. */
function sink(): { out: Writable; text: () => string; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  return { out, text: () => Buffer.concat(parts).toString(), bytes: () => Buffer.concat(parts) };
}

async function cat(path: string, readers: readonly LayerReader[] = layers): Promise<string> {
  const s = sink();
  await copyContent(readers, locateFile(tree, path).source, s.out);
  return s.text();
}

test('cat: files, through symlinks, hardlinks, from the layer that last wrote them', async () => {
  assert.is(await cat('/etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  assert.is(await cat('/etc/motd'), 'hello\n');
  assert.is(await cat('/bin/less'), 'LESS v2');
  assert.is(await cat('/usr/bin/pager'), 'LESS v2', 'two symlinks, one of them absolute');
  assert.is(await cat('/usr/bin/more'), 'LESS', 'a hardlink keeps the inode it linked to, even when the path is rewritten later');
  assert.is(await cat('/usr/bin/view'), 'VI');
  assert.is(await cat('/up/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  assert.is(await cat('/empty'), '');
  const big = sink();
  await copyContent(layers, locateFile(tree, '/lib/libc.so').source, big.out);
  assert.ok(big.bytes().equals(BIG));
});

test('cat: directories, devices, fifos, missing paths and loops are one-line IMGX_NOT_FOUND errors', () => {
  const cases: [string, RegExp][] = [
    ['/etc', /is a directory/],
    ['/bin', /is a directory/],
    ['/', /is a directory/],
    ['/dev/null', /not a regular file/],
    ['/run/initctl', /not a regular file/],
    ['/etc/hostname', /no such file/],
    ['/dangling', /no such file/],
    ['/loop2', /too many levels/],
  ];
  for (const [p, re] of cases) {
    try {
      locateFile(tree, p);
      assert.unreachable(p);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'IMGX_NOT_FOUND', p);
      assert.match((e as Error).message, re, p);
    }
  }
});

/**
 * Layers that record opens, and whose streams fail right after `cut` bytes: a read that goes on
 * past the entry it wants hits the failure.
 */
function guarded(cut: (index: number) => number | undefined): { readers: LayerReader[]; opened: number[] } {
  const opened: number[] = [];
  const tars = [LAYER0, LAYER1];
  const readers = layers.map((l): LayerReader => ({
    ...l,
    open: async () => {
      opened.push(l.index);
      const limit = cut(l.index);
      const tar = tars[l.index]!;
      if (limit === undefined) return Readable.from([tar]);
      return Readable.from(
        (async function* () {
          yield tar.subarray(0, limit);
          throw new Error(`read past byte ${limit} of layer ${l.index}`);
        })(),
      );
    },
  }));
  return { readers, opened };
}

test('cat reads only the layer holding the file, and stops right after its entry', async () => {
  const src = locateFile(tree, '/etc/passwd').source!;
  assert.is(src.layer, 0);
  // Header block(s) + 26 bytes of data padded to 512: anything read beyond the entry fails.
  const end = src.offset + 512 + 512;
  const { readers, opened } = guarded((i) => (i === 0 ? end : 0));
  assert.is(await cat('/etc/passwd', readers), 'root:x:0:0::/root:/bin/sh\n');
  assert.equal(opened, [0]);

  const { readers: r2, opened: o2 } = guarded((i) => (i === 1 ? undefined : 0));
  assert.is(await cat('/etc/motd', r2), 'hello\n');
  assert.equal(o2, [1]);
});

test('an index that does not match the layer is IMGX_BAD_ARCHIVE, not wrong content', async () => {
  const src = locateFile(tree, '/etc/passwd').source!;
  try {
    await copyContent(layers, { ...src, offset: src.offset + 512 }, sink().out);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'IMGX_BAD_ARCHIVE');
  }
  try {
    await copyContent(layers, { ...src, size: src.size + 1 }, sink().out);
    assert.unreachable();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'IMGX_BAD_ARCHIVE');
  }
});

test('hashContents: sha256 of each content, one read per layer however many files it holds', async () => {
  const paths = ['/etc/passwd', '/usr/lib/libc.so', '/usr/bin/more', '/etc/motd', '/usr/bin/vi', '/usr/bin/view'];
  const { readers, opened } = guarded(() => undefined);
  const reqs = paths.map((p) => ({ layers: readers, source: locateFile(tree, p).source! }));
  const hashes = await hashContents(reqs);
  assert.equal(opened.sort(), [0, 1]);
  for (const p of paths) {
    const expected = `sha256:${createHash('sha256').update(await cat(p)).digest('hex')}`;
    const s = locateFile(tree, p).source!;
    assert.is(hashes.get(contentKey(layers[s.layer]!, s.offset)), expected, p);
  }
});

test.run();

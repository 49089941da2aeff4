// to-disk straight from the layers: the tree view (root-view.ts) must answer exactly like the view
// of the same image extracted by `imgx extract`, so kernel, os-release and system-file decisions do
// not depend on which one to-disk used; layer-rootfs.ts must plan what measureTree measures on the
// extracted tree and write a filesystem that e2fsck accepts and debugfs reads back right.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { dirRootView, existsInView, treeRootView, type RootView } from '../../src/disk/root-view.ts';
import { findKernel } from '../../src/disk/kernel.ts';
import { readOsRelease } from '../../src/disk/os-release.ts';
import { systemFiles } from '../../src/disk/system-files.ts';
import { measureTree, usageOfEntries } from '../../src/disk/fs-size.ts';
import { layerEntries, writeLayerRootFs } from '../../src/disk/layer-rootfs.ts';
import type { ExtraEntry } from '../../src/disk/rootfs-builder.ts';
import { writeDirectory } from '../../src/export/dir-writer.ts';
import { emitTree } from '../../src/layers/emit.ts';
import type { FlatTree } from '../../src/layers/flat-tree.ts';
import type { LayerReader } from '../../src/layers/layer-reader.ts';
import { scanLayers } from '../../src/layers/scan.ts';
import { Warnings } from '../../src/warnings.ts';
import { makeTar, type TarEntry } from '../fixtures/tar.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { countingReaders, dir, file, link, symlink as anySymlink, wh } from './flatten-helpers.ts';

const MIB = 1024 * 1024;
const tmp = tempDir('imgx-disk-layers-');
let n = 0;

interface Image {
  tree: FlatTree;
  layers: LayerReader[];
  opens: number[];
  /** The image extracted as `imgx extract` does it. */
  dir: string;
}

/** Scans the layers and extracts them (as root, so owners and devices are kept). */
async function image(layers: TarEntry[][]): Promise<Image> {
  const { layers: readers, opens } = countingReaders(layers.map((l) => makeTar(l)));
  const tree = await scanLayers(readers, { warnings: new Warnings() });
  const out = join(tmp, `x${n++}`);
  await writeDirectory(emitTree(tree, readers), out, { warnings: new Warnings(), asRoot: true });
  return { tree, layers: readers, opens, dir: out };
}

const rootOwned = { uid: 0, gid: 0 };
// Symlinks as tar writes them (0777): a host symlink is always 0777 whatever the header said, while
// the tree keeps the header's mode, so a 0644 symlink header would make the two views differ.
const symlink = (name: string, target: string) => anySymlink(name, target, { mode: 0o777 });
// A Debian-like image in two layers: layer 2 adds a newer kernel, whites out one file, replaces
// another, and hardlinks to a file whose content stays in layer 1.
const LAYER1: TarEntry[] = [
  dir('etc/'),
  file('etc/os-release', 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nID=debian\nVERSION_CODENAME=bookworm\n'),
  file('etc/shadow', 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n', { mode: 0o640, gid: 42 }),
  file('etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n'),
  file('etc/motd', 'old motd\n'),
  dir('boot/'),
  file('boot/vmlinuz-6.1.0-1-amd64', 'kernel 1'),
  file('boot/initrd.img-6.1.0-1-amd64', 'initrd 1'),
  file('boot/vmlinuz-6.1.0-0-amd64.old', 'ignored'),
  dir('usr/', { mode: 0o755 }),
  dir('usr/bin/'),
  file('usr/lib/systemd/system/systemd-networkd.service', '[Unit]\n'),
  file('usr/lib/systemd/system/serial-getty@.service', '[Unit]\n'),
  symlink('lib', 'usr/lib'),
  file('usr/bin/su', 'su binary', { mode: 0o4755, ...rootOwned }),
  file('usr/bin/tool', 'tool binary', { mode: 0o750, uid: 1000, gid: 1001, pax: { 'SCHILY.xattr.user.note': 'hi' } }),
  link('usr/bin/tool2', 'usr/bin/tool'),
  symlink('usr/bin/rel', '../../etc/passwd'),
  symlink('abs', '/etc/passwd'),
  symlink('up', '../../../usr/bin'),
  symlink('loop1', 'loop2'),
  symlink('loop2', 'loop1'),
  symlink('dangling', 'nowhere'),
  symlink('long', `/usr/lib/${'x'.repeat(70)}`),
  file('empty', ''),
  file('gone', 'whited out'),
  { name: 'dev/null', type: 'char-device', devmajor: 1, devminor: 3, mode: 0o666 },
  { name: 'run/fifo', type: 'fifo', mode: 0o600 },
  // Enough names that the directory takes two blocks.
  ...Array.from({ length: 200 }, (_, i) => file(`many/file-with-a-long-name-${i}`, i % 2 ? '' : 'x'.repeat(i * 50))),
];
const LAYER2: TarEntry[] = [
  wh('.wh.gone'),
  file('boot/vmlinuz-6.1.0-2-amd64', 'kernel 2'),
  file('boot/initrd.img-6.1.0-2-amd64', 'initrd 2'),
  file('etc/motd', 'new motd\n'),
  link('usr/bin/tool3', 'usr/bin/tool'),
];

const PATHS = [
  '/', '/etc', '/etc/passwd', '//etc//./passwd', '/usr/bin/../../etc/passwd', '/../../etc/passwd', '/abs', '/usr/bin/rel',
  '/up/su', '/lib/systemd/system/systemd-networkd.service', '/loop1', '/loop1/x', '/dangling', '/missing', '/etc/missing', '/etc/passwd/x',
  '/empty', '/gone', '/etc/motd', '/usr/bin/tool2', '/usr/bin/tool3', '/usr/bin/su', '/dev/null', '/run/fifo', '/long', '/many/file-with-a-long-name-4',
];

// lstat takes resolved paths (callers resolve first); these are canonical, several a final symlink.
const CANONICAL = ['/etc', '/etc/passwd', '/etc/shadow', '/abs', '/usr/bin/rel', '/lib', '/loop1', '/dangling', '/long', '/empty', '/usr/bin/su', '/usr/bin/tool2', '/usr/bin/tool3', '/dev/null', '/run/fifo', '/usr/lib/systemd', '/missing', '/gone'];

/** Everything a view says about `paths`, to compare two views. */
async function answers(view: RootView, paths: string[]): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const p of paths) {
    const resolved = await view.resolve(p);
    out.push({ p, resolved, resolvedStat: resolved && (await view.lstat(resolved)), file: await view.readFile(p), exists: await existsInView(view, p) });
  }
  return out;
}
const sortedDir = async (view: RootView, p: string) => (await view.readdir(p)).sort();

if (requireRoot(test)) {
  let img: Image;
  test.before(async () => {
    img = await image([LAYER1, LAYER2]);
  });

  test('tree view answers like the extracted directory: resolve, lstat, readFile, exists', async () => {
    const tree = treeRootView(img.tree, img.layers);
    const host = dirRootView(img.dir);
    // The root's own metadata is not compared: the extracted root is the destination directory.
    const paths = PATHS.filter((p) => p !== '/');
    for (const p of paths) assert.equal(await answers(tree, [p]), await answers(host, [p]), p);
    for (const p of CANONICAL) assert.equal(await tree.lstat(p), await host.lstat(p), p);
    assert.is(await tree.resolve('/'), '/');
    // A trailing slash: resolve and readFile agree (lstat and existsInView take resolved paths,
    // and differ here: the host says ENOTDIR, the tree normalises the slash away).
    for (const v of [tree, host]) assert.equal([await v.resolve('/etc/passwd/'), await v.readFile('/etc/passwd/')], ['/etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n']);
    assert.is(await host.resolve('/'), '/');
    // Spot checks, so that two views both wrong would not pass.
    assert.is(await tree.resolve('/up/su'), '/usr/bin/su');
    assert.is(await tree.resolve('/usr/bin/rel'), '/etc/passwd');
    assert.is(await tree.resolve('/loop1'), undefined);
    assert.is(await tree.resolve('/missing'), undefined);
    assert.is(await tree.readFile('/abs'), 'root:x:0:0:root:/root:/bin/bash\n');
    assert.is(await tree.readFile('/empty'), '');
    assert.is(await tree.readFile('/etc'), undefined);
    assert.is(await tree.readFile('/gone'), undefined);
    assert.is(await tree.readFile('/etc/motd'), 'new motd\n');
    assert.is(await tree.readFile('/usr/bin/tool3'), 'tool binary');
    assert.equal(await tree.lstat('/abs'), { type: 'symlink', mode: 0o777, uid: 0, gid: 0 });
    assert.equal(await tree.lstat('/usr/bin/su'), { type: 'file', mode: 0o4755, uid: 0, gid: 0 });
    assert.equal(await tree.lstat('/usr/bin/tool2'), { type: 'file', mode: 0o750, uid: 1000, gid: 1001 });
    assert.equal(await tree.lstat('/dev/null'), { type: 'other', mode: 0o666, uid: 0, gid: 0 });
    assert.ok(await existsInView(tree, '/dangling'), 'a dangling final symlink exists');
    assert.ok(await existsInView(tree, '/lib/systemd/system/serial-getty@.service'), 'parents through a symlink');
    assert.not.ok(await existsInView(tree, '/loop1/x'));
  });

  test('readdir lists the same names', async () => {
    const tree = treeRootView(img.tree, img.layers);
    const host = dirRootView(img.dir);
    for (const p of ['/', '/etc', '/boot', '/usr/bin', '/many', '/usr/lib/systemd/system', '/missing', '/etc/passwd']) {
      assert.equal(await sortedDir(tree, p), await sortedDir(host, p), p);
    }
    assert.ok((await tree.readdir('/')).includes('lib'));
    assert.not.ok((await tree.readdir('/')).includes('gone'));
  });

  test('prefetch reads each layer at most once, then readFile answers from it the same', async () => {
    const tree = treeRootView(img.tree, img.layers);
    const host = dirRootView(img.dir);
    const paths = ['/etc/os-release', '/etc/motd', '/missing', '/usr/bin/tool2', '/usr/bin/tool3', '/empty', '/abs', '/etc', '/boot/vmlinuz-6.1.0-2-amd64', '/loop1'];
    const before = [...img.opens];
    await tree.prefetch!(paths);
    const opened = img.opens.map((o, i) => o - before[i]!);
    assert.ok(opened.every((o) => o <= 1), `layers opened ${opened}`);
    const got = [];
    for (const p of paths) got.push(await tree.readFile(p));
    assert.equal(img.opens.map((o, i) => o - before[i]!), opened, 'readFile after prefetch reads no layer');
    const want = [];
    for (const p of paths) want.push(await host.readFile(p));
    assert.equal(got, want);
    assert.is(got[3], 'tool binary');
  });

  test('findKernel, readOsRelease and systemFiles: the same from the layers as from the directory', async () => {
    const tree = treeRootView(img.tree, img.layers);
    const k = await findKernel(tree);
    assert.equal(k, { kernel: '/boot/vmlinuz-6.1.0-2-amd64', initrd: '/boot/initrd.img-6.1.0-2-amd64', version: '6.1.0-2-amd64' });
    assert.equal(await findKernel(img.dir), k);
    const os = await readOsRelease(tree);
    assert.equal(os, { id: 'debian', idLike: [], prettyName: 'Debian GNU/Linux 12 (bookworm)', versionCodename: 'bookworm' });
    assert.equal(await readOsRelease(img.dir), os);
    const opts = { rootUuid: '12345678-1234-1234-1234-123456789abc', hostname: 'debian', rootPassword: 'pw', sshKey: 'ssh-ed25519 AAAA test' };
    // The password hash is salted: compare with it blanked out.
    const norm = (s: Awaited<ReturnType<typeof systemFiles>>) => JSON.stringify(s).replace(/\$6\$[^:]*/g, 'HASH');
    const fromTree = await systemFiles(tree, opts);
    const fromDir = await systemFiles(img.dir, opts);
    assert.is(norm(fromTree), norm(fromDir));
    const shadow = fromTree.extras.find((x) => x.path === '/etc/shadow');
    assert.ok(shadow?.type === 'file' && /^root:\$6\$/.test(String(shadow.content)) && shadow.mode === 0o640 && shadow.gid === 42);
    assert.ok(fromTree.extras.some((x) => x.type === 'symlink' && x.path.endsWith('getty.target.wants/serial-getty@ttyS0.service')));
    assert.ok(fromTree.features.some((f) => f.startsWith('DHCP')));
  });

  test('hostile /etc symlinks stay inside the image', async () => {
    for (const target of ['/host-etc-that-does-not-exist-in-the-image', '../../../../etc', '/../../etc']) {
      const h = await image([[symlink('etc', target), file('boot/vmlinuz-1', 'k')]]);
      for (const view of [treeRootView(h.tree, h.layers), dirRootView(h.dir)]) {
        assert.is(await view.readFile('/etc/passwd'), undefined, target);
        assert.is(await view.resolve('/etc/passwd'), undefined, target);
        assert.is(await readOsRelease(view), undefined);
        assert.not.ok(await existsInView(view, '/etc/shadow'));
      }
    }
    // `..` past the root stops at the root: this one leads to the image's own /real.
    const h = await image([[symlink('etc', '../../../../real'), file('real/passwd', 'image passwd')]]);
    for (const view of [treeRootView(h.tree, h.layers), dirRootView(h.dir)]) {
      assert.is(await view.readFile('/etc/passwd'), 'image passwd');
      assert.is(await view.resolve('/etc/passwd'), '/real/passwd');
    }
  });

  test('layerEntries: hardlink groups, directories, symlinks, devices, xattrs', () => {
    const { entries, groups } = layerEntries(img.tree);
    assert.equal([...groups], [['usr/bin/tool', ['usr/bin/tool', 'usr/bin/tool2', 'usr/bin/tool3']]]);
    const e = (p: string) => entries.get(p)!.entry;
    assert.is(e('usr/bin/tool').type, 'file');
    assert.is(e('usr/bin/tool').size, 11);
    assert.is(e('usr/bin/tool').xattrs.get('user.note')?.toString(), 'hi');
    for (const p of ['usr/bin/tool2', 'usr/bin/tool3']) assert.equal([e(p).type, e(p).linkname, e(p).size], ['hardlink', 'usr/bin/tool', 0]);
    assert.equal([e('usr/lib').type, e('usr/lib').mode & 0o7777], ['directory', 0o755]);
    assert.equal([e('lib').type, e('lib').linkname], ['symlink', 'usr/lib']);
    assert.equal([e('dev/null').type, e('dev/null').devmajor, e('dev/null').devminor], ['char-device', 1, 3]);
    assert.is(e('run/fifo').type, 'fifo');
    assert.is(e('usr/bin/su').mode & 0o7777, 0o4755);
    assert.not.ok(entries.has('gone'));
    // Parents before children.
    const keys = [...entries.keys()];
    assert.ok(keys.indexOf('usr') < keys.indexOf('usr/bin') && keys.indexOf('usr/bin') < keys.indexOf('usr/bin/su'));
  });

  test('usageOfEntries equals measureTree on the extracted directory', async () => {
    assert.equal(usageOfEntries(layerEntries(img.tree).entries), await measureTree(img.dir));
    const h = await image([[file('a', 'x'.repeat(5000)), link('b', 'a'), dir('d/'), symlink('s', 'y'.repeat(60))]]);
    assert.equal(usageOfEntries(layerEntries(h.tree).entries), await measureTree(h.dir));
  });
}

if (requireTools(test, ['e2fsck', 'debugfs'])) {
  const OFF = MIB;
  const SIZE = 64 * MIB;
  function run(cmd: string, args: string[]) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
    return { status: r.status, out: r.stdout, err: r.stderr };
  }
  /** Writes the layers' root filesystem with these extras; returns the debugfs spec. */
  async function build(layers: TarEntry[][], extras: ExtraEntry[]): Promise<string> {
    const { layers: readers } = countingReaders(layers.map((l) => makeTar(l)));
    const tree = await scanLayers(readers, { warnings: new Warnings() });
    const path = join(tmp, `img${n++}`);
    const fd = openSync(path, 'w');
    ftruncateSync(fd, OFF + SIZE);
    closeSync(fd);
    await writeLayerRootFs({ image: path, offset: OFF, size: SIZE, tree, layers: readers, planned: layerEntries(tree), extras, uuid: '12345678-1234-1234-1234-123456789abc', label: 'root', inodes: 4096 });
    const spec = `${path}?offset=${OFF}`;
    const fsck = run('e2fsck', ['-fn', spec]);
    assert.is(fsck.status, 0, fsck.out + fsck.err);
    return spec;
  }
  const debugfs = (spec: string, cmd: string) => {
    const r = run('debugfs', ['-R', cmd, spec]);
    assert.is(r.status, 0, r.err);
    return r.out;
  };
  const inode = (stat: string) => /Inode: (\d+)/.exec(stat)?.[1];

  test('writeLayerRootFs: contents, modes, owners, hardlinks, symlinks, devices, later layers win', async () => {
    const spec = await build([LAYER1, LAYER2], []);
    for (const [p, text] of [['etc/passwd', 'root:x:0:0:root:/root:/bin/bash\n'], ['etc/motd', 'new motd\n'], ['usr/bin/su', 'su binary'], ['usr/bin/tool3', 'tool binary'], ['boot/vmlinuz-6.1.0-2-amd64', 'kernel 2'], ['empty', ''], ['many/file-with-a-long-name-198', 'x'.repeat(9900)]] as const) {
      assert.is(debugfs(spec, `cat /${p}`), text, p);
    }
    assert.match(debugfs(spec, 'stat /usr/bin/su'), /Type: regular\s+Mode:\s+04755/);
    const tool = debugfs(spec, 'stat /usr/bin/tool');
    assert.match(tool, /User:\s+1000\s+Group:\s+1001/);
    assert.match(tool, /Mode:\s+0750/);
    assert.match(tool, /Links: 3/);
    assert.is(inode(debugfs(spec, 'stat /usr/bin/tool2')), inode(tool));
    assert.is(inode(debugfs(spec, 'stat /usr/bin/tool3')), inode(tool));
    assert.match(debugfs(spec, 'ea_list /usr/bin/tool'), /user\.note.*hi/);
    assert.match(debugfs(spec, 'stat /etc/shadow'), /Group:\s+42/);
    assert.match(debugfs(spec, 'stat /lib'), /Fast link dest: "usr\/lib"/);
    assert.match(debugfs(spec, 'stat /dev/null'), /Type: character special[\s\S]*Device major\/minor number: 01:03/);
    assert.match(debugfs(spec, 'stat /run/fifo'), /Type: FIFO/);
    assert.match(debugfs(spec, 'ls -l /'), /long/);
    assert.not.match(debugfs(spec, 'ls /'), /\bgone\b/);
  });

  test('writeLayerRootFs: extras replace files (a hardlink group\'s first name too), add and change directories, add symlinks', async () => {
    const layer: TarEntry[] = [
      dir('etc/', { mode: 0o755 }),
      file('etc/hostname', 'image\n'),
      file('data/a', 'shared content'),
      link('data/b', 'data/a'),
      link('data/c', 'data/a'),
      file('data/keep', 'keep'),
      // A group whose first name is under a directory an extra replaces with a file.
      file('old/a', 'moved'),
      link('zz/b', 'old/a'),
    ];
    const extras: ExtraEntry[] = [
      { type: 'file', path: '/etc/hostname', content: 'vm\n', mode: 0o600, uid: 0, gid: 0 },
      { type: 'file', path: '/data/a', content: 'replaced', mode: 0o644, uid: 0, gid: 0 },
      { type: 'file', path: '/old', content: 'was a directory', mode: 0o644, uid: 0, gid: 0 },
      { type: 'dir', path: '/etc', mode: 0o750, uid: 0, gid: 5 },
      { type: 'dir', path: '/root', mode: 0o700, uid: 0, gid: 0 },
      { type: 'dir', path: '/root/.ssh', mode: 0o700, uid: 0, gid: 0 },
      { type: 'file', path: '/root/.ssh/authorized_keys', content: 'ssh-ed25519 AAAA\n', mode: 0o600, uid: 0, gid: 0 },
      { type: 'symlink', path: '/etc/localtime', target: '/usr/share/zoneinfo/UTC', uid: 0, gid: 0 },
    ];
    const spec = await build([layer], extras);
    assert.is(debugfs(spec, 'cat /etc/hostname'), 'vm\n');
    assert.match(debugfs(spec, 'stat /etc/hostname'), /Mode:\s+0600/);
    assert.is(debugfs(spec, 'cat /data/a'), 'replaced');
    assert.match(debugfs(spec, 'stat /data/a'), /Links: 1/);
    // The other names keep the original content, still one inode.
    assert.is(debugfs(spec, 'cat /data/b'), 'shared content');
    assert.is(debugfs(spec, 'cat /data/c'), 'shared content');
    const b = debugfs(spec, 'stat /data/b');
    assert.match(b, /Links: 2/);
    assert.is(inode(debugfs(spec, 'stat /data/c')), inode(b));
    assert.is(debugfs(spec, 'cat /data/keep'), 'keep');
    assert.is(debugfs(spec, 'cat /old'), 'was a directory');
    assert.is(debugfs(spec, 'cat /zz/b'), 'moved');
    assert.match(debugfs(spec, 'stat /etc'), /Mode:\s+0750/);
    assert.match(debugfs(spec, 'stat /etc'), /Group:\s+5/);
    assert.match(debugfs(spec, 'stat /root/.ssh'), /Type: directory\s+Mode:\s+0700/);
    assert.is(debugfs(spec, 'cat /root/.ssh/authorized_keys'), 'ssh-ed25519 AAAA\n');
    assert.match(debugfs(spec, 'stat /etc/localtime'), /Fast link dest: "\/usr\/share\/zoneinfo\/UTC"/);
  });

  test('writeLayerRootFs: a link added by a later layer to content a lower layer holds; a file replaced later', async () => {
    const spec = await build(
      [[file('bin/x', 'x from layer 1'), file('bin/y', 'y from layer 1')], [link('bin/x2', 'bin/x'), file('bin/y', 'y from layer 2', { mode: 0o700 })], [file('bin/z', 'z')]],
      [],
    );
    assert.is(debugfs(spec, 'cat /bin/x2'), 'x from layer 1');
    assert.match(debugfs(spec, 'stat /bin/x'), /Links: 2/);
    assert.is(debugfs(spec, 'cat /bin/y'), 'y from layer 2');
    assert.match(debugfs(spec, 'stat /bin/y'), /Mode:\s+0700/);
    assert.is(debugfs(spec, 'cat /bin/z'), 'z');
  });
}

test.run();

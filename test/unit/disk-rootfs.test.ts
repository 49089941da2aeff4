// The root filesystem side of `imgx to-disk`: --size parsing, sizing the ext4 filesystem from the
// tree (checked against real mke2fs), the system files added as extras, and the e2fsprogs builder
// run for real on a tree with owners, special modes, hardlinks, xattrs and a fifo.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, ftruncateSync, linkSync, mkdirSync, openSync, readFileSync, readSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSizeOption } from '../../src/disk/size-option.ts';
import { addExtras, autoFsBytes, inodesFor, journalBlocks, measureTree, minimumFsBytes, type TreeUsage } from '../../src/disk/fs-size.ts';
import { systemFiles, type SystemOptions } from '../../src/disk/system-files.ts';
import { Mke2fsBuilder, debugfsScript } from '../../src/disk/mke2fs-builder.ts';
import type { ExtraEntry } from '../../src/disk/rootfs-builder.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { rejects } from '../helpers/rejects.ts';

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const dir = tempDir('imgx-disk-rootfs-');
let n = 0;
const fresh = (): string => {
  const d = join(dir, `t${n++}`);
  mkdirSync(d);
  return d;
};
/** chmod + chown (mode set after chown: chown clears setuid). */
function own(path: string, mode: number, uid = 0, gid = 0): string {
  chownSync(path, uid, gid);
  chmodSync(path, mode);
  return path;
}
function put(root: string, path: string, content: string | Buffer = ''): string {
  mkdirSync(join(root, path, '..'), { recursive: true });
  writeFileSync(join(root, path), content);
  return join(root, path);
}
function expectUsage(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.is((e as { code?: string }).code, 'IMGX_USAGE', String(e));
    return;
  }
  assert.unreachable('expected IMGX_USAGE');
}
/** A sparse file of `size` bytes. */
function sparse(path: string, size: number): string {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
  return path;
}
function run(cmd: string, args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
}
// Extra entries, briefly.
const F = (path: string, content: string | Buffer = '', mode = 0o644, uid = 0, gid = 0): ExtraEntry => ({ type: 'file', path, content, mode, uid, gid });
const D = (path: string, mode = 0o755, uid = 0, gid = 0): ExtraEntry => ({ type: 'dir', path, mode, uid, gid });
const L = (path: string, target: string): ExtraEntry => ({ type: 'symlink', path, target, uid: 0, gid: 0 });
const UUID = '6f1c2d3e-4a5b-4c7d-8e9f-0123456789ab';

// ---------------------------------------------------------------------------------------------
// --size

test('parseSizeOption: auto, binary units, fractions, +SIZE, plain bytes rounded up to 512', () => {
  for (const t of ['auto', '', ' auto ']) assert.equal(parseSizeOption(t), { kind: 'auto' }, t);
  const exact: [string, number][] = [
    ['4G', 4 * GIB], ['4GiB', 4 * GIB], ['4g', 4 * GIB], ['1536M', 1536 * MIB], ['1.5G', 1536 * MIB], ['2T', 2048 * GIB],
    ['2147483648', 2 * GIB], ['1000', 1024], ['512', 512], ['1', 512], ['1.1K', 1536], ['0.3M', 314880],
  ];
  for (const [t, bytes] of exact) assert.equal(parseSizeOption(t), { kind: 'exact', bytes }, t);
  assert.equal(parseSizeOption('+1G'), { kind: 'extra', bytes: GIB });
  assert.equal(parseSizeOption('+512M'), { kind: 'extra', bytes: 512 * MIB });
});

test('parseSizeOption: bad inputs are usage errors', () => {
  for (const bad of ['abc', '-1G', '4X', '4GG', '0', '0G', '+0', '1.G', '.5G', '+', '++1G', '1e9', 'G', '4 G B', '1,5G', 'auto2', '9999999T']) {
    expectUsage(() => parseSizeOption(bad));
  }
});

// ---------------------------------------------------------------------------------------------
// Filesystem size

/** A tree whose usage is known: see the comments for each count. */
function knownTree(): string {
  const r = fresh();
  put(r, 'empty'); // 0 blocks
  put(r, 'one', 'x'); // 1
  put(r, 'full', Buffer.alloc(4096)); // 1
  put(r, 'over', Buffer.alloc(4097)); // 2
  put(r, 'ten', Buffer.alloc(10000)); // 3
  put(r, 'h1', Buffer.alloc(5000)); // 2, once for both names
  linkSync(join(r, 'h1'), join(r, 'h2'));
  symlinkSync('x'.repeat(80), join(r, 'longlink')); // target > 59 bytes: one block
  symlinkSync('one', join(r, 'shortlink')); // in the inode: none
  put(r, 'sub/deep/f', Buffer.alloc(8192)); // 2
  return r;
}

test('measureTree: sizes in 4 KiB blocks, hardlinks once, long symlinks a block, every directory a block', async () => {
  const u = await measureTree(knownTree());
  // root + empty one full over ten h1 longlink shortlink sub deep f (h2 is h1)
  assert.is(u.inodes, 12);
  // files 0+1+1+2+3+2+2 = 11, long symlink 1, three directories (root, sub, deep) 1 each
  assert.is(u.blocks, 15);
  assert.is(u.bytes, 1 + 4096 + 4097 + 10000 + 5000 + 8192);
  // A directory with many long names needs more than one block.
  const big = fresh();
  for (let i = 0; i < 200; i++) put(big, `${String(i).padStart(3, '0')}-${'n'.repeat(100)}`);
  const bu = await measureTree(big);
  assert.is(bu.inodes, 201);
  assert.ok(bu.blocks >= Math.ceil((200 * (8 + 104)) / 4096), `directory blocks: ${bu.blocks}`);
  // Symlinks are not followed: a link to a big directory outside counts as nothing.
  const outside = fresh();
  symlinkSync(big, join(outside, 'elsewhere'));
  assert.equal(await measureTree(outside), { inodes: 2, blocks: 1, bytes: 0 });
});

test('addExtras: an inode each, file blocks by UTF-8 byte length, a block per directory; input kept', () => {
  const base: TreeUsage = { inodes: 10, blocks: 5, bytes: 100 };
  // 'é' is two bytes in UTF-8: 6000 bytes, two blocks.
  const extras = [F('/a', 'x'.repeat(5000)), F('/b', 'é'.repeat(3000)), F('/c', Buffer.alloc(4096)), F('/d'), D('/e'), L('/f', '/a')];
  assert.equal(addExtras(base, extras), { inodes: 16, blocks: 5 + 2 + 2 + 1 + 0 + 1, bytes: 100 + 5000 + 6000 + 4096 });
  assert.equal(base, { inodes: 10, blocks: 5, bytes: 100 });
  assert.equal(addExtras(base, []), base);
});

test('journalBlocks: the thresholds of mke2fs', () => {
  const table: [number, number][] = [[2048, 1024], [32767, 1024], [32768, 4096], [262143, 4096], [262144, 8192], [524287, 8192], [524288, 16384], [4194303, 16384], [4194304, 32768], [8388608, 65536], [16777216, 131072], [33554431, 131072], [33554432, 262144], [2 ** 32, 262144]];
  for (const [blocks, want] of table) assert.is(journalBlocks(blocks), want, String(blocks));
});

if (requireTools(test, ['mke2fs', 'dumpe2fs'])) {
  test('journalBlocks agrees with the journal the host mke2fs makes', () => {
    for (const blocks of [32767, 32768, 262144, 524288]) {
      const img = sparse(join(dir, `journal-${blocks}.img`), blocks * 4096);
      assert.is(run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', img, String(blocks)]).status, 0);
      const size = /Total journal size:\s+(\d+)([kMG])/.exec(run('dumpe2fs', ['-h', img]).out);
      assert.ok(size, 'journal size shown');
      const bytes = Number(size[1]) * { k: 1024, M: MIB, G: GIB }[size[2] as 'k' | 'M' | 'G'];
      assert.is(journalBlocks(blocks), bytes / 4096, String(blocks));
    }
  });
}

test('minimumFsBytes / autoFsBytes / inodesFor: whole MiB, covers the content, grows with it', () => {
  let prev = 0;
  for (const blocks of [0, 10, 5000, 100_000, 1_000_000, 5_000_000]) {
    const u: TreeUsage = { inodes: 1 + blocks / 4, blocks, bytes: blocks * 4096 };
    const min = minimumFsBytes(u);
    assert.is(min % MIB, 0, `whole MiB for ${blocks}`);
    assert.ok(min >= blocks * 4096 / 0.95, `room for the content and the 5 % reserve (${blocks})`);
    assert.ok(min >= prev, 'monotonic');
    if (blocks >= 100_000) assert.ok(min > prev, 'strictly more for much more content');
    prev = min;
    const auto = autoFsBytes(u);
    assert.ok(auto - min >= 256 * MIB, `auto headroom ${auto - min}`);
    assert.is(auto % MIB, 0);
    assert.ok(auto - min >= (blocks * 4096) / 4 - MIB, 'a quarter of the content as headroom');
    for (const size of [min, auto]) assert.ok(inodesFor(u, size) >= 1.25 * u.inodes);
  }
  // Many small files: the inode table must be paid for.
  const files: TreeUsage = { inodes: 500_000, blocks: 500_000, bytes: 500_000 * 100 };
  assert.ok(minimumFsBytes(files) >= 500_000 * 4096 + inodesFor(files, minimumFsBytes(files)) * 256);
  assert.ok(inodesFor(files, GIB) >= 625_000);
});

if (requireTools(test, ['mke2fs', 'e2fsck'])) {
  test('a tree fits into minimumFsBytes for real (mke2fs -d), e2fsck clean', async () => {
    const r = knownTree();
    for (let d = 0; d < 20; d++) for (let f = 0; f < 150; f++) put(r, `many/d${d}/f${f}`, Buffer.alloc((f * 397) % 9000, 1));
    put(r, 'big', Buffer.alloc(24 * MIB, 7));
    const usage = await measureTree(r);
    const size = minimumFsBytes(usage);
    const img = sparse(join(dir, 'min.img'), size);
    const work = fresh();
    await new Mke2fsBuilder().build({ image: img, offset: 0, size, tree: r, extras: [], uuid: UUID, label: 'min', inodes: inodesFor(usage, size), workDir: work });
    const fsck = run('e2fsck', ['-fn', img]);
    assert.is(fsck.status, 0, fsck.out + fsck.err);
  });
}

// ---------------------------------------------------------------------------------------------
// System files

const find = (extras: ExtraEntry[], path: string) => extras.filter((e) => e.path === path);
const fileOf = (extras: ExtraEntry[], path: string) => {
  const [e, ...more] = find(extras, path);
  assert.is(more.length, 0, `one entry for ${path}`);
  assert.ok(e && e.type === 'file', `file ${path}`);
  return e as Extract<ExtraEntry, { type: 'file' }>;
};
/** Every entry's parent exists in the tree or is an earlier dir entry; no dir is added twice or when present. */
async function checkParents(root: string, extras: ExtraEntry[]): Promise<void> {
  const made = new Set<string>();
  for (const e of extras) {
    const parent = e.path.slice(0, e.path.lastIndexOf('/')) || '/';
    const onDisk = (await lstat(join(root, parent)).catch(() => undefined))?.isDirectory() ?? false;
    assert.ok(onDisk || made.has(parent), `parent of ${e.path}`);
    if (e.type === 'dir') {
      assert.not.ok(made.has(e.path) || (await lstat(join(root, e.path)).catch(() => undefined)), `dir ${e.path} added only when missing`);
      made.add(e.path);
    }
  }
}

function systemTree(): string {
  const r = fresh();
  const shadow = put(r, 'etc/shadow', 'root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nuser:$6$abc$def:19001:0:99999:7:::\n');
  // Debian's shadow group; only root can give it (the test then checks the gid it really has).
  if (process.getuid?.() === 0) own(shadow, 0o640, 0, 42);
  else chmodSync(shadow, 0o640);
  for (const u of ['systemd-networkd.service', 'systemd-networkd.socket', 'serial-getty@.service']) put(r, `lib/systemd/system/${u}`, '[Unit]\n');
  mkdirSync(join(r, 'etc/systemd/system'), { recursive: true });
  return r;
}
const opts = (o: Partial<SystemOptions> = {}): SystemOptions => ({ rootUuid: UUID, hostname: 'box-1', ...o });
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEKEYEXAMPLEKEYEXAMPLEKEYEXAMPLEKEY00 me@host';

if (requireTools(test, ['openssl'])) {
  test('systemFiles: fstab, hostname, hosts, empty machine-id, root password, SSH key, networkd, getty', async () => {
    const r = systemTree();
    const password = 'c0rrect horse $tap!e';
    const { extras, notes, features } = await systemFiles(r, opts({ rootPassword: password, sshKey: `\n${KEY}\n\n` }));
    await checkParents(r, extras);

    const fstab = fileOf(extras, '/etc/fstab');
    const rootLine = String(fstab.content).split('\n').find((l) => !l.startsWith('#') && l.trim());
    assert.equal(rootLine?.split(/\s+/).slice(0, 3), [`UUID=${UUID}`, '/', 'ext4']);
    assert.is(rootLine?.split(/\s+/)[5], '1', 'fsck pass 1 for the root');
    assert.is(String(fileOf(extras, '/etc/hostname').content), 'box-1\n');
    const hosts = String(fileOf(extras, '/etc/hosts').content);
    assert.match(hosts, /^127\.0\.0\.1\s+localhost$/m);
    assert.match(hosts, /^127\.0\.1\.1\s+box-1$/m);
    const mid = fileOf(extras, '/etc/machine-id');
    assert.equal([String(mid.content), mid.mode], ['', 0o444]);

    // The shadow entry: a SHA-512 crypt that openssl reproduces from its salt; the rest unchanged.
    const shadow = fileOf(extras, '/etc/shadow');
    assert.equal([shadow.mode, shadow.uid, shadow.gid], [0o640, 0, (await lstat(join(r, 'etc/shadow'))).gid]);
    const lines = String(shadow.content).split('\n');
    const root = lines[0]!.split(':');
    assert.is(root.length, 9);
    assert.equal(root.slice(3), ['0', '99999', '7', '', '', '']);
    assert.ok(Math.abs(Number(root[2]) - Date.now() / 86_400_000) < 2, 'last change: today');
    const m = /^\$6\$([^$]+)\$[./A-Za-z0-9]{86}$/.exec(root[1]!);
    assert.ok(m, root[1]);
    const again = run('openssl', ['passwd', '-6', '-salt', m[1]!, password]);
    assert.is(again.out.trim(), root[1]);
    assert.equal(lines.slice(1), ['daemon:*:19000:0:99999:7:::', 'user:$6$abc$def:19001:0:99999:7:::', '']);

    // authorized_keys under a /root/.ssh made with mode 0700 (the tree has no /root).
    const keys = fileOf(extras, '/root/.ssh/authorized_keys');
    assert.equal([String(keys.content), keys.mode, keys.uid], [`${KEY}\n`, 0o600, 0]);
    for (const d of ['/root', '/root/.ssh']) assert.equal(find(extras, d).map((e) => [e.type, (e as { mode: number }).mode]), [['dir', 0o700]]);
    assert.ok(notes.some((x) => /sshd|SSH server/.test(x)), notes.join('\n'));
    assert.ok(features.includes('root password'));

    const network = extras.filter((e) => e.path.startsWith('/etc/systemd/network/') && e.path.endsWith('.network'));
    assert.is(network.length, 1);
    assert.match(String((network[0] as { content: string }).content), /\[Match\]\s*\nName=.*en\*/);
    assert.match(String((network[0] as { content: string }).content), /^DHCP=(yes|ipv4)$/m);
    const links = Object.fromEntries(extras.flatMap((e) => (e.type === 'symlink' ? [[e.path, e.target]] : [])));
    assert.equal(links, {
      '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service': '/lib/systemd/system/systemd-networkd.service',
      '/etc/systemd/system/sockets.target.wants/systemd-networkd.socket': '/lib/systemd/system/systemd-networkd.socket',
      '/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service': '/lib/systemd/system/serial-getty@.service',
    });
    for (const t of Object.values(links)) assert.ok((await lstat(join(r, t))).isFile(), `link target ${t} exists in the tree`);
    assert.is(find(extras, '/etc/systemd/system').length, 0, 'existing directory not re-added');
    assert.is(find(extras, '/etc').length, 0);
  });

  test('systemFiles: /usr/lib units, resolved, an existing /root, sshd present', async () => {
    const r = fresh();
    for (const u of ['systemd-networkd.service', 'systemd-resolved.service']) put(r, `usr/lib/systemd/system/${u}`);
    put(r, 'usr/sbin/sshd');
    mkdirSync(join(r, 'root'), { mode: 0o700 });
    const { extras, notes } = await systemFiles(r, opts({ sshKey: KEY }));
    await checkParents(r, extras);
    const links = Object.fromEntries(extras.flatMap((e) => (e.type === 'symlink' ? [[e.path, e.target]] : [])));
    assert.equal(links, {
      '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service': '/usr/lib/systemd/system/systemd-networkd.service',
      '/etc/systemd/system/multi-user.target.wants/systemd-resolved.service': '/usr/lib/systemd/system/systemd-resolved.service',
    });
    assert.is(find(extras, '/root').length, 0, '/root exists');
    assert.is(find(extras, '/root/.ssh').length, 1);
    assert.not.ok(notes.some((x) => /sshd|SSH server/.test(x)), notes.join('\n'));
    // Missing /etc is created first.
    assert.equal(extras[0], { type: 'dir', path: '/etc', mode: 0o755, uid: 0, gid: 0 });
  });

  test('systemFiles: no networkd → a note and no network files; bad key, hostname or shadow → usage errors', async () => {
    const r = fresh();
    put(r, 'etc/shadow', 'daemon:*:1:0:99999:7:::\n');
    const { extras, notes } = await systemFiles(r, opts());
    assert.ok(notes.some((x) => /networkd/.test(x)), notes.join('\n'));
    assert.ok(notes.some((x) => /cannot log in/.test(x)), notes.join('\n'));
    assert.not.ok(extras.some((e) => e.path.startsWith('/etc/systemd')), 'no network files or links');
    await rejects(systemFiles(systemTree(), opts({ sshKey: 'hello world\n' })), 'IMGX_USAGE', /--ssh-key/);
    await rejects(systemFiles(systemTree(), opts({ hostname: 'Bad_Name' })), 'IMGX_USAGE', /hostname/);
    await rejects(systemFiles(r, opts({ rootPassword: 'x' })), 'IMGX_USAGE', /root entry/);
    // /etc/shadow planted as a link to the host's file: read inside the tree (a loop), never the host's.
    const hostile = fresh();
    mkdirSync(join(hostile, 'etc'));
    symlinkSync('/etc/shadow', join(hostile, 'etc/shadow'));
    await rejects(systemFiles(hostile, opts({ rootPassword: 'x' })), 'IMGX_USAGE', /shadow/);
  });
}

// ---------------------------------------------------------------------------------------------
// The e2fsprogs builder

test('debugfsScript: rm before write, modes octal, owners decimal, contents to work files', async () => {
  const work = fresh();
  const bin = Buffer.from([0, 1, 2, 255, 10]);
  const script = await debugfsScript([D('/opt/app', 0o750, 1, 2), F('/opt/app/run', bin, 0o4755, 1000, 1001), L('/opt/app/link', '/opt/app/run')], work);
  const lines = script.trim().split('\n').map((l) => l.split(' '));
  const at = (...w: string[]) => lines.findIndex((l) => w.every((x, i) => l[i] === x));
  const sif = (path: string, field: string) => lines.filter((l) => l[0] === 'sif' && l[1] === path && l[2] === field).map((l) => l[3]!);
  assert.ok(at('mkdir', '/opt/app') >= 0);
  assert.is(at('rm', '/opt/app'), -1, 'a directory is never removed');
  assert.equal(sif('/opt/app', 'mode').map((m) => parseInt(m, 8)), [0o040750]);
  assert.equal([sif('/opt/app', 'uid'), sif('/opt/app', 'gid')], [['1'], ['2']]);

  const write = lines.find((l) => l[0] === 'write' && l[2] === '/opt/app/run')!;
  assert.ok(write, script);
  assert.ok(at('rm', '/opt/app/run') >= 0 && at('rm', '/opt/app/run') < lines.indexOf(write));
  assert.ok(readFileSync(write[1]!).equals(bin), 'content written byte for byte');
  assert.ok(write[1]!.startsWith(work));
  assert.equal(sif('/opt/app/run', 'mode').map((m) => [m.startsWith('0'), parseInt(m, 8)]), [[true, 0o104755]]);
  assert.equal([sif('/opt/app/run', 'uid'), sif('/opt/app/run', 'gid')], [['1000'], ['1001']]);
  assert.ok(at('mkdir', '/opt/app') < lines.indexOf(write), 'order kept');

  assert.ok(at('rm', '/opt/app/link') >= 0 && at('rm', '/opt/app/link') < at('symlink', '/opt/app/link', '/opt/app/run'));
  assert.ok(lines.every((l) => l.every((w) => w !== '')), 'no empty arguments');

  const bad = [F('/a b'), F("/a'b"), F('/a"b'), F('/a\nrm /etc'), D('/a/../b'), D('a/b'), D('/a//b'), D('/a/.'), L('/l', '/x y'), L('/l', '/x\nrm /etc')];
  for (const e of bad) await debugfsScript([e], work).then(() => assert.unreachable(JSON.stringify(e)), () => {});
});

if (requireTools(test, ['mke2fs', 'debugfs', 'e2fsck', 'dumpe2fs', 'setfattr', 'mkfifo']) && requireRoot(test)) {
  test('Mke2fsBuilder: a real build keeps owners, modes, hardlinks, xattrs; extras applied; stays in its partition', async () => {
    const t = fresh();
    const tree = join(t, 'tree');
    mkdirSync(tree);
    own(put(tree, 'usr/bin/su', '#!/bin/sh\n'), 0o4755);
    mkdirSync(join(tree, 'tmp'));
    own(join(tree, 'tmp'), 0o1777);
    own(put(tree, 'home/user/notes', 'hello'), 0o640, 1000, 1001);
    own(join(tree, 'home/user'), 0o755, 1000, 1001);
    const a = put(tree, 'data/a', 'shared content');
    linkSync(a, join(tree, 'data/b'));
    symlinkSync('a', join(tree, 'data/link'));
    assert.is(run('setfattr', ['-n', 'user.imgx', '-v', 'xattr-value', a]).status, 0);
    assert.is(run('mkfifo', [join(tree, 'data/fifo')]).status, 0);
    own(put(tree, 'srv/old.conf', 'old'), 0o600, 1234, 5678);

    // The partition: 48 MiB at 1 MiB in a 64 MiB file; the bytes around it carry a pattern.
    const image = sparse(join(t, 'disk.img'), 64 * MIB);
    const guard = Buffer.alloc(MIB, 0xa5);
    const wfd = openSync(image, 'r+');
    for (const mib of [0, ...Array.from({ length: 15 }, (_, i) => 49 + i)]) writeSync(wfd, guard, 0, MIB, mib * MIB);
    closeSync(wfd);

    const extras = [D('/etc'), D('/newdir', 0o700, 3, 4), F('/etc/fstab', `UUID=${UUID} / ext4 defaults 0 1\n`), L('/etc/link', '/data/a'), F('/srv/old.conf', 'new content', 0o640, 7, 8)];
    const workDir = join(t, 'work');
    mkdirSync(workDir);
    await new Mke2fsBuilder().build({ image, offset: MIB, size: 48 * MIB, tree, extras, uuid: UUID, label: 'root', inodes: 4096, workDir });

    const spec = `${image}?offset=${MIB}`;
    const fsck = run('e2fsck', ['-fn', spec]);
    assert.is(fsck.status, 0, fsck.out + fsck.err);
    const debugfs = (req: string) => {
      const r = run('debugfs', ['-R', req, spec]);
      assert.not.match(r.err, /not found|error/i, `${req}: ${r.err}`);
      return r.out;
    };
    const stat = (p: string) => {
      const s = debugfs(`stat ${p}`);
      const num = (re: RegExp) => Number(re.exec(s)?.[1]);
      return { type: /Type: (\S+)/.exec(s)?.[1], mode: parseInt(/Mode:\s+(\d+)/.exec(s)?.[1] ?? 'NaN', 8), uid: num(/User:\s+(\d+)/), gid: num(/Group:\s+(\d+)/), links: num(/Links: (\d+)/), inode: num(/Inode: (\d+)/), text: s };
    };
    const owner = (p: string, s = stat(p)) => [s.type, s.mode, s.uid, s.gid];
    assert.equal(owner('/usr/bin/su'), ['regular', 0o4755, 0, 0]);
    assert.equal(owner('/tmp'), ['directory', 0o1777, 0, 0]);
    assert.equal(owner('/home/user/notes'), ['regular', 0o640, 1000, 1001]);
    assert.equal(owner('/home/user'), ['directory', 0o755, 1000, 1001]);
    const sa = stat('/data/a');
    const sb = stat('/data/b');
    assert.equal([sa.inode, sa.links], [sb.inode, 2], 'one inode for the hardlink pair');
    assert.match(stat('/data/link').text, /Fast link dest: "a"/);
    assert.is(stat('/data/fifo').type, 'FIFO');
    assert.match(debugfs('ea_get /data/a user.imgx'), /xattr-value/);

    // Extras: new entries with their owners, the replaced file's new content.
    assert.equal(owner('/etc'), ['directory', 0o755, 0, 0]);
    assert.equal(owner('/newdir'), ['directory', 0o700, 3, 4]);
    assert.equal(owner('/etc/fstab'), ['regular', 0o644, 0, 0]);
    assert.is(debugfs('cat /etc/fstab'), `UUID=${UUID} / ext4 defaults 0 1\n`);
    assert.match(stat('/etc/link').text, /Fast link dest: "\/data\/a"/);
    assert.equal(owner('/srv/old.conf'), ['regular', 0o640, 7, 8]);
    assert.is(debugfs('cat /srv/old.conf'), 'new content');

    const h = run('dumpe2fs', ['-h', spec]).out;
    assert.match(h, new RegExp(`Filesystem UUID:\\s+${UUID}`));
    assert.match(h, /Filesystem volume name:\s+root$/m);
    assert.is(Number(/Block count:\s+(\d+)/.exec(h)?.[1]), 48 * MIB / 4096);
    assert.ok(Number(/Inode count:\s+(\d+)/.exec(h)?.[1]) >= 4096);
    const features = /Filesystem features:\s+(.*)/.exec(h)?.[1]?.split(/\s+/) ?? [];
    for (const f of ['has_journal', 'extent', 'metadata_csum', '64bit']) assert.ok(features.includes(f), f);
    for (const f of ['metadata_csum_seed', 'orphan_file']) assert.not.ok(features.includes(f), `${f} (GRUB cannot read it)`);

    // Nothing outside the partition was written.
    const rfd = openSync(image, 'r');
    for (const mib of [0, ...Array.from({ length: 15 }, (_, i) => 49 + i)]) {
      const b = Buffer.alloc(MIB);
      readSync(rfd, b, 0, MIB, mib * MIB);
      assert.ok(b.equals(guard), `untouched at ${mib} MiB`);
    }
    closeSync(rfd);
  });

  test('Mke2fsBuilder: a dir extra for a directory the tree already has is not a failure', async () => {
    // debugfs 1.47 says "ext2fs_mkdir: Ext2 directory already exists while creating directory …"
    // before "mkdir: Ext2 directory already exists"; both mean the same harmless thing.
    const t = fresh();
    const tree = join(t, 'tree');
    put(tree, 'etc/hostname', 'x\n');
    const image = sparse(join(t, 'disk.img'), 32 * MIB);
    const extras = [D('/etc'), F('/etc/fstab', 'x\n')];
    await new Mke2fsBuilder().build({ image, offset: 0, size: 32 * MIB, tree, extras, uuid: UUID, label: 'root', inodes: 1024, workDir: t });
    assert.is(run('debugfs', ['-R', 'cat /etc/hostname', image]).out, 'x\n', 'the tree\'s files in that directory kept');
    assert.is(run('e2fsck', ['-fn', image]).status, 0);
  });

  test('Mke2fsBuilder: a debugfs failure is IMGX_TOOL_FAILED; an unaligned partition is refused', async () => {
    const t = fresh();
    const tree = join(t, 'tree');
    put(tree, 'x', 'x');
    const image = sparse(join(t, 'disk.img'), 32 * MIB);
    const req = { image, offset: 0, size: 32 * MIB, tree, uuid: UUID, label: 'root', inodes: 1024, workDir: t };
    // A file into a directory that does not exist: debugfs complains, the build must not pass.
    await rejects(new Mke2fsBuilder().build({ ...req, extras: [F('/no/such/dir/f', 'x')] }), 'IMGX_TOOL_FAILED');
    await new Mke2fsBuilder().build({ ...req, offset: 512, extras: [] }).then(() => assert.unreachable('unaligned'), (e: Error) => assert.match(e.message, /aligned/));
  });
}

test.run();

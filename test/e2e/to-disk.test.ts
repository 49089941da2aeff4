// The acceptance test of `imgx to-disk` and `imgx boot`: real Debian userlands pushed to a loopback
// registry become disks that boot to a login prompt under qemu (TCG), read on the serial console:
// a userland that carries its kernel (hybrid: SeaBIOS and OVMF; and bios/MBR as qcow2), and a plain
// minbase one that imgx provisions (then logged into over the serial console with the root
// password it set). Without booting: the tables (sgdisk), the filesystem (e2fsck), GRUB's view
// (grub-fstest), the tree inside the disk against `imgx extract` of the same image, and no loop
// device or mount on the way. Bad input: one line, its exit status, nothing left behind.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuArgs } from '../../src/disk/qemu-boot.ts';
import { DEBIAN_IMAGE_TOOLS, debianImage, ociRef } from '../fixtures/debian-image.ts';
import { IMGX_BIN, NODE_BIN, runImgx, runImgxAs, type ImgxResult } from '../helpers/imgx.ts';
import { startRegistry, type Registry } from '../helpers/registry.ts';
import { skopeoCopy } from '../helpers/skopeo.ts';
import { loopDevices, mountTable } from '../helpers/host-state.ts';
import { removeTempDir, tempDir } from '../helpers/tempdir.ts';
import { requireRoot, requireTools } from '../helpers/tools.ts';
import { snapshotTree, diffSnapshots } from '../helpers/tree-compare.ts';

const TOOLS = [
  ...DEBIAN_IMAGE_TOOLS,
  'skopeo',
  'docker-registry',
  'runc',
  'mke2fs',
  'debugfs',
  'e2fsck',
  'dumpe2fs',
  'grub-mkimage',
  'grub-fstest',
  'mformat',
  'mcopy',
  'qemu-system-x86_64',
  'qemu-img',
  'sgdisk',
  'sfdisk',
  'losetup',
  'openssl',
  'setpriv',
  'useradd',
  'pgrep',
];
const LONG = 15 * 60_000;
const ROOT_PASSWORD = 'imgx-test-password';
/** The unprivileged user of the rootless test (made by the test). */
const TEST_USER = 'imgx-disk-test';
/** What to-disk adds to the tree (compared on their own, not against the image). */
const EXTRAS = ['etc/fstab', 'etc/hostname', 'etc/hosts', 'etc/machine-id', 'etc/shadow', 'etc/systemd/network', 'etc/systemd/system', 'boot/grub', 'lost+found'];

interface DiskJson {
  out: string;
  size: number;
  format: string;
  partitions: { number: number; role: string; offset: number; size: number }[];
  rootUuid: string;
  kernel: string;
  initrd: string | null;
  provisioned: boolean;
}

const ok = (r: ImgxResult) => assert.is(r.code, 0, `imgx failed (${r.code}): ${r.stderr.slice(-3000)}`);

/** Boots under qemu and logs in on the serial console; returns what `script` printed. */
function loginAndRun(disk: string, format: 'raw' | 'qcow2', script: string, timeoutMs = 6 * 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('qemu-system-x86_64', qemuArgs(disk, format, { memoryMiB: 1024 }), { stdio: ['pipe', 'pipe', 'pipe'] });
    let log = '';
    let step = 0;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serial login timed out at step ${step}; console tail: ${log.slice(-600)}`));
    }, timeoutMs);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      log += c;
      if (step === 0 && /login: $/.test(log.trimEnd() + ' ')) {
        step = 1;
        child.stdin.write('root\n');
      } else if (step === 1 && /Password: ?$/.test(log)) {
        step = 2;
        child.stdin.write(`${ROOT_PASSWORD}\n`);
      } else if (step === 2 && /# $/.test(log)) {
        step = 3;
        // The markers are computed by the shell, so the echoed command line never matches them.
        child.stdin.write(`echo IMGX-$((1+1))-BEGIN; ${script}; echo IMGX-$((40+2))-END\n`);
      } else if (step === 3) {
        const m = /IMGX-2-BEGIN\r?\n([\s\S]*?)IMGX-42-END/.exec(log);
        if (m) {
          clearTimeout(timer);
          child.kill('SIGKILL');
          resolve(m[1]!.replace(/\r/g, ''));
        }
      }
    });
    child.once('error', reject);
  });
}

if (requireTools(test, TOOLS) && requireRoot(test)) {
  let registry: Registry | undefined;
  let work = '';
  let cache = '';
  let kernelRef = '';
  let minbaseRef = '';
  let disk = '';
  let diskInfo: DiskJson;
  let loopsBefore = '';
  let mountsBefore = '';

  const imgx = (args: string[]) => runImgx(args, { env: { IMGX_CACHE: cache }, timeoutMs: LONG });

  test.before(async () => {
    const [kernel, minbase] = [await debianImage('kernel'), await debianImage('minbase')];
    registry = await startRegistry();
    work = tempDir('imgx-to-disk-');
    cache = join(work, 'cache');
    kernelRef = `${registry.host}/imgx-test/debian:kernel`;
    minbaseRef = `${registry.host}/imgx-test/debian:minbase`;
    await skopeoCopy(ociRef(kernel), `docker://${kernelRef}`);
    await skopeoCopy(ociRef(minbase), `docker://${minbaseRef}`);
    // Before anything of to-disk ran: the first disk is made in the first test.
    loopsBefore = loopDevices();
    mountsBefore = mountTable();
  });

  test.after(async () => {
    await registry?.stop();
    if (work) removeTempDir(work);
  });

  test('to-disk of an image with a kernel: hybrid raw disk, no loop device and no mount used', async () => {
    disk = join(work, 'kernel.img');
    const r = await imgx(['to-disk', '--json', '--seed', 'e2e', '--root-password', ROOT_PASSWORD, '--hostname', 'imgx-vm', '--cmdline', 'quiet', kernelRef, disk]);
    ok(r);
    diskInfo = JSON.parse(r.stdout) as DiskJson;
    assert.is(diskInfo.format, 'raw');
    assert.equal(
      diskInfo.partitions.map((p) => p.role),
      ['bios-boot', 'esp', 'root'],
    );
    assert.match(diskInfo.kernel, /^\/boot\/vmlinuz-\d/);
    assert.ok(diskInfo.initrd, 'the initramfs is used');
    assert.is(diskInfo.provisioned, false);
    assert.is(statSync(disk).size, diskInfo.size);
    // Sparse: the unused half of the disk takes no space.
    assert.ok(statSync(disk).blocks * 512 < diskInfo.size, 'the raw disk is sparse');
    assert.is(loopDevices(), loopsBefore, 'no loop device was set up');
    assert.is(mountTable(), mountsBefore, 'nothing was mounted');
    assert.equal(readdirSync(work).filter((n) => n.includes('imgx-partial')), [], 'no partial file left');
  });

  test('structure: sgdisk and sfdisk find no problem; e2fsck is clean; features GRUB 2.06 reads; grub-fstest sees /boot', () => {
    assert.match(execFileSync('sgdisk', ['-v', disk], { encoding: 'utf8' }), /No problems found/);
    execFileSync('sfdisk', ['--verify', disk], { stdio: 'pipe' });
    const root = diskInfo.partitions.find((p) => p.role === 'root')!;
    const fs = `${disk}?offset=${root.offset}`;
    execFileSync('e2fsck', ['-fn', fs], { stdio: 'pipe' });
    const header = execFileSync('dumpe2fs', ['-h', fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(header, new RegExp(`Filesystem UUID:\\s+${diskInfo.rootUuid}`));
    const features = /Filesystem features:\s+(.*)/.exec(header)![1]!;
    assert.ok(!/metadata_csum_seed|orphan_file/.test(features), features);
    const boot = execFileSync('grub-fstest', [disk, 'ls', '(loop0,gpt3)/boot'], { encoding: 'utf8' });
    assert.ok(boot.includes(diskInfo.kernel.split('/').pop()!), boot);
    assert.ok(boot.includes('grub/'), boot);
    const cfg = execFileSync('grub-fstest', [disk, 'cat', '(loop0,gpt3)/boot/grub/grub.cfg'], { encoding: 'utf8' });
    assert.match(cfg, new RegExp(`linux ${diskInfo.kernel} root=UUID=${diskInfo.rootUuid} ro console=tty0 console=ttyS0,115200 quiet`));
    assert.ok(cfg.includes(`initrd ${diskInfo.initrd}`));
    const efi = execFileSync('mdir', ['-i', `${disk}@@${diskInfo.partitions.find((p) => p.role === 'esp')!.offset}`, '-b', '::/EFI/BOOT'], { encoding: 'utf8', env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    assert.match(efi, /BOOTX64\.EFI/i);
    const fstab = execFileSync('debugfs', ['-R', 'cat /etc/fstab', fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(fstab, new RegExp(`^UUID=${diskInfo.rootUuid}\\s+/\\s+ext4`, 'm'));
    assert.is(execFileSync('debugfs', ['-R', 'cat /etc/hostname', fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), 'imgx-vm\n');
  });

  test('the tree in the disk matches imgx extract of the same image (owners, modes, content, links)', async () => {
    const extracted = join(work, 'extracted');
    ok(await imgx(['extract', kernelRef, extracted]));
    const root = diskInfo.partitions.find((p) => p.role === 'root')!;
    const fs = `${disk}?offset=${root.offset}`;
    const a = snapshotTree(extracted, { ignore: EXTRAS, xattrs: false });
    assert.ok(a.nodes.size > 10000, `a real userland (${a.nodes.size} entries)`);

    // Metadata as the filesystem holds it: one debugfs session lists every directory
    // (`ls -p`: /INODE/MODE/UID/GID/NAME/SIZE/, MODE in octal with the file type).
    const dirs = [...a.nodes.values()].filter((n) => n.type === 'directory').map((n) => (n.path === '.' ? '/' : `/${n.path}`));
    const cmds = join(work, 'ls.cmds');
    writeFileSync(cmds, dirs.map((d) => `ls -p "${d}"`).join('\n') + '\n');
    const listing = execFileSync('debugfs', ['-f', cmds, fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28 });
    const inDisk = new Map<string, { inode: string; mode: number; uid: number; gid: number; size: number }>();
    let dir = '';
    for (const line of listing.split('\n')) {
      const cmd = /^debugfs: ls -p "(.*)"$/.exec(line);
      if (cmd) dir = cmd[1] === '/' ? '' : cmd[1]!.slice(1);
      const e = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
      if (!e || e[5] === '.' || e[5] === '..') continue;
      inDisk.set(dir ? `${dir}/${e[5]}` : e[5]!, { inode: e[1]!, mode: parseInt(e[2]!, 8), uid: Number(e[3]), gid: Number(e[4]), size: Number(e[6] || 0) });
    }
    const TYPE_BITS: Record<string, number> = { file: 0o100000, directory: 0o040000, symlink: 0o120000, 'char-device': 0o020000, 'block-device': 0o060000, fifo: 0o010000, socket: 0o140000 };
    const problems: string[] = [];
    for (const n of a.nodes.values()) {
      if (n.path === '.') continue;
      const d = inDisk.get(n.path);
      if (!d) problems.push(`missing in the disk: ${n.path}`);
      else if (d.mode !== (TYPE_BITS[n.type]! | n.mode) || d.uid !== n.uid || d.gid !== n.gid || (n.type === 'file' && d.size !== n.size)) {
        problems.push(`${n.path}: disk ${d.mode.toString(8)} ${d.uid}:${d.gid} ${d.size}, extract ${(TYPE_BITS[n.type]! | n.mode).toString(8)} ${n.uid}:${n.gid} ${n.size}`);
      }
    }
    for (const p of inDisk.keys()) if (!a.nodes.has(p) && !EXTRAS.some((x) => p === x || p.startsWith(`${x}/`))) problems.push(`only in the disk: ${p}`);
    assert.equal(problems.slice(0, 20), []);
    assert.ok(a.nodes.size - 1 <= inDisk.size);
    const setuid = [...a.nodes.values()].filter((n) => n.mode & 0o4000).length;
    assert.ok(setuid > 3, 'setuid files were compared');

    // Hardlink groups are one inode in the disk.
    const groups = [...new Set([...a.hardlinks.values()].map((g) => g.join('\0')))].map((g) => g.split('\0'));
    assert.ok(groups.length > 0, 'the image has hardlinks');
    for (const g of groups) assert.is(new Set(g.map((p) => inDisk.get(p)?.inode)).size, 1, `hardlink group ${g.join(', ')} is one inode in the disk`);

    // Contents and symlink targets: rdump writes them out (it drops setuid bits and special files,
    // which the listing above checked).
    const dumped = join(work, 'dumped');
    mkdirSync(dumped);
    execFileSync('debugfs', ['-R', `rdump / ${dumped}`, fs], { stdio: 'pipe' });
    const b = snapshotTree(dumped, { ignore: EXTRAS, xattrs: false });
    const content = diffSnapshots(a, b, { ignore: EXTRAS, xattrs: false }).differences.filter((d) => /^(content|size|symlink|type|only in b)/.test(d) || (d.startsWith('only in a') && !/(char|block)-device|fifo|socket/.test(d)));
    assert.equal(content, []);
  });

  test('boots to a login prompt under SeaBIOS and under OVMF (imgx boot)', async () => {
    for (const firmware of ['bios', 'uefi']) {
      const r = await imgx(['boot', '--json', '--firmware', firmware, '--timeout', '400', disk]);
      ok(r);
      const b = JSON.parse(r.stdout) as { seconds: number; firmware: string; format: string };
      assert.is(b.firmware, firmware);
      assert.ok(b.seconds > 1, `booted in ${b.seconds} s`);
    }
  });

  test('bios/MBR as qcow2 boots too (to-disk --verify)', async () => {
    const q = join(work, 'kernel-mbr.qcow2');
    const r = await imgx(['to-disk', '--boot', 'bios', '--table', 'mbr', '--format', 'qcow2', '--verify', '--verify-timeout', '400', kernelRef, q]);
    ok(r);
    assert.match(execFileSync('qemu-img', ['info', q], { encoding: 'utf8' }), /file format: qcow2/);
    assert.match(r.stdout, /login prompt after [\d.]+ s under SeaBIOS/);
    const raw = join(work, 'mbr-check.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', q, raw]);
    const table = JSON.parse(execFileSync('sfdisk', ['--json', raw], { encoding: 'utf8' })) as { partitiontable: { label: string; partitions: { type: string; bootable?: boolean }[] } };
    assert.is(table.partitiontable.label, 'dos');
    assert.is(table.partitiontable.partitions.length, 1);
    assert.is(table.partitiontable.partitions[0]!.bootable, true);
  });

  test('an image without a kernel is provisioned (apt, host network) and boots; root logs in with the password', async () => {
    const out = join(work, 'minbase.img');
    const r = await imgx(['to-disk', '--json', '--root-password', ROOT_PASSWORD, minbaseRef, out]);
    ok(r);
    const info = JSON.parse(r.stdout) as DiskJson;
    assert.is(info.provisioned, true);
    assert.match(r.stderr, /installing linux-image-amd64/);
    // The hostname comes from the image name; DHCP gives qemu's user network address.
    const said = await loginAndRun(out, 'raw', 'hostname; ip -4 -o addr show scope global | grep -c "inet 10\\.0\\.2\\."; systemctl is-system-running --wait || true');
    const lines = said.trim().split('\n').map((l) => l.trim());
    assert.is(lines[0], 'debian', said);
    assert.is(lines[1], '1', `one DHCP address on 10.0.2.0/24: ${said}`);
    assert.ok(['running', 'degraded'].includes(lines[2]!), said);
  });

  test('interrupted while the filesystem is written: exit 130, no partial disk, no work directory, no tool left running', async () => {
    const out = join(work, 'interrupted.img');
    const child = spawn(NODE_BIN, [IMGX_BIN, 'to-disk', kernelRef, out], { env: { ...process.env, IMGX_CACHE: cache, NO_COLOR: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    // imgx removes what it wrote, then ends by the signal itself (as a shell sees it: status 130).
    const exited = new Promise<string>((resolve) => child.once('close', (code, signal) => resolve(signal ?? String(code))));
    // The tree is cached by now: the partial disk appears within a second or two.
    const deadline = Date.now() + 120_000;
    while (!readdirSync(work).some((n) => n.startsWith('.interrupted.img.imgx-partial-')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(Date.now() < deadline, 'the partial disk appeared');
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    assert.is(await exited, 'SIGINT', stderr);
    assert.equal(readdirSync(work).filter((n) => n.includes('interrupted.img')), []);
    assert.equal(readdirSync(cache).filter((n) => n.startsWith('imgx-disk-')), []);
    assert.is(spawnSync('pgrep', ['-f', '[.]interrupted[.]img[.]imgx-partial']).status, 1, 'no tool is left writing the partial disk');
  });

  test('a block device as OUT: refused without --force, written in place (as large as the device) with it', async () => {
    // The device is the test's (a loop device stands in for a USB stick); imgx itself sets none up.
    const backing = join(work, 'device.raw');
    execFileSync('truncate', ['-s', '1200M', backing]);
    const dev = execFileSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' }).trim();
    try {
      const refused = await imgx(['to-disk', kernelRef, dev]);
      assert.is(refused.code, 14, refused.stderr);
      assert.match(refused.stderr, /block device: .*--force/);
      const sized = await imgx(['to-disk', '--force', '--size', '2G', kernelRef, dev]);
      assert.is(sized.code, 2, sized.stderr);
      const r = await imgx(['to-disk', '--force', '--json', '--seed', 'device', kernelRef, dev]);
      ok(r);
      const info = JSON.parse(r.stdout) as DiskJson;
      assert.is(info.size, 1200 * 1024 * 1024);
      assert.match(execFileSync('sgdisk', ['-v', dev], { encoding: 'utf8' }), /No problems found/);
      const root = info.partitions.find((p) => p.role === 'root')!;
      execFileSync('e2fsck', ['-fn', `${dev}?offset=${root.offset}`], { stdio: 'pipe' });
      assert.ok(existsSync(dev), 'the device is still there (not replaced by a file)');
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
  });

  test('without root: the disk from the layers has the owners and modes of the image; installing a kernel is refused', async () => {
    if (spawnSync('id', ['-u', TEST_USER]).status !== 0) execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', TEST_USER]);
    const uid = Number(execFileSync('id', ['-u', TEST_USER], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', TEST_USER], { encoding: 'utf8' }).trim());
    const home = join(work, 'rootless');
    mkdirSync(home);
    chownSync(home, uid, gid);
    chmodSync(work, 0o755);
    const asUser = (args: string[]) => runImgxAs({ uid, gid }, home, LONG, args);
    const out = join(home, 'rootless.img');
    const r = await asUser(['to-disk', '--json', '--root-password', ROOT_PASSWORD, kernelRef, out]);
    assert.is(r.code, 0, r.stderr);
    assert.is(statSync(out).uid, uid);
    const info = JSON.parse(r.stdout) as DiskJson;
    const fs = `${out}?offset=${info.partitions.find((p) => p.role === 'root')!.offset}`;
    execFileSync('e2fsck', ['-fn', fs], { stdio: 'pipe' });
    const stat = (path: string) => execFileSync('debugfs', ['-R', `stat ${path}`, fs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(stat('/usr/bin/passwd'), /Mode:\s+04755[\s\S]*User:\s+0\s+Group:\s+0\b/);
    assert.match(stat('/etc/shadow'), /Mode:\s+0640[\s\S]*User:\s+0\s+Group:\s+42\b/);
    assert.match(stat('/tmp'), /Mode:\s+01777/);
    const none = await asUser(['to-disk', minbaseRef, join(home, 'minbase.img')]);
    assert.is(none.code, 10, none.stderr);
    assert.match(none.stderr, /installing one needs root/);
  });

  test('bad input: one line, its exit status, nothing written', async () => {
    const existing = join(work, 'existing.img');
    writeFileSync(existing, 'keep me');
    const e = await imgx(['to-disk', kernelRef, existing]);
    assert.is(e.code, 14, e.stderr);
    assert.is(readFileSync(existing, 'utf8'), 'keep me');

    const small = join(work, 'small.img');
    const s = await imgx(['to-disk', '--size', '200M', kernelRef, small]);
    assert.is(s.code, 2, s.stderr);
    assert.match(s.stderr, /^imgx: --size 200 MiB is too small: .* need a root filesystem of at least/);
    assert.is(s.stderr.trim().split('\n').length, 1, s.stderr);

    const none = await imgx(['to-disk', '--kernel', 'none', minbaseRef, join(work, 'none.img')]);
    assert.is(none.code, 10, none.stderr);
    assert.match(none.stderr, /has no kernel in \/boot .*--kernel none/);

    const uefiMbr = await imgx(['to-disk', '--boot', 'uefi', '--table', 'mbr', kernelRef, join(work, 'x.img')]);
    assert.is(uefiMbr.code, 2, uefiMbr.stderr);

    const boot = await imgx(['boot', join(work, 'no-such.img')]);
    assert.is(boot.code, 4, boot.stderr);

    assert.equal(readdirSync(work).filter((n) => /^(small|none|x)\.img|imgx-partial/.test(n)), []);
    assert.equal(readdirSync(cache).filter((n) => n.startsWith('imgx-disk-')), []);
  });
}

test.run();

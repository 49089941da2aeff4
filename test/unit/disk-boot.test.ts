// The boot side of `imgx to-disk`: GRUB's BIOS chain placed by imgx (checked against the real
// boot.img and a real core.img from grub-mkimage), grub.cfg / early config rendering (and GRUB's own
// parser), the kernel found in /boot (hostile trees included), os-release, the provisioning plan,
// qemu's command line and hostnames from image arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { placeBiosBoot } from '../../src/disk/grub-bios.ts';
import { checkCmdline, renderEarlyCfg, renderGrubCfg, type GrubMenu } from '../../src/disk/grub-config.ts';
import { compareVersions, findKernel } from '../../src/disk/kernel.ts';
import { parseOsRelease, readOsRelease, type OsRelease } from '../../src/disk/os-release.ts';
import { provisionPlan } from '../../src/disk/provision.ts';
import { diskFormat, qemuArgs } from '../../src/disk/qemu-boot.ts';
import { checkHostname, hostnameFromImage } from '../../src/disk/system-files.ts';
import { requireTools } from '../helpers/tools.ts';
import { tempDir } from '../helpers/tempdir.ts';
import { rejects } from '../helpers/rejects.ts';

const dir = tempDir('imgx-disk-boot-');
let n = 0;
const fresh = (): string => {
  const d = join(dir, `t${n++}`);
  mkdirSync(d);
  return d;
};
/** Writes files (path → content) under `root`, making parents. */
function tree(root: string, files: Record<string, string>): void {
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), c);
  }
}
function expectCode(fn: () => unknown, code: string, pattern?: RegExp): void {
  try {
    fn();
  } catch (e) {
    assert.is((e as { code?: string }).code, code, String(e));
    if (pattern) assert.match((e as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}
const UUID = '0b5c6b3e-1f2a-4c3d-9e8f-a1b2c3d4e5f6';

// ---------------------------------------------------------------------------------------------
// GRUB BIOS: boot.img into LBA 0, core.img patched for its LBA.

const GRUB_PC = '/usr/lib/grub/i386-pc';
if (requireTools(test, ['grub-mkimage'])) {
  const bootImg = readFileSync(join(GRUB_PC, 'boot.img'));
  const coreFile = join(dir, 'core.img');
  const mk = spawnSync('grub-mkimage', ['-d', GRUB_PC, '-O', 'i386-pc', '-o', coreFile, '-p', '/boot/grub', 'biosdisk', 'part_gpt', 'ext2'], { encoding: 'utf8' });
  if (mk.status !== 0) throw new Error(`grub-mkimage: ${mk.stderr}`);
  const coreImg = readFileSync(coreFile);
  const coreSectors = Math.ceil(coreImg.length / 512);
  /** An MBR sector as a table writer (or an old boot sector) left it: random code, a table, 55AA. */
  const mbrSector = (): Buffer => {
    const m = randomBytes(512);
    m[510] = 0x55;
    m[511] = 0xaa;
    return m;
  };

  test('boot.img merged into LBA 0: kernel sector, drive check NOPs, BPB and table kept', () => {
    for (const coreLba of [1, 2048, 2 ** 33 + 5]) {
      const mbr = mbrSector();
      const mbrCopy = Buffer.from(mbr);
      const { mbr: out, coreLba: lba } = placeBiosBoot(bootImg, coreImg, mbr, coreLba, 2048);
      assert.is(lba, coreLba);
      assert.is(out.length, 512);
      assert.ok(mbr.equals(mbrCopy), 'input MBR not modified');
      // boot.S reads core.img's first sector from this 8-byte little-endian LBA.
      assert.is(out.readBigUInt64LE(0x5c), BigInt(coreLba));
      assert.equal([out[0x66], out[0x67]], [0x90, 0x90]);
      assert.ok(out.subarray(0x1b8).equals(mbr.subarray(0x1b8)), 'disk signature, partition table and 55AA untouched');
      for (let i = 0; i < 0x1b8; i++) {
        if ((i >= 0x5c && i < 0x64) || i === 0x66 || i === 0x67) continue;
        const want = i >= 0x03 && i < 0x5a ? mbr[i] : bootImg[i];
        assert.is(out[i], want, `byte 0x${i.toString(16)}`);
      }
    }
  });

  test('core.img: padded to sectors, block list start = coreLba+1, length kept, segment 0x820, nothing else', () => {
    assert.ok(coreImg.length % 512 !== 0 || coreSectors >= 2, 'a real core.img');
    // Zero the segment in the input so that writing 0x820 is seen to happen.
    const input = Buffer.from(coreImg);
    input.writeUInt16LE(0, 0x1fe);
    const inputCopy = Buffer.from(input);
    for (const coreLba of [1, 34, 2048, 2 ** 40]) {
      const { core } = placeBiosBoot(bootImg, input, mbrSector(), coreLba, coreSectors);
      assert.ok(input.equals(inputCopy), 'input core not modified');
      assert.is(core.length, coreSectors * 512);
      assert.is(core.readBigUInt64LE(0x1f4), BigInt(coreLba + 1));
      assert.is(core.readUInt16LE(0x1fc), coreSectors - 1);
      assert.is(core.readUInt16LE(0x1fe), 0x820);
      for (let i = 0; i < core.length; i++) {
        if (i >= 0x1f4 && i < 0x200) continue;
        if (core[i] !== (i < input.length ? input[i] : 0)) assert.unreachable(`core byte ${i} changed`);
      }
      // The list entry before ours must stay the terminator grub-mkimage wrote (zero length).
      assert.is(core.readUInt16LE(0x1f4 - 12 + 8), 0);
    }
  });

  test('core.img larger than the embedding area, or with a foreign block list, is refused', () => {
    assert.throws(() => placeBiosBoot(bootImg, coreImg, mbrSector(), 2048, coreSectors - 1), /core\.img needs \d+ sectors/);
    placeBiosBoot(bootImg, coreImg, mbrSector(), 2048, coreSectors); // exactly fits
    const wrongLength = Buffer.from(coreImg);
    wrongLength.writeUInt16LE(coreSectors + 3, 0x1fc);
    assert.throws(() => placeBiosBoot(bootImg, wrongLength, mbrSector(), 2048, 2048), /block list/);
    // One sector more than grub-mkimage made it for: the list no longer covers the file.
    assert.throws(() => placeBiosBoot(bootImg, Buffer.concat([coreImg, Buffer.alloc(1024, 1)]), mbrSector(), 2048, 2048), /block list/);
    assert.throws(() => placeBiosBoot(bootImg.subarray(0, 446), coreImg, mbrSector(), 2048, 2048), /boot\.img/);
    assert.throws(() => placeBiosBoot(bootImg, coreImg, Buffer.alloc(511), 2048, 2048), /MBR/);
    assert.throws(() => placeBiosBoot(bootImg, coreImg.subarray(0, 512), mbrSector(), 2048, 2048), /two sectors/);
  });
}

// ---------------------------------------------------------------------------------------------
// grub.cfg and the early config.

const menu = (m: Partial<GrubMenu> = {}): GrubMenu => ({ title: 'Debian GNU/Linux 12 (bookworm)', rootUuid: UUID, kernel: '/boot/vmlinuz-6.1.0-10-amd64', initrd: '/boot/initrd.img-6.1.0-10-amd64', ...m });

test('early config: no comments, no quotes (GRUB rescue parser), finds root by UUID, sets the prefix', async () => {
  const text = await renderEarlyCfg(UUID);
  const lines = text.split('\n').filter((l) => l.trim());
  assert.ok(lines.every((l) => !l.trimStart().startsWith('#')), text);
  assert.not.match(text, /['"]/);
  assert.not.match(text, /\{\{/, 'every placeholder filled');
  assert.ok(lines.map((l) => l.trim()).includes(`search --no-floppy --fs-uuid --set=root ${UUID}`), text);
  assert.ok(lines.map((l) => l.trim()).includes('set prefix=($root)/boot/grub'), text);
  // search must come before the prefix that uses $root.
  assert.ok(text.indexOf('search ') < text.indexOf('set prefix'));
  for (const bad of ['not-a-uuid', `${UUID}\nset prefix=(hd9)`]) {
    await renderEarlyCfg(bad).then(() => assert.unreachable(bad), (e: Error) => assert.match(e.message, /UUID/));
  }
});

test('grub.cfg: linux line with root=UUID, both consoles, --cmdline appended; initrd only when given', async () => {
  const cfg = await renderGrubCfg(menu({ cmdline: '  quiet net.ifnames=0 ' }));
  const linux = cfg.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('linux '));
  assert.is(linux.length, 1, cfg);
  const words = linux[0]!.split(/\s+/);
  assert.is(words[1], '/boot/vmlinuz-6.1.0-10-amd64');
  assert.ok(words.includes(`root=UUID=${UUID}`), linux[0]);
  assert.match(linux[0]!, /console=tty0 console=ttyS0,115200/);
  // The last console= wins in the kernel: ttyS0 must come after tty0 for the serial console to be /dev/console.
  assert.ok(words.indexOf('console=ttyS0,115200') > words.indexOf('console=tty0'));
  assert.equal(words.slice(-2), ['quiet', 'net.ifnames=0'], 'extra cmdline at the end, trimmed');
  assert.equal(cfg.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('initrd ')), ['initrd /boot/initrd.img-6.1.0-10-amd64']);
  assert.match(cfg, new RegExp(`search --no-floppy --fs-uuid --set=root ${UUID}`));
  assert.not.match(cfg, /\{\{/);

  const bare = await renderGrubCfg(menu({ initrd: undefined }));
  assert.not.match(bare, /^\s*initrd/m);
  assert.match(bare, /^\s*linux \/boot\/vmlinuz-6\.1\.0-10-amd64 .*console=ttyS0,115200$/m, 'no trailing space without --cmdline');
});

test('grub.cfg: bad UUIDs, unsafe kernel paths and unsafe --cmdline are refused', async () => {
  for (const rootUuid of ['', 'not-a-uuid', `${UUID}0`, `${UUID}\nlinux /evil`, UUID.replace(/-/g, '')]) {
    await renderGrubCfg(menu({ rootUuid })).then(() => assert.unreachable(`accepted UUID ${JSON.stringify(rootUuid)}`), (e: Error) => assert.match(e.message, /UUID/));
  }
  for (const p of ['boot/vmlinuz', '/boot/vmlinuz 1', "/boot/vm'linuz", '/boot/vm"linuz', '/boot/$x', '/boot/a;b', '/boot/a\nb', '/boot/{x}']) {
    await renderGrubCfg(menu({ kernel: p })).then(() => assert.unreachable(`accepted kernel ${JSON.stringify(p)}`), (e: Error) => assert.match(e.message, /path/));
    await renderGrubCfg(menu({ initrd: p })).then(() => assert.unreachable(`accepted initrd ${JSON.stringify(p)}`), (e: Error) => assert.match(e.message, /path/));
  }
  for (const c of ['quiet "x"', "a='b'", 'a\nb', 'a\rb', 'x=$root', 'a;b', 'a\\b', 'a}b']) {
    expectCode(() => checkCmdline(c), 'IMGX_USAGE');
    await rejects(renderGrubCfg(menu({ cmdline: c })), 'IMGX_USAGE', /--cmdline/);
  }
  checkCmdline('quiet loglevel=3 systemd.unit=multi-user.target init=/sbin/init');
});

if (requireTools(test, ['grub-script-check'])) {
  const check = (text: string) => {
    const f = join(dir, `cfg-${n++}`);
    writeFileSync(f, text);
    return spawnSync('grub-script-check', [f], { encoding: 'utf8' });
  };
  test('grub-script-check accepts grub.cfg (with and without initrd, hostile title) and the early config', async () => {
    for (const m of [menu({ cmdline: 'quiet' }), menu({ initrd: undefined }), menu({ title: `It's "quoted" $HOME; {x}\n` })]) {
      const cfg = await renderGrubCfg(m);
      const r = check(cfg);
      assert.is(r.status, 0, `${r.stdout}${r.stderr}\n${cfg}`);
    }
    const early = check(await renderEarlyCfg(UUID));
    assert.is(early.status, 0, early.stderr);
    // The checker is not a no-op: an unclosed menuentry fails.
    assert.is.not(check(`${await renderGrubCfg(menu())}menuentry 'x' {\n`).status, 0);
  });
}

// ---------------------------------------------------------------------------------------------
// Kernel in /boot.

test('compareVersions: numeric pieces compare as numbers', () => {
  const gt = (a: string, b: string) => {
    assert.ok(compareVersions(a, b) > 0, `${a} > ${b}`);
    assert.ok(compareVersions(b, a) < 0, `${b} < ${a}`);
  };
  gt('6.1.0-10-amd64', '6.1.0-9-amd64');
  gt('6.10', '6.9');
  gt('6.1.0', '6.1');
  gt('5.15.0-100-generic', '5.15.0-99-generic');
  gt('6.12.1-arch1-1', '6.2.9-arch1-1');
  assert.is(compareVersions('6.1.0-10-amd64', '6.1.0-10-amd64'), 0);
  const sorted = ['6.1.0-9-amd64', '6.10.0-1-amd64', '6.1.0-10-amd64', '5.10.0-25-amd64'].sort(compareVersions);
  assert.equal(sorted, ['5.10.0-25-amd64', '6.1.0-9-amd64', '6.1.0-10-amd64', '6.10.0-1-amd64']);
});

test('findKernel: Debian names, the newest version with its own initrd', async () => {
  const r = fresh();
  tree(r, {
    'boot/vmlinuz-6.1.0-9-amd64': 'k9', 'boot/initrd.img-6.1.0-9-amd64': 'i9',
    'boot/vmlinuz-6.1.0-10-amd64': 'k10', 'boot/initrd.img-6.1.0-10-amd64': 'i10',
    'boot/vmlinuz-7.0.0-1-amd64.old': 'old', 'boot/config-6.1.0-10-amd64': '',
  });
  assert.equal(await findKernel(r), { kernel: '/boot/vmlinuz-6.1.0-10-amd64', initrd: '/boot/initrd.img-6.1.0-10-amd64', version: '6.1.0-10-amd64' });
  // The newest has no initrd: it is still chosen, with none (never another version's initrd).
  const r2 = fresh();
  tree(r2, { 'boot/vmlinuz-6.1.0-10-amd64': 'k', 'boot/vmlinuz-6.1.0-9-amd64': 'k', 'boot/initrd.img-6.1.0-9-amd64': 'i' });
  assert.equal(await findKernel(r2), { kernel: '/boot/vmlinuz-6.1.0-10-amd64', version: '6.1.0-10-amd64' });
});

test('findKernel: Alpine, Fedora-style, no initrd, no /boot, a directory named like a kernel', async () => {
  const alpine = fresh();
  tree(alpine, { 'boot/vmlinuz-lts': 'k', 'boot/initramfs-lts': 'i', 'boot/System.map-lts': '' });
  assert.equal(await findKernel(alpine), { kernel: '/boot/vmlinuz-lts', initrd: '/boot/initramfs-lts', version: 'lts' });
  const fedora = fresh();
  tree(fedora, { 'boot/vmlinuz-6.5.6-300.fc39.x86_64': 'k', 'boot/initramfs-6.5.6-300.fc39.x86_64.img': 'i' });
  assert.equal((await findKernel(fedora))?.initrd, '/boot/initramfs-6.5.6-300.fc39.x86_64.img');
  const noInitrd = fresh();
  tree(noInitrd, { 'boot/vmlinuz-6.1.0-10-amd64': 'k' });
  assert.equal(await findKernel(noInitrd), { kernel: '/boot/vmlinuz-6.1.0-10-amd64', version: '6.1.0-10-amd64' });
  const noBoot = fresh();
  tree(noBoot, { 'etc/os-release': 'ID=debian\n' });
  assert.is(await findKernel(noBoot), undefined);
  const emptyBoot = fresh();
  mkdirSync(join(emptyBoot, 'boot/vmlinuz-9.9'), { recursive: true });
  assert.is(await findKernel(emptyBoot), undefined);
});

test('findKernel: hostile /boot symlinks resolve inside the tree, never on the host', async () => {
  // A "host" directory with a kernel that must never be reported.
  const host = fresh();
  tree(host, { 'vmlinuz-99.0.0-host': 'HOST', 'initrd.img-99.0.0-host': 'HOST' });

  const abs = fresh();
  symlinkSync(host, join(abs, 'boot'));
  assert.is(await findKernel(abs), undefined, '/boot → absolute host path');

  const dotdot = fresh();
  symlinkSync(`../../../../../../../..${host}`, join(dotdot, 'boot'));
  assert.is(await findKernel(dotdot), undefined, '/boot → ../../..host path');

  // /boot → /usr/lib/.. is /usr of the tree (not the host's /usr).
  const usr = fresh();
  mkdirSync(join(usr, 'usr/lib'), { recursive: true });
  tree(usr, { 'usr/vmlinuz-5.0': 'tree kernel' });
  symlinkSync('/usr/lib/..', join(usr, 'boot'));
  assert.equal(await findKernel(usr), { kernel: '/boot/vmlinuz-5.0', version: '5.0' });

  // A kernel file that is a link to a host file is skipped; an older real one is taken instead.
  const links = fresh();
  tree(links, { 'boot/vmlinuz-1.0': 'real', 'boot/initrd.img-1.0': 'i' });
  symlinkSync(join(host, 'vmlinuz-99.0.0-host'), join(links, 'boot/vmlinuz-99.0.0-host'));
  symlinkSync(join(host, 'initrd.img-99.0.0-host'), join(links, 'boot/initrd.img-99.0.0-host'));
  assert.equal(await findKernel(links), { kernel: '/boot/vmlinuz-1.0', initrd: '/boot/initrd.img-1.0', version: '1.0' });

  // A self-referencing /boot loops and gives up.
  const loop = fresh();
  symlinkSync('/boot', join(loop, 'boot'));
  assert.is(await findKernel(loop), undefined);
});

// ---------------------------------------------------------------------------------------------
// os-release and the provisioning plan.

test('parseOsRelease: quotes, escapes, comments and junk lines', () => {
  const f = parseOsRelease(`# comment\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME='Debian'\nID=debian\n\nVERSION_CODENAME=bookworm\nHOME_URL="https://x/\\"q\\""\nnot a line\nlower=x\n  ID_LIKE="rhel fedora"  \n`);
  assert.is(f.PRETTY_NAME, 'Debian GNU/Linux 12 (bookworm)');
  assert.is(f.NAME, 'Debian');
  assert.is(f.ID, 'debian');
  assert.is(f.VERSION_CODENAME, 'bookworm');
  assert.is(f.HOME_URL, 'https://x/"q"');
  assert.is(f.ID_LIKE, 'rhel fedora');
  assert.is(f.lower, undefined);
  assert.is(Object.keys(f).length, 6);
});

test('readOsRelease: /etc, the /usr/lib fallback (also through Debian\'s symlink), missing → undefined', async () => {
  const etc = fresh();
  tree(etc, { 'etc/os-release': 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=Ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n', 'usr/lib/os-release': 'ID=wrong\n' });
  assert.equal(await readOsRelease(etc), { id: 'ubuntu', idLike: ['debian'], prettyName: 'Ubuntu 24.04 LTS', versionCodename: 'noble' });
  const usrOnly = fresh();
  tree(usrOnly, { 'usr/lib/os-release': 'NAME="Alpine Linux"\nID=alpine\n' });
  assert.equal(await readOsRelease(usrOnly), { id: 'alpine', idLike: [], prettyName: 'Alpine Linux' });
  // Debian ships /etc/os-release → ../usr/lib/os-release; an absolute link must resolve in the tree too.
  for (const target of ['../usr/lib/os-release', '/usr/lib/os-release']) {
    const linked = fresh();
    tree(linked, { 'usr/lib/os-release': 'ID=imgxtest\n' });
    mkdirSync(join(linked, 'etc'));
    symlinkSync(target, join(linked, 'etc/os-release'));
    assert.is((await readOsRelease(linked))?.id, 'imgxtest', target);
  }
  const hostile = fresh();
  mkdirSync(join(hostile, 'etc'));
  symlinkSync('/etc/os-release', join(hostile, 'etc/os-release'));
  assert.is(await readOsRelease(hostile), undefined, 'a loop, not the host file');
  assert.is(await readOsRelease(fresh()), undefined);
});

const os = (id: string, prettyName: string): OsRelease => ({ id, idLike: [], prettyName });

test('provisionPlan: Debian and Ubuntu packages, sshd on request; others refused by name', () => {
  const deb = provisionPlan(os('debian', 'Debian GNU/Linux 12 (bookworm)'), { sshServer: false });
  for (const p of ['linux-image-amd64', 'systemd-sysv', 'initramfs-tools']) assert.ok(deb.packages.includes(p), p);
  assert.not.ok(deb.packages.includes('openssh-server'));
  assert.match(deb.script, /apt-get .*install .*linux-image-amd64/);
  assert.is(deb.distribution, 'Debian GNU/Linux 12 (bookworm)');
  const debSsh = provisionPlan(os('debian', 'Debian'), { sshServer: true });
  assert.ok(debSsh.packages.includes('openssh-server'));
  assert.match(debSsh.script, /install .*openssh-server/);
  const ubu = provisionPlan(os('ubuntu', 'Ubuntu 24.04 LTS'), { sshServer: false });
  assert.ok(ubu.packages.includes('linux-image-virtual'));
  assert.not.ok(ubu.packages.includes('linux-image-amd64'));
  expectCode(() => provisionPlan(os('alpine', 'Alpine Linux v3.20'), { sshServer: false }), 'IMGX_UNSUPPORTED', /Alpine Linux v3\.20/);
  expectCode(() => provisionPlan(os('fedora', 'Fedora Linux 40'), { sshServer: true }), 'IMGX_UNSUPPORTED', /Fedora Linux 40/);
  expectCode(() => provisionPlan(os('', 'Linux'), { sshServer: false }), 'IMGX_UNSUPPORTED', /Linux/);
  expectCode(() => provisionPlan(undefined, { sshServer: false }), 'IMGX_UNSUPPORTED', /os-release/);
});

// ---------------------------------------------------------------------------------------------
// qemu.

/** Splits a qemu option value at single commas (",," is a literal comma), as qemu does. */
function qemuOpts(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.replace(/,,/g, '\0').split(',')) {
    const [k, ...v] = part.replace(/\0/g, ',').split('=');
    out[k!] = v.join('=');
  }
  return out;
}
const drives = (args: string[]) => args.flatMap((a, i) => (a === '-drive' ? [qemuOpts(args[i + 1]!)] : []));

test('qemuArgs: TCG, the disk in snapshot mode with its format, pflash only with OVMF, commas doubled', () => {
  const a = qemuArgs('/tmp/x,y/disk,1.img', 'raw', { memoryMiB: 768 });
  assert.is(a[a.indexOf('-accel') + 1], 'tcg');
  assert.is(a[a.indexOf('-m') + 1], '768');
  const [disk, ...rest] = drives(a);
  assert.is(rest.length, 0, 'no pflash without OVMF');
  assert.equal({ file: disk!.file, format: disk!.format, snapshot: disk!.snapshot }, { file: '/tmp/x,y/disk,1.img', format: 'raw', snapshot: 'on' });
  assert.ok(a.some((x) => x.includes('file=/tmp/x,,y/disk,,1.img,')));

  const u = drives(qemuArgs('/d.qcow2', 'qcow2', { memoryMiB: 512, ovmf: { code: '/fw/CODE.fd', vars: '/w/VARS.fd' } }));
  const pflash = u.filter((d) => d.if === 'pflash');
  assert.equal(pflash.map((d) => [d.file, d.readonly]), [['/fw/CODE.fd', 'on'], ['/w/VARS.fd', undefined]]);
  const main = u.find((d) => d.if !== 'pflash')!;
  assert.equal([main.file, main.format, main.snapshot], ['/d.qcow2', 'qcow2', 'on']);
});

test('diskFormat: a qcow2 header vs anything else; a missing file is IMGX_NOT_FOUND', async () => {
  const d = fresh();
  const w = (name: string, b: Buffer) => (writeFileSync(join(d, name), b), join(d, name));
  assert.is(await diskFormat(w('q', Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]), Buffer.alloc(100)]))), 'qcow2');
  assert.is(await diskFormat(w('r', Buffer.alloc(4096))), 'raw');
  assert.is(await diskFormat(w('near', Buffer.from([0x51, 0x46, 0x49, 0xfa]))), 'raw');
  assert.is(await diskFormat(w('short', Buffer.from('QFI'))), 'raw');
  assert.is(await diskFormat(w('empty', Buffer.alloc(0))), 'raw');
  await rejects(diskFormat(join(d, 'missing')), 'IMGX_NOT_FOUND');
  if (spawnSync('sh', ['-c', 'command -v qemu-img']).status === 0) {
    const q = join(d, 'real.qcow2');
    assert.is(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', q, '64M']).status, 0);
    assert.is(await diskFormat(q), 'qcow2');
  }
});

// ---------------------------------------------------------------------------------------------
// Hostnames.

test('hostnameFromImage: registry refs, local layouts and archives → valid hostnames', () => {
  const cases: [string, string][] = [
    ['debian:latest', 'debian'],
    ['debian', 'debian'],
    ['127.0.0.1:5000/library/debian:12', 'debian'],
    ['docker://ghcr.io/org/my.app@sha256:' + 'a'.repeat(64), 'my-app'],
    ['localhost:5000/x/y/Z_img:v1', 'z-img'],
    ['oci:/x/layout:kernel', 'kernel'],
    ['oci:/x/layout', 'layout'],
    ['oci-archive:/tmp/img.tar', 'img'],
    ['docker-archive:/tmp/My_Image.tar', 'my-image'],
    ['docker-archive:/tmp/___.tar', 'localhost'],
  ];
  for (const [ref, want] of cases) assert.is(hostnameFromImage(ref), want, ref);
  const long = hostnameFromImage(`registry/${'a'.repeat(62)}-${'b'.repeat(10)}:1`);
  assert.ok(long.length <= 63);
  for (const [ref] of [...cases, [`x/${'a'.repeat(62)}-b:1`]]) checkHostname(hostnameFromImage(ref!));
});

test('checkHostname: RFC 1123 labels only', () => {
  for (const ok of ['a', 'debian', 'web-01', '0box', 'a'.repeat(63)]) checkHostname(ok);
  for (const bad of ['', 'Debian', '-a', 'a-', 'a_b', 'a.b', 'a b', 'a'.repeat(64), 'é']) expectCode(() => checkHostname(bad), 'IMGX_USAGE');
});

test.run();

// to-disk benchmark: `imgx to-disk docker://… out.img` against the conventional daemonless pipeline
// that d2vm-like tools run without a loop device, on the same image from the same loopback
// docker-registry, both as root, cold (an empty imgx cache, an empty skopeo layout and bundle):
//
//   skopeo copy docker://… oci:DIR:bench                     (fetch)
//   umoci unpack --image DIR:bench BUNDLE                    (unpack)
//   write /etc/fstab and /boot/grub/grub.cfg into BUNDLE/rootfs (config)
//   truncate -s SIZE IMG; sgdisk (BIOS boot 1 MiB at 1 MiB, ESP 64 MiB, root the rest)
//   mke2fs -t ext4 -b 4096 -O ^metadata_csum_seed,^orphan_file -E offset=… -d BUNDLE/rootfs IMG BLOCKS
//   grub-mkimage i386-pc → core.img; dd boot.img's first 440 bytes to LBA 0, core.img to partition 1
//   mformat -i IMG@@OFFSET -F; grub-mkimage x86_64-efi; mmd + mcopy ::/EFI/BOOT/BOOTX64.EFI
//
// The disk size is the one imgx chose (its `--json` output's `size`), so both write the same
// filesystem size; GRUB gets the same modules and early config imgx builds in. Every peer step runs
// under /usr/bin/time on its own: the peer's wall time is their sum, its peak RSS their max. The
// image is `debianImage('kernel')` (test/fixtures/debian-image.ts): bookworm minbase with
// linux-image-amd64, initramfs-tools and systemd-sysv, so imgx finds a kernel and installs nothing.
//
//   node_modules/.bin/node bench/to-disk.ts [--rounds N]      (default 3, or IMGX_BENCH_ROUNDS)
//
// Prints a table per round and a summary (median wall, peak RSS of the largest single process and of
// the whole process tree, the imgx/peer ratio against the goal) and the median of each peer phase,
// and writes bench/results/to-disk.json. Needs root (umoci unpack with owners; imgx to-disk).
// Everything lives under /var/tmp/imgx-bench-to-disk-*; each tool's files (~1 GB) are removed right
// after its run, and the whole directory at the end.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { imgxCommand } from './lib/imgx-launch.ts';
import { emptyCredentials, requireRoot, roundsOption } from './lib/options.ts';
import { coldPageCache } from './lib/page-cache.ts';
import { debianImage, ociRef } from '../test/fixtures/debian-image.ts';
import { formatTable, machineInfo, measure, type Measurement, median, toolVersion } from './lib/measure.ts';
import { IMGX_BIN, NODE_BIN, REPO_ROOT, skopeoCopy, startRegistry } from './lib/registry.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' } } });
const rounds = roundsOption(values.rounds, 3);
requireRoot('bench/to-disk.ts', 'imgx to-disk and umoci unpack (owners, device nodes) run only as root');

/** Goal from the issue: imgx at most 0.7× the peer's median wall time. */
const GOAL_RATIO = 0.7;
const MiB = 1024 * 1024;
const SECTOR = 512;
const BLOCK = 4096;
const mib = (kib: number) => Math.round(kib / 102.4) / 10;
const GRUB_LIB = '/usr/lib/grub';
// The modules imgx builds into its GRUB images (src/disk/grub-image.ts), so both do the same work.
const COMMON_MODULES = ['part_gpt', 'part_msdos', 'ext2', 'search', 'search_fs_uuid', 'normal', 'linux', 'boot', 'configfile', 'echo', 'test', 'ls', 'cat', 'serial', 'terminal', 'gzio'];
const GRUB_MODULES = { 'i386-pc': ['biosdisk', ...COMMON_MODULES], 'x86_64-efi': [...COMMON_MODULES, 'fat', 'efi_gop', 'all_video'] };
const MTOOLS_ENV = { ...process.env, MTOOLSRC: '/dev/null', MTOOLS_SKIP_CHECK: '1' };

type Tool = 'imgx' | 'peer';
/** Peer phases, in the order they run. */
const PHASES = ['fetch', 'unpack', 'config', 'partition', 'mke2fs', 'grub-bios', 'esp'] as const;
type Phase = (typeof PHASES)[number];
const PHASE_LABEL: Record<Phase, string> = {
  fetch: 'skopeo copy',
  unpack: 'umoci unpack',
  config: 'fstab + grub.cfg',
  partition: 'truncate + sgdisk',
  mke2fs: 'mke2fs -d',
  'grub-bios': 'grub-mkimage i386-pc + dd ×2',
  esp: 'mformat + grub-mkimage efi + mmd + mcopy',
};

interface Step {
  phase: Phase;
  cmd: string;
  wallS: number;
  maxRssKiB: number;
  treePeakRssKiB: number;
}
interface Run {
  round: number;
  tool: Tool;
  wallS: number;
  /** Largest single process (GNU time %M), max over the steps. */
  maxRssKiB: number;
  /** Peak of the summed RSS of the process tree, sampled (max over the steps). */
  peakTreeRssKiB: number;
  /** Bytes the disk image file really occupies (it is sparse). */
  allocatedBytes: number;
  steps?: Step[];
  phases?: Record<Phase, number>;
}

interface ImgxJson {
  size: number;
  partitions: { number: number; role: string; offset: number; size: number }[];
  rootUuid: string;
  kernel: string;
  initrd: string | null;
  contentBytes: number;
  seconds: number;
}

const image = await debianImage('kernel');
const registry = await startRegistry();
const work = mkdtempSync('/var/tmp/imgx-bench-to-disk-');
const results: Record<string, unknown> = {};
try {
  const ref = `${registry.host}/bench/debian:kernel`;
  process.stderr.write(
    `bench: image ${image.name}: ${image.layers.length} layer(s), ${(image.compressedSize / MiB).toFixed(1)} MiB gzip, ${(image.uncompressedSize / MiB).toFixed(1)} MiB tar; pushing to ${registry.host}\n`,
  );
  await skopeoCopy(ociRef(image), `docker://${ref}`);

  // No tool may pick up credentials from this machine.
  const { dir: emptyCfg, authFile } = emptyCredentials(work);

  const imgxCache = join(work, 'imgx-cache');
  const imgxOut = join(work, 'imgx.img');
  const peerDir = join(work, 'peer');
  const allocated = (f: string) => statSync(f).blocks * 512;
  const clean = (tool: Tool) => {
    for (const p of tool === 'imgx' ? [imgxCache, imgxOut] : [peerDir]) rmSync(p, { recursive: true, force: true });
    coldPageCache();
  };

  /** The disk imgx made last: the peer copies its size and checks its root partition's place. */
  let imgxDisk: ImgxJson | undefined;

  const runImgxToDisk = async (): Promise<Run & { json: ImgxJson }> => {
    mkdirSync(imgxCache);
    const c = imgxCommand(['to-disk', '--json', '--seed', 'bench', `docker://${ref}`, imgxOut, '--plain-http']);
    const m = await measure(c.cmd, c.args, {
      cwd: REPO_ROOT,
      env: { ...process.env, ...c.env, IMGX_CACHE: imgxCache, DOCKER_CONFIG: emptyCfg, NO_COLOR: '1' },
    });
    if (m.code !== 0) throw new Error(`imgx to-disk failed (exit ${m.code}): ${m.stderr.trim()}`);
    const json = JSON.parse(m.stdout) as ImgxJson;
    imgxDisk = json;
    return { round: 0, tool: 'imgx', wallS: m.wallS, maxRssKiB: m.maxRssKiB, peakTreeRssKiB: m.treePeakRssKiB, allocatedBytes: allocated(imgxOut), json };
  };

  const runPeer = async (disk: ImgxJson): Promise<Run> => {
    mkdirSync(peerDir);
    const layout = join(peerDir, 'oci');
    const bundle = join(peerDir, 'bundle');
    const rootfs = join(bundle, 'rootfs');
    const img = join(peerDir, 'disk.img');
    const steps: Step[] = [];
    const env = { ...process.env, REGISTRY_AUTH_FILE: authFile };
    const step = async (phase: Phase, cmd: string, args: string[], stepEnv: NodeJS.ProcessEnv = env): Promise<Measurement> => {
      const m = await measure(cmd, args, { env: stepEnv, cwd: peerDir });
      if (m.code !== 0) throw new Error(`peer: ${cmd} ${args.join(' ')} failed (exit ${m.code}): ${(m.stderr.trim() || m.stdout.trim()).split('\n').slice(-5).join(' | ')}`);
      steps.push({ phase, cmd, wallS: m.wallS, maxRssKiB: m.maxRssKiB, treePeakRssKiB: m.treePeakRssKiB });
      return m;
    };

    await step('fetch', 'skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:bench`]);
    await step('unpack', 'umoci', ['unpack', '--image', `${layout}:bench`, bundle]);

    // The same disk as imgx's: its size, its partition places, its root filesystem UUID.
    const sectors = disk.size / SECTOR;
    const biosStart = 2048;
    const espStart = biosStart + MiB / SECTOR;
    const espSectors = (64 * MiB) / SECTOR;
    const rootStart = espStart + espSectors;
    const imgxRoot = disk.partitions.find((p) => p.role === 'root')!;
    if (imgxRoot.offset !== rootStart * SECTOR) throw new Error(`imgx's root partition starts at ${imgxRoot.offset}, the peer's at ${rootStart * SECTOR}: not the same layout`);
    const rootUuid = disk.rootUuid;

    // What a d2vm-like tool writes into the tree before building the filesystem (not a process:
    // timed here, and it is a few milliseconds).
    const t0 = process.hrtime.bigint();
    writeFileSync(join(rootfs, 'etc', 'fstab'), `UUID=${rootUuid} / ext4 errors=remount-ro 0 1\n`);
    mkdirSync(join(rootfs, 'boot', 'grub'), { recursive: true });
    writeFileSync(
      join(rootfs, 'boot', 'grub', 'grub.cfg'),
      [
        'set timeout=1',
        'serial --unit=0 --speed=115200',
        'terminal_input console serial',
        'terminal_output console serial',
        "menuentry 'Debian GNU/Linux' {",
        `\tsearch --no-floppy --fs-uuid --set=root ${rootUuid}`,
        `\tlinux ${disk.kernel} root=UUID=${rootUuid} ro console=tty0 console=ttyS0,115200`,
        ...(disk.initrd ? [`\tinitrd ${disk.initrd}`] : []),
        '}',
        '',
      ].join('\n'),
    );
    const early = join(peerDir, 'early.cfg');
    writeFileSync(
      early,
      [
        'serial --unit=0 --speed=115200',
        'terminal_input console serial',
        'terminal_output console serial',
        `search --no-floppy --fs-uuid --set=root ${rootUuid}`,
        'set prefix=($root)/boot/grub',
        '',
      ].join('\n'),
    );
    steps.push({ phase: 'config', cmd: '(write files)', wallS: Number(process.hrtime.bigint() - t0) / 1e9, maxRssKiB: 0, treePeakRssKiB: 0 });

    await step('partition', 'truncate', ['-s', String(disk.size), img]);
    await step('partition', 'sgdisk', [
      '-n', `1:${biosStart}:+1M`, '-t', '1:EF02', '-c', '1:bios-boot',
      '-n', `2:${espStart}:+64M`, '-t', '2:EF00', '-c', '2:esp',
      '-n', `3:${rootStart}:0`, '-t', '3:8300', '-c', '3:root',
      img,
    ]);
    // The root partition runs to the last usable sector; the filesystem is imgx's size (whole MiB).
    const lastUsable = sectors - 34;
    const peerRootBytes = (lastUsable - rootStart + 1) * SECTOR;
    if (imgxRoot.size > peerRootBytes) throw new Error(`imgx's root filesystem (${imgxRoot.size} bytes) does not fit the peer's partition (${peerRootBytes})`);
    const blocks = imgxRoot.size / BLOCK;
    await step('mke2fs', 'mke2fs', ['-q', '-F', '-t', 'ext4', '-b', String(BLOCK), '-O', '^metadata_csum_seed,^orphan_file', '-E', `offset=${rootStart * SECTOR}`, '-U', rootUuid, '-L', 'root', '-d', rootfs, img, String(blocks)]);

    const core = join(peerDir, 'core.img');
    await step('grub-bios', 'grub-mkimage', ['--directory', join(GRUB_LIB, 'i386-pc'), '--format', 'i386-pc', '--compression', 'auto', '--output', core, '--config', early, '--prefix', '/boot/grub', ...GRUB_MODULES['i386-pc']]);
    await step('grub-bios', 'dd', [`if=${join(GRUB_LIB, 'i386-pc', 'boot.img')}`, `of=${img}`, 'bs=440', 'count=1', 'conv=notrunc', 'status=none']);
    await step('grub-bios', 'dd', [`if=${core}`, `of=${img}`, 'bs=512', `seek=${biosStart}`, 'conv=notrunc', 'status=none']);

    const esp = `${img}@@${espStart * SECTOR}`;
    const efi = join(peerDir, 'BOOTX64.EFI');
    await step('esp', 'mformat', ['-i', esp, '-F', '-T', String(espSectors), '-h', '64', '-s', '32', '-H', String(espStart), '-v', 'ESP', '::'], MTOOLS_ENV);
    await step('esp', 'grub-mkimage', ['--directory', join(GRUB_LIB, 'x86_64-efi'), '--format', 'x86_64-efi', '--compression', 'auto', '--output', efi, '--config', early, '--prefix', '/boot/grub', ...GRUB_MODULES['x86_64-efi']]);
    await step('esp', 'mmd', ['-i', esp, '::/EFI', '::/EFI/BOOT'], MTOOLS_ENV);
    await step('esp', 'mcopy', ['-i', esp, '-o', efi, '::/EFI/BOOT/BOOTX64.EFI'], MTOOLS_ENV);

    const phases = Object.fromEntries(PHASES.map((p) => [p, steps.filter((s) => s.phase === p).reduce((a, s) => a + s.wallS, 0)])) as Record<Phase, number>;
    return {
      round: 0,
      tool: 'peer',
      wallS: steps.reduce((a, s) => a + s.wallS, 0),
      maxRssKiB: Math.max(...steps.map((s) => s.maxRssKiB)),
      peakTreeRssKiB: Math.max(...steps.map((s) => s.treePeakRssKiB)),
      allocatedBytes: allocated(img),
      steps,
      phases,
    };
  };

  const runs: Run[] = [];
  let firstJson: ImgxJson | undefined;
  for (let round = 1; round <= rounds; round++) {
    // Alternate who goes first; the peer needs imgx's disk size, so in round 1 imgx goes first and
    // later the peer uses the size of the previous round's imgx disk (imgx's layout is deterministic).
    const order: Tool[] = round % 2 ? ['imgx', 'peer'] : ['peer', 'imgx'];
    for (const tool of order) {
      clean(tool);
      let r: Run;
      if (tool === 'imgx') {
        const { json, ...rest } = await runImgxToDisk();
        firstJson ??= json;
        if (json.size !== firstJson.size) process.stderr.write(`bench: note: imgx's disk size changed from ${firstJson.size} to ${json.size} bytes\n`);
        r = rest;
      } else {
        r = await runPeer(imgxDisk!);
      }
      r.round = round;
      runs.push(r);
      clean(tool);
      const detail = r.phases ? ` (${PHASES.map((p) => `${p} ${r.phases![p].toFixed(2)}`).join(', ')})` : '';
      process.stderr.write(`bench: round ${round} ${tool}: ${r.wallS.toFixed(2)} s, max RSS ${mib(r.maxRssKiB).toFixed(0)} MiB, tree ${mib(r.peakTreeRssKiB).toFixed(0)} MiB${detail}\n`);
    }
  }
  const disk = firstJson!;

  const summary = (tool: Tool) => {
    const mine = runs.filter((r) => r.tool === tool);
    return {
      medianWallS: median(mine.map((r) => r.wallS)),
      minWallS: Math.min(...mine.map((r) => r.wallS)),
      peakMaxRssMiB: mib(Math.max(...mine.map((r) => r.maxRssKiB))),
      peakTreeRssMiB: mib(Math.max(...mine.map((r) => r.peakTreeRssKiB))),
      allocatedMiB: Math.round(median(mine.map((r) => r.allocatedBytes)) / MiB),
    };
  };
  const imgx = summary('imgx');
  const peer = summary('peer');
  const peerRuns = runs.filter((r) => r.phases);
  const peerPhases = Object.fromEntries(PHASES.map((p) => [p, median(peerRuns.map((r) => r.phases![p]))])) as Record<Phase, number>;
  // Largest single process per phase, over the rounds.
  const peerPhaseRss = Object.fromEntries(
    PHASES.map((p) => [p, mib(Math.max(0, ...peerRuns.flatMap((r) => r.steps!.filter((s) => s.phase === p).map((s) => s.maxRssKiB))))]),
  ) as Record<Phase, number>;
  const ratio = imgx.medianWallS / peer.medianWallS;

  process.stdout.write(
    `\nimgx to-disk vs skopeo + umoci + sgdisk + mke2fs -d + grub-mkimage + mtools — ${image.name}: ${image.layers.length} layer(s), ` +
      `${(image.compressedSize / MiB).toFixed(1)} MiB gzip / ${(image.uncompressedSize / MiB).toFixed(1)} MiB tar, ` +
      `disk ${(disk.size / MiB).toFixed(0)} MiB (${(disk.contentBytes / MiB).toFixed(0)} MiB of files), loopback registry, cold, ${rounds} rounds\n\n`,
  );
  process.stdout.write(
    formatTable(
      ['round', 'tool', 'wall s', 'max RSS MiB', 'peak RSS tree MiB', 'allocated MiB'],
      runs.map((r) => [r.round, r.tool, r.wallS.toFixed(2), mib(r.maxRssKiB).toFixed(1), mib(r.peakTreeRssKiB).toFixed(1), (r.allocatedBytes / MiB).toFixed(0)]),
    ) + '\n\n',
  );
  process.stdout.write('| tool | median wall s | min wall s | peak RSS (largest process) MiB | peak RSS (tree) MiB |\n|---|---|---|---|---|\n');
  for (const [name, s] of [['imgx to-disk', imgx], ['peer pipeline', peer]] as const) {
    process.stdout.write(`| ${name} | ${s.medianWallS.toFixed(2)} | ${s.minWallS.toFixed(2)} | ${s.peakMaxRssMiB.toFixed(1)} | ${s.peakTreeRssMiB.toFixed(1)} |\n`);
  }
  process.stdout.write(`\nratio imgx/peer (median wall time): ${ratio.toFixed(2)} (goal ≤ ${GOAL_RATIO}: ${ratio <= GOAL_RATIO ? 'met' : 'not met'})\n\n`);
  process.stdout.write('| peer phase | median wall s | share | largest process MiB |\n|---|---|---|---|\n');
  for (const p of PHASES) {
    process.stdout.write(`| ${PHASE_LABEL[p]} | ${peerPhases[p].toFixed(2)} | ${Math.round((peerPhases[p] / peer.medianWallS) * 100)}% | ${peerPhaseRss[p].toFixed(1)} |\n`);
  }

  Object.assign(results, {
    benchmark: 'to-disk',
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: {
      node: process.version,
      imgx: toolVersion(NODE_BIN, [IMGX_BIN, '--version'], { cwd: REPO_ROOT }),
      skopeo: toolVersion('skopeo', ['--version']),
      umoci: toolVersion('umoci', ['--version']),
      sgdisk: toolVersion('sgdisk', ['--version']),
      mke2fs: toolVersion('sh', ['-c', 'mke2fs -V 2>&1']),
      grubMkimage: toolVersion('grub-mkimage', ['--version']),
      mtools: toolVersion('mformat', ['--version']),
      registry: toolVersion('/usr/bin/docker-registry', ['--version']),
    },
    image: { name: image.name, manifest: image.manifestDigest, layers: image.layers.length, compressedBytes: image.compressedSize, uncompressedBytes: image.uncompressedSize },
    disk: { size: disk.size, contentBytes: disk.contentBytes, partitions: disk.partitions, kernel: disk.kernel, initrd: disk.initrd },
    rounds,
    runs,
    summary: { imgx, peer: { ...peer, medianPhasesS: peerPhases, phaseMaxRssMiB: peerPhaseRss }, ratioMedianWall: ratio, goal: { ratio: GOAL_RATIO, met: ratio <= GOAL_RATIO } },
  });
  const outDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'to-disk.json'), JSON.stringify(results, null, 2) + '\n');
  process.stdout.write(`\nresults: ${join('bench', 'results', 'to-disk.json')}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
  await registry.stop();
}

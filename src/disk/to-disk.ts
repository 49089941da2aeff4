// `imgx to-disk REF OUT`: image → cached root tree (the same one `imgx run` uses) → [kernel
// provisioning in a copy] → partition table, ext4 root, ESP, GRUB → a sparse raw file (or qcow2),
// written beside OUT under a temporary name and renamed into place only when complete.
// No loop device, no mount, no daemon on the way (provisioning aside, which runs a container).
import { randomBytes } from 'node:crypto';
import { close, fsync, ftruncate, open } from 'node:fs';
import { lstat, mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { CliContext } from '../cli/context.ts';
import { ImgxError, UsageError, isImgxError } from '../errors.ts';
import { cacheIoError, ioError, isSystemError, unmaskMkdirError } from '../io-errors.ts';
import { onInterrupt } from '../export/interrupt.ts';
import { removeTree } from '../export/remove-tree.ts';
import { openImageTree, type ImageTree } from '../layers/image-tree.ts';
import { imageRootfs, type ImageRootfs } from '../run/image-rootfs.ts';
import type { Warnings } from '../warnings.ts';
import { blockDevice, checkDeviceTarget } from './block-device.ts';
import { writeEsp } from './esp.ts';
import { layerEntries, writeLayerRootFs } from './layer-rootfs.ts';
import { dirRootView, existsInView, treeRootView, type RootView } from './root-view.ts';
import { addExtras, autoFsBytes, inodesFor, measureTree, minimumFsBytes, usageOfEntries } from './fs-size.ts';
import { placeBiosBoot } from './grub-bios.ts';
import { renderEarlyCfg, renderGrubCfg } from './grub-config.ts';
import { grubBootSector, grubModulesDir, makeGrubImage } from './grub-image.ts';
import { requireTool, runTool, stopTools } from './host-tool.ts';
import { findKernel, type FoundKernel } from './kernel.ts';
import { formatSize, minimumDiskSize, SECTOR_SIZE, type BootMode, type DiskLayout, type TableType } from './layout.ts';
import { makeGuid } from './guid.ts';
import { Mke2fsBuilder } from './mke2fs-builder.ts';
import { readOsRelease } from './os-release.ts';
import { applyWrites, encodeMbrSector, partitionTableWrites, planLayout } from './partition-table.ts';
import { provision, provisionPlan } from './provision.ts';
import type { RootFsBuilder } from './rootfs-builder.ts';
import type { SizeOption } from './size-option.ts';
import { systemFiles } from './system-files.ts';

export type DiskFormat = 'raw' | 'qcow2';

export interface ToDiskOptions {
  image: string;
  out: string;
  size: SizeOption;
  format: DiskFormat;
  boot: BootMode;
  table: TableType;
  espSize?: number;
  /** 'auto': the image's kernel, or install one; 'none': the image's, or refuse. */
  kernel: 'auto' | 'none';
  hostname: string;
  rootPassword?: string;
  sshKey?: string;
  cmdline?: string;
  /** Makes GUIDs and the filesystem UUID reproducible. */
  seed?: string;
  force: boolean;
  warnings: Warnings;
  /** Progress and notes (stderr). */
  notice(message: string): void;
  builder?: RootFsBuilder;
}

export interface ToDiskResult {
  out: string;
  format: DiskFormat;
  layout: DiskLayout;
  rootUuid: string;
  kernel: FoundKernel;
  provisioned: boolean;
  features: string[];
  /** Worth knowing about the result (no way to log in, no sshd …), said after it is written. */
  notes: string[];
  contentBytes: number;
  minimumRootBytes: number;
  seconds: number;
}

const openP = promisify(open);
const closeP = promisify(close);
const ftruncateP = promisify(ftruncate);
const fsyncP = promisify(fsync);

/** Host tools this run will call, checked before anything is pulled. */
async function checkTools(opts: ToDiskOptions, mke2fs: boolean): Promise<void> {
  if (opts.boot !== 'uefi') await grubModulesDir('i386-pc');
  if (opts.boot !== 'bios') await grubModulesDir('x86_64-efi');
  const tools: [string, string][] = [['grub-mkimage', 'grub-common']];
  if (mke2fs) tools.push(['mke2fs', 'e2fsprogs'], ['debugfs', 'e2fsprogs']);
  if (opts.boot !== 'bios') tools.push(['mformat', 'mtools']);
  if (opts.format === 'qcow2') tools.push(['qemu-img', 'qemu-utils']);
  for (const [tool, pkg] of tools) await requireTool(tool, pkg, 'to-disk');
}

async function checkOut(out: string, force: boolean): Promise<void> {
  const st = await lstat(out).catch(() => undefined);
  if (st && !force) throw new ImgxError('IMGX_DEST_EXISTS', `${out} exists (use --force to replace it)`);
  if (st?.isDirectory()) throw new ImgxError('IMGX_DEST_EXISTS', `${out} is a directory`);
  const dir = await lstat(dirname(out)).catch(() => undefined);
  if (!dir?.isDirectory()) throw new ImgxError('IMGX_IO', `${dirname(out)} is not a directory`);
}

export async function toDisk(ctx: CliContext, opts: ToDiskOptions): Promise<ToDiskResult> {
  const t0 = performance.now();
  // Under --debug: seconds since the start, per phase (where a slow run spends its time).
  const phase = (what: string) => ctx.debug && process.stderr.write(`debug: to-disk: ${what} at ${((performance.now() - t0) / 1000).toFixed(2)} s\n`);
  const asRoot = process.geteuid?.() === 0;
  // The native writer (default) takes the image's files straight from the layers; mke2fs -d
  // (IMGX_EXT4_BUILDER=mke2fs) needs them extracted, as root.
  const fromLayers = process.env.IMGX_EXT4_BUILDER !== 'mke2fs' && !opts.builder;
  if (!asRoot && !fromLayers) {
    throw new ImgxError('IMGX_UNSUPPORTED', 'to-disk needs root with the mke2fs builder: mke2fs -d copies owners from an extracted tree, which only root can make right');
  }
  if (opts.table === 'mbr' && opts.boot !== 'bios') throw new UsageError(`--table mbr needs --boot bios (got --boot ${opts.boot}): UEFI boot uses GPT`);
  const device = await blockDevice(opts.out);
  if (device) await checkDeviceTarget(device, { force: opts.force, format: opts.format, sizeGiven: opts.size.kind !== 'auto' });
  else await checkOut(opts.out, opts.force);
  await checkTools(opts, !fromLayers);

  // Where the files come from: the flattened layers (native writer), or the extracted tree.
  let layered: (ImageTree & { close(): Promise<void> }) | undefined;
  let rootfs: ImageRootfs | undefined;
  // Until OUT is written, the only local writes go to the cache (blobs, layer spools, the tree).
  const cacheFailure = (e: unknown) => cacheIoError(e, ctx.cache.root);
  if (fromLayers) {
    layered = await openImageTree(ctx, opts.image, { warnings: opts.warnings, spool: true }).catch((e: unknown) => {
      throw cacheFailure(e);
    });
    phase(layered.fromIndex ? 'tree index found' : 'layers scanned');
  } else {
    rootfs = await imageRootfs(ctx, opts.image, opts.warnings, true).catch((e: unknown) => {
      throw cacheFailure(e);
    });
    phase(rootfs.extracted ? 'image extracted' : 'cached tree found');
  }
  opts.warnings.flush();
  const arch = (layered ?? rootfs)!.image.config.architecture;
  if (arch && arch !== 'amd64') {
    await layered?.close();
    throw new ImgxError('IMGX_UNSUPPORTED', `to-disk makes x86-64 disks; ${opts.image} is ${arch} (choose another with --platform linux/amd64)`);
  }

  const work = await mkdtemp(join(ctx.cache.root, 'imgx-disk-')).catch(async (e: unknown) => {
    await layered?.close().catch(() => {});
    throw cacheFailure(e);
  });
  // A file is written beside OUT and renamed when complete; a device is written in place.
  const partial = device ? device.path : join(dirname(opts.out), `.${basename(opts.out)}.imgx-partial-${randomBytes(4).toString('hex')}`);
  const raw = opts.format === 'raw' ? partial : `${partial}.raw`;
  let fd: number | undefined;
  /** Work still writing into `work`, waited for before it is removed. */
  let background: Promise<unknown> | undefined;
  const discard = async () => {
    stopTools();
    if (!device) await Promise.all([rm(partial, { force: true }), rm(raw, { force: true })]).catch(() => {});
    await background?.catch(() => {});
    await removeTree(work).catch(() => {});
  };
  // ^C or SIGTERM: no half-written disk and no work directory stay behind.
  let interrupted = false;
  const unhook = onInterrupt(() => {
    interrupted = true;
    return discard();
  });
  try {
    let tree = rootfs?.dir;
    let view: RootView = layered ? treeRootView(layered.tree, layered.layers) : dirRootView(tree!);
    // What the decisions below read, in one pass over the layers rather than one per file.
    await view.prefetch?.(['/etc/os-release', '/usr/lib/os-release', '/etc/shadow']);
    let kernel = await findKernel(view);
    let provisioned = false;
    if (!kernel) {
      const os = await readOsRelease(view);
      if (opts.kernel === 'none') throw new ImgxError('IMGX_UNSUPPORTED', `${opts.image} has no kernel in /boot (vmlinuz-*), and --kernel none forbids installing one`);
      const plan = provisionPlan(os, { sshServer: opts.sshKey !== undefined });
      if (layered) {
        // Installing a kernel needs the tree on disk: extract after all (as root only).
        await layered.close();
        layered = undefined;
        if (!asRoot) throw new ImgxError('IMGX_UNSUPPORTED', `${opts.image} has no kernel in /boot, and installing one needs root`);
        rootfs = await imageRootfs(ctx, opts.image, opts.warnings, true);
      }
      opts.notice(`no kernel in ${opts.image}: installing ${plan.packages.join(' ')} into ${plan.distribution} (apt, host network)`);
      tree = join(work, 'rootfs');
      await runTool('cp', ['-a', '--reflink=auto', '--', rootfs!.dir, tree], { packages: 'coreutils', purpose: "copying the image's tree for provisioning" });
      await provision(ctx, tree, plan);
      view = dirRootView(tree);
      kernel = await findKernel(view);
      if (!kernel) throw new ImgxError('IMGX_PROVISION_FAILED', `installing ${plan.packages[0]} left no /boot/vmlinuz-* in the image`);
      provisioned = true;
      phase('kernel installed');
    }
    if (!kernel.initrd) opts.notice(`${kernel.kernel} has no initramfs beside it: the kernel must mount ext4 on virtio by itself`);

    const rootUuid = makeGuid('rootfs', opts.seed).toLowerCase();
    // GRUB's images need only the UUID: grub-mkimage runs while the tree is measured.
    const grubImages = renderEarlyCfg(rootUuid).then((early) =>
      Promise.all([
        opts.boot !== 'uefi' ? makeGrubImage('i386-pc', early, work) : undefined,
        opts.boot !== 'bios' ? makeGrubImage('x86_64-efi', early, work) : undefined,
        opts.boot !== 'uefi' ? grubBootSector() : undefined,
      ]),
    );
    grubImages.catch(() => {});
    background = grubImages;
    const system = await systemFiles(view, { rootUuid, hostname: opts.hostname, ...(opts.rootPassword !== undefined ? { rootPassword: opts.rootPassword } : {}), ...(opts.sshKey !== undefined ? { sshKey: opts.sshKey } : {}) });
    const grubCfg = await renderGrubCfg({ title: (await readOsRelease(view))?.prettyName ?? 'Linux', rootUuid, kernel: kernel.kernel, ...(kernel.initrd ? { initrd: kernel.initrd } : {}), ...(opts.cmdline ? { cmdline: opts.cmdline } : {}) });
    const extras = [...system.extras];
    for (const d of ['/boot', '/boot/grub']) if (!(await existsInView(view, d))) extras.push({ type: 'dir', path: d, mode: 0o755, uid: 0, gid: 0 });
    extras.push({ type: 'file', path: '/boot/grub/grub.cfg', content: grubCfg, mode: 0o644, uid: 0, gid: 0 });

    const planned = layered ? layerEntries(layered.tree) : undefined;
    const usage = addExtras(planned ? usageOfEntries(planned.entries) : await measureTree(tree!), extras);
    const minimum = minimumFsBytes(usage);
    phase(`tree measured (${usage.inodes} inodes)`);
    const base = { boot: opts.boot, table: opts.table, ...(opts.espSize ? { espSize: opts.espSize } : {}), ...(opts.seed !== undefined ? { seed: opts.seed } : {}) };
    let layout: DiskLayout;
    if (device) {
      const needed = minimumDiskSize(minimum, base);
      if (device.size < needed) throw new UsageError(`${device.path} holds ${sizeText(device.size)}: ${sizeText(usage.bytes)} of files need a disk of at least ${sizeText(needed)}`);
      layout = planLayout({ ...base, diskSize: Math.floor(device.size / SECTOR_SIZE) * SECTOR_SIZE });
    } else if (opts.size.kind === 'exact') {
      const needed = minimumDiskSize(minimum, base);
      if (opts.size.bytes < needed) {
        throw new UsageError(`--size ${sizeText(opts.size.bytes)} is too small: ${sizeText(usage.bytes)} of files need a root filesystem of at least ${sizeText(minimum)}, a disk of at least ${sizeText(needed)}`);
      }
      layout = planLayout({ ...base, diskSize: opts.size.bytes });
    } else {
      layout = planLayout({ ...base, rootSize: opts.size.kind === 'auto' ? autoFsBytes(usage) : minimum + opts.size.bytes });
    }
    const root = layout.partitions.find((p) => p.role === 'root')!;
    // The filesystem is a whole number of 4 KiB blocks (the partition is 1 MiB aligned, so it is).
    const fsBytes = root.size;

    const [coreImg, efiImg, bootImg] = await grubImages;
    phase('GRUB images built');
    if (device) {
      fd = await openP(raw, 'r+');
      phase(`writing to ${device.path} in place`);
    } else {
      fd = await openP(raw, 'wx', 0o644);
      await ftruncateP(fd, layout.diskSize);
    }
    const writes = partitionTableWrites(layout);
    let mbr = encodeMbrSector(layout);
    if (coreImg && bootImg) {
      const biosBoot = layout.partitions.find((p) => p.role === 'bios-boot');
      // GPT: core.img fills the BIOS boot partition. MBR: the gap between the MBR and the first partition.
      const coreLba = biosBoot ? biosBoot.firstLba : 1;
      const room = biosBoot ? biosBoot.sectors : layout.partitions[0]!.firstLba - 1;
      const placed = placeBiosBoot(bootImg, coreImg, mbr, coreLba, room);
      mbr = placed.mbr;
      applyWrites(fd, [{ offset: coreLba * SECTOR_SIZE, bytes: placed.core }]);
    }
    applyWrites(fd, [...writes.filter((w) => w.kind !== 'mbr'), { offset: 0, bytes: mbr }]);
    await closeP(fd);
    fd = undefined;

    // The native writer is opt-in until it is fed from the flatten stage (see docs/BENCHMARKS.md).
    const inodes = inodesFor(usage, fsBytes);
    if (layered && planned) {
      await writeLayerRootFs({ image: raw, offset: root.offset, size: fsBytes, tree: layered.tree, layers: layered.layers, planned, extras, uuid: rootUuid, label: 'root', inodes, warnings: opts.warnings });
      phase('root filesystem built (native, from the layers)');
    } else {
      // After provisioning the files are a directory: the native writer reads it like mke2fs -d would.
      const builder = opts.builder ?? (fromLayers ? new (await import('./native-ext4-builder.ts')).NativeExt4Builder() : new Mke2fsBuilder());
      await builder.build({ image: raw, offset: root.offset, size: fsBytes, tree: tree!, extras, uuid: rootUuid, label: 'root', inodes, workDir: work, prezeroed: !device });
      phase(`root filesystem built (${builder.name})`);
    }
    const esp = layout.partitions.find((p) => p.role === 'esp');
    if (esp && efiImg) await writeEsp(raw, esp, efiImg, parseInt(makeGuid('esp', opts.seed).slice(0, 8), 16), work);

    phase('ESP written');
    fd = await openP(raw, 'r+');
    await fsyncP(fd);
    await closeP(fd);
    fd = undefined;
    phase('disk synced');
    if (opts.format === 'qcow2') {
      await runTool('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, partial], { packages: 'qemu-utils', purpose: 'writing the qcow2 image' });
      await rm(raw, { force: true });
    }
    if (!device) await rename(partial, opts.out);
    return {
      out: opts.out,
      format: opts.format,
      layout,
      rootUuid,
      kernel,
      provisioned,
      features: ['fstab by UUID', `hostname ${opts.hostname}`, ...system.features],
      notes: system.notes,
      contentBytes: usage.bytes,
      minimumRootBytes: minimum,
      seconds: (performance.now() - t0) / 1000,
    };
  } catch (e) {
    if (fd !== undefined) await closeP(fd).catch(() => {});
    await discard();
    // A tool stopped by the interruption failed because of it: say that, not the tool's complaint.
    throw interrupted ? new ImgxError('IMGX_INTERRUPTED', 'interrupted') : outputIoError(e, opts.out, [partial, raw], ctx.cache.root);
  } finally {
    await layered?.close().catch(() => {});
    unhook();
    await background?.catch(() => {});
    await removeTree(work).catch(() => {});
  }
}

/**
 * A local write failure while the disk was made, as IMGX_IO: "cannot write OUT: no space left on
 * device (ENOSPC)" for the image itself (its writes name no path, or the partial file's), the
 * cache's message for its work directory, and a host tool that failed for want of space (its own
 * words quoted). Anything else is returned as it is.
 */
function outputIoError(e: unknown, out: string, partials: string[], cacheRoot: string): unknown {
  if (isImgxError(e)) {
    if (e.code === 'IMGX_TOOL_FAILED' && /no space left on device|disk quota exceeded|read-only file system|input\/output error/i.test(e.message)) {
      return new ImgxError('IMGX_IO', e.message, { cause: e });
    }
    return e;
  }
  const sys = unmaskMkdirError(e);
  if (!isSystemError(sys)) return e;
  if (sys.path === undefined ? sys.syscall !== 'read' : partials.includes(sys.path)) return ioError(sys, `cannot write ${out}`);
  return cacheIoError(sys, cacheRoot);
}

/** For messages: "1.2 GiB". */
export function sizeText(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : formatSize(Math.ceil(bytes / 2 ** 20) * 2 ** 20);
}

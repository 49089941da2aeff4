// Plans the partitions of an imgx disk: every partition starts and ends on a 1 MiB boundary
// (2048 sectors of 512 bytes), the root partition is last and takes the rest of the disk.
//
//   --boot hybrid (default), GPT:  1 BIOS boot (1 MiB) · 2 EFI system (ESP) · 3 root
//   --boot bios,  GPT:             1 BIOS boot (1 MiB) · 2 root
//   --boot uefi,  GPT:             1 EFI system (ESP)  · 2 root
//   --boot bios,  --table mbr:     1 root (active, type 0x83); GRUB's core.img goes in sectors 1..2047
//
// GPT keeps LBA 0 (protective MBR), LBA 1 (header), LBA 2..33 (128 entries × 128 bytes) at the start
// and the same 33 sectors mirrored at the end of the disk, so the root partition ends at the last
// whole MiB before the backup entries.
import { UsageError } from '../errors.ts';
import { makeDiskSignature, makeGuid } from './guid.ts';

export const SECTOR_SIZE = 512;
export const MIB = 1024 * 1024;
/** Sectors per 1 MiB alignment unit. */
export const ALIGN_SECTORS = MIB / SECTOR_SIZE;
export const GPT_ENTRY_COUNT = 128;
export const GPT_ENTRY_SIZE = 128;
/** Sectors taken by the partition entry array (128 × 128 bytes = 32 sectors). */
export const GPT_ENTRY_SECTORS = (GPT_ENTRY_COUNT * GPT_ENTRY_SIZE) / SECTOR_SIZE;
export const DEFAULT_ESP_SIZE = 64 * MIB;
export const BIOS_BOOT_SIZE = MIB;
/** The smallest root partition the planner accepts (the filesystem step may want more). */
export const MIN_ROOT_SIZE = MIB;
/** A classic MBR addresses at most 2^32 - 1 sectors (just under 2 TiB). */
export const MBR_MAX_SECTORS = 0xffffffff;

export const TYPE_GUID = {
  biosBoot: '21686148-6449-6E6F-744E-656564454649',
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  linuxFilesystem: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;

export const MBR_TYPE_LINUX = 0x83;
export const MBR_TYPE_ESP = 0xef;
export const MBR_TYPE_PROTECTIVE = 0xee;

export type BootMode = 'hybrid' | 'bios' | 'uefi';
export type TableType = 'gpt' | 'mbr';
export type PartitionRole = 'bios-boot' | 'esp' | 'root';

export interface PlannedPartition {
  /** 1-based partition number (as in /dev/sdaN). */
  number: number;
  role: PartitionRole;
  /** GPT partition name (UTF-16LE on disk, at most 36 code units). */
  name: string;
  /** GPT partition type GUID. */
  typeGuid: string;
  /** GPT unique partition GUID (PARTUUID). */
  guid: string;
  /** MBR partition type byte (only meaningful with table 'mbr'). */
  mbrType: number;
  /** MBR active flag (table 'mbr': set on the root partition). */
  bootable: boolean;
  firstLba: number;
  /** Inclusive. */
  lastLba: number;
  sectors: number;
  /** Byte offset of the partition in the disk image (firstLba × 512). */
  offset: number;
  /** Size in bytes (sectors × 512). */
  size: number;
}

export interface DiskLayout {
  table: TableType;
  boot: BootMode;
  /** Disk size in bytes (a multiple of 512). */
  diskSize: number;
  /** Disk size in 512-byte sectors. */
  sectors: number;
  /** GPT disk GUID (unused with table 'mbr'). */
  diskGuid: string;
  /** MBR disk signature at bytes 440..443 (used with table 'mbr'; the protective MBR leaves it 0). */
  diskSignature: number;
  /** GPT first/last usable LBA; for 'mbr' the range partitions may occupy. */
  firstUsableLba: number;
  lastUsableLba: number;
  partitions: PlannedPartition[];
}

export interface LayoutOptions {
  /** Whole disk size in bytes. Give this, or `rootSize`, or both (then the disk must fit the root). */
  diskSize?: number;
  /** Root partition size in bytes (rounded up to 1 MiB); without `diskSize` the disk is sized to fit. */
  rootSize?: number;
  boot?: BootMode;
  /** Default 'gpt'; 'mbr' only with boot 'bios'. */
  table?: TableType;
  /** ESP size in bytes, rounded up to 1 MiB (default 64 MiB). Ignored without an ESP. */
  espSize?: number;
  /** Makes the disk and partition GUIDs (and MBR signature) reproducible; random when absent. */
  seed?: string;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Human size for messages: "64 MiB", "2 TiB", "1049088 bytes (1.00 MiB)". */
export function formatSize(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && v % 1024 === 0 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0 && bytes >= MIB) return `${bytes} bytes (${(bytes / MIB).toFixed(2)} MiB)`;
  return `${v} ${units[i]}`;
}

function checkBytes(name: string, v: number | undefined): void {
  if (v === undefined) return;
  if (!Number.isSafeInteger(v) || v <= 0) throw new UsageError(`${name} must be a positive whole number of bytes, got ${v}`);
}

interface Resolved {
  table: TableType;
  boot: BootMode;
  espSize: number;
  /** The partitions before the root: role and size in sectors. */
  head: { role: PartitionRole; sectors: number }[];
  /** First LBA of the root partition. */
  rootStart: number;
  /** Sectors kept free after the last partition (GPT backup: 33). */
  trailer: number;
}

function resolve(opts: LayoutOptions): Resolved {
  const boot = opts.boot ?? 'hybrid';
  if (boot !== 'hybrid' && boot !== 'bios' && boot !== 'uefi') throw new UsageError(`unknown boot mode "${String(boot)}" (hybrid, bios or uefi)`);
  const table = opts.table ?? 'gpt';
  if (table !== 'gpt' && table !== 'mbr') throw new UsageError(`unknown partition table "${String(table)}" (gpt or mbr)`);
  if (table === 'mbr' && boot !== 'bios') throw new UsageError(`--table mbr needs --boot bios (got --boot ${boot}): UEFI boot uses GPT`);
  checkBytes('ESP size', opts.espSize);
  const espSize = alignUp(opts.espSize ?? DEFAULT_ESP_SIZE, MIB);
  const head: { role: PartitionRole; sectors: number }[] = [];
  if (table === 'gpt' && boot !== 'uefi') head.push({ role: 'bios-boot', sectors: BIOS_BOOT_SIZE / SECTOR_SIZE });
  if (boot !== 'bios') head.push({ role: 'esp', sectors: espSize / SECTOR_SIZE });
  const rootStart = ALIGN_SECTORS + head.reduce((s, p) => s + p.sectors, 0);
  return { table, boot, espSize, head, rootStart, trailer: table === 'gpt' ? 1 + GPT_ENTRY_SECTORS : 0 };
}

/**
 * The smallest disk (bytes, a whole number of MiB) that holds a root partition of `rootSize` bytes
 * (rounded up to 1 MiB) with the given boot mode, table and ESP size.
 */
export function minimumDiskSize(rootSize: number, opts: Omit<LayoutOptions, 'diskSize' | 'rootSize' | 'seed'> = {}): number {
  checkBytes('root size', rootSize);
  const r = resolve(opts);
  const rootSectors = alignUp(Math.max(rootSize, MIN_ROOT_SIZE), MIB) / SECTOR_SIZE;
  return alignUp(r.rootStart + rootSectors + r.trailer, ALIGN_SECTORS) * SECTOR_SIZE;
}

const NAMES: Record<PartitionRole, string> = { 'bios-boot': 'BIOS boot partition', esp: 'EFI system partition', root: 'Linux root' };
const TYPES: Record<PartitionRole, string> = { 'bios-boot': TYPE_GUID.biosBoot, esp: TYPE_GUID.esp, root: TYPE_GUID.linuxFilesystem };
// MBR type bytes, used only with table 'mbr' (where only the root exists): 0xEF is the EFI system
// type, and a BIOS boot partition has no MBR type (0).
const MBR_TYPES: Record<PartitionRole, number> = { 'bios-boot': 0x00, esp: MBR_TYPE_ESP, root: MBR_TYPE_LINUX };

/**
 * Plans the layout. Throws a UsageError (IMGX_USAGE) when the options conflict or the disk is too
 * small, before anything is written.
 */
export function planLayout(opts: LayoutOptions): DiskLayout {
  checkBytes('disk size', opts.diskSize);
  checkBytes('root size', opts.rootSize);
  const r = resolve(opts);
  let diskSize: number;
  if (opts.diskSize !== undefined) {
    diskSize = opts.diskSize;
    if (diskSize % SECTOR_SIZE !== 0) throw new UsageError(`disk size ${diskSize} bytes is not a multiple of ${SECTOR_SIZE}-byte sectors`);
  } else if (opts.rootSize !== undefined) {
    diskSize = minimumDiskSize(opts.rootSize, opts);
  } else {
    throw new UsageError('give a disk size or a root partition size');
  }
  const needed = minimumDiskSize(opts.rootSize ?? MIN_ROOT_SIZE, opts);
  if (diskSize < needed) {
    const parts = r.head.map((p) => `${p.role === 'esp' ? 'ESP' : 'BIOS boot'} ${formatSize(p.sectors * SECTOR_SIZE)}`);
    parts.push(`root ${formatSize(alignUp(Math.max(opts.rootSize ?? MIN_ROOT_SIZE, MIN_ROOT_SIZE), MIB))}`);
    throw new UsageError(`disk of ${formatSize(diskSize)} is too small for the ${r.boot}/${r.table} layout: needs at least ${formatSize(needed)} (${parts.join(' + ')}, 1 MiB alignment${r.table === 'gpt' ? ' and GPT' : ''})`);
  }
  const sectors = diskSize / SECTOR_SIZE;
  const lastUsableLba = r.table === 'gpt' ? sectors - r.trailer - 1 : sectors - 1;
  if (r.table === 'mbr' && sectors > MBR_MAX_SECTORS) {
    // The last partition must end within 2^32 - 1 sectors for an MBR to describe it.
    throw new UsageError(`disk of ${formatSize(diskSize)} is too large for an MBR partition table (at most ${formatSize(MBR_MAX_SECTORS * SECTOR_SIZE)}): use --table gpt`);
  }
  const partitions: PlannedPartition[] = [];
  let next = ALIGN_SECTORS;
  const add = (role: PartitionRole, first: number, count: number): void => {
    partitions.push({
      number: partitions.length + 1,
      role,
      name: NAMES[role],
      typeGuid: TYPES[role],
      guid: makeGuid(`partition:${role}`, opts.seed),
      mbrType: MBR_TYPES[role],
      bootable: r.table === 'mbr' && role === 'root',
      firstLba: first,
      lastLba: first + count - 1,
      sectors: count,
      offset: first * SECTOR_SIZE,
      size: count * SECTOR_SIZE,
    });
  };
  for (const p of r.head) {
    add(p.role, next, p.sectors);
    next += p.sectors;
  }
  // Root: from here to the last whole MiB that fits before the backup GPT (or the disk's end).
  const rootEnd = Math.floor((lastUsableLba + 1) / ALIGN_SECTORS) * ALIGN_SECTORS - 1;
  add('root', next, rootEnd - next + 1);
  return {
    table: r.table,
    boot: r.boot,
    diskSize,
    sectors,
    diskGuid: makeGuid('disk', opts.seed),
    diskSignature: makeDiskSignature(opts.seed),
    firstUsableLba: r.table === 'gpt' ? 2 + GPT_ENTRY_SECTORS : 1,
    lastUsableLba,
    partitions,
  };
}

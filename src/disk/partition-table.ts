// The partition table of an imgx disk as a list of writes: plan with planLayout (layout.ts), then
// partitionTableWrites(layout) gives the {offset, bytes} pieces the caller pwrites into the (sparse)
// image file, so the disk never sits in memory. No loop devices, no root.
//
// The MBR (LBA 0) is always its own 512-byte write, first in the list, so the GRUB step can fill the
// boot code area (bytes 0..439, MBR_BOOT_CODE_RANGE) before writing it, or overwrite just those bytes
// later. Nothing else in the tables may be touched afterwards: the GPT CRCs cover them.
import { writeSync } from 'node:fs';
import { encodeGpt } from './gpt.ts';
import type { DiskLayout } from './layout.ts';
import { SECTOR_SIZE } from './layout.ts';
import { encodeClassicMbr, encodeProtectiveMbr } from './mbr.ts';

export type { BootMode, DiskLayout, LayoutOptions, PartitionRole, PlannedPartition, TableType } from './layout.ts';
export { DEFAULT_ESP_SIZE, TYPE_GUID, minimumDiskSize, planLayout } from './layout.ts';
export { MBR_BOOT_CODE_RANGE } from './mbr.ts';

export type TableWriteKind = 'mbr' | 'gpt-primary-header' | 'gpt-primary-entries' | 'gpt-backup-entries' | 'gpt-backup-header';

export interface TableWrite {
  kind: TableWriteKind;
  /** Byte offset in the disk image. */
  offset: number;
  bytes: Buffer;
}

/** The MBR sector of a layout alone: protective (GPT) or classic (MBR). */
export function encodeMbrSector(layout: DiskLayout): Buffer {
  return layout.table === 'gpt' ? encodeProtectiveMbr(layout.sectors) : encodeClassicMbr(layout);
}

/**
 * Everything the partition table puts on disk, as non-overlapping writes in ascending offset order.
 * The image file must already be `layout.diskSize` bytes long (ftruncate), or at least become so.
 */
export function partitionTableWrites(layout: DiskLayout): TableWrite[] {
  const mbr = encodeMbrSector(layout);
  if (layout.table === 'mbr') return [{ kind: 'mbr', offset: 0, bytes: mbr }];
  const g = encodeGpt(layout, mbr);
  return [
    { kind: 'mbr', offset: 0, bytes: g.protectiveMbr },
    { kind: 'gpt-primary-header', offset: SECTOR_SIZE, bytes: g.primaryHeader },
    { kind: 'gpt-primary-entries', offset: g.primaryEntriesLba * SECTOR_SIZE, bytes: g.entries },
    { kind: 'gpt-backup-entries', offset: g.backupEntriesLba * SECTOR_SIZE, bytes: g.entries },
    { kind: 'gpt-backup-header', offset: g.backupHeaderLba * SECTOR_SIZE, bytes: g.backupHeader },
  ];
}

/** Writes the pieces into an open file descriptor (synchronously; each piece is at most 16 KiB). */
export function applyWrites(fd: number, writes: readonly { offset: number; bytes: Uint8Array }[]): void {
  for (const w of writes) {
    let done = 0;
    while (done < w.bytes.length) done += writeSync(fd, w.bytes, done, w.bytes.length - done, w.offset + done);
  }
}

// Master boot records: the protective MBR in front of a GPT, and a classic MBR for --table mbr.
//
// Byte map of the 512-byte sector (LBA 0):
//     0..439  boot code. imgx leaves it zero; a boot loader MAY overwrite it (GRUB's boot.img goes here,
//             patched with the LBA of core.img). Nothing else in the sector may be touched.
//   440..443  disk signature (classic MBR: a non-zero id; protective MBR: 0, per the UEFI spec)
//   444..445  zero
//   446..509  four 16-byte partition records
//   510..511  boot signature 55 AA
// With a classic MBR, sectors 1..2047 (before the first 1 MiB-aligned partition) are free for
// GRUB's core.img ("MBR gap"); with GPT, core.img goes into the BIOS boot partition instead.
import type { DiskLayout } from './layout.ts';
import { MBR_MAX_SECTORS, MBR_TYPE_PROTECTIVE, SECTOR_SIZE } from './layout.ts';

/** Byte ranges of LBA 0 that a boot loader may overwrite ([start, end) offsets). */
export const MBR_BOOT_CODE_RANGE = { start: 0, end: 440 } as const;
export const MBR_DISK_SIGNATURE_OFFSET = 440;
export const MBR_PARTITION_TABLE_OFFSET = 446;
export const MBR_BOOT_SIGNATURE_OFFSET = 510;

export interface MbrRecord {
  bootable: boolean;
  type: number;
  firstLba: number;
  sectors: number;
  /** CHS bytes (head, sector|cyl-high, cyl-low) for start and end; default FE FF FF, "use LBA". */
  startChs?: [number, number, number];
  endChs?: [number, number, number];
}

const LBA_CHS: [number, number, number] = [0xfe, 0xff, 0xff];

/** A 512-byte MBR with the given records (at most 4), a zero boot code area, and 55 AA. */
export function encodeMbr(records: MbrRecord[], diskSignature = 0): Buffer {
  if (records.length > 4) throw new RangeError('an MBR holds at most 4 primary partitions');
  const b = Buffer.alloc(SECTOR_SIZE);
  b.writeUInt32LE(diskSignature >>> 0, MBR_DISK_SIGNATURE_OFFSET);
  records.forEach((r, i) => {
    if (r.firstLba > MBR_MAX_SECTORS || r.sectors > MBR_MAX_SECTORS) throw new RangeError('MBR partition beyond 2^32 sectors');
    const o = MBR_PARTITION_TABLE_OFFSET + 16 * i;
    b[o] = r.bootable ? 0x80 : 0x00;
    b.set(r.startChs ?? LBA_CHS, o + 1);
    b[o + 4] = r.type;
    b.set(r.endChs ?? LBA_CHS, o + 5);
    b.writeUInt32LE(r.firstLba, o + 8);
    b.writeUInt32LE(r.sectors, o + 12);
  });
  b[MBR_BOOT_SIGNATURE_OFFSET] = 0x55;
  b[MBR_BOOT_SIGNATURE_OFFSET + 1] = 0xaa;
  return b;
}

/**
 * The protective MBR of a GPT disk (UEFI spec 5.2.3): one 0xEE record from LBA 1 to the end of the
 * disk, its size capped at 0xFFFFFFFF sectors on disks over 2 TiB; not bootable; disk signature 0.
 */
export function encodeProtectiveMbr(diskSectors: number): Buffer {
  return encodeMbr([
    {
      bootable: false,
      type: MBR_TYPE_PROTECTIVE,
      firstLba: 1,
      sectors: Math.min(diskSectors - 1, MBR_MAX_SECTORS),
      startChs: [0x00, 0x02, 0x00], // CHS of LBA 1
      endChs: [0xff, 0xff, 0xff],
    },
  ]);
}

/** The classic MBR for a layout planned with table 'mbr'. */
export function encodeClassicMbr(layout: DiskLayout): Buffer {
  if (layout.table !== 'mbr') throw new RangeError('encodeClassicMbr needs a layout with table "mbr"');
  return encodeMbr(
    layout.partitions.map((p) => ({ bootable: p.bootable, type: p.mbrType, firstLba: p.firstLba, sectors: p.sectors })),
    layout.diskSignature,
  );
}

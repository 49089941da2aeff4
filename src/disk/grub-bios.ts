// GRUB's BIOS boot chain placed by imgx itself (what grub-bios-setup does, without a loop device):
//   LBA 0            boot.img's code, around the partition table already there
//   core LBA …       core.img (diskboot.img's sector, then the kernel and modules), contiguous
// boot.img learns where core.img starts from an 8-byte LBA at 0x5c; the first sector of core.img
// (diskboot) holds a block list at its end saying where the rest is. grub-mkimage writes that list
// for a core.img at LBA 1 (start 2, length = sectors - 1), so only the start needs changing.
import { SECTOR_SIZE } from './layout.ts';

/** Offsets in boot.img (GRUB's boot/i386/pc/boot.S). */
const BPB_START = 0x03;
const BPB_END = 0x5a;
const KERNEL_SECTOR = 0x5c;
const BOOT_DRIVE_CHECK = 0x66;
/** Disk signature, partition table and 0x55AA: the table writer's bytes, never boot.img's. */
export const BOOT_CODE_END = 0x1b8;

/** The block list entry at the end of diskboot.img: start (u64), sector count (u16), segment (u16). */
const BLOCKLIST_ENTRY = 12;
const FIRST_BLOCKLIST = SECTOR_SIZE - BLOCKLIST_ENTRY;
/** diskboot loads core.img's second sector and on at segment 0x820 (0x8000 + one sector). */
const FIRST_SEGMENT = 0x820;

export interface BiosBootCode {
  /** LBA 0 with boot.img's code merged in (the table bytes kept). */
  mbr: Buffer;
  /** core.img, patched for its place on disk. */
  core: Buffer;
  /** First LBA of core.img. */
  coreLba: number;
}

/**
 * Merges boot.img into the MBR sector `mbr` (protective or classic, as the table writer made it)
 * and patches core.img for `coreLba`. `room` is how many sectors the embedding area has.
 */
export function placeBiosBoot(bootImg: Buffer, coreImg: Buffer, mbr: Buffer, coreLba: number, roomSectors: number): BiosBootCode {
  if (bootImg.length !== SECTOR_SIZE) throw new Error(`boot.img is ${bootImg.length} bytes, not ${SECTOR_SIZE}`);
  if (mbr.length !== SECTOR_SIZE) throw new Error(`MBR sector is ${mbr.length} bytes`);
  const sectors = Math.ceil(coreImg.length / SECTOR_SIZE);
  if (sectors > roomSectors) throw new Error(`core.img needs ${sectors} sectors, the embedding area has ${roomSectors}`);
  if (sectors < 2) throw new Error('core.img is shorter than two sectors');

  const sector = Buffer.from(mbr);
  bootImg.copy(sector, 0, 0, BOOT_CODE_END);
  // grub-bios-setup keeps the BPB of the sector it writes over (none on a fresh disk: zeros).
  mbr.copy(sector, BPB_START, BPB_START, BPB_END);
  sector.writeBigUInt64LE(BigInt(coreLba), KERNEL_SECTOR);
  // A hard disk: trust the drive number the BIOS passes in DL (boot.S's check is a jump; make it NOPs).
  sector[BOOT_DRIVE_CHECK] = 0x90;
  sector[BOOT_DRIVE_CHECK + 1] = 0x90;

  const core = Buffer.alloc(sectors * SECTOR_SIZE);
  coreImg.copy(core);
  const length = core.readUInt16LE(FIRST_BLOCKLIST + 8);
  if (length !== sectors - 1) throw new Error(`core.img's block list says ${length} sectors after the first, the file has ${sectors - 1}`);
  core.writeBigUInt64LE(BigInt(coreLba + 1), FIRST_BLOCKLIST);
  core.writeUInt16LE(FIRST_SEGMENT, FIRST_BLOCKLIST + 10);
  // The entry before it (zeros in diskboot.img) ends the list: one contiguous run is all there is.
  return { mbr: sector, core, coreLba };
}

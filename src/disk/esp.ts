// The EFI system partition: FAT32 made by mtools straight at the partition's offset in the image
// (`-i IMAGE@@OFFSET`), so nothing is mounted and no loop device is needed. It holds GRUB as the
// removable-media path EFI/BOOT/BOOTX64.EFI, which every UEFI firmware tries without NVRAM entries.
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PlannedPartition } from './layout.ts';
import { SECTOR_SIZE } from './layout.ts';
import { runTool } from './host-tool.ts';

const MTOOLS = 'mtools';
// mtools reads ~/.mtoolsrc and /etc/mtools.conf; a sector count that is not a whole number of
// "cylinders" would trip its geometry check.
const ENV = { ...process.env, MTOOLSRC: '/dev/null', MTOOLS_SKIP_CHECK: '1' };

export async function writeEsp(image: string, esp: PlannedPartition, efiBinary: Buffer, volumeId: number, workDir: string): Promise<void> {
  const target = `${image}@@${esp.offset}`;
  const tool = (cmd: string, args: string[], purpose: string) => runTool(cmd, ['-i', target, ...args], { packages: MTOOLS, purpose, env: ENV });
  const serial = (volumeId >>> 0).toString(16).padStart(8, '0');
  // -H: hidden sectors = the partition's start, as a FAT made inside a partition should say.
  await tool('mformat', ['-F', '-T', String(esp.sectors), '-h', '64', '-s', '32', '-H', String(esp.firstLba), '-M', String(SECTOR_SIZE), '-N', serial, '-v', 'ESP', '::'], 'formatting the EFI system partition');
  await dropBootSectorTable(image, esp.offset);
  const efi = join(workDir, 'BOOTX64.EFI');
  await writeFile(efi, efiBinary);
  await tool('mmd', ['::/EFI', '::/EFI/BOOT'], 'writing the EFI system partition');
  await tool('mcopy', ['-o', efi, '::/EFI/BOOT/BOOTX64.EFI'], 'writing the EFI system partition');
}

/**
 * mformat leaves a one-entry partition table in the FAT boot sector (and its backup); GRUB then sees
 * a partition nested in the ESP ("improperly nested partition"). A FAT volume has no use for it.
 */
async function dropBootSectorTable(image: string, offset: number): Promise<void> {
  const fh = await open(image, 'r+');
  try {
    const sector = Buffer.alloc(SECTOR_SIZE);
    await fh.read(sector, 0, SECTOR_SIZE, offset);
    if (sector.readUInt16LE(510) !== 0xaa55 || sector.toString('latin1', 0x52, 0x5a) !== 'FAT32   ') return;
    const backup = sector.readUInt16LE(0x32);
    for (const s of backup > 0 && backup < 32 ? [0, backup] : [0]) {
      await fh.read(sector, 0, SECTOR_SIZE, offset + s * SECTOR_SIZE);
      sector.fill(0, 0x1be, 0x1fe);
      await fh.write(sector, 0, SECTOR_SIZE, offset + s * SECTOR_SIZE);
    }
  } finally {
    await fh.close();
  }
}

// GRUB images from the host's grub-mkimage: core.img for BIOS (i386-pc) and BOOTX64.EFI for UEFI
// (x86_64-efi), each with the early config (find the root by UUID) and every module the menu needs
// built in, so nothing of GRUB has to live on the root filesystem but grub.cfg.
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskError } from '../errors.ts';
import { runTool } from './host-tool.ts';

export type GrubTarget = 'i386-pc' | 'x86_64-efi';

export const GRUB_LIB = process.env.IMGX_GRUB_LIB || '/usr/lib/grub';

const PACKAGES: Record<GrubTarget, string> = { 'i386-pc': 'grub-pc-bin', 'x86_64-efi': 'grub-efi-amd64-bin' };

// What grub.cfg uses (search, serial, terminal, linux, initrd, boot) and what a person at the GRUB
// prompt expects (ls, cat, configfile, echo, test), plus the disk, partition and filesystem drivers.
const COMMON_MODULES = ['part_gpt', 'part_msdos', 'ext2', 'search', 'search_fs_uuid', 'normal', 'linux', 'boot', 'configfile', 'echo', 'test', 'ls', 'cat', 'serial', 'terminal', 'gzio'];
const MODULES: Record<GrubTarget, string[]> = {
  'i386-pc': ['biosdisk', ...COMMON_MODULES],
  'x86_64-efi': [...COMMON_MODULES, 'fat', 'efi_gop', 'all_video'],
};

export async function grubModulesDir(target: GrubTarget): Promise<string> {
  const dir = join(GRUB_LIB, target);
  try {
    await access(join(dir, 'moddep.lst'));
  } catch {
    throw new DiskError('IMGX_TOOL_MISSING', `booting under ${target === 'i386-pc' ? 'BIOS' : 'UEFI'} needs GRUB's ${target} modules in ${dir} (Debian package: ${PACKAGES[target]})`);
  }
  return dir;
}

/** Runs grub-mkimage; returns the image's bytes. `workDir` holds the early config and the output. */
export async function makeGrubImage(target: GrubTarget, earlyCfg: string, workDir: string): Promise<Buffer> {
  const dir = await grubModulesDir(target);
  const cfg = join(workDir, `early-${target}.cfg`);
  const out = join(workDir, target === 'i386-pc' ? 'core.img' : 'BOOTX64.EFI');
  await writeFile(cfg, earlyCfg);
  await runTool('grub-mkimage', ['--directory', dir, '--format', target, '--compression', 'auto', '--output', out, '--config', cfg, '--prefix', '/boot/grub', ...MODULES[target]], {
    packages: `grub-common, ${PACKAGES[target]}`,
    purpose: `building GRUB's ${target} image`,
  });
  return readFile(out);
}

/** boot.img, the 512-byte BIOS boot sector code. */
export async function grubBootSector(): Promise<Buffer> {
  return readFile(join(await grubModulesDir('i386-pc'), 'boot.img'));
}
